"""Binarisation of saliency maps: top-k fraction, fixed threshold and Otsu, per sample and channel.

Every function works on ``(B, C, *spatial)`` tensors (2D or 3D: the spatial dimensions are flattened, so one code
path serves both) and handles the whole batch at once; nothing loops over samples.

The selection primitives used here (:func:`kth_largest`, :func:`otsu_bin_index`) are shared with the alignment
metrics, which count the selected pixels without materialising the binary map.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.utils import StrEnum, look_up_option, optional_import

__all__ = [
    "DEFAULT_NUM_BINS",
    "DEFAULT_THRESHOLD",
    "DEFAULT_TOPK_FRACTION",
    "BinarizeMethod",
    "binarize_saliency",
    "count_true",
    "fill_regions",
    "kth_largest",
    "otsu_bin_index",
    "otsu_threshold",
    "select_rows",
    "selection_weights",
    "topk_counts",
    "topk_size",
]

#: Default fraction of pixels kept by top-k binarisation: the 10% most salient pixels of each map.
DEFAULT_TOPK_FRACTION = 0.1
#: Default threshold of the ``"threshold"`` method, on the max-normalised map.
DEFAULT_THRESHOLD = 0.5
#: Default number of histogram bins of Otsu's method (as for an 8-bit image).
DEFAULT_NUM_BINS = 256


class BinarizeMethod(StrEnum):
    """How a saliency map becomes a salient region.

    - ``topk``: the ``k`` most salient pixels, ``k = round(fraction * N)`` (at least 1) for a float ``fraction``, or
      ``k = |annotation|`` for ``fraction="mask"`` (mask-area matched, Quantus' RelevanceRankAccuracy).
    - ``threshold``: pixels whose max-normalised value ``s / max(s)`` is strictly above ``threshold``.
    - ``otsu``: the map is min-max normalised, quantised to the levels ``0 .. num_bins - 1`` as an 8-bit image is
      (``np.uint8(255 * x)``, i.e. ``floor((num_bins - 1) * x)``), and pixels at levels strictly above Otsu's
      threshold are kept - CheXlocalize's ``cam_to_segmentation`` (``cv2.threshold(..., cv2.THRESH_OTSU)`` on that
      uint8 image), without its contour filling.
    """

    TOPK = "topk"
    THRESHOLD = "threshold"
    OTSU = "otsu"


def count_true(x: torch.Tensor, dim: int = 1, keepdim: bool = False) -> torch.Tensor:
    """Number of ``True`` values along ``dim`` as float64.

    Rows of a contiguous 2D bool tensor on the CPU are counted with NumPy's ``count_nonzero``; otherwise summed in
    int32 (int64 past 2**31 elements), many times faster than a floating-point or int64 reduction, and exact.
    """
    if x.device.type == "cpu" and x.dtype == torch.bool and x.ndim == 2 and dim in (1, -1) and x.is_contiguous():
        # NumPy's count_nonzero per row (SIMD) is several times faster than a torch reduction of a bool tensor
        xn = x.numpy()
        out = torch.from_numpy(np.fromiter((np.count_nonzero(r) for r in xn), dtype=np.float64, count=xn.shape[0]))
        return out[:, None] if keepdim else out
    acc = torch.int32 if x.shape[dim] < 2**31 else torch.int64
    return x.sum(dim=dim, keepdim=keepdim, dtype=acc).to(torch.float64)


def _check_map(saliency: torch.Tensor, name: str = "saliency") -> None:
    if not isinstance(saliency, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(saliency).__name__}.")
    if saliency.ndim < 3:
        raise ValueError(f"{name} must be (B, C, *spatial), got shape {tuple(saliency.shape)}.")


def topk_size(fraction: float | str, n: int, mask_rows: torch.Tensor | None, rows: int, device) -> int | torch.Tensor:
    """``k`` of top-k binarisation: one int for a float ``fraction``, a per-row long tensor for ``"mask"``."""
    if isinstance(fraction, str):
        if fraction != "mask":
            raise ValueError(f"fraction must be a float in (0, 1] or 'mask', got {fraction!r}.")
        if mask_rows is None:
            raise ValueError("fraction='mask' needs the annotation mask (k = number of annotated pixels).")
        return mask_rows.sum(dim=1, dtype=torch.long)
    fraction = float(fraction)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
    return min(n, max(1, round(fraction * n)))


def kth_largest(rows: torch.Tensor, k: int | torch.Tensor) -> torch.Tensor:
    """The ``k``-th largest value of each row of a 2D tensor (``k`` counts from 1, one int or one per row).

    On CPU the selection runs in NumPy's introselect (``np.partition`` on a zero-copy view of the tensor: over the
    whole block at once for one ``k``, row by row for per-row ``k``), which measured several times faster than ``torch.kthvalue``/``torch.topk`` on
    CPU; on other devices ``torch.kthvalue`` (one ``k``) or a sort (per-row ``k``) is used.

    Args:
        rows: ``(R, N)`` tensor.
        k: an int, or an ``(R,)`` long tensor, with values in ``[1, N]``.

    Returns:
        ``(R,)`` tensor of the rows' dtype and device.
    """
    n = rows.shape[1]
    if isinstance(k, torch.Tensor) and k.numel() and bool((k == k[0]).all()):
        k = int(k[0])
    if rows.device.type == "cpu" and rows.dtype in (torch.float32, torch.float64):
        x = rows.detach().contiguous().numpy()
        if isinstance(k, int):
            kth = min(max(n - k, 0), n - 1)
            return torch.from_numpy(np.partition(x, kth, axis=1)[:, kth].copy())
        # one introselect per row at its own position (partitioning every row at all distinct k costs O(R * N * R))
        pos_np = (n - k).clamp(0, n - 1).cpu().numpy()
        out = np.empty(x.shape[0], dtype=x.dtype)
        for i, p in enumerate(pos_np.tolist()):
            out[i] = np.partition(x[i], p)[p]
        return torch.from_numpy(out)
    if isinstance(k, int):
        return torch.kthvalue(rows, min(max(n - k, 0), n - 1) + 1, dim=1).values
    pos = (n - k).clamp(0, n - 1)
    return torch.sort(rows, dim=1).values.gather(1, pos[:, None])[:, 0]


def topk_counts(
    rows: torch.Tensor, k: int | torch.Tensor, inside: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Count the top-``k`` pixels of each row, optionally those inside ``inside``, sharing ties at the k-th value.

    Pixels strictly above the k-th largest value are selected; the pixels *equal* to it share the remaining budget
    equally (each counts ``(k - n_above) / n_tied``), which is the expected count under a uniformly random choice
    among the tied pixels. So exactly ``k`` pixels are selected, the result does not depend on pixel order, and a
    constant map scores its chance level. Rows with ``k = 0`` select nothing.

    On CPU the tie correction runs only when some row has ties; on other devices it always runs (a few cheap passes
    instead of a host synchronisation).

    Args:
        rows: ``(R, N)`` saliency values.
        k: an int, or an ``(R,)`` long tensor, ``0 <= k <= N``.
        inside: optional ``(R, N)`` bool tensor (the annotation).

    Returns:
        ``(selected, selected_inside)``: ``(R,)`` float64 tensors; ``selected_inside`` is zero without ``inside``.
    """
    r = rows.shape[0]
    kf = torch.full((r,), float(k), dtype=torch.float64, device=rows.device) if isinstance(k, int) else k.double()
    if inside is None:
        return kf, torch.zeros_like(kf)
    t = kth_largest(rows, max(k, 1) if isinstance(k, int) else k.clamp_min(1)).to(rows.dtype)[:, None]
    ge = rows >= t
    n_ge = count_true(ge)
    in_ge = count_true(ge & inside)
    ties = n_ge > kf
    if rows.device.type != "cpu" or bool(ties.any()):
        gt = rows > t
        n_gt = count_true(gt)
        in_gt = count_true(gt & inside)
        share = (kf - n_gt) / (n_ge - n_gt).clamp_min(1.0)
        in_ge = torch.where(ties, in_gt + share * (in_ge - in_gt), in_ge)
    return kf, torch.where(kf > 0, in_ge, torch.zeros_like(in_ge))


