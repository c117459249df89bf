"""A vectorised 2D chest X-ray phantom: body, lungs, heart, ribs, texture, lesions and a spurious marker.

The marker (the "shortcut" of :func:`monai_explain.apps.synthetic.generate_shortcut_cxr`) is one of the kinds of
:class:`MarkerKind`: a laterality tag in a top corner, a ruler along an image edge, or a burned-in text tag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from monai.utils import look_up_option
from monai.utils.enums import StrEnum

__all__ = [
    "ChestPhantom",
    "MarkerKind",
    "as_image_size",
    "draw_chest_xray",
    "draw_corner_marker",
    "draw_marker",
    "draw_ruler_marker",
    "draw_text_marker",
    "parse_marker_kind",
]


class MarkerKind(StrEnum):
    """Kinds of spurious marker burned into the synthetic radiographs.

    - ``CORNER``: a laterality tag, a bright square with a dark "L" or "R", in a top corner.
    - ``RULER``: a bright bar with tick marks along the bottom, left or right image edge.
    - ``TEXT``: 3 to 6 bright pixel-stroke characters near the top or bottom edge (burned-in text).
    """

    CORNER = "corner"
    RULER = "ruler"
    TEXT = "text"


# 5x5 glyphs of the laterality letters, drawn dark inside the bright marker square.
_GLYPHS = {
    "L": np.array([[1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 0]], dtype=bool),
    "R": np.array([[1, 1, 1, 0, 0], [1, 0, 0, 1, 0], [1, 1, 1, 0, 0], [1, 0, 1, 0, 0], [1, 0, 0, 1, 0]], dtype=bool),
}

# 3 columns x 5 rows stroke glyphs of the burned-in text tags ("#" = stroke), one string per row.
_TEXT_GLYPHS = {
    "A": (".#.", "#.#", "###", "#.#", "#.#"),
    "C": ("###", "#..", "#..", "#..", "###"),
    "E": ("###", "#..", "##.", "#..", "###"),
    "H": ("#.#", "#.#", "###", "#.#", "#.#"),
    "P": ("##.", "#.#", "##.", "#..", "#.."),
    "T": ("###", ".#.", ".#.", ".#.", ".#."),
    "X": ("#.#", "#.#", ".#.", "#.#", "#.#"),
    "0": ("###", "#.#", "#.#", "#.#", "###"),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("##.", "..#", ".#.", "#..", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"),
    "7": ("###", "..#", ".#.", ".#.", ".#."),
}
_TEXT_CHARS = "".join(_TEXT_GLYPHS)


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
        marker_box: int64 array (4,) tight box of the marker in the same convention, or None.
        marker_letter: the laterality letter ("L" or "R") of a corner marker, the characters of a text tag,
            None for a ruler or no marker.
        marker_kind: the :class:`MarkerKind` value of the marker drawn, or None.
        extra: free-form extra information.
        opacity_boxes: int64 array (M, 4) of tight boxes of the airspace opacities (``n_opacities`` of
            :func:`draw_chest_xray`), same convention as ``lesion_boxes``; (0, 4) when none was drawn.
        opacity_mask: bool array (rows, columns), True on opacity pixels (all False when none was drawn), or None.
    """

    image: np.ndarray
    lesion_boxes: np.ndarray
    lesion_mask: np.ndarray
    lung_mask: np.ndarray
    marker_box: np.ndarray | None = None
    marker_letter: str | None = None
    marker_kind: str | None = None
    extra: dict = field(default_factory=dict)
    opacity_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.int64))
    opacity_mask: np.ndarray | None = None


def as_image_size(image_size: int | Sequence[int]) -> tuple[int, int]:
    """``(rows, columns)`` from an int or a pair; ValueError unless 2D with each side >= 16."""
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


def _marker_side(size: float, rows: int, cols: int) -> int:
    """The marker's characteristic size in pixels: ``size`` times the smaller side, at least 5."""
    return max(5, round(size * min(rows, cols)))


