"""Plain NumPy reference implementations, one sample at a time, for the metric parity tests."""

from __future__ import annotations

import numpy as np


def relevance_mass_accuracy(a: np.ndarray, s: np.ndarray) -> float:
    """Quantus RelevanceMassAccuracy: attribution inside the mask over the total attribution, ``sum(a*s)/sum(a)``."""
    s = s.astype(bool)
    if not s.any():
        return float("nan")
    return float((a * s).sum() / a.sum())


def relevance_rank_accuracy(a: np.ndarray, s: np.ndarray) -> float:
    """Quantus RelevanceRankAccuracy: of the ``|s|`` highest-attribution pixels, the share inside ``s``."""
    s = s.astype(bool).ravel()
    k = int(s.sum())
    if k == 0:
        return float("nan")
    top = np.argsort(-a.ravel(), kind="stable")[:k]
    return float(s[top].sum() / k)


def topk_region(a: np.ndarray, fraction: float) -> np.ndarray:
    """The ``round(fraction * N)`` (at least 1) highest pixels, ties by lowest flat index."""
    flat = a.ravel()
    k = max(1, round(fraction * flat.size))
    out = np.zeros(flat.size, dtype=bool)
    out[np.argsort(-flat, kind="stable")[:k]] = True
    return out.reshape(a.shape)


def coverage(region: np.ndarray, s: np.ndarray) -> float:
    s = s.astype(bool)
    if not s.any():
        return float("nan")
    return float((region & s).sum() / s.sum())


def precision(region: np.ndarray, s: np.ndarray) -> float:
    s = s.astype(bool)
    if not s.any():
        return float("nan")
    if not region.any():
        return 0.0
    return float((region & s).sum() / region.sum())


def iou(region: np.ndarray, s: np.ndarray) -> float:
    s = s.astype(bool)
    if not s.any():
        return float("nan")
    return float((region & s).sum() / (region | s).sum())


def otsu_region(a: np.ndarray, num_bins: int = 256) -> np.ndarray:
    """Brute-force Otsu: min-max normalise (float32), quantise as an 8-bit image (``uint8(255 x)`` for 256 levels),
    try every split, keep the first best."""
    x = a.astype(np.float32)
    lo, hi = x.min(), x.max()
    xn = (x - lo) / np.float32(max(hi - lo, np.float32(1e-8)))
    bins = np.clip((xn * np.float32(num_bins - 1)).astype(np.int64), 0, num_bins - 1)
    levels = bins.ravel().astype(np.float64)
    best, best_t = -1.0, None
    for t in range(num_bins - 1):
        fg = levels > t
        n1 = fg.sum()
        n0 = levels.size - n1
        if n0 == 0 or n1 == 0:
            continue
        w0, w1 = n0 / levels.size, n1 / levels.size
        mu0, mu1 = levels[~fg].mean(), levels[fg].mean()
        var = w0 * w1 * (mu0 - mu1) ** 2
        if var > best * (1 + 1e-12):
            best, best_t = var, t
    if best_t is None:
        return np.zeros(a.shape, dtype=bool)
    return bins > best_t