def otsu_bin_index(hist: torch.Tensor) -> torch.Tensor:
    """Otsu's threshold bin of each row of a histogram: pixels in bins ``> index`` form the foreground.

    The between-class variance ``w0 * w1 * (mu0 - mu1)^2`` is maximised over the split after each bin (first maximum
    on ties), in float64. A histogram with a single occupied bin (a constant map) has no valid split: its index is
    the last bin, so nothing is foreground.

    Args:
        hist: ``(R, num_bins)`` histogram counts.

    Returns:
        ``(R,)`` long tensor of bin indices.
    """
    h = hist.to(torch.float64)
    nb = h.shape[1]
    levels = torch.arange(nb, dtype=torch.float64, device=h.device)
    c0 = torch.cumsum(h, dim=1)
    total = c0[:, -1:]
    m0 = torch.cumsum(h * levels, dim=1)
    mt = m0[:, -1:]
    valid = (c0 > 0) & (c0 < total)
    # sigma_b^2 = (mu_T * w0 - mu_0)^2 / (w0 * w1), written with counts (w0 = c0 / T, mu_0 = m0 / T)
    between = (mt / total.clamp_min(1.0) * c0 - m0) ** 2 / (c0 * (total - c0)).clamp_min(1.0)
    between = torch.where(valid, between, torch.full_like(between, -1.0))
    idx = between.argmax(dim=1)
    return torch.where(valid.any(dim=1), idx, torch.full_like(idx, nb - 1))


