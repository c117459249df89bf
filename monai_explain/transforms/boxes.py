"""Bounding boxes -> mask, in any MONAI box mode, 2D and 3D (VinDr-CXR, RSNA, NIH, MS-CXR, DeepLesion boxes)."""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from monai.apps.detection.transforms.box_ops import convert_box_to_mask
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data.box_utils import (
    BoxMode,
    CenterSizeMode,
    CornerSizeMode,
    StandardMode,
    clip_boxes_to_image,
    convert_box_mode,
    get_boxmode,
)
from monai.utils import StrEnum, ensure_tuple, look_up_option

from .annotation_mask import (
    AnnotationToMask,
    AnnotationToMaskd,
    InvalidPolicy,
    SpatialLayout,
    _as_float_rows,
    _Geometry,
    _Prepared,
)
from .fusion import FusionMethod

__all__ = [
    "BoxRounding",
    "BoxesToMask",
    "BoxesToMaskD",
    "BoxesToMaskDict",
    "BoxesToMaskd",
    "MarginMode",
    "round_boxes",
]

#: coordinates closer than this to an integer (in pixels) are snapped to it before rounding, so that float32
#: round-off in the box mode conversion (MONAI computes box sizes in float32) never adds or removes a pixel row.
SNAP_TOLERANCE = 1e-4

#: box masks are rasterised by ``convert_box_to_mask`` in chunks of at most this many voxels (boxes x image size).
_CHUNK_VOXELS = 1 << 25


class BoxRounding(StrEnum):
    """How float box corners become whole pixels (pixel ``i`` spans ``[i, i + 1)``, MONAI's convention).

    - ``outer`` (default): floor of the min corner, ceil of the max corner - every pixel the box touches. A coarse
      annotation is never shrunk.
    - ``nearest``: both corners rounded to the nearest integer (halves up) - the pixel edges closest to the box.
    - ``inner``: ceil of the min corner, floor of the max corner - only the pixels entirely inside the box.

    Coordinates within ``1e-4`` of an integer are first snapped to it. Integer boxes are unchanged by all three.
    """

    OUTER = "outer"
    NEAREST = "nearest"
    INNER = "inner"


class MarginMode(StrEnum):
    """Unit of a box margin: ``pixel`` (each side moves by ``margin`` pixels) or ``fraction`` (each side moves by
    ``margin`` times the box size along that axis, so ``0.1`` makes the box 20% larger). Negative margins shrink."""

    PIXEL = "pixel"
    FRACTION = "fraction"


def round_boxes(boxes: np.ndarray, rounding: BoxRounding | str = BoxRounding.OUTER) -> np.ndarray:
    """Round float ``StandardMode`` boxes (N, 2 * dims) to whole pixels by :class:`BoxRounding`.

    Args:
        boxes: float boxes, (xmin, ymin[, zmin], xmax, ymax[, zmax]).
        rounding: ``"outer"``, ``"nearest"`` or ``"inner"``.

    Returns:
        float64 array of integral values, same shape.

    Example:
        >>> round_boxes(np.array([[0.5, 1.2, 2.5, 3.0]]), "outer")
        array([[0., 1., 3., 3.]])
    """
    rounding = look_up_option(rounding, BoxRounding)
    b = np.asarray(boxes, dtype=np.float64)
    near = np.round(b)
    b = np.where(np.abs(b - near) <= SNAP_TOLERANCE, near, b)
    sd = b.shape[-1] // 2
    lo, hi = b[..., :sd], b[..., sd:]
    if rounding == BoxRounding.OUTER:
        lo, hi = np.floor(lo), np.ceil(hi)
    elif rounding == BoxRounding.INNER:
        lo, hi = np.ceil(lo), np.floor(hi)
    else:
        lo, hi = np.floor(lo + 0.5), np.floor(hi + 0.5)
    return np.concatenate([lo, hi], axis=-1)


