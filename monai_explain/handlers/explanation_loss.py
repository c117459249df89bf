"""Ignite handler adding ``lambda(t) * ExplanationLoss(saliency, mask)`` to a MONAI trainer's loss."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys
from monai.utils import IgniteInfo, min_version, optional_import

from monai_explain.handlers.engine_typing import engine_output, workflow
from monai_explain.saliency.targets import HookedSaliencyMethod, TargetPolicy, saliency_target
from monai_explain.utils.input_size import check_input_size

from .lambda_schedules import get_lambda_schedule

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")


__all__ = ["ExplanationLossHandler", "check_learning_rates", "default_saliency_target", "loss_terms"]

logger = logging.getLogger(__name__)


def check_learning_rates(optimizer: Any) -> None:
    """Raise unless every parameter group of ``optimizer`` has a finite learning rate ``lr >= 0``.

    ``torch.optim.SGD`` accepts ``lr=nan`` and every optimizer accepts ``lr=inf``: one step then fills the
    parameters with NaN and the run fails later, far from the cause.

    Raises:
        ValueError: naming the parameter group and the value (the bundle key is ``learning_rate``).
    """
    for i, group in enumerate(getattr(optimizer, "param_groups", [])):
        lr = group.get("lr")
        try:
            value = float(lr.item() if isinstance(lr, torch.Tensor) else lr)
        except (TypeError, ValueError, RuntimeError):
            value = float("nan")
        if isinstance(lr, bool) or not math.isfinite(value) or value < 0:
            raise ValueError(
                f"the learning rate (optimizer param_groups[{i}]['lr'], bundle key 'learning_rate') must be a finite "
                f"number >= 0, got {lr!r}."
            )


def _describe_batch(batch: Any, rows: list[int] | None = None) -> str:
    """``ids [...], files [...]`` of the collated batch (of ``rows`` only when given), as far as the batch has them."""
    if not isinstance(batch, dict):
        return "the batch"
    parts = []
    ids = batch.get("id")
    image = batch.get(Keys.IMAGE)
    files = getattr(image, "meta", {}).get("filename_or_obj") if image is not None else None
    for name, values in (("ids", ids), ("files", files)):
        if isinstance(values, (list, tuple)):
            parts.append(f"{name} {[values[r] for r in rows if r < len(values)] if rows is not None else list(values)}")
    return ", ".join(parts) if parts else "the batch (no 'id' key, no image file names)"


def _non_finite_rows(batch: Any) -> list[int] | None:
    """Rows of the batch whose image has NaN or Inf values (``None`` when the batch has no image tensor)."""
    image = batch.get(Keys.IMAGE) if isinstance(batch, dict) else None
    if not isinstance(image, torch.Tensor) or not image.is_floating_point() or image.ndim < 1:
        return None
    return torch.nonzero(~torch.isfinite(image.detach().reshape(image.shape[0], -1)).all(dim=1)).flatten().tolist()


def default_saliency_target(label: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """The ``"label"`` target policy (:func:`monai_explain.saliency.targets.saliency_target`): the annotated class(es).

    Multi-label float labels ``(B, C)`` give a multi-hot target (one map per class), class-index labels their index,
    a single-logit binary model index 0.
    """
    return saliency_target(label, logits, TargetPolicy.LABEL)


class ExplanationLossHandler:
    """Explanation supervision for any MONAI ``SupervisedTrainer``: one handler.

    On ``IterationEvents.LOSS_COMPLETED`` (after the task loss is computed, before the backward pass) it builds the
    network's saliency map for the target class from the forward pass the trainer already made (the saliency
    method's forward hooks record the activations it needs), compares it with the annotation mask of the collated
    batch, and sets::

        engine.state.output["loss"] = task_loss + lambda(t) * explanation_loss

    It also records ``"task_loss"``, ``"expl_loss"`` and ``"lambda"`` in ``engine.state.output`` for
    ``StatsHandler`` / ``MLFlowHandler`` (e.g. ``output_transform=from_engine(["expl_loss"], first=True)``).

    Methods that need the gradient with respect to the input (input gradient, input x gradient) get it from the
    same forward pass: at attach time the engine's ``prepare_batch`` is wrapped so that the image tensor requires
    grad. Works with ``amp=True`` (runs inside the trainer's autocast), ``accumulation_steps`` (the trainer divides
    the combined loss) and a DDP-wrapped network (layer names resolve with or without ``module.``).

    Args:
        saliency_method: a :class:`monai_explain.saliency.SaliencyMethod` built on the trainer's network.
        loss: an :class:`monai_explain.losses.ExplanationLoss` (or any ``loss(saliency, mask)``).
        lambda_: a number, a schedule (see :mod:`monai_explain.handlers.lambda_schedules`) or a config dict.
        mask_key: key of the annotation mask in the collated batch, ``(B, K, *spatial)``.
        target_fn: ``target_fn(label, logits)`` -> the class target passed to the saliency method; default
            :func:`default_saliency_target`.
        weight_key: optional key of per-sample weights ``(B,)`` in the batch, passed to the loss.
        skip_zero_lambda: when lambda is 0, skip the saliency computation entirely (the loss is unchanged and
            ``expl_loss`` is not computed, recorded as NaN).
        check_finite: refuse a NaN / Inf task loss before the backward pass and the optimizer step, naming the ids
            and image files of the batch (and which of its images hold NaN / Inf): ``True`` on every device,
            ``False`` never, ``None`` (default) when the loss is on the CPU, where the check costs no device-to-host
            synchronisation. On other devices with ``None``, a non-finite saliency is still refused by the
            explanation loss, and the error then names the batch too.

    Raises:
        ValueError: at attach time and when the run starts, a learning rate of the trainer's optimizer that is not
            a finite number >= 0 (:func:`check_learning_rates`); during the run, a non-finite task loss (see
            ``check_finite``).

    Example::

        trainer = SupervisedTrainer(..., network=net, loss_function=torch.nn.CrossEntropyLoss())
        ExplanationLossHandler(GradCAM(net, "class_layers.relu"), ExplanationLoss("energy"), lambda_=0.3).attach(
            trainer
        )
    """

    def __init__(
        self,
        saliency_method: HookedSaliencyMethod,
        loss: Callable[..., torch.Tensor],
        lambda_: float | Callable | dict = 1.0,
        mask_key: str = "mask",
        target_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = default_saliency_target,
        weight_key: str | None = None,
        skip_zero_lambda: bool = True,
        check_finite: bool | None = None,
    ) -> None:
        self.saliency_method = saliency_method
        self.loss = loss
        self.schedule = get_lambda_schedule(lambda_)
        self.mask_key = mask_key
        self.target_fn = target_fn
        self.weight_key = weight_key
        self.skip_zero_lambda = skip_zero_lambda
        self.check_finite = check_finite
        self._wrapped_prepare_batch = False

    def attach(self, engine: Engine) -> None:
        """Register hooks and the LOSS_COMPLETED callback on ``engine`` (a MONAI ``SupervisedTrainer``)."""
        check_learning_rates(getattr(engine, "optimizer", None))
        if not engine.has_event_handler(self, IterationEvents.LOSS_COMPLETED):
            engine.add_event_handler(IterationEvents.LOSS_COMPLETED, self)
        if not engine.has_event_handler(self._register_hooks, Events.STARTED):
            engine.add_event_handler(Events.STARTED, self._register_hooks)
            engine.add_event_handler(Events.COMPLETED, self._remove_hooks)
            engine.add_event_handler(Events.TERMINATE, self._remove_hooks)
            engine.add_event_handler(Events.EXCEPTION_RAISED, self._remove_hooks_on_error)
        if getattr(self.saliency_method, "needs_input_grad", False) and not self._wrapped_prepare_batch:
            engine_ = workflow(engine)
            engine_.prepare_batch = _InputGradPrepareBatch(engine_.prepare_batch)
            self._wrapped_prepare_batch = True

    def _register_hooks(self, engine: Engine) -> None:
        check_learning_rates(getattr(engine, "optimizer", None))  # a value changed after attach
        self.saliency_method.register()

    def _remove_hooks(self, engine: Engine) -> None:
        self.saliency_method.remove()

    def _remove_hooks_on_error(self, engine: Engine, e: Exception) -> None:
        self.saliency_method.remove()
        if isinstance(e, RuntimeError) and not isinstance(e, torch.OutOfMemoryError):
            # e.g. a pooling error deep in torch for an image smaller than the network's stride stages: name the size
            image = engine.state.batch.get(Keys.IMAGE) if isinstance(engine.state.batch, dict) else None
            network = getattr(engine, "network", None)
            if isinstance(image, torch.Tensor) and image.ndim >= 3 and isinstance(network, torch.nn.Module):
                check_input_size(
                    network,
                    image.shape[2:],
                    in_channels=image.shape[1],
                    key="the input image size (bundle key 'image_size')",
                )
        raise e

    def __call__(self, engine: Engine) -> None:
        output = engine_output(engine)
        task_loss = output[Keys.LOSS]
        check = task_loss.device.type == "cpu" if self.check_finite is None else self.check_finite
        if check and not bool(torch.isfinite(task_loss.detach()).all()):
            self._raise_non_finite(engine, f"the task loss is {task_loss.detach().flatten()[0].item()}")
        lam = float(self.schedule(engine))
        output["task_loss"] = task_loss.detach()
        output["lambda"] = lam
        if lam == 0.0 and self.skip_zero_lambda:
            output["expl_loss"] = torch.full_like(output["task_loss"], float("nan"))
            return
        batch = engine.state.batch
        if not isinstance(batch, dict) or self.mask_key not in batch:
            keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
            raise KeyError(f"ExplanationLossHandler: mask key {self.mask_key!r} not in the batch (keys: {keys}).")
        logits = output[Keys.PRED]
        mask = torch.as_tensor(batch[self.mask_key]).to(device=logits.device, non_blocking=True)
        target = self.target_fn(output[Keys.LABEL], logits)
        inputs = output[Keys.IMAGE] if getattr(self.saliency_method, "needs_input_grad", False) else None
        kwargs = {}
        if self.weight_key is not None:
            kwargs["weight"] = torch.as_tensor(batch[self.weight_key]).to(logits.device)
        try:
            saliency = self.saliency_method.compute(logits, target, inputs=inputs, spatial_size=mask.shape[2:])
            expl = self.loss(saliency, mask, **kwargs)
        except (ValueError, RuntimeError) as e:
            # a NaN / Inf input surfaces here as a non-finite map or a failed layer search: name the input instead
            if bool(torch.isfinite(task_loss.detach()).all()):
                raise
            self._raise_non_finite(engine, f"the task loss is {task_loss.detach().flatten()[0].item()}", e)
        output["expl_loss"] = expl.detach()
        output[Keys.LOSS] = task_loss + lam * expl.to(task_loss.dtype)

    @staticmethod
    def _raise_non_finite(engine: Engine, what: str, cause: Exception | None = None) -> None:
        """Raise before the backward pass, naming the batch and the images that hold NaN / Inf."""
        batch = engine.state.batch
        bad = _non_finite_rows(batch)
        where = f"epoch {engine.state.epoch}, iteration {engine.state.iteration}"
        if bad:
            culprit = f"images with NaN / Inf values: {_describe_batch(batch, bad)}"
        else:
            culprit = (
                "the images are finite (check the labels, the network and the learning rate); batch: "
                f"{_describe_batch(batch)}"
            )
        raise ValueError(
            f"ExplanationLossHandler: {what} at {where}; refusing the backward pass and the optimizer step. {culprit}."
        ) from cause


class _InputGradPrepareBatch:
    """Wraps an engine's ``prepare_batch`` so that the image tensor it returns requires grad."""

    def __init__(self, prepare_batch: Callable) -> None:
        self.prepare_batch = prepare_batch

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        batch = self.prepare_batch(*args, **kwargs)
        inputs = batch[0]
        if isinstance(inputs, torch.Tensor) and inputs.is_floating_point() and not inputs.requires_grad:
            inputs = inputs.detach().requires_grad_(True)
        return (inputs, *batch[1:])


def loss_terms(output: Any) -> dict[str, float]:
    """The loss terms of a trainer iteration as floats, for ``StatsHandler`` / ``ProgressBar`` / ``MLFlowHandler``.

    Reads ``loss`` and, when the :class:`ExplanationLossHandler` is attached, ``task_loss``, ``expl_loss`` and
    ``lambda`` from ``engine.state.output`` (a dict, or the list of per-item dicts left by decollation).
    """
    first = output[0] if isinstance(output, (list, tuple)) else output
    terms = {}
    for key in ("loss", "task_loss", "expl_loss", "lambda"):
        if key in first:
            value = first[key]
            terms[key] = float(value.detach().item() if isinstance(value, torch.Tensor) else value)
    return terms