def _minmax_bins(rows: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Quantise each row, min-max normalised to [0, 1], to the levels ``0 .. num_bins - 1`` (long).

    The level is ``floor((num_bins - 1) * x)``: with 256 levels this is ``np.uint8(255 * x)``, the 8-bit image that
    CheXlocalize's ``cam_to_segmentation`` gives to OpenCV's Otsu (the normalised value 1 is level 255, 0.999 is
    level 254). The arithmetic runs in the rows' own dtype (CheXlocalize's maps are float32). A constant row is all
    at level 0. No floor on the range: a map whose values span less than any fixed epsilon is still normalised.
    """
    if num_bins < 2:
        raise ValueError(f"num_bins must be >= 2, got {num_bins}.")
    lo = rows.amin(dim=1, keepdim=True)
    span = rows.amax(dim=1, keepdim=True) - lo
    x = (rows - lo) / torch.where(span > 0, span, torch.ones_like(span))
    return (x * (num_bins - 1)).long().clamp_(0, num_bins - 1)


def _row_histogram(bins: torch.Tensor, num_bins: int) -> torch.Tensor:
    r = bins.shape[0]
    offsets = torch.arange(r, device=bins.device)[:, None] * num_bins
    return torch.bincount((bins + offsets).reshape(-1), minlength=r * num_bins).view(r, num_bins)


def otsu_threshold(saliency: torch.Tensor, num_bins: int = DEFAULT_NUM_BINS) -> torch.Tensor:
    """Otsu's threshold of each ``(sample, channel)`` map, on the min-max normalised map.

    The map is min-max normalised to [0, 1] and quantised to the levels ``floor((num_bins - 1) * x)`` (an 8-bit
    image for 256 levels, as CheXlocalize); the returned value ``(index + 1) / (num_bins - 1)`` is the normalised value
    of the first foreground level, so the foreground is ``normalised_map >= threshold`` up to float rounding, exactly
    ``level > otsu_bin_index``. A constant map gets a threshold above 1 (nothing selected).

    Args:
        saliency: ``(B, C, *spatial)``.
        num_bins: histogram bins (256 as for an 8-bit image).

    Returns:
        ``(B, C)`` thresholds in the normalised scale.
    """
    _check_map(saliency)
    b, c = saliency.shape[:2]
    rows = saliency.detach().reshape(b * c, -1).float()
    idx = otsu_bin_index(_row_histogram(_minmax_bins(rows, num_bins), num_bins))
    return ((idx + 1).to(torch.float64) / (num_bins - 1)).view(b, c)


def select_rows(
    rows: torch.Tensor,
    method: BinarizeMethod | str,
    threshold: float = DEFAULT_THRESHOLD,
    num_bins: int = DEFAULT_NUM_BINS,
) -> torch.Tensor:
    """Bool selection of each row for the ``threshold`` and ``otsu`` methods (top-k is handled by counts)."""
    method = look_up_option(method, BinarizeMethod)
    if method == BinarizeMethod.THRESHOLD:
        # no floor on the peak (a map of tiny values, e.g. input gradients, is still max-normalised); a row whose
        # maximum is not positive (all zero) selects nothing
        peak = rows.amax(dim=1, keepdim=True)
        positive = peak > 0
        return (rows / torch.where(positive, peak, torch.ones_like(peak)) > threshold) & positive
    if method == BinarizeMethod.OTSU:
        bins = _minmax_bins(rows, num_bins)
        idx = otsu_bin_index(_row_histogram(bins, num_bins))
        return bins > idx[:, None]
    raise ValueError(f"select_rows does not handle method {method!r}.")


def selection_weights(
    rows: torch.Tensor,
    method: BinarizeMethod | str = BinarizeMethod.TOPK,
    fraction: float | str = DEFAULT_TOPK_FRACTION,
    threshold: float = DEFAULT_THRESHOLD,
    num_bins: int = DEFAULT_NUM_BINS,
    mask_rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-pixel selection weight of each row: 1 selected, 0 not, and for top-k the shared weight of tied pixels.

    This is the materialised form of :func:`topk_counts` (for counts against several regions at once, e.g. the
    instances of an instance mask): ``(weights * region).sum()`` equals the shared-ties count inside ``region``.

    Args:
        rows: ``(R, N)`` saliency values.
        method: a :class:`BinarizeMethod` value.
        fraction: top-k fraction or ``"mask"`` (then ``mask_rows`` gives ``k``).
        threshold: threshold of the ``"threshold"`` method.
        num_bins: Otsu histogram bins.
        mask_rows: ``(R, N)`` bool annotation, for ``fraction="mask"``.

    Returns:
        ``(R, N)`` float tensor with values in [0, 1], summing to ``k`` per row for top-k.
    """
    method = look_up_option(method, BinarizeMethod)
    if method != BinarizeMethod.TOPK:
        return select_rows(rows, method, threshold, num_bins).to(rows.dtype)
    k = topk_size(fraction, rows.shape[1], mask_rows, rows.shape[0], rows.device)
    if isinstance(k, int):
        k = torch.full((rows.shape[0],), k, dtype=torch.long, device=rows.device)
    t = kth_largest(rows, k.clamp_min(1)).to(rows.dtype)[:, None]
    gt = rows > t
    eq = rows == t
    n_gt = count_true(gt, keepdim=True)
    n_eq = count_true(eq, keepdim=True)
    share = ((k[:, None].to(torch.float64) - n_gt) / n_eq.clamp_min(1.0)).to(rows.dtype)
    weights = gt.to(rows.dtype) + eq.to(rows.dtype) * share
    return torch.where(k[:, None] > 0, weights, torch.zeros_like(weights))


