"""Class activation maps (Zhou et al., 2016), differentiable, for networks with a GAP + linear head."""

from __future__ import annotations

import logging
from functools import partial

import torch
from torch import nn

from .base import SaliencyMethod, first_tensor
from .functional import channel_weighted_sum, class_weights, gap_linear_matches
from .head import GapLinearHead
from .layers import resolve_layer

__all__ = ["CAM"]

logger = logging.getLogger(__name__)

_POOLING = (nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AvgPoolNd, nn.Flatten)


class CAM(SaliencyMethod):
    """Class activation map: ``CAM_c = ReLU(sum_k W[c, k] * A_k)`` from the classifier weights ``W``.

    ``A`` is the last feature map, the one whose global average pool is the input of the linear classifier
    (``logits = W mean_x(A) + b``). The map needs no backward pass at all: it is one matrix product of the
    recorded feature map with rows of ``W`` (all classes of a multi-hot target in the same product), and a loss
    on it back-propagates to ``W`` and to every layer up to ``A``. It also works on a ``no_grad`` forward
    (evaluation, overlays), where it is simply not differentiable.

    Relation with Grad-CAM: at that same layer Grad-CAM's weights are ``dy_c/dA_k`` averaged over the ``N``
    spatial positions, i.e. ``W[c, k] / N``, so ``GradCAM = CAM / N`` (N = number of positions of ``A``,
    e.g. 7 x 7 = 49 for DenseNet121 at 224 x 224); HiResCAM at that layer equals Grad-CAM. The bias is ignored.

    The target layer defaults to the feature map that feeds the global average pooling. It is found during
    the first forward with the hooks installed: every sub-module whose output has the classifier's number of
    channels is a candidate, and the last one (in execution order) whose spatial mean equals the recorded
    classifier input is chosen (pooling and flatten modules excepted), e.g. ``"class_layers.relu"`` for MONAI's
    DenseNet121 and ``"layer4"`` for (MONAI or torchvision) ResNets. The choice is logged and kept in
    :attr:`target_layer`. Whether the head is GAP + linear is checked again once per train/eval mode (a
    dropout before the classifier fails that check in train mode).

    If a later operation modifies the layer's output in place (e.g. an in-place ReLU after a norm layer), the
    recorded tensor is the modified one, so the map is that of the in-place operation's output.

    Args:
        model: a classifier with a global-average-pool + linear head, returning ``(B, C)`` logits.
        target_layer: dotted module name of the last feature map; None to detect it.
        fc_layer: dotted name of the linear classifier; defaults to the last ``nn.Linear`` of the model.
        signed: keep the sign of ``sum_k W[c, k] * A_k`` (no ReLU). The rectified map hides the evidence *against*
            the class (negative values); a loss on the signed map (with ``ExplanationLoss(sign="absolute")``) also
            sees evidence that works through its absence, e.g. a marker whose absence lowers the logit.

    Raises:
        ValueError: when the model has no linear layer, or a name is wrong.

    Example:
        >>> from monai.networks.nets import DenseNet121
        >>> net = DenseNet121(spatial_dims=2, in_channels=1, out_channels=3)
        >>> cam = CAM(net)
        >>> maps, logits = cam(torch.rand(2, 1, 64, 64), torch.tensor([1, 2]))
        >>> cam.target_layer, maps.shape
        ('class_layers.relu', torch.Size([2, 1, 64, 64]))
    """

    needs_autograd = False

    def __init__(
        self,
        model: nn.Module,
        target_layer: str | nn.Module | None = None,
        fc_layer: str | nn.Module | None = None,
        signed: bool = False,
    ) -> None:
        super().__init__(model, signed=signed)
        self.head = GapLinearHead(model, fc_layer)
        if self.head.module is None:
            raise ValueError(
                f"CAM needs a linear classifier after global average pooling, but {type(model).__name__} has no "
                "nn.Linear; use GradCAM for other heads."
            )
        self.target_layer: str | None = None
        self._target_module: nn.Module | None = None
        if target_layer is not None:
            self.target_layer, self._target_module = resolve_layer(model, target_layer)
        self._activation: torch.Tensor | None = None
        self._candidates: list[tuple[str, torch.Tensor]] = []
        self._detect_handles: list = []
        self._detect_failure: str | None = None

    # ----------------------------------------------------------------------------------------------- hooks
    def _register_hooks(self) -> None:
        self.head.record_always = self.target_layer is None
        self._detect_handles = []
        self._keep(self.head.module.register_forward_pre_hook(self._on_fc_input))  # type: ignore[union-attr]
        if self._target_module is not None:
            self._keep(self._target_module.register_forward_hook(self._record))
            return
        in_features = self.head.module.in_features  # type: ignore[union-attr]
        for name, module in self.model.named_modules():
            if not name or module is self.head.module or isinstance(module, _POOLING):
                continue
            handle = module.register_forward_hook(partial(self._collect, name, in_features))
            self._detect_handles.append(handle)
            self._keep(handle)

    def _record(self, module: nn.Module, args: tuple, output: object) -> None:
        self._activation = first_tensor(output)

    def _collect(self, name: str, channels: int, module: nn.Module, args: tuple, output: object) -> None:
        t = first_tensor(output)
        if t is not None and t.ndim >= 3 and t.shape[1] == channels:
            self._candidates.append((name, t))

    def _on_fc_input(self, module: nn.Module, args: tuple) -> None:
        self.head._record(module, args)
        if self.target_layer is None and self.head.fc_input is not None:
            self._detect(self.head.fc_input)

    def _detect(self, fc_input: torch.Tensor) -> None:
        names = [name for name, _ in self._candidates]
        for name, t in reversed(self._candidates):
            if gap_linear_matches(t, fc_input):
                self.target_layer, self._activation = name, t
                _, self._target_module = resolve_layer(self.model, name)
                self.head.set_decision(True)
                self.head.record_always = False
                for handle in self._detect_handles:
                    handle.remove()
                self._detect_handles.clear()
                self._keep(self._target_module.register_forward_hook(self._record))
                logger.info("CAM: the global average pooling is fed by the output of '%s'.", name)
                break
        else:
            self._detect_failure = (
                f"CAM could not find the feature map feeding the global average pooling before '{self.head.name}' "
                f"(candidates with {fc_input.shape[-1]} channels: {', '.join(names) or 'none'}); pass target_layer, "
                "or use GradCAM if the head is not GAP + linear."
            )
        self._candidates = []

    def _release(self) -> None:
        self._activation = None
        self._candidates = []
        self.head.release()

    # ----------------------------------------------------------------------------------------- computation
    def _compute(self, logits: torch.Tensor, index: torch.Tensor | None, inputs: torch.Tensor | None) -> torch.Tensor:
        activation = self._activation
        if activation is None:
            if self.target_layer is None and self._detect_failure is not None:
                raise RuntimeError(self._detect_failure)
            raise RuntimeError(
                f"CAM: nothing recorded at '{self.target_layer or 'the layer before global average pooling'}': run "
                "the model's forward inside recording() or after register(), then call compute() once."
            )
        if not self.head.check(activation, str(self.target_layer)):
            raise RuntimeError(
                f"CAM needs a global-average-pool + linear head: the input of '{self.head.name}' is not the spatial "
                f"mean of the output of '{self.target_layer}' (in {'train' if self.head.mode else 'eval'} mode); "
                "use GradCAM for this layer or head."
            )
        return self._rectify(channel_weighted_sum(activation, class_weights(self.head.module.weight, index)))  # type: ignore
