"""All count-based alignment metrics of a batch from one pass: coverage, precision (binary and mass), IoU, chance."""

from __future__ import annotations

import torch

from .binarize import DEFAULT_NUM_BINS, DEFAULT_THRESHOLD, DEFAULT_TOPK_FRACTION, BinarizeMethod
from .utils import alignment_counts, prepare_saliency_and_mask, safe_ratio

__all__ = ["compute_alignment_metrics"]


def compute_alignment_metrics(
    saliency: torch.Tensor,
    mask: torch.Tensor,
    binarize: BinarizeMethod | str = BinarizeMethod.TOPK,
    fraction: float | str = DEFAULT_TOPK_FRACTION,
    threshold: float = DEFAULT_THRESHOLD,
    num_bins: int = DEFAULT_NUM_BINS,
    mask_threshold: float = 0.5,
) -> dict[str, torch.Tensor]:
    """Coverage, binary and mass precision, IoU and both chance levels from one binarisation of each map.

    Equal to calling :func:`~monai_explain.metrics.compute_saliency_coverage`,
    :func:`~monai_explain.metrics.compute_saliency_precision` (both modes),
    :func:`~monai_explain.metrics.compute_saliency_iou` and :func:`~monai_explain.metrics.compute_chance_level`
    with the same options, but the mask is thresholded and each map binarised once, for evaluation loops that log
    them all. Note that :func:`~monai_explain.metrics.compute_saliency_iou` defaults to Otsu; here every entry
    uses ``binarize``.

    Args:
        saliency: ``(B, C, *spatial)`` map (resampled to the mask's grid if sizes differ).
        mask: ``(B, C or 1, *spatial)`` annotation.
        binarize: ``"topk"`` (default), ``"threshold"`` or ``"otsu"``.
        fraction: top-k fraction in (0, 1], or ``"mask"``.
        threshold: threshold of the ``"threshold"`` method.
        num_bins: Otsu histogram bins.
        mask_threshold: a pixel is annotated where ``mask > mask_threshold``.

    Returns:
        A dict of ``(B, C)`` float tensors, NaN where the annotation is empty: ``"coverage"``, ``"precision"``,
        ``"mass_precision"``, ``"iou"``, ``"chance_precision"`` (``|A| / N``) and ``"chance_coverage"``
        (``|B| / N``).

    Example:
        >>> s = torch.tensor([[[[0.9, 0.1], [0.2, 0.8]]]])
        >>> m = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
        >>> {k: round(v.item(), 3) for k, v in compute_alignment_metrics(s, m, fraction=0.25).items()}
        {'coverage': 0.5, 'precision': 1.0, 'mass_precision': 0.5, 'iou': 0.5, 'chance_precision': 0.5, \
'chance_coverage': 0.25}
    """
    s, a = prepare_saliency_and_mask(saliency, mask, mask_threshold)
    c = alignment_counts(s, a, binarize=binarize, fraction=fraction, threshold=threshold, num_bins=num_bins, mass=True)
    empty = c.annotated == 0
    pixels = torch.full_like(c.annotated, c.pixels)
    return {
        "coverage": safe_ratio(c.intersection, c.annotated, empty),
        "precision": safe_ratio(c.intersection, c.selected, empty),
        "mass_precision": safe_ratio(c.mass_inside, c.mass_total, empty),  # type: ignore[arg-type]
        "iou": safe_ratio(c.intersection, c.selected + c.annotated - c.intersection, empty),
        "chance_precision": safe_ratio(c.annotated, pixels, empty),
        "chance_coverage": safe_ratio(c.selected, pixels, empty),
    }
