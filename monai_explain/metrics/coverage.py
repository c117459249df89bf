"""Annotation coverage: how much of the annotated region the salient region covers, per pixel or per instance."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from monai.utils import MetricReduction

from monai_explain.utils import resize_saliency

from .base import SaliencyAlignmentMetric
from .binarize import (
    DEFAULT_NUM_BINS,
    DEFAULT_THRESHOLD,
    DEFAULT_TOPK_FRACTION,
    BinarizeMethod,
    count_true,
    selection_weights,
)
from .utils import alignment_counts, as_metric_tensor, check_finite_values, prepare_saliency_and_mask, safe_ratio

__all__ = [
    "DEFAULT_INSTANCE_THRESHOLD",
    "SaliencyCoverage",
    "compute_instance_coverage",
    "compute_saliency_coverage",
    "instance_masks",
]

#: Default share of an instance's pixels that must be salient for the instance to count as found.
DEFAULT_INSTANCE_THRESHOLD = 0.1


def compute_saliency_coverage(
    saliency: torch.Tensor,
    mask: torch.Tensor,
    binarize: BinarizeMethod | str = BinarizeMethod.TOPK,
    fraction: float | str = DEFAULT_TOPK_FRACTION,
    threshold: float = DEFAULT_THRESHOLD,
    num_bins: int = DEFAULT_NUM_BINS,
    mask_threshold: float = 0.5,
    return_chance: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Fraction of the annotation covered by the salient region, ``|B and A| / |A|``, per sample and channel.

    ``B`` comes from ``binarize`` (default: the top 10% of pixels; ties at the k-th value share the budget, so a
    constant map covers exactly ``fraction`` of the annotation, its chance level). With ``fraction="mask"`` it equals
    the precision and Quantus' RelevanceRankAccuracy. An empty annotation gives NaN (counted out by ``not_nans``);
    a map selecting nothing covers 0.

    Args:
        saliency: ``(B, C, *spatial)`` map (resampled to the mask's grid if sizes differ).
        mask: ``(B, C or 1, *spatial)`` annotation.
        binarize: ``"topk"``, ``"threshold"`` or ``"otsu"``.
        fraction: top-k fraction in (0, 1], or ``"mask"``.
        threshold: threshold of the ``"threshold"`` method (on the max-normalised map).
        num_bins: Otsu histogram bins.
        mask_threshold: a pixel is annotated where ``mask > mask_threshold``.
        return_chance: also return the chance level of coverage, the selected fraction ``|B| / N`` (the coverage a
            region of the same size placed at random has in expectation); NaN where the annotation is empty.

    Returns:
        ``(B, C)`` float tensor, or ``(coverage, chance)`` with ``return_chance``.

    Raises:
        ValueError: for incompatible shapes, a bad option, NaN / Inf in the saliency or NaN in the mask.

    Example:
        >>> s = torch.tensor([[[[0.9, 0.1], [0.2, 0.8]]]])
        >>> m = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
        >>> compute_saliency_coverage(s, m, fraction=0.25).tolist()
        [[0.5]]
    """
    s, a = prepare_saliency_and_mask(saliency, mask, mask_threshold)
    counts = alignment_counts(s, a, binarize=binarize, fraction=fraction, threshold=threshold, num_bins=num_bins)
    empty = counts.annotated == 0
    value = safe_ratio(counts.intersection, counts.annotated, empty)
    if return_chance:
        return value, safe_ratio(counts.selected, torch.full_like(counts.selected, counts.pixels), empty)
    return value


def _check_labels(m: torch.Tensor) -> torch.Tensor:
    """The long labels of a one-channel instance map; raises for non-integer or negative values."""
    if m.is_floating_point() and not bool((m == m.round()).all()):
        raise ValueError("instance_mask with one channel must be an integer-labelled map (0 = background).")
    if bool((m < 0).any()):
        raise ValueError("instance_mask labels must be non-negative (0 = background).")
    return m.long()


