"""Input preparation and the shared counting core of the saliency/annotation alignment metrics.

Coverage, precision, IoU and the chance level are all ratios of a few per-``(sample, channel)`` counts:
the number of salient pixels ``|B|``, of annotated pixels ``|A|``, of their intersection ``|B and A|``, and, for
the mass-based precision, the saliency mass inside the annotation and in total. :func:`alignment_counts` computes
them for the whole batch in one pass over row blocks, so every metric shares one code path for 2D and 3D.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import torch
from monai.utils import convert_to_tensor

from monai_explain.utils import resize_saliency

from .binarize import (
    DEFAULT_NUM_BINS,
    DEFAULT_THRESHOLD,
    DEFAULT_TOPK_FRACTION,
    BinarizeMethod,
    count_true,
    select_rows,
    topk_counts,
    topk_size,
)

__all__ = [
    "AlignmentCounts",
    "alignment_counts",
    "all_finite",
    "as_metric_tensor",
    "check_finite_values",
    "prepare_saliency_and_mask",
    "row_blocks",
    "safe_ratio",
]

logger = logging.getLogger(__name__)

#: Elements per row block on CPU: 2**21 float32 values (8 MiB) keep each block's passes in the processor cache,
#: which measured about twice as fast as one pass over a 64 x 512 x 512 batch. Other devices take the whole batch.
CPU_BLOCK_ELEMENTS = 2**21


class AlignmentCounts(NamedTuple):
    """Per-``(sample, channel)`` counts, each a ``(B, C)`` float64 tensor (``pixels`` is the pixel count ``N``)."""

    intersection: torch.Tensor
    selected: torch.Tensor
    annotated: torch.Tensor
    pixels: int
    mass_inside: torch.Tensor | None = None
    mass_total: torch.Tensor | None = None


def as_metric_tensor(x, name: str) -> torch.Tensor:
    """``x`` as a plain tensor (no MONAI meta) for a metric; ``name`` is the argument named in the errors.

    Raises:
        ValueError: ``x`` is None. TypeError: ``x`` is neither a tensor nor an array.
    """
    if x is None:
        raise ValueError(f"{name} is required.")
    t = convert_to_tensor(x, track_meta=False)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a tensor or array, got {type(x).__name__}.")
    return t


def all_finite(x: torch.Tensor) -> bool:
    """Whether every element of a floating point tensor is finite, from one read-only reduction.

    NaN and Inf propagate into a float32 (float64 for float64 input) sum, so a finite sum proves every element
    finite; only a non-finite sum (NaN / Inf present, or an overflow of huge finite values) runs the exact
    element-wise test. This reads the tensor once instead of building ``isfinite`` masks (several passes).
    """
    if not x.is_floating_point() or x.numel() == 0:
        return True
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    if bool(torch.isfinite(x.sum(dtype=acc))):
        return True
    return bool(torch.isfinite(x).all())


def check_finite_values(
    saliency: torch.Tensor | None, mask: torch.Tensor | None, saliency_name: str, mask_name: str
) -> None:
    """Raise for NaN / Inf in a (floating point) saliency map or NaN in a mask: their scores would mean nothing.

    Each check is one read-only reduction (see :func:`all_finite`); the exact element-wise test runs only when
    the reduction is not finite.
    """
    if saliency is not None and not all_finite(saliency):
        raise ValueError(f"{saliency_name} of shape {tuple(saliency.shape)} contains NaN or Inf values.")
    if mask is not None and mask.is_floating_point() and mask.numel():
        acc = torch.float64 if mask.dtype == torch.float64 else torch.float32
        if bool(torch.isnan(mask.sum(dtype=acc))) and bool(torch.isnan(mask).any()):
            raise ValueError(f"{mask_name} of shape {tuple(mask.shape)} contains NaN values.")


def prepare_saliency_and_mask(
    saliency: torch.Tensor,
    mask: torch.Tensor,
    mask_threshold: float = 0.5,
    saliency_name: str = "y_pred (saliency)",
    mask_name: str = "y (mask)",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a saliency map and an annotation mask and bring them to a common ``(B, C, *spatial)`` shape.

    - Saliency is resampled to the mask's grid when the spatial sizes differ (bilinear/trilinear,
      :func:`monai_explain.utils.resize_saliency`); the mask is never resampled.
    - Channels broadcast: a one-channel mask applies to every saliency channel (one map per class, one merged
      annotation) and a one-channel saliency map to every mask channel (one map, per-finding masks); otherwise the
      channel counts must be equal.
    - The mask is binarised as ``mask > mask_threshold`` (for a 0/1 mask the mask itself; for a soft reader average,
      the majority).

    MetaTensors are unwrapped to plain tensors; the mask is moved to the saliency's device.

    Args:
        saliency: ``(B, Cs, *spatial_s)`` map.
        mask: ``(B, Cm, *spatial_m)`` annotation, same batch size and number of spatial dimensions.
        mask_threshold: annotation threshold.
        saliency_name: name used in error messages.
        mask_name: name used in error messages.

    Returns:
        ``(saliency, annotated)``: a float tensor and a bool tensor, both ``(B, max(Cs, Cm), *spatial_m)``.

    Raises:
        ValueError: for fewer than 3 dimensions, different batch sizes or numbers of spatial dimensions,
            incompatible channel counts, NaN or Inf in the saliency, or NaN in the mask.
    """
    s = as_metric_tensor(saliency, saliency_name)
    m = as_metric_tensor(mask, mask_name)
    for t, name in ((s, saliency_name), (m, mask_name)):
        if t.ndim < 3:
            raise ValueError(f"{name} must be (B, C, *spatial), got shape {tuple(t.shape)}.")
    if s.ndim != m.ndim:
        raise ValueError(
            f"{saliency_name} of shape {tuple(s.shape)} and {mask_name} of shape {tuple(m.shape)} have different "
            "numbers of spatial dimensions."
        )
    if s.shape[0] != m.shape[0]:
        raise ValueError(
            f"batch sizes differ: {saliency_name} has {s.shape[0]}, {mask_name} has {m.shape[0]} "
            f"(shapes {tuple(s.shape)} and {tuple(m.shape)})."
        )
    cs, cm = s.shape[1], m.shape[1]
    if cs != cm and 1 not in (cs, cm):
        raise ValueError(
            f"channel counts differ: {saliency_name} has {cs}, {mask_name} has {cm}; they must be equal or one of "
            "them must be 1."
        )
    if not s.is_floating_point() or s.dtype in (torch.float16, torch.bfloat16):
        s = s.float()
    check_finite_values(s, m, saliency_name, mask_name)
    s = resize_saliency(s.detach(), m.shape[2:])
    a = m.detach().to(s.device) > mask_threshold
    c = max(cs, cm)
    return s.expand(-1, c, *s.shape[2:]), a.expand(-1, c, *a.shape[2:])


