"""Saliency methods by name (for configs, bundles and sweeps)."""

from __future__ import annotations

from typing import Any

from monai.utils import StrEnum
from torch import nn

from .base import SaliencyMethod
from .cam import CAM
from .gradcam import GradCAM
from .hirescam import HiResCAM
from .input_gradient import InputGradient, InputXGradient

__all__ = ["SaliencyMethodName", "get_saliency_method"]


class SaliencyMethodName(StrEnum):
    """Names accepted by :func:`get_saliency_method`."""

    CAM = "cam"
    GRADCAM = "gradcam"
    HIRESCAM = "hirescam"
    INPUT_GRADIENT = "input_gradient"
    INPUT_X_GRADIENT = "input_x_gradient"


_METHODS: dict[SaliencyMethodName, type[SaliencyMethod]] = {
    SaliencyMethodName.CAM: CAM,
    SaliencyMethodName.GRADCAM: GradCAM,
    SaliencyMethodName.HIRESCAM: HiResCAM,
    SaliencyMethodName.INPUT_GRADIENT: InputGradient,
    SaliencyMethodName.INPUT_X_GRADIENT: InputXGradient,
}


def get_saliency_method(name: str, model: nn.Module, **kwargs: Any) -> SaliencyMethod:
    """Build a saliency method by name.

    Case, ``-`` and ``_`` are ignored (``"Grad-CAM"`` = ``"gradcam"``, ``"input-gradient"`` = ``"input_gradient"``).

    Args:
        name: one of ``cam``, ``gradcam``, ``hirescam``, ``input_gradient``, ``input_x_gradient``.
        model: the classifier.
        kwargs: the method's own arguments (e.g. ``target_layer="features.denseblock4"``).

    Returns:
        The method instance (hooks not yet installed).

    Raises:
        ValueError: for an unknown name.

    Example:
        >>> from monai.networks.nets import DenseNet121
        >>> net = DenseNet121(spatial_dims=2, in_channels=1, out_channels=2)
        >>> type(get_saliency_method("Grad-CAM", net, target_layer="class_layers.relu")).__name__
        'GradCAM'
    """
    key = str(name).lower().replace("-", "").replace("_", "")
    for member, cls in _METHODS.items():
        if member.value.replace("_", "") == key:
            return cls(model, **kwargs)
    raise ValueError(f"unknown saliency method '{name}'; choose one of {', '.join(m.value for m in _METHODS)}.")
