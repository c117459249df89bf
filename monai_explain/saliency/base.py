"""The saliency-method base class: forward hooks that record what a map needs, and differentiable computation."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextlib import nullcontext as _nullcontext
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from monai_explain.utils.checks import check_tensor, value_checks_enabled
from monai_explain.utils.saliency_ops import resize_saliency

from .batchnorm import BatchNormGrad, BatchNormPatch, frozen_batch_statistics, patch_batchnorm

__all__ = ["SaliencyMethod", "first_tensor", "parse_target"]

logger = logging.getLogger(__name__)


def first_tensor(obj: Any) -> torch.Tensor | None:
    """The first tensor in ``obj`` (a tensor, or a tuple/list/dict holding tensors), or None."""
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, (tuple, list)):
        for item in obj:
            found = first_tensor(item)
            if found is not None:
                return found
    if isinstance(obj, dict):
        return first_tensor(list(obj.values()))
    return None


def parse_target(target: torch.Tensor | int, logits: torch.Tensor) -> torch.Tensor | None:
    """Validate a saliency target against ``(B, C)`` logits.

    Args:
        target: class index per sample, as an int (same class for all), a ``(B,)`` integer tensor or a
            ``(B, 1)`` integer tensor; or a multi-hot ``(B, C)`` tensor (any dtype) asking for one map per class.
        logits: the network's ``(B, C)`` output; a single-logit binary model has ``C = 1`` (use index 0).

    Returns:
        ``(B,)`` long tensor of class indices on the logits' device, or None for "one map per class".

    Raises:
        TypeError: for a target that is neither an int nor a tensor.
        ValueError: for a shape that fits neither form, float class indices or an index outside ``[0, C)``
            (on an accelerator the range check is an asynchronous device assertion, no host synchronisation; see
            :func:`monai_explain.utils.value_checks`).
    """
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a (B, C) tensor, got {shape}.")
    b, c = logits.shape
    if isinstance(target, int) and not isinstance(target, bool):
        target = torch.full((b,), target, dtype=torch.long, device=logits.device)
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be an int or a tensor, got {type(target).__name__}.")
    if target.ndim == 2 and tuple(target.shape) == (b, c):
        return None
    if target.ndim == 2 and target.shape == (b, 1) and not target.is_floating_point():
        target = target[:, 0]
    if target.ndim != 1 or target.shape[0] != b:
        raise ValueError(
            f"target of shape {tuple(target.shape)} fits neither class indices (B,) = ({b},) nor multi-hot "
            f"(B, C) = ({b}, {c}) for logits of shape {tuple(logits.shape)}."
        )
    if target.is_floating_point() or target.dtype == torch.bool:
        raise ValueError(f"class-index target must be an integer tensor, got dtype {target.dtype}.")
    if target.numel() and value_checks_enabled():  # CPU: one check, raised at once; accelerator: asynchronous
        in_range = (target >= 0) & (target < c)
        if target.device.type != "cpu":
            check_tensor(in_range, f"target class index out of range [0, {c}) for logits {tuple(logits.shape)}.")
        elif not bool(in_range.all()):
            lo, hi = int(target.min()), int(target.max())
            raise ValueError(f"target class index out of range [0, {c}): got values in [{lo}, {hi}].")
    return target.to(device=logits.device, dtype=torch.long)


class SaliencyMethod:
    """Base of the differentiable saliency methods.

    A method is built on a model and records, with forward hooks, what its map needs during the model's own
    forward pass (a feature map, the classifier input, the input size). :meth:`compute` then turns the
    recorded tensors and the logits of that same forward into maps with ``torch.autograd.grad(...,
    create_graph=True)``, so that a loss on the maps trains the network. It never calls ``.backward()``,
    never writes a parameter's ``.grad``, never switches train/eval mode and never runs an extra forward.

    Hooks are installed persistently with :meth:`register` (e.g. for a whole training run) and taken away
    with :meth:`remove`, or for a block with :meth:`recording`. Recorded tensors are references, not
    copies, and are dropped after :meth:`compute` and at the start of the next forward.

    The module names of a model wrapped in ``DistributedDataParallel`` are found with or without the
    ``"module."`` prefix. ``nn.DataParallel`` is not supported (its replicas would race on the recordings).

    Second derivative of BatchNorm: methods that differentiate twice (input gradient, input x gradient,
    Grad-CAM / HiResCAM below the last feature map) swap, while registered, an exact closed-form double backward
    into the BatchNorm layers they differentiate through (:mod:`monai_explain.saliency.batchnorm`): same
    forward, first backward, running statistics and state dict as PyTorch's BatchNorm, several times fewer
    kernels in the training step's backward. ``batchnorm="native"`` keeps PyTorch's own; ``"per_sample"`` holds
    the batch statistics constant in the saliency term (train mode), so a sample's map does not depend on the
    other samples of its batch. The swap is undone by :meth:`remove` (also when :meth:`recording` exits on an
    exception).

    Args:
        model: the classifier, returning ``(B, C)`` logits.
        batchnorm: a :class:`~monai_explain.saliency.batchnorm.BatchNormGrad` value (default ``"exact"``).

    Example:
        >>> import torch
        >>> from monai.networks.nets import DenseNet121
        >>> from monai_explain.saliency import GradCAM
        >>> net = DenseNet121(spatial_dims=2, in_channels=1, out_channels=3)
        >>> cam = GradCAM(net, "class_layers.relu")
        >>> with cam.recording():
        ...     logits = net(torch.rand(2, 1, 64, 64))
        ...     maps = cam.compute(logits, torch.tensor([0, 2]))
        >>> maps.shape
        torch.Size([2, 1, 64, 64])
    """

    needs_input_grad: ClassVar[bool] = False
    needs_autograd: ClassVar[bool] = True

    def __init__(
        self, model: nn.Module, batchnorm: BatchNormGrad | str = BatchNormGrad.EXACT, signed: bool = False
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        self.model = model
        self.signed = bool(signed)
        self.batchnorm = BatchNormGrad(batchnorm)
        self._bn_patch: BatchNormPatch | None = None
        self._handles: list[RemovableHandle] = []
        self._input_spatial: tuple[int, ...] | None = None
        self._input_device: torch.device | None = None
        self._input: torch.Tensor | None = None
        self._output: torch.Tensor | None = None  # the logits of the recorded forward, to refuse other logits

    # ----------------------------------------------------------------------------------------------- hooks
    @property
    def is_registered(self) -> bool:
        """Whether the hooks are currently installed."""
        return bool(self._handles)

    def register(self) -> SaliencyMethod:
        """Install the forward hooks (no-op when already installed).

        Returns:
            self, for chaining.
        """
        if self._handles:
            return self
        self._handles.append(self.model.register_forward_pre_hook(self._on_forward_start, with_kwargs=True))
        self._handles.append(self.model.register_forward_hook(self._on_forward_end))
        try:
            self._register_hooks()
            if self.batchnorm != BatchNormGrad.NATIVE:
                self._bn_patch = patch_batchnorm(self._twice_differentiated_modules())
        except BaseException:
            self.remove()
            raise
        return self

    def remove(self) -> None:
        """Take every hook of this method away and drop the recorded tensors."""
        while self._handles:
            self._handles.pop().remove()
        if self._bn_patch is not None:
            self._bn_patch.remove()
            self._bn_patch = None
        self.release()

    @contextmanager
    def recording(self) -> Iterator[SaliencyMethod]:
        """Context manager: hooks installed on entry and removed on exit, also when the block raises.

        Hooks that were already installed by :meth:`register` stay installed.
        """
        owned = not self.is_registered
        if owned:
            self.register()
        try:
            yield self
        finally:
            if owned:
                self.remove()

    def release(self) -> None:
        """Drop the references to the tensors recorded in the last forward."""
        self._input = None
        self._output = None
        self._release()

    def _twice_differentiated_modules(self) -> list[nn.Module]:
        """Modules whose backward the saliency map differentiates (``create_graph=True``): all of them for input
        gradients, none for CAM; Grad-CAM narrows it to the layers after its target."""
        return list(self.model.modules()) if self.needs_autograd else []

    @property
    def patched_batchnorms(self) -> list[nn.Module]:
        """The BatchNorm modules currently running the closed-form double backward for this method."""
        return self._bn_patch.modules if self._bn_patch is not None and self._bn_patch.active else []

    def _register_hooks(self) -> None:
        """Install the method's own hooks with :meth:`_keep`; called by :meth:`register`."""

    def _release(self) -> None:
        """Drop the method's own recorded tensors."""

    def _keep(self, handle: RemovableHandle) -> None:
        self._handles.append(handle)

    def _on_forward_start(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self.release()
        x = first_tensor(args)
        if x is None:
            x = first_tensor(kwargs)
        if x is not None and x.ndim >= 3:
            self._input_spatial = tuple(int(s) for s in x.shape[2:])
            self._input_device = x.device
            if self.needs_input_grad:
                self._input = x

    def _on_forward_end(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._output = first_tensor(output)

    def _check_logits(self, logits: torch.Tensor) -> None:
        """Refuse logits of another forward than the one recorded (maps would silently be those of the latest).

        Free when ``logits`` is the recorded output itself (the normal case); otherwise (e.g. a cast copy) the
        values are compared, which costs a synchronisation on an accelerator.
        """
        recorded = self._output
        if recorded is None or logits is recorded or logits.shape != recorded.shape:
            return
        if torch.equal(logits.detach().to(device=recorded.device, dtype=recorded.dtype), recorded.detach()):
            return
        raise RuntimeError(
            f"{type(self).__name__}.compute(): the logits {tuple(logits.shape)} are not the output of the forward "
            "recorded last (another forward of the model ran in between, so its feature maps were recorded); "
            "call compute() right after the forward that produced the logits."
        )

    # ----------------------------------------------------------------------------------------- computation
    def compute(
        self,
        logits: torch.Tensor,
        target: torch.Tensor | int,
        inputs: torch.Tensor | None = None,
        spatial_size: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Saliency maps for the forward pass that produced ``logits``.

        Args:
            logits: ``(B, C)`` output of the model's last forward (run with the hooks installed).
            target: ``(B,)`` class indices (one map per sample, ``K = 1``) or multi-hot ``(B, C)`` (one map
                per class, ``K = C``; maps of classes absent from a sample are returned too). See
                :func:`parse_target`.
            inputs: the tensor fed to the model, with ``requires_grad=True`` (input-gradient methods only;
                defaults to the one seen in the forward).
            spatial_size: output grid; defaults to the spatial size of the forward's input.

        Returns:
            ``(B, K, *spatial_size)`` float maps (float32, or float64 for a double-precision model), on the
            input's device, differentiable with respect to the network's parameters.

        Raises:
            ValueError: for bad logits or targets.
            RuntimeError: when nothing was recorded, or the logits do not come from the recorded forward (e.g. a
                later forward ran in between).
        """
        index = parse_target(target, logits)
        self._check_logits(logits)
        try:
            with torch.set_grad_enabled(self.needs_autograd or torch.is_grad_enabled()):
                maps = self._compute(logits, index, inputs)
        finally:
            self.release()
        size = spatial_size if spatial_size is not None else self._input_spatial
        if size is not None:
            with torch.autocast(device_type=maps.device.type, enabled=False):
                maps = resize_saliency(maps, size)
        if self._input_device is not None and maps.device != self._input_device:
            maps = maps.to(self._input_device)
        if type(maps) is not torch.Tensor:  # e.g. MetaTensor: keep the autograd link, drop the metadata
            maps = maps.as_subclass(torch.Tensor)
        return maps

    def _rectify(self, maps: torch.Tensor) -> torch.Tensor:
        """The ReLU of a class-evidence map, or the map itself when the method is ``signed``."""
        return maps if self.signed else torch.relu(maps)

    def _compute(self, logits: torch.Tensor, index: torch.Tensor | None, inputs: torch.Tensor | None) -> torch.Tensor:
        """Maps ``(B, K, *feature_spatial)`` before resampling; implemented by each method."""
        raise NotImplementedError

    def __call__(self, inputs: torch.Tensor, target: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the model on ``inputs`` with the hooks installed and return ``(saliency, logits)``.

        For methods that differentiate (``needs_autograd``, all but :class:`CAM`) gradients are enabled for the
        forward, so this also works inside an evaluator's ``no_grad``; CAM follows the caller's grad mode. For
        input-gradient methods an input that does not require grad is replaced by a detached copy that does.
        """
        x = inputs
        if self.needs_input_grad and not x.requires_grad:
            x = x.detach().requires_grad_(True)
        with torch.set_grad_enabled(self.needs_autograd or torch.is_grad_enabled()), self.recording():
            logits = self.model(x)
            if not isinstance(logits, torch.Tensor):
                raise TypeError(f"the model must return a (B, C) logits tensor, got {type(logits).__name__}.")
            saliency = self.compute(logits, target, inputs=x if self.needs_input_grad else None)
        return saliency, logits

    # --------------------------------------------------------------------------------------------- helpers
    def _target_gradients(
        self, logits: torch.Tensor, index: torch.Tensor | None, wrt: torch.Tensor, what: str
    ) -> Iterator[torch.Tensor]:
        """Yield ``d score_m / d wrt`` for each requested map ``m``, keeping the graph (``create_graph=True``).

        The score of a map is the batch sum of the target logits, so one ``autograd.grad`` call serves the whole
        batch (exactly per sample when no layer after ``wrt`` mixes samples, e.g. in eval mode or with
        ``batchnorm="per_sample"``; in train mode BatchNorm layers after ``wrt`` otherwise couple the samples, as in
        every batched Grad-CAM). A multi-hot target (one map per class) is one batched call
        (``is_grads_batched=True``, the classes vectorised) when no BatchNorm is patched, and one call per class
        with the closed-form BatchNorm double backward (cheaper per class than vectorising PyTorch's own).
        """
        if not logits.requires_grad:
            raise RuntimeError(
                "the logits do not require grad: run the forward with gradients enabled (not under no_grad / "
                "inference_mode) to compute gradient-based saliency."
            )
        if not wrt.requires_grad:
            raise RuntimeError(f"{what} does not require grad, so no gradient can be taken with respect to it.")
        frozen = self.batchnorm == BatchNormGrad.PER_SAMPLE and bool(self.patched_batchnorms)
        if index is None and logits.shape[1] > 1 and not self.patched_batchnorms:
            c = logits.shape[1]
            eye = torch.eye(c, dtype=logits.dtype, device=logits.device)
            grad_outputs = eye[:, None, :].expand(c, *logits.shape)
            (grads,) = torch.autograd.grad(
                logits, wrt, grad_outputs, create_graph=True, allow_unused=True, is_grads_batched=True
            )
            if grads is None:
                raise RuntimeError(self._unused_message(what))
            yield from grads.unbind(0)
            return
        if index is not None:
            scores: Iterator[torch.Tensor] = iter([logits.gather(1, index[:, None]).sum()])
        else:
            scores = (logits[:, c].sum() for c in range(logits.shape[1]))
        for score in scores:
            with frozen_batch_statistics() if frozen else _nullcontext():
                (grad,) = torch.autograd.grad(score, wrt, create_graph=True, allow_unused=True)
            if grad is None:
                raise RuntimeError(self._unused_message(what))
            yield grad

    @staticmethod
    def _unused_message(what: str) -> str:
        return (
            f"the logits do not depend on {what}: were the logits produced by the forward recorded last "
            "(no other forward in between)?"
        )
