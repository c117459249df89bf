"""IoU between the binarised saliency map and the annotation (CheXlocalize's localisation IoU, Otsu by default)."""

from __future__ import annotations

import torch
from monai.utils import MetricReduction

from .base import SaliencyAlignmentMetric
from .binarize import DEFAULT_NUM_BINS, DEFAULT_THRESHOLD, DEFAULT_TOPK_FRACTION, BinarizeMethod
from .utils import alignment_counts, prepare_saliency_and_mask, safe_ratio

__all__ = ["SaliencyIoU", "compute_saliency_iou"]


def compute_saliency_iou(
    saliency: torch.Tensor,
    mask: torch.Tensor,
    binarize: BinarizeMethod | str = BinarizeMethod.OTSU,
    fraction: float | str = DEFAULT_TOPK_FRACTION,
    threshold: float = DEFAULT_THRESHOLD,
    num_bins: int = DEFAULT_NUM_BINS,
    mask_threshold: float = 0.5,
) -> torch.Tensor:
    """``|P and G| / |P or G|`` per sample and channel, ``P`` the binarised saliency, ``G`` the annotation.

    The default follows CheXlocalize: the heatmap is resampled to the mask's grid (bilinear), min-max normalised and
    binarised at Otsu's threshold (``num_bins=256`` levels, as their 8-bit image). CheXlocalize additionally fills
    the contours of the Otsu region, which is not done here (holes stay holes). An empty annotation gives NaN
    (counted out by ``not_nans``); a map selecting nothing (constant map under Otsu) scores 0. The other
    ``binarize`` methods are available too (top-k ties share the budget as in the other metrics).

    Args:
        saliency: ``(B, C, *spatial)`` map.
        mask: ``(B, C or 1, *spatial)`` annotation.
        binarize: ``"otsu"`` (default), ``"threshold"`` or ``"topk"``.
        fraction: top-k fraction in (0, 1], or ``"mask"``.
        threshold: threshold of the ``"threshold"`` method (on the max-normalised map).
        num_bins: Otsu histogram bins.
        mask_threshold: a pixel is annotated where ``mask > mask_threshold``.

    Returns:
        ``(B, C)`` float tensor.

    Raises:
        ValueError: for incompatible shapes, a bad option, NaN / Inf in the saliency or NaN in the mask.

    Example:
        >>> s = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
        >>> m = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]])
        >>> round(compute_saliency_iou(s, m).item(), 4)
        0.6667
    """
    s, a = prepare_saliency_and_mask(saliency, mask, mask_threshold)
    counts = alignment_counts(s, a, binarize=binarize, fraction=fraction, threshold=threshold, num_bins=num_bins)
    union = counts.selected + counts.annotated - counts.intersection
    return safe_ratio(counts.intersection, union, counts.annotated == 0)


class SaliencyIoU(SaliencyAlignmentMetric):
    """IoU of the binarised saliency and the annotation as a MONAI cumulative metric (Otsu by default).

    ``metric(y_pred=saliency, y=mask)`` returns ``(B, C)``; the aggregated mean is CheXlocalize's mIoU over non-empty
    annotations. See :func:`compute_saliency_iou`.

    Args:
        binarize: ``"otsu"`` (default), ``"threshold"`` or ``"topk"``.
        fraction: top-k fraction or ``"mask"``.
        threshold: threshold of the ``"threshold"`` method.
        num_bins: Otsu histogram bins.
        mask_threshold: a pixel is annotated where ``mask > mask_threshold``.
        reduction: a :class:`monai.utils.MetricReduction` value.
        get_not_nans: whether :meth:`aggregate` also returns the count of non-NaN values.
    """

    def __init__(
        self,
        binarize: BinarizeMethod | str = BinarizeMethod.OTSU,
        fraction: float | str = DEFAULT_TOPK_FRACTION,
        threshold: float = DEFAULT_THRESHOLD,
        num_bins: int = DEFAULT_NUM_BINS,
        mask_threshold: float = 0.5,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__(reduction=reduction, get_not_nans=get_not_nans)
        self.binarize = BinarizeMethod(binarize)
        self.fraction = fraction
        self.threshold = threshold
        self.num_bins = num_bins
        self.mask_threshold = mask_threshold

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs) -> torch.Tensor:  # type: ignore[override]
        if y is None:
            raise ValueError("SaliencyIoU needs the annotation mask y.")
        return compute_saliency_iou(
            y_pred,
            y,
            binarize=self.binarize,
            fraction=self.fraction,
            threshold=self.threshold,
            num_bins=self.num_bins,
            mask_threshold=self.mask_threshold,
        )