def row_blocks(n_rows: int, n_cols: int, device: torch.device) -> list[slice]:
    """Slices of rows processed together: cache-sized blocks on CPU, the whole batch on other devices."""
    if device.type != "cpu":
        return [slice(0, n_rows)]
    step = max(1, CPU_BLOCK_ELEMENTS // max(1, n_cols))
    return [slice(i, min(i + step, n_rows)) for i in range(0, n_rows, step)]


def alignment_counts(
    saliency: torch.Tensor,
    annotated: torch.Tensor,
    binarize: BinarizeMethod | str = BinarizeMethod.TOPK,
    fraction: float | str = DEFAULT_TOPK_FRACTION,
    threshold: float = DEFAULT_THRESHOLD,
    num_bins: int = DEFAULT_NUM_BINS,
    mass: bool = False,
    select: bool = True,
) -> AlignmentCounts:
    """Count salient, annotated and shared pixels of each ``(sample, channel)`` map.

    Top-k selection uses :func:`monai_explain.metrics.binarize.topk_counts` (ties at the k-th value share the
    budget); ``threshold`` and ``otsu`` use :func:`monai_explain.metrics.binarize.select_rows`.

    Args:
        saliency: ``(B, C, *spatial)`` float map, as returned by :func:`prepare_saliency_and_mask`.
        annotated: ``(B, C, *spatial)`` bool annotation.
        binarize: a :class:`~monai_explain.metrics.binarize.BinarizeMethod` value.
        fraction: top-k fraction in (0, 1] or ``"mask"``.
        threshold: threshold of the ``"threshold"`` method.
        num_bins: Otsu histogram bins.
        mass: also sum the saliency inside the annotation and in total.
        select: binarise and count the salient pixels (``False`` leaves ``intersection`` and ``selected`` at zero,
            for mass-only metrics).

    Returns:
        An :class:`AlignmentCounts`.
    """
    method = BinarizeMethod(binarize)
    b, c = saliency.shape[:2]
    n = int(np.prod(saliency.shape[2:]))
    rows_s = saliency.reshape(b * c, n)
    rows_a = annotated.reshape(b * c, n)
    inter, sel, ann, m_in, m_tot = [], [], [], [], []
    for blk in row_blocks(b * c, n, saliency.device):
        s_blk, a_blk = rows_s[blk], rows_a[blk]
        n_ann = count_true(a_blk)
        if not select:
            n_sel = n_in = torch.zeros_like(n_ann)
        elif method == BinarizeMethod.TOPK:
            k = topk_size(fraction, n, a_blk, s_blk.shape[0], s_blk.device)
            n_sel, n_in = topk_counts(s_blk, k, a_blk)
        else:
            chosen = select_rows(s_blk, method, threshold, num_bins)
            n_sel = count_true(chosen)
            n_in = count_true(chosen & a_blk)
        inter.append(n_in)
        sel.append(n_sel)
        ann.append(n_ann)
        if mass:
            m_in.append(_row_sums(torch.where(a_blk, s_blk, 0.0)))
            m_tot.append(_row_sums(s_blk))
    shape = (b, c)
    return AlignmentCounts(
        intersection=torch.cat(inter).view(shape),
        selected=torch.cat(sel).view(shape),
        annotated=torch.cat(ann).view(shape),
        pixels=n,
        mass_inside=torch.cat(m_in).view(shape) if mass else None,
        mass_total=torch.cat(m_tot).view(shape) if mass else None,
    )


def _row_sums(rows: torch.Tensor) -> torch.Tensor:
    """Row sums as float64, accumulated in float32 (torch's float32 reduction is many times faster on CPU than one
    with a float64 accumulator, and cascaded: relative error ~1e-7); rows whose float32 sum overflows are summed
    again in float64, so large maps do not turn into inf / inf."""
    if rows.dtype == torch.float64 or rows.device.type != "cpu":  # accelerators: memory-bound either way
        return rows.sum(dim=1, dtype=torch.float64)
    sums = rows.sum(dim=1, dtype=torch.float32)
    bad = ~torch.isfinite(sums)
    sums = sums.to(torch.float64)
    if bool(bad.any()):
        sums[bad] = rows[bad].sum(dim=1, dtype=torch.float64)
    return sums


def safe_ratio(
    num: torch.Tensor, den: torch.Tensor, empty: torch.Tensor | None = None, zero_den: float = 0.0
) -> torch.Tensor:
    """``num / den`` as float32, ``zero_den`` where ``den == 0``, NaN where ``empty`` (an empty annotation).

    The number of empty annotations is logged at debug level (they are counted out of the means by MONAI's
    ``not_nans``).
    """
    out = torch.where(den != 0, num / torch.where(den != 0, den, torch.ones_like(den)), torch.full_like(num, zero_den))
    if empty is not None:
        if logger.isEnabledFor(logging.DEBUG):  # counting needs a host synchronisation: only when it is logged
            n_empty = int(empty.sum())
            logger.debug("%d of %d (sample, channel) annotations are empty: NaN, counted out.", n_empty, empty.numel())
        out = torch.where(empty, torch.full_like(out, float("nan")), out)
    return out.float()