class BoxesToMask(AnnotationToMask):
    """Rasterise bounding boxes into a mask in the reference image's own grid (2D or 3D, one code path).

    The boxes, in any MONAI box mode (``xyxy``, ``xywh``, ``ccwh``, ``xyzxyz``, ``xyzwhd``, ``cccwhd``, ...), are
    converted to ``StandardMode`` with :func:`monai.data.box_utils.convert_box_mode`, validated, grown or shrunk by
    ``margin``, put in array axis order (``spatial_layout``), rounded to whole pixels (``rounding``), clipped with
    :func:`monai.data.box_utils.clip_boxes_to_image` and drawn with MONAI's
    :func:`~monai.apps.detection.transforms.box_ops.convert_box_to_mask` (which would otherwise truncate float
    corners to int - here the rounding is explicit).

    Bad boxes: a NaN/inf coordinate, an inverted box (max < min, or a negative size), a degenerate box (zero size
    on an axis), a box with no extent left after a negative margin, a box covering no pixel after rounding, or a
    box entirely outside the image is an error (``ValueError`` naming the box index) or, with ``invalid="drop"``,
    left out, counted and logged. A box partly outside the image is clipped, counted (``counts["clipped"]``) and
    logged at INFO level. No boxes gives an all-zero mask (a negative).

    Args:
        box_mode: the boxes' mode (string, ``BoxMode`` class or instance); ``None`` = ``StandardMode``
            (``xyxy`` / ``xyzxyz``).
        rounding: ``"outer"`` (default), ``"nearest"`` or ``"inner"``; see :class:`BoxRounding`.
        margin: grow (> 0) or shrink (< 0) each box before rasterising, a scalar or one value per axis in the
            boxes' own coordinate order (x, y[, z]).
        margin_mode: ``"pixel"`` or ``"fraction"`` (of the box size, per side); see :class:`MarginMode`.
        num_classes, class_names, per_instance, fusion, spatial_layout, sigma, invalid: see
            :class:`~monai_explain.transforms.AnnotationToMask`.

    Example:
        >>> import torch
        >>> from monai.data import MetaTensor
        >>> image = MetaTensor(torch.rand(1, 6, 5))  # (C, x, y) as MONAI readers return it
        >>> mask = BoxesToMask(box_mode="xywh")([[1, 2, 3, 2]], image=image)
        >>> mask.shape, float(mask.sum())
        (torch.Size([1, 6, 5]), 6.0)
    """

    item_name = "box"
    item_plural = "boxes"

    def __init__(
        self,
        box_mode: str | BoxMode | type[BoxMode] | None = None,
        rounding: BoxRounding | str = BoxRounding.OUTER,
        margin: float | Sequence[float] = 0.0,
        margin_mode: MarginMode | str = MarginMode.PIXEL,
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
        self.box_mode = get_boxmode(box_mode)
        self.rounding = look_up_option(rounding, BoxRounding)
        self.margin_mode = look_up_option(margin_mode, MarginMode)
        m = np.asarray(ensure_tuple(margin), dtype=np.float64)
        if not np.all(np.isfinite(m)):
            raise ValueError(f"margin must be finite, got {margin}.")
        if self.margin_mode == MarginMode.FRACTION and np.any(m <= -0.5):
            raise ValueError(f"a fractional margin must be > -0.5 (each side moves by margin * size), got {margin}.")
        self.margin = m

    def __call__(  # type: ignore[override]
        self,
        boxes: NdarrayOrTensor | Sequence[Sequence[float]] | None,
        labels: Sequence[Any] | NdarrayOrTensor | None = None,
        image: NdarrayOrTensor | None = None,
        readers: Sequence[Any] | NdarrayOrTensor | None = None,
        image_readers: Sequence[Any] | None = None,
        spatial_size: Sequence[int] | None = None,
        context: str | None = None,
    ) -> NdarrayOrTensor:
        """Rasterise ``boxes`` into a mask.

        Args:
            boxes: (N, 2 * dims) boxes in ``box_mode`` (array, tensor or nested list); ``None`` or empty = no box.
            labels: (N,) class ids or names; needed for per-class masks.
            image: channel-first reference image (C, *spatial); the mask takes its spatial size, type, affine and
                meta. A ``MetaTensor`` gives a ``MetaTensor``.
            readers: (N,) reader id of each box; needed for ``fusion``.
            image_readers: every reader of the image (for majority / mean / intersection fusion).
            spatial_size: the spatial size when no ``image`` is given.
            context: text added to error and log messages (the dictionary form passes the key).

        Returns:
            float32 mask (C, *spatial): C = 1 (merged), ``num_classes``, or N (``per_instance``).

        Raises:
            ValueError: bad shapes or labels, missing reader ids for fusion, or an invalid box when
                ``invalid="raise"``.
        """
        return self._make_mask(boxes, labels, image, readers, image_readers, spatial_size, context)

    # ------------------------------------------------------------------
    def _normalize(self, annotations: Any, labels: Any, geometry: _Geometry, ctx: str) -> tuple[Any, Any]:
        sd = geometry.spatial_dims
        if sd not in (2, 3):
            raise ValueError(f"boxes need a 2D or 3D image, got spatial size {geometry.spatial_size}{ctx}.")
        return _as_float_rows(annotations, 2 * sd, self.item_plural, ctx), labels

    def _margin_per_axis(self, sd: int) -> np.ndarray:
        if self.margin.size not in (1, sd):
            raise ValueError(f"margin must be a scalar or have {sd} values, got {self.margin.tolist()}.")
        return np.broadcast_to(self.margin, (sd,)).astype(np.float64)

    def _validated_corners(self, boxes: np.ndarray, geometry: _Geometry) -> tuple[np.ndarray, list[str | None]]:
        """StandardMode corners in array axis order after validation and margin, with a reason per invalid box."""
        sd = geometry.spatial_dims
        n = boxes.shape[0]
        reasons: list[str | None] = [None] * n
        if n == 0:
            return boxes.reshape(0, 2 * sd), reasons
        finite = np.isfinite(boxes).all(axis=1)
        safe = np.where(finite[:, None], boxes, 0.0)
        with warnings.catch_warnings():  # MONAI warns on inverted boxes; they are reported below, per box
            warnings.simplefilter("ignore")
            corners = np.asarray(convert_box_mode(safe, src_mode=self.box_mode, dst_mode=StandardMode()))
        lo, hi = corners[:, :sd], corners[:, sd:]
        negative_size = np.zeros(n, dtype=bool)
        if isinstance(self.box_mode, (CornerSizeMode, CenterSizeMode)):
            negative_size = (safe[:, sd:] < 0).any(axis=1)
        inverted = (hi < lo).any(axis=1) | negative_size
        degenerate = (hi == lo).any(axis=1)
        m = self._margin_per_axis(sd)
        grow = m[None] * (hi - lo) if self.margin_mode == MarginMode.FRACTION else np.broadcast_to(m, lo.shape)
        lo, hi = lo - grow, hi + grow
        emptied = (hi <= lo).any(axis=1)
        for i in range(n):
            values = boxes[i].tolist()
            if not finite[i]:
                reasons[i] = f"has a NaN or infinite coordinate: {values}"
            elif inverted[i]:
                reasons[i] = f"is inverted (max < min or a negative size): {values}"
            elif degenerate[i]:
                reasons[i] = f"is degenerate (zero size along an axis): {values}"
            elif emptied[i]:
                reasons[i] = f"has no extent left after margin={m.tolist()} ({self.margin_mode.value}): {values}"
        out = np.concatenate([lo, hi], axis=1)
        if self.spatial_layout == SpatialLayout.YX:
            out[:, [0, 1, sd, sd + 1]] = out[:, [1, 0, sd + 1, sd]]
        return out, reasons

    def _prepare(self, items: Any, geometry: _Geometry, ctx: str, **kwargs: Any) -> _Prepared:
        corners, reasons = self._validated_corners(items, geometry)
        sd, n = geometry.spatial_dims, corners.shape[0]
        if n == 0:
            return _Prepared(keep=[], data=np.zeros((0, 2 * sd), dtype=np.int64))
        valid = np.array([r is None for r in reasons])
        rounded = round_boxes(np.where(valid[:, None], corners, 0.0), self.rounding)
        no_pixel = valid & (rounded[:, sd:] <= rounded[:, :sd]).any(axis=1)
        clipped_boxes = np.asarray(clip_boxes_to_image(rounded, geometry.spatial_size, remove_empty=False)[0])
        inside = (clipped_boxes[:, sd:] > clipped_boxes[:, :sd]).all(axis=1)
        was_clipped = valid & ~no_pixel & inside & (clipped_boxes != rounded).any(axis=1)
        for i in range(n):
            if not valid[i]:
                continue
            if no_pixel[i]:
                reasons[i] = f"covers no pixel after {self.rounding.value} rounding: {items[i].tolist()}"
            elif not inside[i]:
                reasons[i] = f"lies entirely outside the image of size {geometry.spatial_size}: {items[i].tolist()}"
        keep = self._apply_policy(reasons, ctx)
        return _Prepared(
            keep=keep, data=clipped_boxes[keep].astype(np.int64), clipped=int(was_clipped[keep].sum()) if keep else 0
        )

    def _render_group(self, prepared: _Prepared, positions: Sequence[int], spatial_size: tuple[int, ...]) -> np.ndarray:
        out = np.zeros(spatial_size, dtype=bool)
        boxes = prepared.data[np.asarray(positions, dtype=np.int64)]
        chunk = max(1, _CHUNK_VOXELS // max(1, int(np.prod(spatial_size))))
        for start in range(0, boxes.shape[0], chunk):
            part = boxes[start : start + chunk]
            drawn = convert_box_to_mask(part, np.ones(part.shape[0], dtype=np.int64), spatial_size, bg_label=0)
            out |= np.asarray(drawn).any(axis=0)
        return out


class BoxesToMaskd(AnnotationToMaskd):
    """Dictionary form of :class:`BoxesToMask`.

    Reads ``data[keys]`` (boxes, (N, 2 * dims), numpy arrays or lists), ``data[label_key]``,
    ``data[reader_key]`` and ``data[image_readers_key]`` when present, and writes the mask to ``data[mask_key]``
    in the grid of ``data[ref_key]``.

    Args:
        keys: box key(s). Default ``"boxes"``.
        ref_key: reference image key. Default ``"image"``.
        mask_key: output key(s). Default ``"mask"``.
        label_key: class label key(s). Default ``"box_labels"``.
        reader_key: reader id key(s). Default ``"box_readers"``.
        image_readers_key: key listing all readers of the image. Default ``"readers"``.
        allow_missing_keys: skip absent box keys.
        Other arguments: see :class:`BoxesToMask`.

    Example:
        >>> from monai.transforms import Compose, LoadImaged
        >>> pipeline = Compose([LoadImaged("image", ensure_channel_first=True),
        ...                     BoxesToMaskd(num_classes=14, fusion="majority")])
    """

    def __init__(
        self,
        keys: KeysCollection = "boxes",
        ref_key: Hashable = "image",
        mask_key: KeysCollection = "mask",
        label_key: KeysCollection | None = "box_labels",
        reader_key: KeysCollection | None = "box_readers",
        image_readers_key: Hashable | None = "readers",
        box_mode: str | BoxMode | type[BoxMode] | None = None,
        rounding: BoxRounding | str = BoxRounding.OUTER,
        margin: float | Sequence[float] = 0.0,
        margin_mode: MarginMode | str = MarginMode.PIXEL,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        per_instance: bool = False,
        fusion: FusionMethod | str | None = None,
        spatial_layout: SpatialLayout | str = SpatialLayout.XY,
        sigma: float | Sequence[float] = 0.0,
        invalid: InvalidPolicy | str = InvalidPolicy.RAISE,
        allow_missing_keys: bool = False,
    ) -> None:
        converter = BoxesToMask(
            box_mode=box_mode,
            rounding=rounding,
            margin=margin,
            margin_mode=margin_mode,
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


BoxesToMaskD = BoxesToMaskDict = BoxesToMaskd
