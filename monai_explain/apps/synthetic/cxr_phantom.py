"""A vectorised 2D chest X-ray phantom: body, lungs, heart, ribs, texture, lesions and a corner marker."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ChestPhantom", "draw_chest_xray", "draw_corner_marker"]

# 5x5 glyphs of the laterality letters, drawn dark inside the bright marker square.
_GLYPHS = {
    "L": np.array([[1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 0]], dtype=bool),
    "R": np.array([[1, 1, 1, 0, 0], [1, 0, 0, 1, 0], [1, 1, 1, 0, 0], [1, 0, 1, 0, 0], [1, 0, 0, 1, 0]], dtype=bool),
}


@dataclass
class ChestPhantom:
    """One synthetic chest radiograph and its ground truth.

    Attributes:
        image: float32 array (rows, columns) in [0, 1]; bright = dense (MONOCHROME2 display).
        lesion_boxes: int64 array (N, 4) of tight lesion boxes ``[x_min, y_min, x_max, y_max]`` with
            x = column and y = row, half-open in pixel edges: the lesion covers columns
            ``x_min .. x_max - 1`` and rows ``y_min .. y_max - 1``.
        lesion_mask: bool array (rows, columns), True on lesion pixels.
        lung_mask: bool array (rows, columns), True inside the lung fields.
        marker_box: int64 array (4,) box of the corner marker in the same convention, or None.
        marker_letter: "L", "R" or None.
    """

    image: np.ndarray
    lesion_boxes: np.ndarray
    lesion_mask: np.ndarray
    lung_mask: np.ndarray
    marker_box: np.ndarray | None = None
    marker_letter: str | None = None
    extra: dict = field(default_factory=dict)


def _as_size(image_size: int | Sequence[int]) -> tuple[int, int]:
    size = (int(image_size), int(image_size)) if np.isscalar(image_size) else tuple(int(s) for s in image_size)
    if len(size) != 2 or min(size) < 16:
        raise ValueError(f"image_size must be an int or (rows, columns), each >= 16, got {image_size!r}.")
    return size  # type: ignore[return-value]


def _soft_ellipse(u, v, cu, cv, ru, rv, edge):
    """Soft indicator of an axis-aligned ellipse (1 inside, 0 outside, logistic edge of width ``edge``)."""
    d = np.sqrt(((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2)
    return 1.0 / (1.0 + np.exp(np.clip((d - 1.0) / edge, -50, 50))), d


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cutoff: float) -> np.ndarray:
    """Zero-mean, unit-std low-frequency noise (white noise low-passed in the Fourier domain)."""
    white = rng.standard_normal(shape)
    fr = np.fft.fftfreq(shape[0])[:, None]
    fc = np.fft.rfftfreq(shape[1])[None, :]
    filt = np.exp(-(fr**2 + fc**2) / (2 * cutoff**2))
    out = np.fft.irfft2(np.fft.rfft2(white) * filt, s=shape)
    return (out - out.mean()) / (out.std() + 1e-12)


def draw_corner_marker(
    image: np.ndarray, rng: np.random.Generator, size: float = 0.08, intensity: float = 1.0
) -> tuple[np.ndarray, str]:
    """Burn a laterality-style tag (bright square with a dark "L" or "R") into a top corner, in place.

    Args:
        image: float array (rows, columns), modified in place.
        rng: random generator (corner, letter and offset are drawn from it).
        size: side of the square as a fraction of the smaller image side.
        intensity: value of the square (the letter strokes get ``0.35 * intensity``).

    Returns:
        (box, letter): box ``[x_min, y_min, x_max, y_max]`` (x = column, half-open) and the letter.
    """
    rows, cols = image.shape
    side = max(5, round(size * min(rows, cols)))
    margin = max(1, round(0.03 * min(rows, cols)))
    jitter = max(1, margin // 2)
    r0 = margin + int(rng.integers(0, jitter + 1))
    right = bool(rng.integers(0, 2))
    c_off = margin + int(rng.integers(0, jitter + 1))
    c0 = cols - c_off - side if right else c_off
    letter = "R" if rng.integers(0, 2) else "L"
    image[r0 : r0 + side, c0 : c0 + side] = intensity
    # glyph on a 7x7 grid (1 cell border), nearest-neighbour scaled to the square
    glyph = np.zeros((7, 7), dtype=bool)
    glyph[1:6, 1:6] = _GLYPHS[letter]
    idx = (np.arange(side) * 7) // side
    strokes = glyph[idx[:, None], idx[None, :]]
    patch = image[r0 : r0 + side, c0 : c0 + side]
    patch[strokes] = 0.35 * intensity
    return np.array([c0, r0, c0 + side, r0 + side], dtype=np.int64), letter


def draw_chest_xray(
    rng: np.random.Generator,
    image_size: int | Sequence[int] = 256,
    n_lesions: int = 0,
    marker: bool = False,
    lesion_radius: tuple[float, float] = (0.04, 0.08),
    lesion_contrast: tuple[float, float] = (0.14, 0.26),
    marker_size: float = 0.08,
    marker_intensity: float = 1.0,
    noise_std: float = 0.015,
    texture_std: float = 0.03,
    max_tries: int = 200,
) -> ChestPhantom:
    """Draw one synthetic frontal chest radiograph.

    The anatomy is randomised per call: a body ellipse, two dark lung fields, a heart shadow, a spine
    band, 8 to 10 curved rib bands per side, low-frequency texture, white noise and a random exposure
    (gain and gamma). Lesions are bright elliptical blobs placed entirely inside the lung fields
    (outside the heart shadow). The optional marker is a bright square with a dark letter in a top
    corner: strong and simple, unlike the lesions (weak, variable in size, contrast and position).

    Args:
        rng: numpy random generator; the output is a deterministic function of its state.
        image_size: int or (rows, columns).
        n_lesions: number of lesions (0 for a negative image).
        marker: whether to burn the corner marker in.
        lesion_radius: (min, max) mean semi-axis of a lesion as a fraction of the smaller image side.
        lesion_contrast: (min, max) peak intensity added by a lesion (image values are in [0, 1];
            lungs sit around 0.3, ribs add about 0.1).
        marker_size: marker side as a fraction of the smaller image side.
        marker_intensity: marker value (1.0 = saturated white).
        noise_std: standard deviation of the white noise.
        texture_std: standard deviation of the low-frequency texture.
        max_tries: rejection-sampling attempts per lesion position.

    Returns:
        ChestPhantom with the image, tight lesion boxes (x = column, y = row) and masks.

    Raises:
        ValueError: bad ``image_size``, ``n_lesions`` or ranges; or no lesion position found.

    Example:
        >>> ph = draw_chest_xray(np.random.default_rng(0), (64, 80), n_lesions=1, marker=True)
        >>> ph.image.shape, ph.lesion_boxes.shape
        ((64, 80), (1, 4))
    """
    rows, cols = _as_size(image_size)
    if n_lesions < 0:
        raise ValueError(f"n_lesions must be >= 0, got {n_lesions}.")
    for name, rng_pair in (("lesion_radius", lesion_radius), ("lesion_contrast", lesion_contrast)):
        if len(rng_pair) != 2 or not 0 < rng_pair[0] <= rng_pair[1]:
            raise ValueError(f"{name} must be (min, max) with 0 < min <= max, got {rng_pair!r}.")
    v = ((np.arange(rows) + 0.5) / rows * 2 - 1)[:, None]  # row coordinate in [-1, 1]
    u = ((np.arange(cols) + 0.5) / cols * 2 - 1)[None, :]  # column coordinate in [-1, 1]
    u, v = np.broadcast_arrays(u, v)

    # body
    body, _ = _soft_ellipse(
        u, v, rng.normal(0, 0.02), rng.normal(0.08, 0.02), rng.uniform(0.8, 0.9), rng.uniform(0.98, 1.08), 0.03
    )
    img = 0.07 + 0.55 * body
    # lungs (image left = patient right) and heart shadow
    lung_soft = np.zeros_like(img)
    lung_d = []
    lung_params = []
    for side in (-1.0, 1.0):
        cu, cv = side * rng.uniform(0.36, 0.42), rng.uniform(-0.12, -0.02)
        ru, rv = rng.uniform(0.24, 0.3), rng.uniform(0.55, 0.65)
        soft, d = _soft_ellipse(u, v, cu, cv, ru, rv, 0.04)
        lung_soft = np.maximum(lung_soft, soft)
        lung_d.append(d)
        lung_params.append((cu, cv, ru, rv))
    heart, _ = _soft_ellipse(
        u, v, rng.uniform(0.08, 0.16), rng.uniform(0.3, 0.4), rng.uniform(0.28, 0.34), rng.uniform(0.22, 0.28), 0.05
    )
    lung_soft = lung_soft * (1.0 - heart)
    img = img - 0.32 * lung_soft * body
    # spine / mediastinum band
    img = img + 0.08 * np.exp(-(((u - rng.normal(0, 0.01)) / 0.07) ** 2)) * body
    # ribs: curved bands, restricted to the thorax
    thorax = np.clip(np.minimum(lung_d[0], lung_d[1]) < 1.15, 0, 1) * body
    n_ribs = int(rng.integers(8, 11))
    ribs = np.zeros_like(img)
    for side in (-1.0, 1.0):
        start = rng.uniform(-0.85, -0.75)
        step = rng.uniform(0.14, 0.17)
        curv = rng.uniform(0.5, 0.8)
        # rib k follows v = start + k * step - curv * (u - apex)^2 + tilt * |u|: a frown, lower laterally
        centre_line = start - curv * (u - side * 0.3) ** 2 + 0.25 * np.abs(u)
        t = (v - centre_line) / step
        k = np.clip(np.rint(t), 0, n_ribs - 1)
        band = np.exp(-(((t - k) * step / 0.028) ** 2))
        ribs += band * ((u * side) > 0)
    img = img + 0.08 * ribs * thorax
    img = img + texture_std * _smooth_noise(rng, (rows, cols), 0.012) * body

    # lesions: sampled inside a lung, away from the heart, fully inside the lung field
    lung_mask = (lung_soft > 0.5) & (body > 0.5)
    lesion_mask = np.zeros((rows, cols), dtype=bool)
    boxes = []
    small = min(rows, cols)
    for _ in range(n_lesions):
        for _try in range(max_tries):
            radius = rng.uniform(*lesion_radius) * small
            a = max(1.0, radius * rng.uniform(0.8, 1.25))
            b = max(1.0, radius * rng.uniform(0.8, 1.25))
            theta = rng.uniform(0, np.pi)
            cu, cv, ru, rv = lung_params[int(rng.integers(0, 2))]
            ang, rad = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 1))
            pu, pv = cu + ru * 0.9 * rad * np.cos(ang), cv + rv * 0.9 * rad * np.sin(ang)
            pc, pr = (pu + 1) / 2 * cols - 0.5, (pv + 1) / 2 * rows - 0.5  # pixel-centre coordinates
            reach = max(a, b) + 1.0
            r_lo, r_hi = max(0, int(pr - reach)), min(rows, int(pr + reach) + 2)
            c_lo, c_hi = max(0, int(pc - reach)), min(cols, int(pc + reach) + 2)
            if r_lo >= r_hi or c_lo >= c_hi:
                continue
            dr = np.arange(r_lo, r_hi)[:, None] - pr
            dc = np.arange(c_lo, c_hi)[None, :] - pc
            x1 = (dc * np.cos(theta) + dr * np.sin(theta)) / a
            y1 = (-dc * np.sin(theta) + dr * np.cos(theta)) / b
            q = x1**2 + y1**2
            blob = q < 1.0
            window = (slice(r_lo, r_hi), slice(c_lo, c_hi))
            if blob.any() and lung_mask[window][blob].all() and not (lesion_mask[window] & blob).any():
                break
        else:
            raise ValueError(f"could not place lesion inside the lungs after {max_tries} tries (image {rows}x{cols}).")
        contrast = rng.uniform(*lesion_contrast)
        img[window] += contrast * np.clip(1.0 - q, 0, 1) ** 0.7
        lesion_mask[window] |= blob
        rws, cls = np.nonzero(blob)
        boxes.append([cls.min() + c_lo, rws.min() + r_lo, cls.max() + 1 + c_lo, rws.max() + 1 + r_lo])

    # exposure, noise, range
    img = img + noise_std * rng.standard_normal((rows, cols))
    img = np.clip(img, 0, 1) ** rng.uniform(0.85, 1.2) * rng.uniform(0.85, 1.0)
    img = np.clip(img, 0, 1).astype(np.float32)

    marker_box, letter = None, None
    if marker:
        marker_box, letter = draw_corner_marker(img, rng, marker_size, marker_intensity)
    return ChestPhantom(
        image=img,
        lesion_boxes=np.asarray(boxes, dtype=np.int64).reshape(-1, 4),
        lesion_mask=lesion_mask,
        lung_mask=lung_mask,
        marker_box=marker_box,
        marker_letter=letter,
    )
