"""Chance level of the alignment metrics: the annotated fraction of the image."""

from __future__ import annotations

import numpy as np
import torch
from monai.utils import MetricReduction

from .base import SaliencyAlignmentMetric
from .binarize import count_true
from .utils import as_metric_tensor, safe_ratio

__all__ = ["ChanceLevel", "compute_chance_level"]


def compute_chance_level(
    mask: torch.Tensor, saliency: torch.Tensor | None = None, mask_threshold: float = 0.5
) -> torch.Tensor:
    """Annotated fraction ``|A| / N`` of each ``(sample, channel)`` mask: the chance level of saliency precision.

    A salient region placed uniformly at random has expected precision ``|A| / N``, both binary (any size) and
    mass-based, so a precision above this value means better than chance. (The chance level of *coverage* is the
    selected fraction ``|B| / N``, e.g. the top-k ``fraction``: see ``compute_saliency_coverage(return_chance=True)``.)

    Args:
        mask: ``(B, C, *spatial)`` annotation.
        saliency: optional ``(B, Cs, *spatial_s)`` map: only its channel count matters, so the result has the same
            ``(B, C)`` layout as the precision computed from the same pair (channels broadcast as there).
        mask_threshold: a pixel is annotated where ``mask > mask_threshold``.

    Returns:
        ``(B, C)`` float tensor, NaN where the annotation is empty.

    Raises:
        ValueError: for a mask with fewer than 3 dimensions or NaN values, or a saliency that does not match it.

    Example:
        >>> m = torch.zeros(1, 1, 4, 4); m[..., :2, :2] = 1
        >>> compute_chance_level(m).tolist()
        [[0.25]]
    """
    m = as_metric_tensor(mask, "mask")
    if m.ndim < 3:
        raise ValueError(f"mask must be (B, C, *spatial), got shape {tuple(m.shape)}.")
    if m.is_floating_point() and bool(torch.isnan(m).any()):
        raise ValueError(f"mask of shape {tuple(m.shape)} contains NaN values.")
    annotated = count_true((m.detach() > mask_threshold).flatten(2), dim=2)
    n = int(np.prod(m.shape[2:]))
    if saliency is not None:
        s = as_metric_tensor(saliency, "saliency")
        if (
            s.ndim != m.ndim
            or s.shape[0] != m.shape[0]
            or (s.shape[1] != m.shape[1] and 1 not in (s.shape[1], m.shape[1]))
        ):
            raise ValueError(
                f"saliency of shape {tuple(s.shape)} does not match mask of shape {tuple(m.shape)} (same batch "
                "size and number of spatial dimensions, equal channel counts or one of them 1)."
            )
        annotated = annotated.expand(-1, max(s.shape[1], m.shape[1]))
    return safe_ratio(annotated, torch.full_like(annotated, n), annotated == 0)


class ChanceLevel(SaliencyAlignmentMetric):
    """Chance level of saliency precision, ``|A| / N``, as a cumulative metric.

    Called like the other alignment metrics, ``metric(y_pred=saliency, y=mask)``, so that a handler logging it next
    to :class:`~monai_explain.metrics.SaliencyPrecision` reads the same engine output; the saliency only sets the
    channel layout. Empty annotations give NaN, counted out by ``not_nans``.

    Args:
        mask_threshold: a pixel is annotated where ``mask > mask_threshold``.
        reduction: a :class:`monai.utils.MetricReduction` value.
        get_not_nans: whether :meth:`aggregate` also returns the count of non-NaN values.
    """

    def __init__(
        self,
        mask_threshold: float = 0.5,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__(reduction=reduction, get_not_nans=get_not_nans)
        self.mask_threshold = mask_threshold

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs) -> torch.Tensor:  # type: ignore[override]
        if y is None:
            raise ValueError("ChanceLevel needs the annotation mask y.")
        return compute_chance_level(y, saliency=y_pred, mask_threshold=self.mask_threshold)
