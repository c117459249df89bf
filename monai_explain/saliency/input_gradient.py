"""Input-gradient saliency (Simonyan et al., 2014; Right for the Right Reasons) and input x gradient."""

from __future__ import annotations

import torch
from monai.utils import StrEnum
from torch import nn

from .base import SaliencyMethod
from .batchnorm import BatchNormGrad

__all__ = ["ChannelReduction", "InputGradient", "InputXGradient"]


class ChannelReduction(StrEnum):
    """How the per-channel magnitudes of an input attribution are merged into one map: sum, mean or max."""

    SUM = "sum"
    MEAN = "mean"
    MAX = "max"


class InputGradient(SaliencyMethod):
    """Input gradient: ``reduce_channels |d y_c / d x|``, with one ``torch.autograd.grad`` w.r.t. the input.

    The gradient is taken with ``create_graph=True``, so a loss on the map back-propagates through the
    gradient computation (a double backward) to every parameter. The input must be the very tensor fed to the
    model, with ``requires_grad=True``: pass it as ``inputs`` to :meth:`compute` (by default the one seen in
    the last forward is used); :meth:`__call__` makes such a tensor itself. The score differentiated is the
    batch sum of the target logits (exact per sample in eval mode; BatchNorm in train mode couples samples).

    Args:
        model: the classifier, returning ``(B, C)`` logits.
        channel_reduction: how the input channels are merged, a :class:`ChannelReduction` (default ``"sum"``,
            the L1 norm over channels).
        batchnorm: second derivative of the network's BatchNorm layers (``"exact"``, ``"native"`` or
            ``"per_sample"``, see :class:`~monai_explain.saliency.batchnorm.BatchNormGrad`).
        signed: keep the sign of the attribution (the gradient, or ``x * gradient``) instead of its absolute value,
            e.g. to let a loss see evidence for and against the class separately.

    Example:
        >>> from monai.networks.nets import DenseNet121
        >>> net = DenseNet121(spatial_dims=2, in_channels=1, out_channels=3)
        >>> maps, logits = InputGradient(net)(torch.rand(2, 1, 64, 64), torch.tensor([0, 1]))
        >>> maps.shape
        torch.Size([2, 1, 64, 64])
    """

    needs_input_grad = True

    def __init__(
        self,
        model: nn.Module,
        channel_reduction: ChannelReduction | str = ChannelReduction.SUM,
        batchnorm: BatchNormGrad | str = BatchNormGrad.EXACT,
        signed: bool = False,
    ) -> None:
        super().__init__(model, batchnorm=batchnorm, signed=signed)
        self.channel_reduction = ChannelReduction(channel_reduction)

    def _attribution(self, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """Per-channel, non-negative attribution ``(B, C_in, *spatial)``."""
        return grad if self.signed else grad.abs()

    def _reduce(self, a: torch.Tensor) -> torch.Tensor:
        if self.channel_reduction == ChannelReduction.SUM:
            return a.sum(dim=1, keepdim=True)
        if self.channel_reduction == ChannelReduction.MEAN:
            return a.mean(dim=1, keepdim=True)
        return a.amax(dim=1, keepdim=True)

    def _compute(self, logits: torch.Tensor, index: torch.Tensor | None, inputs: torch.Tensor | None) -> torch.Tensor:
        x = inputs if inputs is not None else self._input
        if x is None:
            raise RuntimeError(
                f"{type(self).__name__} needs the input tensor fed to the model: pass inputs=..., or run the forward "
                "inside recording() / after register()."
            )
        if not x.requires_grad:
            raise RuntimeError(
                f"{type(self).__name__}: the input does not require grad; feed the model "
                "x = x.detach().requires_grad_(True) and pass that tensor as inputs."
            )
        maps = [self._reduce(self._attribution(x, g)) for g in self._target_gradients(logits, index, x, "the input")]
        out = maps[0] if len(maps) == 1 else torch.cat(maps, dim=1)
        return out if out.dtype in (torch.float32, torch.float64) else out.float()


class InputXGradient(InputGradient):
    """Input x gradient: ``reduce_channels |x * d y_c / d x|`` (same arguments as :class:`InputGradient`).

    Example:
        >>> from monai.networks.nets import resnet18
        >>> net = resnet18(spatial_dims=2, n_input_channels=1, num_classes=2)
        >>> maps, _ = InputXGradient(net)(torch.rand(2, 1, 32, 32), torch.tensor([1, 0]))
        >>> maps.shape
        torch.Size([2, 1, 32, 32])
    """

    def _attribution(self, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return x * grad if self.signed else (x * grad).abs()
