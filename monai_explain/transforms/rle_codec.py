"""Run-length encodings of masks: SIIM-ACR strings (relative or absolute starts) and COCO RLE, both ways.

Both encodings run over the image in column-major order of its (row, column) storage: flat index
``k = column * height + row``.

- **SIIM-ACR** (``train-rle.csv``, ``EncodedPixels``): ``"start length start length ..."`` where each start is a
  *gap*: the number of background pixels since the end of the previous run (for the first run, since pixel 0).
  This is the published SIIM ``rle2mask`` (``position += start; mask[position:position + length] = 1;
  position += length``), so the first start is a 0-based offset. ``"-1"`` (or an empty string) = no pneumothorax.
  Files re-exported with *absolute* 1-based starts (Kaggle's usual ``rle_encode``) are read with
  ``starts="absolute"`` (see :class:`~monai_explain.transforms.RLEStart`).
- **COCO** (CheXlocalize ``gt_segmentations``): ``{"size": [h, w], "counts": ...}``; counts alternate background
  and foreground run lengths starting with background, as a list of ints or as pycocotools' compressed string
  (6-bit characters offset by 48, 5 value bits + a continuation bit, sign-extended, and counts after the third
  stored as differences to the count two before).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from monai.utils import look_up_option

from .options import RLEStart

__all__ = [
    "EMPTY_SIIM_RLE",
    "coco_counts_from_string",
    "coco_counts_to_string",
    "decode_coco_rle",
    "decode_siim_rle",
    "encode_coco_rle",
    "encode_siim_rle",
    "runs_to_flat",
]

#: SIIM RLE values that mean "no mask"
EMPTY_SIIM_RLE = ("", "-1")


def runs_to_flat(starts: np.ndarray, lengths: np.ndarray, total: int) -> np.ndarray:
    """Bool vector of ``total`` pixels with ``[starts[i], starts[i] + lengths[i])`` set (vectorised)."""
    edges = np.zeros(total + 1, dtype=np.int64)
    np.add.at(edges, starts, 1)
    np.add.at(edges, starts + lengths, -1)
    return np.cumsum(edges[:-1]) > 0


def decode_siim_rle(rle: str, shape: Sequence[int], starts: RLEStart | str = RLEStart.RELATIVE) -> np.ndarray:
    """Decode a SIIM-ACR RLE string into a bool mask of ``shape`` = (rows, columns[, ...]).

    Args:
        rle: ``"start length start length ..."`` (see the module docstring); ``"-1"`` or ``""`` is an empty mask.
        shape: the image shape in (row, column) storage order (SIIM: ``(1024, 1024)``).
        starts: ``"relative"`` (SIIM-ACR: gaps since the previous run) or ``"absolute"`` (1-based flat index of each
            run's first pixel); see :class:`~monai_explain.transforms.RLEStart`.

    Returns:
        bool array of ``shape``, filled in column-major (Fortran) order.

    Raises:
        ValueError: non-integer tokens, an odd number of values, a negative gap (a start below 1 when absolute), a
            non-positive length, or runs past the end of the image. An overflowing relative RLE whose pairs would
            fit as absolute starts says so (``starts="absolute"``).

    Example:
        >>> decode_siim_rle("1 2 3 1", (2, 4)).astype(int)  # flat pixels 1, 2 and 6, column-major
        array([[0, 1, 0, 1],
               [1, 0, 0, 0]])
        >>> decode_siim_rle("2 2 7 1", (2, 4), starts="absolute").astype(int)  # the same pixels, 1-based starts
        array([[0, 1, 0, 1],
               [1, 0, 0, 0]])
    """
    starts = look_up_option(starts, RLEStart)
    shape = tuple(int(s) for s in shape)
    total = int(np.prod(shape))
    text = str(rle).strip()
    if text in EMPTY_SIIM_RLE:
        return np.zeros(shape, dtype=bool)
    try:
        values = np.array([int(tok) for tok in text.split()], dtype=np.int64)
    except ValueError:
        raise ValueError(f"SIIM RLE must hold integers, got {text[:60]!r}.") from None
    except OverflowError:
        raise ValueError(f"SIIM RLE holds a value out of range, got {text[:60]!r}.") from None
    if values.size % 2:
        raise ValueError(f"SIIM RLE must hold (start, length) pairs, got {values.size} values.")
    firsts, lengths = values[0::2], values[1::2]
    if np.any(lengths <= 0):
        raise ValueError(f"SIIM RLE has a non-positive run length at pair {int(np.flatnonzero(lengths <= 0)[0])}.")
    if starts == RLEStart.ABSOLUTE:
        if np.any(firsts < 1):
            raise ValueError(
                f"SIIM RLE with absolute (1-based) starts has a start below 1 at pair "
                f"{int(np.flatnonzero(firsts < 1)[0])}; is it relative (starts='relative', SIIM-ACR's own format)?"
            )
        begin = firsts - 1
        ends = begin + lengths
        if np.any(ends > total):
            raise ValueError(
                f"SIIM RLE run at pair {int(np.flatnonzero(ends > total)[0])} ends at pixel {int(ends.max())}, past "
                f"the {total} pixels of an image of {shape} (absolute 1-based starts; is the image size right?)."
            )
        return runs_to_flat(begin, lengths, total).reshape(shape, order="F")
    if np.any(firsts < 0):
        raise ValueError(f"SIIM RLE has a negative gap at pair {int(np.flatnonzero(firsts < 0)[0])}.")
    if np.any(values > total):  # cannot fit; summed as Python ints here, as int64 sums below could overflow
        end = sum(int(v) for v in values)
        raise ValueError(
            f"SIIM RLE runs end at pixel {end}, past the {total} pixels of an image of {shape}.{_absolute_hint(values, total)}"
        )
    ends = np.cumsum(firsts + lengths)
    begin = ends - lengths
    if ends.size and ends[-1] > total:
        raise ValueError(
            f"SIIM RLE runs end at pixel {int(ends[-1])}, past the {total} pixels of an image of {shape}."
            f"{_absolute_hint(values, total)}"
        )
    return runs_to_flat(begin, lengths, total).reshape(shape, order="F")


def _absolute_hint(values: np.ndarray, total: int) -> str:
    """The hint for a relative RLE that overflows: whether its pairs read as absolute starts fit the image."""
    firsts, lengths = values[0::2], values[1::2]
    fits = bool(np.all(firsts >= 1) and np.all(firsts - 1 + lengths <= total) and np.all(np.diff(firsts) > 0))
    base = (
        " The starts are read as SIIM-ACR's relative gaps (each counted from the end of the previous run); "
        "an RLE with absolute 1-based starts needs rle_starts='absolute' (RLEToMask) / starts='absolute' "
        "(decode_siim_rle)"
    )
    if fits:
        return base + ": these pairs fit the image as absolute starts, so that is most likely the case."
    return base + "; they do not fit as absolute starts either: check the image size (rows, columns)."


def encode_siim_rle(mask: np.ndarray, starts: RLEStart | str = RLEStart.RELATIVE) -> str:
    """Encode a bool mask (rows, columns[, ...]) as a SIIM RLE string (``"-1"`` when empty).

    Args:
        mask: the mask in (row, column) storage order.
        starts: ``"relative"`` (SIIM-ACR's gaps) or ``"absolute"`` (1-based starts).

    Example:
        >>> encode_siim_rle(np.array([[0, 1, 0, 1], [1, 0, 0, 0]], dtype=bool))
        '1 2 3 1'
        >>> encode_siim_rle(np.array([[0, 1, 0, 1], [1, 0, 0, 0]], dtype=bool), starts="absolute")
        '2 2 7 1'
    """
    starts = look_up_option(starts, RLEStart)
    flat = np.asarray(mask, dtype=bool).reshape(-1, order="F").astype(np.int8)
    diff = np.diff(np.concatenate([[0], flat, [0]]))
    begin, ends = np.flatnonzero(diff == 1), np.flatnonzero(diff == -1)
    if begin.size == 0:
        return "-1"
    firsts = begin + 1 if starts == RLEStart.ABSOLUTE else begin - np.concatenate([[0], ends[:-1]])
    return " ".join(f"{g} {length}" for g, length in zip(firsts.tolist(), (ends - begin).tolist()))


def coco_counts_from_string(counts: str) -> list[int]:
    """Decode pycocotools' compressed RLE counts string into run lengths.

    Example:
        >>> coco_counts_from_string("b1")
        [50]
    """
    out: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise ValueError("truncated COCO RLE string: it ends in the middle of a value.")
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"COCO RLE string has an invalid character {counts[p]!r} at {p}.")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def coco_counts_to_string(counts: Sequence[int]) -> str:
    """Encode run lengths as pycocotools' compressed RLE counts string (inverse of
    :func:`coco_counts_from_string`).

    Example:
        >>> coco_counts_to_string([50])
        'b1'
    """
    chars: list[str] = []
    cnts = [int(c) for c in counts]
    for i, cnt in enumerate(cnts):
        x = cnt - cnts[i - 2] if i > 2 else cnt
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            chars.append(chr(c + 48))
    return "".join(chars)


def decode_coco_rle(rle: Mapping[str, Any]) -> np.ndarray:
    """Decode a COCO RLE ``{"size": [h, w], "counts": str | list[int]}`` into a bool (h, w) mask.

    Raises:
        ValueError: missing keys, non-integer or negative counts, or counts not summing to ``h * w``.

    Example:
        >>> decode_coco_rle({"size": [2, 3], "counts": [1, 2, 3]}).astype(int)
        array([[0, 1, 0],
               [1, 0, 0]])
    """
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise ValueError("a COCO RLE must be a mapping with 'size' and 'counts'.")
    h, w = (int(v) for v in rle["size"])
    raw = rle["counts"]
    if isinstance(raw, bytes):
        raw = raw.decode("ascii")
    raw_counts = coco_counts_from_string(raw) if isinstance(raw, str) else list(raw)
    # checked as Python numbers: a fractional count would be truncated silently, a huge one overflow int64
    if not all(
        isinstance(c, (int, np.integer)) or (isinstance(c, (float, np.floating)) and float(c).is_integer())
        for c in raw_counts
    ):
        raise ValueError("COCO RLE counts must be integers.")
    ints = [int(c) for c in raw_counts]
    negative = [i for i, c in enumerate(ints) if c < 0]
    if negative:
        raise ValueError(f"COCO RLE has a negative count at {negative[0]}.")
    if sum(ints) != h * w:
        raise ValueError(f"COCO RLE counts sum to {sum(ints)}, not size {h}x{w} = {h * w}.")
    counts = np.asarray(ints, dtype=np.int64)
    ends = np.cumsum(counts)
    starts = ends - counts
    fg = np.arange(counts.size) % 2 == 1
    return runs_to_flat(starts[fg], counts[fg], h * w).reshape((h, w), order="F")


def encode_coco_rle(mask: np.ndarray, compress: bool = True) -> dict[str, Any]:
    """Encode a bool (h, w) mask as COCO RLE (compressed string counts by default).

    Example:
        >>> encode_coco_rle(np.array([[0, 1, 0], [1, 0, 0]], dtype=bool), compress=False)
        {'size': [2, 3], 'counts': [1, 2, 3]}
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"COCO RLE encodes 2D masks, got shape {m.shape}.")
    flat = m.reshape(-1, order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0] + counts
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": coco_counts_to_string(counts) if compress else counts}