def instance_masks(instance_mask: torch.Tensor, mask_threshold: float = 0.5) -> torch.Tensor:
    """Bool ``(B, K, *spatial)`` instance masks from either instance format.

    - ``(B, 1, *spatial)``: an integer-labelled map, 0 background, ``1..K`` instances (a 0/1 mask is one instance);
      labels need not be contiguous (absent labels give empty channels, ignored).
    - ``(B, K, *spatial)`` with ``K > 1``: one channel per instance, annotated where ``> mask_threshold``; all-zero
      channels (padding) are ignored.

    Args:
        instance_mask: the instance annotation.
        mask_threshold: threshold of the one-channel-per-instance format.

    Returns:
        Bool tensor ``(B, K, *spatial)``; ``K = 0`` for a label map without labels.

    Raises:
        ValueError: for fewer than 3 dimensions, or a label map holding negative or non-integer values.
    """
    m = as_metric_tensor(instance_mask, "instance_mask").detach()
    if m.ndim < 3:
        raise ValueError(f"instance_mask must be (B, N_inst, *spatial) or (B, 1, *spatial), got {tuple(m.shape)}.")
    if m.shape[1] > 1:
        return m > mask_threshold
    labels = _check_labels(m)
    n_inst = int(labels.max()) if labels.numel() else 0
    ids = torch.arange(1, n_inst + 1, device=m.device).view(1, n_inst, *[1] * (m.ndim - 2))
    return labels == ids