def draw_ruler_marker(
    image: np.ndarray,
    rng: np.random.Generator,
    size: float = 0.08,
    intensity: float = 1.0,
    avoid: np.ndarray | None = None,
    max_tries: int = 50,
) -> np.ndarray:
    """Burn an edge ruler (a bright bar with tick marks, as radiographers lay on the detector) in place.

    The ruler runs along the bottom, left or right edge (drawn from ``rng``), ``margin`` to ``margin + jitter``
    pixels from it (``margin`` = 3% of the smaller side), over 30% to 55% of that edge at a random position.
    Its thickness across the edge is ``max(5, round(size * min(rows, columns)))``, the side of a corner marker of
    the same ``size``: a bar of a third of it on the outer side, ticks pointing inwards, every fifth tick and both
    end ticks across the full thickness, so the ruler fills its box edge to edge. Placements whose box touches
    ``avoid`` (e.g. the lung fields) are redrawn up to ``max_tries`` times.

    Args:
        image: float array (rows, columns), modified in place.
        rng: random generator (edge, length and position are drawn from it).
        size: ruler thickness as a fraction of the smaller image side.
        intensity: value of the bar and ticks.
        avoid: optional bool mask (rows, columns) the ruler's box should not touch.
        max_tries: placement attempts before the last one is kept even if it touches ``avoid``.

    Returns:
        box ``[x_min, y_min, x_max, y_max]`` (x = column, y = row, half-open), tight around the drawn pixels.

    Raises:
        ValueError: the ruler does not fit in the image (``size`` too large).
    """
    rows, cols = image.shape
    thick = _marker_side(size, rows, cols)
    margin = max(1, round(0.03 * min(rows, cols)))
    jitter = max(1, margin // 2)
    if thick + margin + jitter > min(rows, cols) // 4:
        raise ValueError(f"marker_size {size} gives a {thick}-pixel ruler: too thick for a {rows}x{cols} image.")
    bar = max(1, thick // 3)
    step = max(2, thick // 2)
    tick_w = max(1, thick // 10)
    minor = bar + max(1, (thick - bar) // 2)
    for _ in range(max(1, max_tries)):
        edge = ("bottom", "left", "right")[int(rng.integers(0, 3))]
        along = cols if edge == "bottom" else rows
        n_ticks = max(2, int(rng.uniform(0.3, 0.55) * along - tick_w) // step)
        length = n_ticks * step + tick_w
        start = int(rng.integers(margin, max(margin, along - margin - length) + 1))
        offset = margin + int(rng.integers(0, jitter + 1))
        if edge == "bottom":
            r0, c0, h, w = rows - offset - thick, start, thick, length
        else:
            r0, c0, h, w = start, offset if edge == "left" else cols - offset - thick, length, thick
        if avoid is None or not avoid[r0 : r0 + h, c0 : c0 + w].any():
            break
    # the ruler in its own frame: axis 0 across the edge (row 0 on the outer side), axis 1 along it
    ruler = np.zeros((thick, length), dtype=bool)
    ruler[:bar] = True
    for k in range(n_ticks + 1):
        ruler[: thick if k % 5 == 0 or k == n_ticks else minor, k * step : k * step + tick_w] = True
    patch = {"bottom": ruler[::-1], "left": ruler.T, "right": ruler.T[:, ::-1]}[edge]
    image[r0 : r0 + h, c0 : c0 + w][patch] = intensity
    return np.array([c0, r0, c0 + w, r0 + h], dtype=np.int64)


def draw_text_marker(
    image: np.ndarray,
    rng: np.random.Generator,
    size: float = 0.08,
    intensity: float = 1.0,
    avoid: np.ndarray | None = None,
    max_tries: int = 50,
) -> tuple[np.ndarray, str]:
    """Burn a text tag (3 to 6 bright pixel-stroke characters, like a hospital's burned-in label) in place.

    Characters are 3x5-cell stroke glyphs scaled by an integer factor so that their height is
    ``max(5, round(size * min(rows, columns)))`` rounded down to a multiple of 5 (the side of a corner marker of
    the same ``size``, at a whole glyph scale), one cell apart. The tag is placed near the top or bottom edge
    (``margin`` to ``margin + jitter`` pixels from it, ``margin`` = 3% of the smaller side) at a random column;
    positions whose box touches ``avoid`` (e.g. the lung fields) are redrawn up to ``max_tries`` times.

    Args:
        image: float array (rows, columns), modified in place.
        rng: random generator (characters, edge and position are drawn from it).
        size: character height as a fraction of the smaller image side.
        intensity: value of the strokes (pixels between strokes keep the image).
        avoid: optional bool mask (rows, columns) the tag's box should not touch.
        max_tries: placement attempts before the last one is kept even if it touches ``avoid``.

    Returns:
        (box, text): box ``[x_min, y_min, x_max, y_max]`` (x = column, half-open) tight around the stroke
        pixels, and the characters drawn.

    Raises:
        ValueError: the tag does not fit in the image (``size`` too large).
    """
    rows, cols = image.shape
    scale = max(1, _marker_side(size, rows, cols) // 5)
    n_chars = int(rng.integers(3, 7))
    text = "".join(_TEXT_CHARS[int(i)] for i in rng.integers(0, len(_TEXT_CHARS), n_chars))
    strokes = np.zeros((5, 4 * n_chars - 1), dtype=bool)
    for j, ch in enumerate(text):
        strokes[:, 4 * j : 4 * j + 3] = np.array([[c == "#" for c in line] for line in _TEXT_GLYPHS[ch]])
    strokes = np.kron(strokes, np.ones((scale, scale), dtype=bool))
    rws, cls = np.nonzero(strokes)
    strokes = strokes[rws.min() : rws.max() + 1, cls.min() : cls.max() + 1]
    h, w = strokes.shape
    margin = max(1, round(0.03 * min(rows, cols)))
    jitter = max(1, margin // 2)
    if h + margin + jitter > rows // 4 or w > cols - 2 * margin:
        raise ValueError(f"marker_size {size} gives a {h}x{w}-pixel text tag: too large for a {rows}x{cols} image.")
    for _ in range(max(1, max_tries)):
        offset = margin + int(rng.integers(0, jitter + 1))
        r0 = offset if rng.integers(0, 2) else rows - offset - h
        c0 = int(rng.integers(margin, cols - margin - w + 1))
        if avoid is None or not avoid[r0 : r0 + h, c0 : c0 + w].any():
            break
    image[r0 : r0 + h, c0 : c0 + w][strokes] = intensity
    return np.array([c0, r0, c0 + w, r0 + h], dtype=np.int64), text


def draw_marker(
    image: np.ndarray,
    rng: np.random.Generator,
    kind: str = MarkerKind.CORNER,
    size: float = 0.08,
    intensity: float = 1.0,
    avoid: np.ndarray | None = None,
) -> tuple[np.ndarray, str | None]:
    """Burn a marker of the given :class:`MarkerKind` into ``image`` in place.

    Args:
        image: float array (rows, columns), modified in place.
        rng: random generator.
        kind: "corner" (:func:`draw_corner_marker`), "ruler" (:func:`draw_ruler_marker`) or "text"
            (:func:`draw_text_marker`).
        size: the marker's size as a fraction of the smaller image side (corner: square side; ruler: thickness;
            text: character height).
        intensity: marker value.
        avoid: bool mask the ruler and the text tag keep away from where they can (the corner marker ignores it).

    Returns:
        (box, letter): the tight box ``[x_min, y_min, x_max, y_max]`` (x = column, half-open) and the laterality
        letter (corner), the characters (text) or None (ruler).

    Raises:
        ValueError: an unknown ``kind`` or a marker too large for the image.
    """
    kind = parse_marker_kind(kind)
    if kind == MarkerKind.CORNER:
        return draw_corner_marker(image, rng, size, intensity)
    if kind == MarkerKind.RULER:
        return draw_ruler_marker(image, rng, size, intensity, avoid=avoid), None
    return draw_text_marker(image, rng, size, intensity, avoid=avoid)


def parse_marker_kind(kind: str) -> MarkerKind:
    """The :class:`MarkerKind` named by ``kind``; ValueError listing the kinds otherwise."""
    try:
        return MarkerKind(look_up_option(kind, MarkerKind))
    except ValueError as err:
        raise ValueError(f"marker_kind must be one of {[k.value for k in MarkerKind]}, got {kind!r}: {err}") from err


def draw_chest_xray(
    rng: np.random.Generator,
    image_size: int | Sequence[int] = 256,
    n_lesions: int = 0,
    marker: bool = False,
    marker_kind: str = MarkerKind.CORNER,
    lesion_radius: tuple[float, float] = (0.04, 0.08),
    lesion_contrast: tuple[float, float] = (0.14, 0.26),
    marker_size: float = 0.08,
    marker_intensity: float = 1.0,
    noise_std: float = 0.015,
    texture_std: float = 0.03,
    max_tries: int = 200,
    n_opacities: int = 0,
    opacity_radius: tuple[float, float] = (0.12, 0.18),
    opacity_contrast: tuple[float, float] = (0.16, 0.26),
    opacity_rng: np.random.Generator | None = None,
) -> ChestPhantom:
    """Draw one synthetic frontal chest radiograph.

    The anatomy is randomised per call: a body ellipse, two dark lung fields, a heart shadow, a spine
    band, 8 to 10 curved rib bands per side, low-frequency texture, white noise and a random exposure
    (gain and gamma). Lesions are bright elliptical blobs placed entirely inside the lung fields
    (outside the heart shadow). Opacities (``n_opacities``, a consolidation-like finding) are larger, elongated
    and irregular: a patchy, flat-topped plateau with a lobulated border, about as bright as a lesion's centre (in
    a trial, fainter ones, ``opacity_contrast=(0.08, 0.14)``, were not learned by the cxr_expl bundle's DenseNet at
    64 px in 8 epochs: test AUC 0.51), its long axis near the lungs' vertical axis, entirely inside a lung field
    and not touching a lesion; they are drawn after the lesions and only when ``n_opacities > 0`` (so an image
    without them is the one drawn before they existed). The optional marker (``marker_kind``) is a bright square
    with a dark letter in a top corner, a ruler along an edge or a text tag near the top or bottom edge (away from
    the lungs): strong and simple, unlike the lesions (weak, variable in size, contrast and position). The marker
    is drawn last, from the same ``rng``: the image under it is the one drawn without a marker.

    Args:
        rng: numpy random generator; the output is a deterministic function of its state.
        image_size: int or (rows, columns).
        n_lesions: number of lesions (0 for a negative image).
        marker: whether to burn the marker in.
        marker_kind: a :class:`MarkerKind`: "corner", "ruler" or "text" (see :func:`draw_marker`).
        lesion_radius: (min, max) mean semi-axis of a lesion as a fraction of the smaller image side.
        lesion_contrast: (min, max) peak intensity added by a lesion (image values are in [0, 1];
            lungs sit around 0.3, ribs add about 0.1).
        marker_size: marker size as a fraction of the smaller image side: the side of the corner square, the
            thickness of the ruler, the character height of the text tag.
        marker_intensity: marker value (1.0 = saturated white).
        noise_std: standard deviation of the white noise.
        texture_std: standard deviation of the low-frequency texture.
        max_tries: rejection-sampling attempts per lesion (and opacity) position.
        n_opacities: number of consolidation-like opacities (0: none, and no random draw for them).
        opacity_radius: (min, max) semi-axis of an opacity along its long axis, as a fraction of the smaller image
            side (the short semi-axis is 40-60% of it).
        opacity_contrast: (min, max) plateau intensity added by an opacity (before its 70-100% patchiness).
        opacity_rng: random generator of the opacities (default ``rng``). With a separate one, every other draw
            (anatomy, lesions, noise, exposure, marker) is the same as without opacities: the image differs from the
            one drawn with ``n_opacities=0`` only on the opacities' pixels (and by the exposure applied to them).

    Returns:
        ChestPhantom with the image, tight lesion (and opacity) boxes (x = column, y = row) and masks.

    Raises:
        ValueError: bad ``image_size``, ``n_lesions``, ``n_opacities``, ``marker_kind`` or ranges; a marker too large
            for the image; or no lesion or opacity position found.

    Example:
        >>> ph = draw_chest_xray(np.random.default_rng(0), (64, 80), n_lesions=1, marker=True)
        >>> ph.image.shape, ph.lesion_boxes.shape
        ((64, 80), (1, 4))
    """
    rows, cols = as_image_size(image_size)
    kind = parse_marker_kind(marker_kind)
    if n_lesions < 0:
        raise ValueError(f"n_lesions must be >= 0, got {n_lesions}.")
    if n_opacities < 0:
        raise ValueError(f"n_opacities must be >= 0, got {n_opacities}.")
    for name, rng_pair in (
        ("lesion_radius", lesion_radius),
        ("lesion_contrast", lesion_contrast),
        ("opacity_radius", opacity_radius),
        ("opacity_contrast", opacity_contrast),
    ):
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
            placed = _ellipse_in_lung(rng, rows, cols, lung_params, 0.9, a, b, theta, max(a, b) + 1.0)
            if placed is None:
                continue
            window, x1, y1 = placed
            q = x1**2 + y1**2
            blob = q < 1.0
            if blob.any() and lung_mask[window][blob].all() and not (lesion_mask[window] & blob).any():
                break
        else:
            raise ValueError(f"could not place lesion inside the lungs after {max_tries} tries (image {rows}x{cols}).")
        contrast = rng.uniform(*lesion_contrast)
        img[window] += contrast * np.clip(1.0 - q, 0, 1) ** 0.7
        lesion_mask[window] |= blob
        boxes.append(_box_of(blob, window))

    opacity_mask = np.zeros((rows, cols), dtype=bool)
    opacity_boxes = []
    orng = rng if opacity_rng is None else opacity_rng
    for _ in range(n_opacities):
        window, blob, d = _place_opacity(orng, rows, cols, lung_params, lung_mask, lesion_mask | opacity_mask,
                                         opacity_radius, max_tries)  # fmt: skip
        contrast = orng.uniform(*opacity_contrast)
        patchy = 0.85 + 0.15 * np.tanh(_smooth_noise(orng, blob.shape, 0.12))  # 0.7 .. 1.0
        img[window] += contrast * patchy * np.clip(1.0 - d**4, 0, 1)  # flat top, soft lobulated border
        opacity_mask[window] |= blob
        opacity_boxes.append(_box_of(blob, window))

    # exposure, noise, range
    img = img + noise_std * rng.standard_normal((rows, cols))
    img = np.clip(img, 0, 1) ** rng.uniform(0.85, 1.2) * rng.uniform(0.85, 1.0)
    img = np.clip(img, 0, 1).astype(np.float32)

    marker_box, letter = None, None
    if marker:
        marker_box, letter = draw_marker(img, rng, kind, marker_size, marker_intensity, avoid=lung_mask)
    return ChestPhantom(
        image=img,
        lesion_boxes=np.asarray(boxes, dtype=np.int64).reshape(-1, 4),
        lesion_mask=lesion_mask,
        lung_mask=lung_mask,
        marker_box=marker_box,
        marker_letter=letter,
        marker_kind=kind.value if marker else None,
        opacity_boxes=np.asarray(opacity_boxes, dtype=np.int64).reshape(-1, 4),
        opacity_mask=opacity_mask,
    )


def _box_of(blob: np.ndarray, window: tuple[slice, slice]) -> list[int]:
    """The tight ``[x_min, y_min, x_max, y_max]`` box (half-open, image pixels) of ``blob``'s pixels in ``window``."""
    rws, cls = np.nonzero(blob)
    r_lo, c_lo = window[0].start, window[1].start
    return [cls.min() + c_lo, rws.min() + r_lo, cls.max() + 1 + c_lo, rws.max() + 1 + r_lo]


def _ellipse_in_lung(
    rng: np.random.Generator,
    rows: int,
    cols: int,
    lung_params: list[tuple[float, float, float, float]],
    spread: float,
    a: float,
    b: float,
    theta: float,
    reach: float,
) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
    """Draw a centre in a random lung (within ``spread`` of its semi-axes) and the ellipse frame around it.

    Returns:
        ``(window, x1, y1)``: the window of ``reach`` pixels around the centre (row and column slices) and, on its
        pixels, the coordinates along the ellipse's axes (semi-axes ``a`` and ``b``, long axis at angle ``theta``)
        scaled so that the ellipse is ``x1**2 + y1**2 < 1``; None when the window falls outside the image.
    """
    cu, cv, ru, rv = lung_params[int(rng.integers(0, 2))]
    ang, rad = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 1))
    pu, pv = cu + ru * spread * rad * np.cos(ang), cv + rv * spread * rad * np.sin(ang)
    pc, pr = (pu + 1) / 2 * cols - 0.5, (pv + 1) / 2 * rows - 0.5  # pixel-centre coordinates
    r_lo, r_hi = max(0, int(pr - reach)), min(rows, int(pr + reach) + 2)
    c_lo, c_hi = max(0, int(pc - reach)), min(cols, int(pc + reach) + 2)
    if r_lo >= r_hi or c_lo >= c_hi:
        return None
    dr = np.arange(r_lo, r_hi)[:, None] - pr
    dc = np.arange(c_lo, c_hi)[None, :] - pc
    x1 = (dc * np.cos(theta) + dr * np.sin(theta)) / a
    y1 = (-dc * np.sin(theta) + dr * np.cos(theta)) / b
    return (slice(r_lo, r_hi), slice(c_lo, c_hi)), x1, y1


def _place_opacity(
    rng: np.random.Generator,
    rows: int,
    cols: int,
    lung_params: list[tuple[float, float, float, float]],
    lung_mask: np.ndarray,
    taken: np.ndarray,
    radius: tuple[float, float],
    max_tries: int,
) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
    """Rejection-sample an elongated, lobulated opacity inside a lung field, clear of ``taken`` (1 pixel apart); the
    second half of the ``max_tries`` attempts draws it at 70% of the size.

    Returns:
        (window, blob, d): the window (row and column slices), the opacity's pixels in it and the normalised
        distance ``d`` (< 1 inside, the border lobulated by 3 random harmonics of the polar angle).
    """
    small = min(rows, cols)
    grown = taken.copy()  # keep one pixel between an opacity and a lesion
    grown[1:] |= taken[:-1]
    grown[:-1] |= taken[1:]
    grown[:, 1:] |= taken[:, :-1]
    grown[:, :-1] |= taken[:, 1:]
    for _try in range(max_tries):
        shrink = 1.0 if _try < max_tries // 2 else 0.7  # crowded lungs (several lesions): smaller ones fit
        a = max(1.5, rng.uniform(*radius) * small * shrink)  # long semi-axis
        b = max(1.0, a * rng.uniform(0.4, 0.6))
        theta = np.pi / 2 + rng.uniform(-0.4, 0.4)  # long axis near vertical, like the lung fields
        amps, phases = rng.uniform(0.0, 0.12, 3), rng.uniform(0, 2 * np.pi, 3)
        placed = _ellipse_in_lung(rng, rows, cols, lung_params, 0.6, a, b, theta, a * 1.4 + 1.0)
        if placed is None:
            continue
        window, x1, y1 = placed
        phi = np.arctan2(y1, x1)
        lobes = 1.0 + sum(amp * np.cos(k * phi + ph) for k, amp, ph in zip((2, 3, 4), amps, phases))
        d = np.sqrt(x1**2 + y1**2) / lobes
        blob = d < 1.0
        if blob.any() and lung_mask[window][blob].all() and not grown[window][blob].any():
            return window, blob, d
    raise ValueError(f"could not place an opacity inside the lungs after {max_tries} tries (image {rows}x{cols}).")
