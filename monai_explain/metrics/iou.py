"""IoU between the binarised saliency map and the annotation (CheXlocalize's localisation IoU, Otsu by default)."""

from __future__ import annotations

import torch
from monai.utils import MetricReduction, StrEnum, look_up_option

from .base import SaliencyAlignmentMetric
from .binarize import DEFAULT_NUM_BINS, DEFAULT_THRESHOLD, DEFAULT_TOPK_FRACTION, BinarizeMethod
from .utils import alignment_counts, prepare_saliency_and_mask, safe_ratio

__all__ = ["EmptyPrediction", "SaliencyIoU", "compute_saliency_iou"]


class EmptyPrediction(StrEnum):
    """Score of a map whose binarised region is empty (e.g. a constant map under Otsu), given a non-empty annotation.

    - ``zero`` (default): IoU 0 - the map localised nothing, and it counts in the mean as a failure.
    - ``nan``: NaN, counted out of the mean by ``not_nans`` - CheXlocalize's convention (its ``calculate_iou`` with
      ``true_pos_only=True`` returns NaN when the predicted or the ground-truth segmentation is empty). Use it to
      reproduce their mIoU; note that a model whose maps select nothing then disappears from the mean.
    """

    ZERO = "zero"
    NAN = "nan"


def compute_saliency_iou(
    saliency: torch.Tensor,
    mask: torch.Tensor,
    binarize: BinarizeMethod | str = BinarizeMethod.OTSU,
    fraction: float | str = DEFAULT_TOPK_FRACTION,
    threshold: float = DEFAULT_THRESHOLD,
    num_bins: int = DEFAULT_NUM_BINS,
    mask_threshold: float = 0.5,
    empty_prediction: EmptyPrediction | str = EmptyPrediction.ZERO,
) -> torch.Tensor:
    """``|P and G| / |P or G|`` per sample and channel, ``P`` the binarised saliency, ``G`` the annotation.

    The default follows CheXlocalize's ``cam_to_segmentation``: the heatmap is resampled to the mask's grid
    (bilinear), min-max normalised, made an 8-bit image with ``np.uint8(255 * x)`` (``floor(255 x)``, not
    ``floor(256 x)``) and binarised by Otsu's method as ``cv2.threshold(..., cv2.THRESH_OTSU)`` does (pixels strictly
    above the threshold level; the first best split on ties). The region is identical to theirs before their last
    step, which fills the external contours of the Otsu region (holes inside a region become foreground, and
    one-pixel regions are dropped); that step is not done here. An empty annotation gives NaN (counted out by
    ``not_nans``). A map selecting nothing (a constant map under Otsu) scores 0 by default, NaN with
    ``empty_prediction="nan"`` (CheXlocalize's convention): see :class:`EmptyPrediction`. The other ``binarize``
    methods are available too (top-k ties share the budget as in the other metrics).

    Args:
        saliency: ``(B, C, *spatial)`` map.
        mask: ``(B, C or 1, *spatial)`` annotation.
        binarize: ``"otsu"`` (default), ``"threshold"`` or ``"topk"``.
        fraction: top-k fraction in (0, 1], or ``"mask"``.
        threshold: threshold of the ``"threshold"`` method (on the max-normalised map).
        num_bins: Otsu histogram bins.
        mask_threshold: a pixel is annotated where ``mask > mask_threshold``.
        empty_prediction: ``"zero"`` (default) or ``"nan"`` (CheXlocalize) for an empty binarised map.

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
    empty_prediction = look_up_option(empty_prediction, EmptyPrediction)
    s, a = prepare_saliency_and_mask(saliency, mask, mask_threshold)
    counts = alignment_counts(s, a, binarize=binarize, fraction=fraction, threshold=threshold, num_bins=num_bins)
    union = counts.selected + counts.annotated - counts.intersection
    undefined = counts.annotated == 0
    if empty_prediction == EmptyPrediction.NAN:
        undefined = undefined | (counts.selected == 0)
    return safe_ratio(counts.intersection, union, undefined)


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
        empty_prediction: ``"zero"`` (default) or ``"nan"`` (CheXlocalize's convention) for an empty binarised map;
            see :class:`EmptyPrediction`.
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
        empty_prediction: EmptyPrediction | str = EmptyPrediction.ZERO,
    ) -> None:
        super().__init__(reduction=reduction, get_not_nans=get_not_nans)
        self.binarize = look_up_option(binarize, BinarizeMethod)
        self.empty_prediction = look_up_option(empty_prediction, EmptyPrediction)
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
            empty_prediction=self.empty_prediction,
        )
