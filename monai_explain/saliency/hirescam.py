"""HiResCAM (Draelos & Carin, 2020): element-wise gradient x activation, summed over channels."""

from __future__ import annotations

import torch

from .functional import map_dtype
from .gradcam import GradCAM

__all__ = ["HiResCAM"]


class HiResCAM(GradCAM):
    """HiResCAM: ``ReLU(sum_k dy_c/dA_k * A_k)``, the gradient kept at every position instead of averaged.

    Unlike Grad-CAM, the map is faithful to the model's computation at the target layer (the sum over positions
    of the un-rectified map is the linear part of the logit). After GAP + linear the gradient is ``W[c, k] / N``
    at every position, so at that layer HiResCAM, Grad-CAM and CAM / N coincide and the same closed-form fast
    path is used (see :class:`GradCAM` for ``fast_path`` and the batched-gradient convention).

    Args:
        model: the classifier, returning ``(B, C)`` logits.
        target_layer: dotted module path of the feature map.
        fast_path: ``"auto"``, ``True`` or ``False``, as in :class:`GradCAM`.
        fc_layer: the linear classifier for the fast path; defaults to the model's last ``nn.Linear``.
        batchnorm: second derivative of the BatchNorm layers after the target, as in :class:`GradCAM`.

    Example:
        >>> from monai.networks.nets import resnet18
        >>> net = resnet18(spatial_dims=2, n_input_channels=1, num_classes=2)
        >>> maps, _ = HiResCAM(net, "layer3")(torch.rand(2, 1, 64, 64), torch.tensor([0, 1]))
        >>> maps.shape
        torch.Size([2, 1, 64, 64])
    """

    def _gradient_map(self, logits: torch.Tensor, index: torch.Tensor | None, activation: torch.Tensor) -> torch.Tensor:
        what = f"the output of '{self.target_layer}'"
        dtype = map_dtype(activation)
        maps = [
            (g * activation).sum(dim=1, dtype=dtype) for g in self._target_gradients(logits, index, activation, what)
        ]
        return torch.stack(maps, dim=1)