def binarize_saliency(
    saliency: torch.Tensor,
    method: BinarizeMethod | str = BinarizeMethod.TOPK,
    fraction: float | str = DEFAULT_TOPK_FRACTION,
    threshold: float = DEFAULT_THRESHOLD,
    num_bins: int = DEFAULT_NUM_BINS,
    mask: torch.Tensor | None = None,
    mask_threshold: float = 0.5,
) -> torch.Tensor:
    """Binarise each ``(sample, channel)`` saliency map into its salient region.

    - ``"topk"``: exactly ``k`` pixels, ``k = round(fraction * N)`` (at least 1; default the top 10%), or the number
      of annotated pixels of the matching ``mask`` channel for ``fraction="mask"``. Ties at the k-th value are broken
      deterministically by position: the lowest flattened (row-major, C-order) index wins, so a constant map selects
      its first ``k`` pixels. (The alignment metrics do not materialise the map: there tied pixels share the budget,
      see :func:`topk_counts`.)
    - ``"threshold"``: ``s / max(s) > threshold``; an all-zero map selects nothing. A map that is already binary
      (0/1) comes back unchanged for any threshold in ``[0, 1)``.
    - ``"otsu"``: Otsu's threshold of the min-max normalised map quantised to ``num_bins`` levels as an 8-bit image
      (``floor((num_bins - 1) * x)``, CheXlocalize's ``np.uint8(255 * x)``); a constant map selects nothing.

    Saliency is expected non-negative (ReLU'd CAM, absolute gradients).

    Args:
        saliency: ``(B, C, *spatial)`` map.
        method: a :class:`BinarizeMethod` value.
        fraction: top-k fraction in (0, 1], or ``"mask"``.
        threshold: threshold of the ``"threshold"`` method.
        num_bins: Otsu histogram bins.
        mask: ``(B, C or 1, *spatial)`` annotation, needed only for ``fraction="mask"``; same spatial size.
        mask_threshold: a mask pixel is annotated where ``mask > mask_threshold``.

    Returns:
        A bool tensor of the saliency's shape and device.

    Raises:
        ValueError: for a bad shape, method, fraction, or a missing/mismatched mask with ``fraction="mask"``.

    Example:
        >>> s = torch.tensor([[[[0.1, 0.9], [0.5, 0.3]]]])
        >>> binarize_saliency(s, "topk", fraction=0.5).int().tolist()
        [[[[0, 1], [1, 0]]]]
    """
    _check_map(saliency)
    method = look_up_option(method, BinarizeMethod)
    b, c = saliency.shape[:2]
    n = int(np.prod(saliency.shape[2:]))
    rows = saliency.detach().reshape(b * c, n)
    if not rows.is_floating_point():
        rows = rows.float()
    if method != BinarizeMethod.TOPK:
        return select_rows(rows, method, threshold, num_bins).view(saliency.shape)
    mask_rows = None
    if isinstance(fraction, str) and fraction == "mask":
        if mask is None:
            raise ValueError("fraction='mask' needs the annotation mask (k = number of annotated pixels).")
        if mask.shape[0] != b or mask.shape[2:] != saliency.shape[2:] or mask.shape[1] not in (1, c):
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not match saliency of shape {tuple(saliency.shape)}."
            )
        mask_rows = (mask > mask_threshold).expand(b, c, *mask.shape[2:]).reshape(b * c, n)
    k = topk_size(fraction, n, mask_rows, b * c, rows.device)
    if isinstance(k, int):
        k = torch.full((b * c,), k, dtype=torch.long, device=rows.device)
    order = torch.sort(rows, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n, device=rows.device).expand(b * c, n))
    return (rank < k[:, None]).view(saliency.shape)


