"""Grad-CAM (Selvaraju et al., 2017) at any named layer, differentiable, with the CAM fast path at the last layer."""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import SaliencyMethod, first_tensor
from .batchnorm import BatchNormGrad
from .functional import channel_weighted_sum, class_weights, spatial_mean
from .head import GapLinearHead
from .layers import resolve_layer

__all__ = ["GradCAM"]

_FAST_PATH_CHOICES = ("auto", True, False)


class GradCAM(SaliencyMethod):
    """Grad-CAM: ``ReLU(sum_k alpha_ck A_k)`` with ``alpha_ck`` the spatial mean of ``d y_c / d A_k``.

    ``A`` is the output of ``target_layer``. The gradient is one ``torch.autograd.grad`` call with respect to the
    recorded activation (``create_graph=True``), so a loss on the map trains every layer: those before ``A``
    through ``A``, those after it (classifier included) through the gradient. A multi-hot target costs one such
    call per class on this path (the fast path below does all classes at once).

    Fast path: when ``A`` reaches the logits only through global average pooling and a linear layer
    (``logits = W mean_x(A) + b``), ``d y_c / d A_k = W[c, k] / N`` everywhere (``N`` = spatial positions of
    ``A``), so Grad-CAM = ``ReLU(sum_k W[c, k] A_k) / N`` = CAM / N, with no second backward (all classes of a
    multi-hot target in one matrix product). With ``fast_path="auto"`` this is detected once per train/eval
    mode by checking that the recorded classifier input equals the spatial mean of ``A`` (cached), and used when
    it holds. The two paths give the same map up to floating-point rounding.

    Batched gradients: the score differentiated is the batch sum of the target logits, which gives each
    sample's own gradient unless a layer after ``A`` mixes samples (BatchNorm in train mode), as in every
    batched Grad-CAM implementation; the fast path is always per sample.

    Args:
        model: the classifier, returning ``(B, C)`` logits (``C = 1`` for a single-logit binary model).
        target_layer: dotted module path, e.g. ``"features.denseblock4"`` or ``"class_layers.relu"`` (MONAI
            DenseNet121), ``"layer4"`` (ResNets); a ``"module."`` prefix of DDP is optional.
        fast_path: ``"auto"`` (detect), ``True`` (require it: error when the layer does not feed GAP + linear)
            or ``False`` (always differentiate).
        fc_layer: the linear classifier for the fast path; defaults to the model's last ``nn.Linear``.
        batchnorm: second derivative of the BatchNorm layers after ``target_layer`` (``"exact"``, ``"native"`` or
            ``"per_sample"``, see :class:`~monai_explain.saliency.batchnorm.BatchNormGrad`); only the layers after
            the target (in module registration order) are differentiated twice, so at the last feature map nothing
            is patched.
        signed: keep the sign of the weighted sum (no ReLU), so that evidence against the class is visible (see
            :class:`~monai_explain.saliency.CAM`).

    Raises:
        ValueError: for a wrong layer name, a bad ``fast_path`` or ``fast_path=True`` without a linear layer.

    Example:
        >>> from monai.networks.nets import DenseNet121
        >>> net = DenseNet121(spatial_dims=2, in_channels=1, out_channels=3)
        >>> gc = GradCAM(net, "features.denseblock3")
        >>> maps, logits = gc(torch.rand(2, 1, 64, 64), torch.tensor([0, 1]))
        >>> maps.shape
        torch.Size([2, 1, 64, 64])
    """

    def __init__(
        self,
        model: nn.Module,
        target_layer: str | nn.Module,
        fast_path: bool | str = "auto",
        fc_layer: str | nn.Module | None = None,
        batchnorm: BatchNormGrad | str = BatchNormGrad.EXACT,
        signed: bool = False,
    ) -> None:
        super().__init__(model, batchnorm=batchnorm, signed=signed)
        if target_layer is None:
            raise ValueError(f"{type(self).__name__} needs a target_layer (CAM detects the last feature map itself).")
        if not any(fast_path is c or (isinstance(c, str) and fast_path == c) for c in _FAST_PATH_CHOICES):
            raise ValueError(f"fast_path must be 'auto', True or False, got {fast_path!r}.")
        self.target_layer, self._target_module = resolve_layer(model, target_layer)
        self.fast_path = fast_path
        self.head: GapLinearHead | None = None
        if fast_path is not False:
            self.head = GapLinearHead(model, fc_layer)
            if self.head.module is None:
                if fast_path is True:
                    raise ValueError(f"fast_path=True needs an nn.Linear classifier; none in {type(model).__name__}.")
                self.head = None
        self._activation: torch.Tensor | None = None

    def _twice_differentiated_modules(self) -> list[nn.Module]:
        """The modules after the target layer's subtree in registration order (execution order for sequential
        networks such as DenseNet and ResNet; a module out of that order is merely left native or patched in vain,
        never wrong)."""
        modules = list(self.model.modules())
        inside = {id(m) for m in self._target_module.modules()}
        try:
            start = next(i for i, m in enumerate(modules) if m is self._target_module)
        except StopIteration:  # pragma: no cover - resolve_layer found it in the model
            return modules
        return [m for m in modules[start + 1 :] if id(m) not in inside]

    def _register_hooks(self) -> None:
        self._keep(self._target_module.register_forward_hook(self._record))
        if self.head is not None:
            self._keep(self.head.register())

    def _record(self, module: nn.Module, args: tuple, output: object) -> None:
        self._activation = first_tensor(output)

    def _release(self) -> None:
        self._activation = None
        if self.head is not None:
            self.head.release()

    def uses_fast_path(self) -> bool | None:
        """Whether the closed-form path is used in the model's current mode (None until decided)."""
        if self.head is None:
            return False
        return self.head.decision()

    def _compute(self, logits: torch.Tensor, index: torch.Tensor | None, inputs: torch.Tensor | None) -> torch.Tensor:
        activation = self._activation
        if activation is None:
            raise RuntimeError(
                f"{type(self).__name__}: nothing recorded at '{self.target_layer}': run the model's forward inside "
                "recording() or after register(), then call compute() once per forward."
            )
        if self.head is not None and self.head.check(activation, self.target_layer):
            n = math.prod(activation.shape[2:])
            return self._rectify(channel_weighted_sum(activation, class_weights(self.head.module.weight, index) / n))  # type: ignore
        if self.fast_path is True:
            raise RuntimeError(
                f"fast_path=True but the output of '{self.target_layer}' does not reach '{self.head.name}' "  # type: ignore
                "through global average pooling only."
            )
        return self._rectify(self._gradient_map(logits, index, activation))

    def _gradient_map(self, logits: torch.Tensor, index: torch.Tensor | None, activation: torch.Tensor) -> torch.Tensor:
        """Un-rectified ``(B, K, *spatial)`` maps from the gradients of the target scores w.r.t. ``activation``."""
        what = f"the output of '{self.target_layer}'"
        alphas = [spatial_mean(g) for g in self._target_gradients(logits, index, activation, what)]
        return channel_weighted_sum(activation, torch.stack(alphas, dim=1))
