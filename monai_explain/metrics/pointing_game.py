"""Pointing game (hit rate): is the most salient pixel inside the annotation?"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.utils import MetricReduction

from .base import SaliencyAlignmentMetric
from .binarize import count_true
from .utils import prepare_saliency_and_mask, safe_ratio

__all__ = ["PointingGame", "compute_pointing_game"]


def compute_pointing_game(
    saliency: torch.Tensor, mask: torch.Tensor, tolerance: int = 0, mask_threshold: float = 0.5
) -> torch.Tensor:
    """Pointing game per sample and channel: 1 when the maximum of the saliency lies inside the annotation, else 0.

    CheXlocalize's hit rate (the saliency is first resampled to the mask's grid, bilinearly). When several pixels
    share the maximum (e.g. a constant or all-zero map) the score is the fraction of them inside the annotation,
    the expected hit of a uniformly random choice among them, so a constant map scores the chance level
    ``|A| / N`` instead of depending on pixel order. An empty annotation gives NaN (counted out by ``not_nans``).

    Args:
        saliency: ``(B, C, *spatial)`` map.
        mask: ``(B, C or 1, *spatial)`` annotation.
        tolerance: a hit also counts within this many pixels of the annotation (Chebyshev distance: the mask is
            dilated by a ``(2 * tolerance + 1)`` square/cube); 0 (default) is CheXlocalize's exact rule.
        mask_threshold: a pixel is annotated where ``mask > mask_threshold``.

    Returns:
        ``(B, C)`` float tensor with values in [0, 1] (0 or 1 when the maximum is unique), NaN for empty masks.

    Raises:
        ValueError: for incompatible shapes, a negative tolerance, NaN / Inf in the saliency or NaN in the mask.

    Example:
        >>> s = torch.tensor([[[[0.1, 0.9], [0.2, 0.3]]]])
        >>> m = torch.tensor([[[[0.0, 1.0], [0.0, 0.0]]]])
        >>> compute_pointing_game(s, m).tolist()
        [[1.0]]
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}.")
    s, a = prepare_saliency_and_mask(saliency, mask, mask_threshold)
    b, c = s.shape[:2]
    rows_s = s.reshape(b * c, -1)
    rows_a = a.reshape(b * c, -1)
    n_ann = count_true(rows_a)
    if tolerance > 0:
        dims = a.ndim - 2
        pool = getattr(F, f"max_pool{dims}d", None)
        if pool is None:
            raise ValueError(f"tolerance is supported for 1D, 2D and 3D masks, got {dims}D.")
        grown = pool(a.reshape(b * c, 1, *a.shape[2:]).float(), 2 * tolerance + 1, stride=1, padding=tolerance)
        rows_a = grown.reshape(b * c, -1) > 0
    at_max = rows_s == rows_s.amax(dim=1, keepdim=True)
    n_max = count_true(at_max)
    n_hit = count_true(at_max & rows_a)
    return safe_ratio(n_hit, n_max, n_ann == 0).view(b, c)


class PointingGame(SaliencyAlignmentMetric):
    """Pointing game as a MONAI cumulative metric: ``metric(y_pred=saliency, y=mask)`` returns ``(B, C)``.

    The aggregated mean is the hit rate over non-empty annotations. See :func:`compute_pointing_game`.

    Args:
        tolerance: hit tolerance in pixels (Chebyshev distance), 0 for the exact rule.
        mask_threshold: a pixel is annotated where ``mask > mask_threshold``.
        reduction: a :class:`monai.utils.MetricReduction` value.
        get_not_nans: whether :meth:`aggregate` also returns the count of non-NaN values.
    """

    def __init__(
        self,
        tolerance: int = 0,
        mask_threshold: float = 0.5,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__(reduction=reduction, get_not_nans=get_not_nans)
        if tolerance < 0:
            raise ValueError(f"tolerance must be >= 0, got {tolerance}.")
        self.tolerance = tolerance
        self.mask_threshold = mask_threshold

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs) -> torch.Tensor:  # type: ignore[override]
        if y is None:
            raise ValueError("PointingGame needs the annotation mask y.")
        return compute_pointing_game(y_pred, y, tolerance=self.tolerance, mask_threshold=self.mask_threshold)
