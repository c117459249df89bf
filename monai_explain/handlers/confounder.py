"""Ignite handler of the confounder-reliance metric, wrapping it as MONAI's ``MeanDice`` wraps ``DiceMetric``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from monai.engines.utils import IterationEvents
from monai.handlers.ignite_metric import IgniteMetricHandler
from monai.handlers.utils import from_engine
from monai.utils import IgniteInfo, MetricReduction, min_version, optional_import
from torch import nn

from monai_explain.handlers.engine_typing import workflow_state
from monai_explain.metrics import ConfounderReliance, FillMode

if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["ConfounderRelianceHandler"]


class ConfounderRelianceHandler(IgniteMetricHandler):
    """Mean absolute change of the predicted probability when the confounder region is filled, and the rate of
    flipped decisions, for a MONAI evaluator.

    The metric value (under the attached name, e.g. ``"confounder_change"``) is the mean absolute change; the flip
    rate goes to ``engine.state.metrics[flip_rate_name]`` (default ``"<name>_flip_rate"``). Per-image values of both go to
    ``engine.state.metric_details`` (for ``MetricsSaver`` and the per-image table). Images without a region are
    NaN and left out.

    The region mask is read from the collated batch (``region_key``) at ``FORWARD_COMPLETED`` and copied into the
    engine output, so it is decollated with the images; the default ``output_transform`` then gives
    ``(images, region)``.

    Args:
        network: the classifier the evaluator runs (the metric classifies the filled images again).
        threshold: decision threshold for the flips: a float, per class values, or a
            :class:`~monai_explain.handlers.DecisionThreshold` (its current value).
        fill: ``"mean"``, ``"local"`` or ``"constant"``; see :mod:`monai_explain.metrics.confounder`.
        value: the constant fill.
        margin: band width of the local fill, in pixels.
        activation: ``"sigmoid"`` (default), ``"softmax"``, ``None`` or a callable.
        region_key: key of the region mask ``(B, K, *spatial)`` in the batch.
        image_key: key of the network input in the engine output.
        reduction: a :class:`monai.utils.MetricReduction` value.
        output_transform: callable giving ``(images, region)`` from ``engine.state.output``.
        flip_rate_name: metric name of the flip rate; default ``"<name>_flip_rate"``.
        save_details: save the per-image values to ``engine.state.metric_details``.

    See also:
        :py:class:`monai_explain.metrics.ConfounderReliance`
    """

    def __init__(
        self,
        network: nn.Module | Callable[[torch.Tensor], torch.Tensor],
        threshold: Any = 0.5,
        fill: FillMode | str = FillMode.MEAN,
        value: float = 0.0,
        margin: int = 4,
        activation: str | Callable | None = "sigmoid",
        region_key: str = "confounder_mask",
        image_key: str = "image",
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable | None = None,
        flip_rate_name: str | None = None,
        save_details: bool = True,
    ) -> None:
        metric_fn = ConfounderReliance(
            network, threshold=threshold, fill=fill, value=value, margin=margin, activation=activation,
            reduction=reduction,
        )  # fmt: skip
        self.region_key = region_key
        self.flip_rate_name = flip_rate_name
        transform = output_transform or from_engine([image_key, region_key])
        super().__init__(metric_fn=metric_fn, output_transform=transform, save_details=save_details)

    def attach(self, engine: Engine, name: str) -> None:  # type: ignore[override]
        """Attach the metric and the step that copies the region from the batch into the output."""
        super().attach(engine, name)
        if not engine.has_event_handler(self._copy_region, IterationEvents.FORWARD_COMPLETED):
            engine.add_event_handler(IterationEvents.FORWARD_COMPLETED, self._copy_region)

    def _copy_region(self, engine: Engine) -> None:
        batch = engine.state.batch
        if not isinstance(batch, dict) or self.region_key not in batch:
            keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
            raise KeyError(
                f"ConfounderRelianceHandler: region key {self.region_key!r} not in the batch (keys: {keys})."
            )
        engine.state.output[self.region_key] = torch.as_tensor(batch[self.region_key])

    def compute(self) -> Any:
        """The mean change; the flip rate and both per-image buffers are written to the engine state."""
        change, flip_rate = self.metric_fn.aggregate()
        self._is_reduced = True
        engine, name = self._engine, self._name
        if engine is None or name is None:
            raise RuntimeError("please call attach() to connect the engine first.")
        flip_name = self.flip_rate_name or f"{name}_flip_rate"
        flip = flip_rate.squeeze() if isinstance(flip_rate, torch.Tensor) else flip_rate
        engine.state.metrics[flip_name] = flip.item() if isinstance(flip, torch.Tensor) and flip.ndim == 0 else flip
        if self.save_details:
            buffers = self.metric_fn.get_buffer()
            details = workflow_state(engine).metric_details
            details[name] = buffers[0]
            details[flip_name] = buffers[1]
        if isinstance(change, torch.Tensor):
            change = change.squeeze()
            if change.ndim == 0:
                change = change.item()
        return change
