"""Run-length encoded masks -> mask: SIIM-ACR relative RLE strings and COCO RLE (compressed or list counts).

Both encodings run over the image in column-major order of its (row, column) storage: flat index
``k = column * height + row``.

- **SIIM-ACR** (``train-rle.csv``, ``EncodedPixels``): ``"start length start length ..."`` where each start is a
  *gap*: the number of background pixels since the end of the previous run (for the first run, since pixel 0).
  This is the published SIIM ``rle2mask`` (``position += start; mask[position:position + length] = 1;
  position += length``), so the first start is a 0-based offset. ``"-1"`` (or an empty string) = no pneumothorax.
- **COCO** (CheXlocalize ``gt_segmentations``): ``{"size": [h, w], "counts": ...}``; counts alternate background
  and foreground run lengths starting with background, as a list of ints or as pycocotools' compressed string
  (6-bit characters offset by 48, 5 value bits + a continuation bit, sign-extended, and counts after the third
  stored as differences to the count two before).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor

from .annotation_mask import AnnotationToMask, AnnotationToMaskd, InvalidPolicy, SpatialLayout, _Geometry, _Prepared
from .fusion import FusionMethod
from .polygons import flatten_named

__all__ = [
    "RLEToMask",
    "RLEToMaskD",
    "RLEToMaskDict",
    "RLEToMaskd",
    "coco_counts_from_string",
    "coco_counts_to_string",
    "decode_coco_rle",
    "decode_siim_rle",
    "encode_coco_rle",
    "encode_siim_rle",
]

_EMPTY_SIIM = ("", "-1")


def _runs_to_flat(starts: np.ndarray, lengths: np.ndarray, total: int) -> np.ndarray:
    """Bool vector of ``total`` pixels with ``[starts[i], starts[i] + lengths[i])`` set (vectorised)."""
    edges = np.zeros(total + 1, dtype=np.int64)
    np.add.at(edges, starts, 1)
    np.add.at(edges, starts + lengths, -1)
    return np.cumsum(edges[:-1]) > 0


def decode_siim_rle(rle: str, shape: Sequence[int]) -> np.ndarray:
    """Decode a SIIM-ACR relative RLE string into a bool mask of ``shape`` = (rows, columns[, ...]).

    Args:
        rle: ``"gap length gap length ..."`` (see the module docstring); ``"-1"`` or ``""`` is an empty mask.
        shape: the image shape in (row, column) storage order (SIIM: ``(1024, 1024)``).

    Returns:
        bool array of ``shape``, filled in column-major (Fortran) order.

    Raises:
        ValueError: non-integer tokens, an odd number of values, a negative gap, a non-positive length, or runs
            past the end of the image.

    Example:
        >>> decode_siim_rle("1 2 3 1", (2, 4)).astype(int)  # flat pixels 1, 2 and 6, column-major
        array([[0, 1, 0, 1],
               [1, 0, 0, 0]])
    """
    shape = tuple(int(s) for s in shape)
    total = int(np.prod(shape))
    text = str(rle).strip()
    if text in _EMPTY_SIIM:
        return np.zeros(shape, dtype=bool)
    try:
        values = np.array([int(tok) for tok in text.split()], dtype=np.int64)
    except ValueError:
        raise ValueError(f"SIIM RLE must hold integers, got {text[:60]!r}.") from None
    except OverflowError:
        raise ValueError(f"SIIM RLE holds a value out of range, got {text[:60]!r}.") from None
    if values.size % 2:
        raise ValueError(f"SIIM RLE must hold (gap, length) pairs, got {values.size} values.")
    gaps, lengths = values[0::2], values[1::2]
    if np.any(gaps < 0):
        raise ValueError(f"SIIM RLE has a negative gap at pair {int(np.flatnonzero(gaps < 0)[0])}.")
    if np.any(lengths <= 0):
        raise ValueError(f"SIIM RLE has a non-positive run length at pair {int(np.flatnonzero(lengths <= 0)[0])}.")
    if np.any(values > total):  # cannot fit; summed as Python ints here, as int64 sums below could overflow
        end = sum(int(v) for v in values)
        raise ValueError(f"SIIM RLE runs end at pixel {end}, past the {total} pixels of an image of {shape}.")
    ends = np.cumsum(gaps + lengths)
    starts = ends - lengths
    if ends.size and ends[-1] > total:
        raise ValueError(f"SIIM RLE runs end at pixel {int(ends[-1])}, past the {total} pixels of an image of {shape}.")
    return _runs_to_flat(starts, lengths, total).reshape(shape, order="F")


def encode_siim_rle(mask: np.ndarray) -> str:
    """Encode a bool mask (rows, columns[, ...]) as a SIIM-ACR relative RLE string (``"-1"`` when empty).

    Example:
        >>> encode_siim_rle(np.array([[0, 1, 0, 1], [1, 0, 0, 0]], dtype=bool))
        '1 2 3 1'
    """
    flat = np.asarray(mask, dtype=bool).reshape(-1, order="F").astype(np.int8)
    diff = np.diff(np.concatenate([[0], flat, [0]]))
    starts, ends = np.flatnonzero(diff == 1), np.flatnonzero(diff == -1)
    if starts.size == 0:
        return "-1"
    gaps = starts - np.concatenate([[0], ends[:-1]])
    return " ".join(f"{g} {length}" for g, length in zip(gaps.tolist(), (ends - starts).tolist()))


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
                raise ValueError("COCO RLE string ends in the middle of a value.")
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
    return _runs_to_flat(starts[fg], counts[fg], h * w).reshape((h, w), order="F")


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


class RLEToMask(AnnotationToMask):
    """Decode run-length encoded annotations (SIIM-ACR strings, COCO RLE dicts) into a mask in the image's grid.

    Each item is one instance: a SIIM string (``"-1"`` / ``""`` = empty, kept as an empty instance and counted in
    ``counts["empty"]``) or a COCO dict. Input: one string or dict, a list of them (e.g. all rows of one SIIM
    image), or a CheXlocalize mapping ``{pathology: coco_rle}`` whose keys are the labels. Several instances are
    unioned (default) or kept one channel each (``per_instance=True``), or split by class / fused by reader as for
    any :class:`~monai_explain.transforms.AnnotationToMask`.

    The encodings describe the original image stored (row, column): with the default ``spatial_layout="xy"``
    (MONAI readers: axis 0 = column) the decoded mask is transposed to (column, row); with ``"yx"`` it is used as
    decoded. The reference image must be in the grid the RLE was made for (e.g. SIIM 1024 x 1024, before any
    resizing); a COCO ``size`` must match it and SIIM runs must fit in it. Malformed RLE is invalid
    (``invalid`` policy).

    Args:
        num_classes, class_names, per_instance, fusion, spatial_layout, sigma, invalid: see
            :class:`~monai_explain.transforms.AnnotationToMask`.

    Example:
        >>> RLEToMask(spatial_layout="yx")(["1 2 3 1", "-1"], spatial_size=(2, 4))[0].int().tolist()
        [[0, 1, 0, 1], [1, 0, 0, 0]]
    """

    item_name = "RLE"
    item_plural = "RLEs"

    def __init__(
        self,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        per_instance: bool = False,
        fusion: FusionMethod | str | None = None,
        spatial_layout: SpatialLayout | str = SpatialLayout.XY,
        sigma: float | Sequence[float] = 0.0,
        invalid: InvalidPolicy | str = InvalidPolicy.RAISE,
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            class_names=class_names,
            per_instance=per_instance,
            fusion=fusion,
            spatial_layout=spatial_layout,
            sigma=sigma,
            invalid=invalid,
        )

    def __call__(  # type: ignore[override]
        self,
        rle: str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]] | None,
        labels: Sequence[Any] | NdarrayOrTensor | None = None,
        image: NdarrayOrTensor | None = None,
        readers: Sequence[Any] | NdarrayOrTensor | None = None,
        image_readers: Sequence[Any] | None = None,
        spatial_size: Sequence[int] | None = None,
        context: str | None = None,
    ) -> NdarrayOrTensor:
        """Decode ``rle`` (see the class docstring); other arguments and the return value as
        :meth:`BoxesToMask.__call__`."""
        return self._make_mask(rle, labels, image, readers, image_readers, spatial_size, context)

    def _normalize(self, annotations: Any, labels: Any, geometry: _Geometry, ctx: str) -> tuple[Any, Any]:
        if annotations is None:
            return [], labels
        if isinstance(annotations, (str, bytes)):
            return [annotations], labels
        if isinstance(annotations, Mapping):
            if "counts" in annotations:
                return [annotations], labels
            return flatten_named(annotations, labels, ctx, single=(str, bytes, Mapping))
        if isinstance(annotations, np.ndarray):
            return annotations.reshape(-1).tolist(), labels
        return list(annotations), labels

    def _prepare(self, items: Any, geometry: _Geometry, ctx: str, **kwargs: Any) -> _Prepared:
        rc_shape = self._rc_shape(geometry.spatial_size)
        full = tuple(slice(None) for _ in geometry.spatial_size)
        reasons: list[str | None] = [None] * len(items)
        patches: list[Any] = [None] * len(items)
        empty = 0
        for i, item in enumerate(items):
            if isinstance(item, bytes):
                item = item.decode()
            if isinstance(item, str) and item.strip() in _EMPTY_SIIM:
                empty += 1
                continue
            if not isinstance(item, (str, Mapping)):
                reasons[i] = f"is neither a SIIM RLE string nor a COCO RLE dict: {item!r:.60}"
                continue
            try:
                if isinstance(item, str):
                    decoded = decode_siim_rle(item, rc_shape)
                else:
                    size = [int(v) for v in item.get("size", [])]
                    if size != list(rc_shape):
                        raise ValueError(f"COCO size {size} does not match the image (rows, columns) {list(rc_shape)}")
                    decoded = decode_coco_rle(item)
            except (TypeError, ValueError) as e:
                reasons[i] = f"is malformed: {e}"
                continue
            if self.spatial_layout == SpatialLayout.XY:
                decoded = np.swapaxes(decoded, 0, 1)
            patches[i] = (full, np.ascontiguousarray(decoded))
        keep = self._apply_policy(reasons, ctx)
        return _Prepared(keep=keep, patches=[patches[i] for i in keep], empty=empty)


class RLEToMaskd(AnnotationToMaskd):
    """Dictionary form of :class:`RLEToMask`.

    Args:
        keys: RLE key(s). Default ``"rle"``.
        ref_key, mask_key: reference image key (default ``"image"``) and output key(s) (default ``"mask"``).
        label_key, reader_key, image_readers_key: defaults ``"rle_labels"``, ``"rle_readers"``, ``"readers"``;
            used when present in the data.
        allow_missing_keys: skip absent RLE keys.
        Other arguments: see :class:`RLEToMask`.
    """

    def __init__(
        self,
        keys: KeysCollection = "rle",
        ref_key: Hashable = "image",
        mask_key: KeysCollection = "mask",
        label_key: KeysCollection | None = "rle_labels",
        reader_key: KeysCollection | None = "rle_readers",
        image_readers_key: Hashable | None = "readers",
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        per_instance: bool = False,
        fusion: FusionMethod | str | None = None,
        spatial_layout: SpatialLayout | str = SpatialLayout.XY,
        sigma: float | Sequence[float] = 0.0,
        invalid: InvalidPolicy | str = InvalidPolicy.RAISE,
        allow_missing_keys: bool = False,
    ) -> None:
        converter = RLEToMask(
            num_classes=num_classes,
            class_names=class_names,
            per_instance=per_instance,
            fusion=fusion,
            spatial_layout=spatial_layout,
            sigma=sigma,
            invalid=invalid,
        )
        super().__init__(
            keys, converter, ref_key, mask_key, label_key, reader_key, image_readers_key, allow_missing_keys
        )


RLEToMaskD = RLEToMaskDict = RLEToMaskd
