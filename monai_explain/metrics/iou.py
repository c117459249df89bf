"""IoU between the binarised saliency map and the annotation (CheXlocalize's localisation IoU, Otsu by default)."""

from __future__ import annotations

import torch
from monai.utils import MetricReduction, StrEnum, look_up_option

from .base import SaliencyAlignmentMetric
from .binarize import (
    DEFAULT_NUM_BINS,
    DEFAULT_THRESHOLD,
    DEFAULT_TOPK_FRACTION,
    BinarizeMethod,
    binarize_saliency,
    count_true,
    fill_regions,
)
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
    fill_contours: bool = False,
) -> torch.Tensor:
    """``|P and G| / |P or G|`` per sample and channel, ``P`` the binarised saliency, ``G`` the annotation.

    The default follows CheXlocalize's ``cam_to_segmentation``: the heatmap is resampled to the mask's grid
    (bilinear), min-max normalised, made an 8-bit image with ``np.uint8(255 * x)`` (``floor(255 x)``, not
    ``floor(256 x)``) and binarised by Otsu's method as ``cv2.threshold(..., cv2.THRESH_OTSU)`` does (pixels strictly
    above the threshold level; the first best split on ties). CheXlocalize's last step draws the contours of that
    region as filled polygons (holes become foreground, one-pixel regions are dropped): ``fill_contours=True`` does
    it too (:func:`~monai_explain.metrics.binarize.fill_regions`, on the host), giving exactly their segmentation;
    the default leaves the Otsu region as it is (the region the coverage / precision metrics use, on any device).
    For CheXlocalize's numbers use ``fill_contours=True, empty_prediction="nan"`` on the map upsampled to the image
    size. An empty annotation gives NaN (counted out by ``not_nans``). A map selecting nothing (a constant map under Otsu) scores 0 by default, NaN with
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
        fill_contours: fill the holes of the Otsu region and drop its one-pixel parts, as CheXlocalize does (only
            with ``binarize="otsu"``).

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
    method: BinarizeMethod = look_up_option(binarize, BinarizeMethod)
    if fill_contours and method != BinarizeMethod.OTSU:
        raise ValueError(f"fill_contours is CheXlocalize's step after Otsu: use binarize='otsu', got {method.value!r}.")
    s, a = prepare_saliency_and_mask(saliency, mask, mask_threshold)
    if fill_contours:
        b, c = s.shape[:2]
        chosen = fill_regions(binarize_saliency(s, BinarizeMethod.OTSU, num_bins=num_bins)).reshape(b * c, -1)
        ann = a.reshape(b * c, -1)
        intersection, selected = count_true(chosen & ann).view(b, c), count_true(chosen).view(b, c)
        annotated = count_true(ann).view(b, c)
    else:
        counts = alignment_counts(s, a, binarize=method, fraction=fraction, threshold=threshold, num_bins=num_bins)
        intersection, selected, annotated = counts.intersection, counts.selected, counts.annotated
    union = selected + annotated - intersection
    undefined = annotated == 0
    if empty_prediction == EmptyPrediction.NAN:
        undefined = undefined | (selected == 0)
    return safe_ratio(intersection, union, undefined)


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
        fill_contours: CheXlocalize's contour filling of the Otsu region (see :func:`compute_saliency_iou`).
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
        fill_contours: bool = False,
    ) -> None:
        super().__init__(reduction=reduction, get_not_nans=get_not_nans)
        self.binarize = look_up_option(binarize, BinarizeMethod)
        self.empty_prediction = look_up_option(empty_prediction, EmptyPrediction)
        self.fill_contours = bool(fill_contours)
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
            fill_contours=self.fill_contours,
        )