def fill_regions(region: torch.Tensor) -> torch.Tensor:
    """Fill the holes of each binary ``(sample, channel)`` region and drop its one-pixel parts (CheXlocalize's step).

    CheXlocalize's ``cam_to_segmentation`` does not use Otsu's region as it is: it traces its contours
    (``cv2.findContours``, ``RETR_TREE``), keeps those of more than one point and draws each as a filled polygon
    (PIL, outline included). The result is the region with every hole filled and every isolated single pixel
    removed; that is what this computes, with ``scipy.ndimage.binary_fill_holes`` and the connected components of
    ``scipy.ndimage.label`` (8-connectivity in 2D, 26 in 3D, as OpenCV's contours). Runs on the host (one
    synchronisation); the result is on ``region``'s device.

    Args:
        region: ``(B, C, *spatial)`` bool tensor.

    Returns:
        bool tensor of the same shape.

    Example:
        >>> ring = torch.zeros(1, 1, 5, 6, dtype=torch.bool)
        >>> ring[0, 0, 1:4, 1:4] = True; ring[0, 0, 2, 2] = False; ring[0, 0, 0, 5] = True
        >>> fill_regions(ring)[0, 0].int().tolist()  # hole filled, the lone corner pixel dropped
        [[0, 0, 0, 0, 0, 0], [0, 1, 1, 1, 0, 0], [0, 1, 1, 1, 0, 0], [0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]]
    """
    ndimage, has_scipy = optional_import("scipy.ndimage")
    if not has_scipy:
        raise ImportError("fill_regions (CheXlocalize's contour filling) needs scipy: pip install scipy.")
    _check_map(region, "region")
    maps = region.detach().to("cpu", torch.bool).numpy().reshape(-1, *region.shape[2:])
    out = np.empty_like(maps)
    structure = np.ones((3,) * (region.ndim - 2), dtype=bool)
    for i, m in enumerate(maps):
        filled = ndimage.binary_fill_holes(m)
        labels, _ = ndimage.label(filled, structure=structure)
        sizes = np.bincount(labels.ravel())
        out[i] = filled & (sizes[labels] > 1)
    return torch.from_numpy(out.reshape(region.shape)).to(region.device)
