"""Base class of the alignment metrics: MONAI cumulative metric, ``(B, C)`` per iteration, NaN-aware aggregation."""

from __future__ import annotations

from typing import Any

import torch
from monai.config import TensorOrList
from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction
from monai.utils import MetricReduction

__all__ = ["SaliencyAlignmentMetric"]


class SaliencyAlignmentMetric(CumulativeIterationMetric):
    """Common part of the saliency/annotation alignment metrics.

    Called as ``metric(y_pred=saliency, y=mask)`` with batch-first tensors ``(B, C, *spatial)`` or lists of
    channel-first tensors (a decollated batch); each call returns the ``(B, C)`` scores of the iteration and adds
    them to the buffer. :meth:`aggregate` reduces the buffer with :func:`monai.metrics.utils.do_metric_reduction`,
    which skips NaN (empty annotations), and returns ``(value, not_nans)`` when ``get_not_nans`` is set.

    A list whose items all have the same shape is stacked and computed as one batch (one vectorised pass instead of
    one per item); items of different sizes are computed one by one.

    Subclasses implement :meth:`_compute_tensor`.

    Args:
        reduction: a :class:`monai.utils.MetricReduction` value applied by :meth:`aggregate`.
        get_not_nans: whether :meth:`aggregate` also returns the count of non-NaN values.
    """

    def __init__(self, reduction: MetricReduction | str = MetricReduction.MEAN, get_not_nans: bool = False) -> None:
        super().__init__()
        self.reduction = reduction
        self.get_not_nans = get_not_nans

    def _compute_list(self, y_pred: TensorOrList, y: TensorOrList | None = None, **kwargs: Any):
        if (
            isinstance(y_pred, (list, tuple))
            and isinstance(y, (list, tuple))
            and len(y_pred) == len(y) > 0
            and all(isinstance(p, torch.Tensor) for p in y_pred)
            and all(isinstance(t, torch.Tensor) for t in y)
            and len({tuple(p.shape) for p in y_pred}) == 1
            and len({tuple(t.shape) for t in y}) == 1
        ):
            return self._compute_tensor(
                torch.stack([p.detach() for p in y_pred]), torch.stack([t.detach() for t in y]), **kwargs
            )
        return super()._compute_list(y_pred, y, **kwargs)

    def aggregate(
        self, reduction: MetricReduction | str | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Reduce the buffered ``(N, C)`` scores, ignoring NaN.

        Args:
            reduction: overrides ``self.reduction`` for this call.

        Returns:
            The reduced value, and the ``not_nans`` count when ``get_not_nans`` is set.

        Raises:
            ValueError: when nothing has been buffered yet.
        """
        data = self.get_buffer()
        if data is None:
            raise ValueError(f"{self.__class__.__name__}: nothing to aggregate, call the metric on data first.")
        f, not_nans = do_metric_reduction(data, reduction or self.reduction)
        return (f, not_nans) if self.get_not_nans else f