def compute_instance_coverage(
    saliency: torch.Tensor,
    instance_mask: torch.Tensor,
    instance_threshold: float = DEFAULT_INSTANCE_THRESHOLD,
    binarize: BinarizeMethod | str = BinarizeMethod.TOPK,
    fraction: float | str = DEFAULT_TOPK_FRACTION,
    threshold: float = DEFAULT_THRESHOLD,
    num_bins: int = DEFAULT_NUM_BINS,
    mask_threshold: float = 0.5,
    return_per_instance: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Fraction of annotated instances that the salient region finds, per sample.

    An instance ``I`` is found when at least ``instance_threshold`` of its pixels are salient,
    ``|B and I| / |I| >= instance_threshold`` (default 0.1: low enough that a large finding can be found under the
    default top-10% budget, high enough that one stray pixel does not count). The score is the number of found
    instances over the number of non-empty instances, so each lesion counts once whatever its size (a model that
    explains only the largest of several nodules scores 1/3, where pixel coverage would look high). Ties of top-k
    share the budget as in :func:`compute_saliency_coverage`; with ``fraction="mask"``, ``k`` is the area of the
    union of the instances.

    Args:
        saliency: ``(B, 1, *spatial)`` map (one map per sample), resampled to the instance grid if sizes differ.
        instance_mask: ``(B, K, *spatial)`` one channel per instance, or ``(B, 1, *spatial)`` integer labels
            (see :func:`instance_masks`).
        instance_threshold: share of an instance's pixels that must be salient, in (0, 1].
        binarize: ``"topk"``, ``"threshold"`` or ``"otsu"``.
        fraction: top-k fraction in (0, 1], or ``"mask"``.
        threshold: threshold of the ``"threshold"`` method.
        num_bins: Otsu histogram bins.
        mask_threshold: threshold of the one-channel-per-instance format.
        return_per_instance: also return the ``(B, K)`` per-instance coverage ``|B and I| / |I|`` (NaN for empty
            instance channels).

    Returns:
        ``(B, 1)`` float tensor, NaN for a sample without instances; with ``return_per_instance`` also ``(B, K)``.

    Raises:
        ValueError: for a saliency with more than one channel, mismatched shapes, a bad instance map, or NaN / Inf
            in the saliency.

    Example:
        >>> s = torch.tensor([[[[0.9, 0.1, 0.0, 0.0]]]])
        >>> inst = torch.tensor([[[[1, 0, 0, 2]]]])
        >>> compute_instance_coverage(s, inst, fraction=0.25).tolist()
        [[0.5]]
    """
    if not 0.0 < float(instance_threshold) <= 1.0:
        raise ValueError(f"instance_threshold must be in (0, 1], got {instance_threshold}.")
    s = as_metric_tensor(saliency, "y_pred (saliency)")
    m = as_metric_tensor(instance_mask, "y (instance_mask)").detach()
    if m.ndim < 3 or s.ndim != m.ndim or s.shape[0] != m.shape[0]:
        raise ValueError(
            f"saliency of shape {tuple(s.shape)} does not match instance_mask of shape {tuple(m.shape)} (same batch "
            "size and number of spatial dimensions)."
        )
    if s.shape[1] != 1:
        raise ValueError(f"instance coverage needs one saliency map per sample (B, 1, ...), got {tuple(s.shape)}.")
    if not s.is_floating_point() or s.dtype in (torch.float16, torch.bfloat16):
        s = s.float()
    check_finite_values(s, m, "y_pred (saliency)", "y (instance_mask)")
    s = resize_saliency(s.detach(), m.shape[2:])
    b = m.shape[0]
    n = int(np.prod(m.shape[2:]))
    m = m.to(s.device)
    if m.shape[1] == 1:  # label map: per-instance sums by scatter-add, no one-hot copy
        labels = _check_labels(m).reshape(b, n)
        k_inst = int(labels.max()) if labels.numel() else 0
        union = labels > 0
        weights = selection_weights(s.reshape(b, n), binarize, fraction, threshold, num_bins, mask_rows=union)
        zeros = torch.zeros(b, k_inst + 1, dtype=torch.float64, device=s.device)
        hit_pixels = zeros.scatter_add(1, labels, weights.to(torch.float64))[:, 1:]
        area = zeros.scatter_add(1, labels, torch.ones_like(labels, dtype=torch.float64))[:, 1:]
    else:  # one channel per instance
        inst = (m > mask_threshold).reshape(b, m.shape[1], n)
        union = inst.any(dim=1)
        weights = selection_weights(s.reshape(b, n), binarize, fraction, threshold, num_bins, mask_rows=union)
        hit_pixels = torch.bmm(inst.to(weights.dtype), weights[:, :, None])[:, :, 0].to(torch.float64)
        area = count_true(inst, dim=2)
    valid = area > 0
    per_instance = torch.where(valid, hit_pixels / area.clamp_min(1.0), torch.full_like(area, float("nan")))
    found = (valid & (per_instance >= instance_threshold - 1e-12)).sum(dim=1, dtype=torch.float64)
    n_valid = valid.sum(dim=1, dtype=torch.float64)
    value = safe_ratio(found, n_valid, n_valid == 0)[:, None]
    if return_per_instance:
        return value, per_instance.float()
    return value


class SaliencyCoverage(SaliencyAlignmentMetric):
    """Annotation coverage as a MONAI cumulative metric: ``metric(y_pred=saliency, y=mask)`` returns ``(B, C)``.

    With ``per_instance=False`` (default) the pixel coverage ``|B and A| / |A|`` of
    :func:`compute_saliency_coverage`; with ``per_instance=True``, ``y`` is an instance mask and the result is the
    ``(B, 1)`` fraction of instances found, :func:`compute_instance_coverage`. Empty annotations give NaN, counted
    out by ``not_nans``.

    Args:
        per_instance: interpret ``y`` as instances and count found instances.
        instance_threshold: share of an instance's pixels that must be salient (``per_instance`` only).
        binarize: ``"topk"`` (default), ``"threshold"`` or ``"otsu"``.
        fraction: top-k fraction (default 0.1) or ``"mask"``.
        threshold: threshold of the ``"threshold"`` method.
        num_bins: Otsu histogram bins.
        mask_threshold: a pixel is annotated where ``mask > mask_threshold``.
        reduction: a :class:`monai.utils.MetricReduction` value.
        get_not_nans: whether :meth:`aggregate` also returns the count of non-NaN values.

    Example:
        >>> metric = SaliencyCoverage(reduction="mean_batch")
        >>> metric(y_pred=torch.rand(2, 3, 8, 8), y=(torch.rand(2, 3, 8, 8) > 0.7).float()).shape
        torch.Size([2, 3])
    """

    def __init__(
        self,
        per_instance: bool = False,
        instance_threshold: float = DEFAULT_INSTANCE_THRESHOLD,
        binarize: BinarizeMethod | str = BinarizeMethod.TOPK,
        fraction: float | str = DEFAULT_TOPK_FRACTION,
        threshold: float = DEFAULT_THRESHOLD,
        num_bins: int = DEFAULT_NUM_BINS,
        mask_threshold: float = 0.5,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__(reduction=reduction, get_not_nans=get_not_nans)
        self.per_instance = per_instance
        self.instance_threshold = instance_threshold
        self.binarize = BinarizeMethod(binarize)
        self.fraction = fraction
        self.threshold = threshold
        self.num_bins = num_bins
        self.mask_threshold = mask_threshold

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs) -> torch.Tensor:  # type: ignore[override]
        if y is None:
            raise ValueError("SaliencyCoverage needs the annotation mask y.")
        options: dict[str, Any] = {
            "binarize": self.binarize,
            "fraction": self.fraction,
            "threshold": self.threshold,
            "num_bins": self.num_bins,
            "mask_threshold": self.mask_threshold,
        }
        if self.per_instance:
            return compute_instance_coverage(y_pred, y, instance_threshold=self.instance_threshold, **options)  # type: ignore[return-value]
        return compute_saliency_coverage(y_pred, y, **options)  # type: ignore[return-value]
