"""Saliency precision: how much of the salient region lies inside the annotation."""

from __future__ import annotations

import torch
from monai.utils import MetricReduction, StrEnum

from .base import SaliencyAlignmentMetric
from .binarize import DEFAULT_NUM_BINS, DEFAULT_THRESHOLD, DEFAULT_TOPK_FRACTION, BinarizeMethod
from .utils import alignment_counts, prepare_saliency_and_mask, safe_ratio

__all__ = ["PrecisionMode", "SaliencyPrecision", "compute_saliency_precision"]


class PrecisionMode(StrEnum):
    """``binary``: ``|B and A| / |B|`` on the binarised salient region ``B``; ``mass``: ``sum(S * A) / sum(S)``."""

    BINARY = "binary"
    MASS = "mass"


def compute_saliency_precision(
    saliency: torch.Tensor,
    mask: torch.Tensor,
    mode: PrecisionMode | str = PrecisionMode.BINARY,
    binarize: BinarizeMethod | str = BinarizeMethod.TOPK,
    fraction: float | str = DEFAULT_TOPK_FRACTION,
    threshold: float = DEFAULT_THRESHOLD,
    num_bins: int = DEFAULT_NUM_BINS,
    mask_threshold: float = 0.5,
    return_chance: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Fraction of the salient region that lies inside the annotation, per sample and channel.

    - ``mode="binary"``: ``|B and A| / |B|`` with ``B`` the salient region from ``binarize`` (default: the top 10%
      of pixels, ties at the k-th value sharing the budget, see
      :func:`~monai_explain.metrics.binarize.topk_counts`). With ``fraction="mask"`` (``|B| = |A|``) this is Quantus'
      RelevanceRankAccuracy.
    - ``mode="mass"``: ``sum(S * A) / sum(S)``, the share of saliency mass inside the annotation (Quantus'
      RelevanceMassAccuracy); no binarisation.

    Defined results: an empty annotation gives NaN (counted out by ``not_nans``). A map that selects nothing (all
    zero under ``"threshold"``, constant under ``"otsu"``) or has zero mass scores 0, not NaN: an explanation that
    points nowhere earns no credit and is not dropped from the mean. A constant map under top-k scores exactly the
    chance level ``|A| / N``, as does its mass precision. Saliency is expected non-negative.

    Saliency is resampled to the mask's grid when sizes differ; channels broadcast when one side has one channel
    (see :func:`~monai_explain.metrics.utils.prepare_saliency_and_mask`).

    Args:
        saliency: ``(B, C, *spatial)`` map.
        mask: ``(B, C or 1, *spatial)`` annotation.
        mode: a :class:`PrecisionMode` value.
        binarize: a :class:`~monai_explain.metrics.binarize.BinarizeMethod` value (binary mode).
        fraction: top-k fraction in (0, 1], or ``"mask"`` for ``k = |A|``.
        threshold: threshold of the ``"threshold"`` method (on the max-normalised map).
        num_bins: Otsu histogram bins.
        mask_threshold: a pixel is annotated where ``mask > mask_threshold``.
        return_chance: also return the chance level ``|A| / N``.

    Returns:
        ``(B, C)`` float tensor, or ``(precision, chance)`` with ``return_chance``.

    Raises:
        ValueError: for incompatible shapes, a bad option, NaN / Inf in the saliency or NaN in the mask.

    Example:
        >>> s = torch.tensor([[[[0.9, 0.1], [0.2, 0.8]]]])
        >>> m = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
        >>> compute_saliency_precision(s, m, fraction=0.5).tolist()
        [[0.5]]
        >>> compute_saliency_precision(s, m, mode="mass").tolist()
        [[0.5]]
    """
    mode = PrecisionMode(mode)
    s, a = prepare_saliency_and_mask(saliency, mask, mask_threshold)
    counts = alignment_counts(
        s,
        a,
        binarize=binarize,
        fraction=fraction,
        threshold=threshold,
        num_bins=num_bins,
        mass=mode == PrecisionMode.MASS,
        select=mode == PrecisionMode.BINARY,
    )
    empty = counts.annotated == 0
    if mode == PrecisionMode.MASS:
        value = safe_ratio(counts.mass_inside, counts.mass_total, empty)  # type: ignore[arg-type]
    else:
        value = safe_ratio(counts.intersection, counts.selected, empty)
    if return_chance:
        return value, safe_ratio(counts.annotated, torch.full_like(counts.annotated, counts.pixels), empty)
    return value


class SaliencyPrecision(SaliencyAlignmentMetric):
    """Saliency precision as a MONAI cumulative metric: ``metric(y_pred=saliency, y=mask)`` returns ``(B, C)``.

    See :func:`compute_saliency_precision` for the definition and the defined results (NaN for an empty mask,
    0 for a map selecting nothing). Log :class:`~monai_explain.metrics.ChanceLevel` beside it for the chance level.

    Args:
        mode: ``"binary"`` (``|B and A| / |B|``) or ``"mass"`` (``sum(S * A) / sum(S)``).
        binarize: ``"topk"`` (default), ``"threshold"`` or ``"otsu"``.
        fraction: top-k fraction (default 0.1) or ``"mask"``.
        threshold: threshold of the ``"threshold"`` method.
        num_bins: Otsu histogram bins.
        mask_threshold: a pixel is annotated where ``mask > mask_threshold``.
        reduction: a :class:`monai.utils.MetricReduction` value.
        get_not_nans: whether :meth:`aggregate` also returns the count of non-NaN values.

    Example:
        >>> metric = SaliencyPrecision(mode="mass", get_not_nans=True)
        >>> for saliency, mask in loader:  # doctest: +SKIP
        ...     metric(y_pred=saliency, y=mask)
        >>> value, not_nans = metric.aggregate()  # doctest: +SKIP
    """

    def __init__(
        self,
        mode: PrecisionMode | str = PrecisionMode.BINARY,
        binarize: BinarizeMethod | str = BinarizeMethod.TOPK,
        fraction: float | str = DEFAULT_TOPK_FRACTION,
        threshold: float = DEFAULT_THRESHOLD,
        num_bins: int = DEFAULT_NUM_BINS,
        mask_threshold: float = 0.5,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__(reduction=reduction, get_not_nans=get_not_nans)
        self.mode = PrecisionMode(mode)
        self.binarize = BinarizeMethod(binarize)
        self.fraction = fraction
        self.threshold = threshold
        self.num_bins = num_bins
        self.mask_threshold = mask_threshold

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs) -> torch.Tensor:  # type: ignore[override]
        if y is None:
            raise ValueError("SaliencyPrecision needs the annotation mask y.")
        return compute_saliency_precision(  # type: ignore[return-value]
            y_pred,
            y,
            mode=self.mode,
            binarize=self.binarize,
            fraction=self.fraction,
            threshold=self.threshold,
            num_bins=self.num_bins,
            mask_threshold=self.mask_threshold,
        )
