"""A NaN key metric never becomes the "best metric" of a MONAI evaluator.

A validation split with one class only (e.g. no positive, or no annotated image) gives a NaN ROC AUC. MONAI's
``Workflow`` takes the first key metric of a run as the best whatever its value (``best_metric_epoch == -1``), and
its default ``metric_cmp_fn`` (``current > best``) then never replaces a NaN best: one NaN at the first validation
freezes the best metric for the whole run. :class:`NaNSafeBestMetric` fixes both on any evaluator.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from monai.utils import IgniteInfo, min_version, optional_import

from .engine_typing import workflow_state

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["NaNSafeBestMetric", "is_nan_metric", "nan_safe_metric_cmp"]

logger = logging.getLogger(__name__)


def is_nan_metric(value: Any) -> bool:
    """Whether a metric value is a NaN number (non-numbers are not NaN)."""
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def nan_safe_metric_cmp(cmp: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    """Wrap a ``metric_cmp_fn(current, best)`` so that a NaN current value is never better and a NaN best (or none
    yet) is beaten by any value that is not NaN.

    Example:
        >>> from monai.engines.utils import default_metric_cmp_fn
        >>> cmp = nan_safe_metric_cmp(default_metric_cmp_fn)
        >>> cmp(float("nan"), 0.5), cmp(0.6, float("nan")), cmp(0.6, 0.5)
        (False, True, True)
    """
    if getattr(cmp, "_nan_safe", False):
        return cmp

    def _cmp(current: Any, best: Any) -> bool:
        if is_nan_metric(current):
            return False
        if is_nan_metric(best):
            return True
        return bool(cmp(current, best))

    _cmp._nan_safe = True  # type: ignore[attr-defined]
    _cmp.__wrapped__ = cmp  # type: ignore[attr-defined]
    return _cmp


class NaNSafeBestMetric:
    """Evaluator handler: a NaN key metric is never recorded as the best metric, nor logged as "new best".

    On attach it wraps the evaluator's ``metric_cmp_fn`` with :func:`nan_safe_metric_cmp`. At the start of each
    validation epoch, while there is no best yet (``best_metric_epoch == -1``), it sets ``best_metric`` to NaN and
    ``best_metric_epoch`` to 0 so that MONAI's comparison, not its "first value is the best" rule, decides; at the
    end of the validation run a state still without a best goes back to ``best_metric_epoch == -1``. A NaN key
    metric is logged as a warning naming the metric and the epoch.

    Example::

        evaluator = SupervisedEvaluator(..., key_val_metric={"val_auc": ROCAUC()},
                                        val_handlers=[NaNSafeBestMetric(), CheckpointSaver(...)])
    """

    def attach(self, engine: Engine) -> None:
        """Wrap the comparison and register the epoch callbacks on ``engine`` (a MONAI evaluator)."""
        if hasattr(engine, "metric_cmp_fn"):
            engine.metric_cmp_fn = nan_safe_metric_cmp(engine.metric_cmp_fn)
        if not engine.has_event_handler(self.epoch_started, Events.EPOCH_STARTED):
            engine.add_event_handler(Events.EPOCH_STARTED, self.epoch_started)
            engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)
            engine.add_event_handler(Events.COMPLETED, self.completed)

    def epoch_started(self, engine: Engine) -> None:
        state = workflow_state(engine)
        if getattr(state, "best_metric_epoch", None) == -1:
            state.best_metric, state.best_metric_epoch = float("nan"), 0

    def epoch_completed(self, engine: Engine) -> None:
        state = workflow_state(engine)
        name = getattr(state, "key_metric_name", None)
        if name is not None and is_nan_metric(state.metrics.get(name)):
            logger.warning(
                "%s is NaN at epoch %s (e.g. a split with one class only): not a new best metric; best so far: %s.",
                name,
                state.epoch,
                "none" if state.best_metric_epoch <= 0 else f"{state.best_metric} (epoch {state.best_metric_epoch})",
            )

    def completed(self, engine: Engine) -> None:
        state = workflow_state(engine)
        if getattr(state, "best_metric_epoch", None) == 0:
            state.best_metric, state.best_metric_epoch = -1, -1
