"""Polygons -> mask (CheXlocalize ``gt_annotations``: several polygons per pathology), via matplotlib's Path."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor

from monai_explain.utils.extras import optional_import_extra

from .annotation_mask import AnnotationToMask, AnnotationToMaskd, InvalidPolicy, SpatialLayout, _Geometry, _Prepared
from .fusion import FusionMethod

Path, _ = optional_import_extra("matplotlib.path", "masks", name="Path")

__all__ = ["PolygonsToMask", "PolygonsToMaskD", "PolygonsToMaskDict", "PolygonsToMaskd", "flatten_named"]

#: pixel centres within about this distance (pixels) of a polygon edge count as inside
_EDGE_TOLERANCE = 1e-6

#: keys of a CheXlocalize per-image record that are not annotations
_SIZE_KEYS = ("img_size",)


def flatten_named(annotations: Mapping[str, Any], labels: Any, ctx: str, single: type | tuple[type, ...] = ()) -> tuple:
    """Flatten ``{class_name: [annotation, ...]}`` into ``(items, labels)`` with one class name per item.

    A value that is an instance of ``single`` (e.g. one RLE dict) counts as one annotation. ``img_size`` keys
    (CheXlocalize) are skipped; the caller checks them.
    """
    if labels is not None:
        raise ValueError(
            f"annotations given as a {{class: annotations}} mapping carry their labels; labels=... was also given{ctx}."
        )
    items: list = []
    names: list = []
    for name, value in annotations.items():
        if name in _SIZE_KEYS:
            continue
        if value is None:
            values = []
        elif single and isinstance(value, single):
            values = [value]
        else:
            values = list(value)
        items.extend(values)
        names.extend([str(name)] * len(values))
    return items, names


class PolygonsToMask(AnnotationToMask):
    """Rasterise 2D polygons (lists of ``[x, y]`` vertices) into a mask in the reference image's own grid.

    Pixel-centre rule: pixel ``i`` spans ``[i, i + 1)``; it is inside a polygon when its centre ``(i + 0.5,
    j + 0.5)`` is inside or on an edge (within 1e-6 pixel), tested with
    :meth:`matplotlib.path.Path.contains_points` (the polygon is closed implicitly, either vertex order works;
    several polygons of one class are unioned, each filled on its own). A rectangle polygon with
    integer corners therefore gives exactly the pixels of the same box in :class:`BoxesToMask`. (CheXlocalize's own
    script draws with PIL's ``ImageDraw.polygon``, which also fills the outline pixels: its masks are about one
    pixel ring larger.)

    Input: a list of polygons (each (V, 2), V >= 3) with one label per polygon, or a CheXlocalize mapping
    ``{pathology: [polygon, ...], "img_size": [h, w]}`` whose keys are the labels (``img_size``, when present, must
    match the image). A polygon with fewer than 3 vertices, NaN coordinates, zero area, no pixel centre inside,
    or lying entirely outside the image is invalid (``invalid`` policy); one partly outside is clipped and counted.

    Args:
        num_classes, class_names, per_instance, fusion, spatial_layout, sigma, invalid: see
            :class:`~monai_explain.transforms.AnnotationToMask`. Use ``class_names`` with the mapping input.

    Example:
        >>> PolygonsToMask()([[[1, 1], [4, 1], [4, 3], [1, 3]]], spatial_size=(5, 4))[0].int().T.tolist()
        [[0, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]]
    """

    item_name = "polygon"
    item_plural = "polygons"

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
        polygons: Sequence[Any] | Mapping[str, Any] | np.ndarray | None,
        labels: Sequence[Any] | NdarrayOrTensor | None = None,
        image: NdarrayOrTensor | None = None,
        readers: Sequence[Any] | NdarrayOrTensor | None = None,
        image_readers: Sequence[Any] | None = None,
        spatial_size: Sequence[int] | None = None,
        context: str | None = None,
    ) -> NdarrayOrTensor:
        """Rasterise ``polygons`` (list of (V, 2) vertex lists, an (N, V, 2) array, or a {class: polygons}
        mapping); other arguments and the return value as :meth:`BoxesToMask.__call__`."""
        return self._make_mask(polygons, labels, image, readers, image_readers, spatial_size, context)

    def _normalize(self, annotations: Any, labels: Any, geometry: _Geometry, ctx: str) -> tuple[Any, Any]:
        if geometry.spatial_dims != 2:
            raise ValueError(f"polygons need a 2D image, got spatial size {geometry.spatial_size}{ctx}.")
        if annotations is None:
            return [], labels
        if isinstance(annotations, Mapping):
            if "img_size" in annotations:
                expected = list(self._rc_shape(geometry.spatial_size))
                if [int(v) for v in annotations["img_size"]] != expected:
                    raise ValueError(
                        f"img_size {list(annotations['img_size'])} does not match the image (rows, columns) "
                        f"{expected}{ctx}."
                    )
            return flatten_named(annotations, labels, ctx)
        return list(annotations), labels  # a list of polygons or an (N, V, 2) array

    def _prepare(self, items: Any, geometry: _Geometry, ctx: str, **kwargs: Any) -> _Prepared:
        n = len(items)
        size = np.asarray(geometry.spatial_size, dtype=np.int64)
        reasons: list[str | None] = [None] * n
        patches: list[Any] = [None] * n
        clipped = np.zeros(n, dtype=bool)
        for i, poly in enumerate(items):
            try:
                v = np.asarray(poly, dtype=np.float64)
            except (TypeError, ValueError):
                reasons[i] = "is not a numeric list of [x, y] vertices"
                continue
            if v.ndim != 2 or v.shape[1] != 2:
                reasons[i] = f"must have shape (V, 2), got {v.shape}"
                continue
            if v.shape[0] < 3:
                reasons[i] = f"has {v.shape[0]} vertices, fewer than 3: {v.tolist()}"
                continue
            if not np.all(np.isfinite(v)):
                reasons[i] = f"has a NaN or infinite coordinate: {v.tolist()}"
                continue
            with np.errstate(over="ignore", invalid="ignore"):
                signed_area = 0.5 * float(np.dot(v[:, 0], np.roll(v[:, 1], -1)) - np.dot(v[:, 1], np.roll(v[:, 0], -1)))
            if not math.isfinite(signed_area):
                reasons[i] = f"has coordinates too large to rasterise in float64: {v.tolist()}"
                continue
            if signed_area == 0.0:
                reasons[i] = f"is degenerate (zero area): {v.tolist()}"
                continue
            v = self._swap_if_yx(v)
            if np.any(v.max(axis=0) <= 0) or np.any(v.min(axis=0) >= size):
                reasons[i] = (
                    f"lies entirely outside the image of size {geometry.spatial_size}: {np.asarray(poly).tolist()}"
                )
                continue
            # clipped while still floats: far vertices must not overflow int64
            lo = np.maximum(np.ceil(np.clip(v.min(axis=0) - 0.5, -1.0, size)).astype(np.int64), 0)
            hi = np.minimum(np.floor(np.clip(v.max(axis=0) - 0.5, -1.0, size)).astype(np.int64), size - 1)
            if np.any(hi < lo):
                reasons[i] = f"covers no pixel centre of the image: {np.asarray(poly).tolist()}"
                continue
            a0 = np.arange(lo[0], hi[0] + 1) + 0.5
            a1 = np.arange(lo[1], hi[1] + 1) + 0.5
            centres = np.stack(np.meshgrid(a0, a1, indexing="ij"), axis=-1).reshape(-1, 2)
            # matplotlib grows the polygon by a positive radius when its vertices run counter-clockwise (positive
            # signed area in array axes) and by a negative one otherwise: a tiny growth makes edges inclusive.
            ccw = (signed_area > 0) == (self.spatial_layout == SpatialLayout.XY)
            radius = _EDGE_TOLERANCE if ccw else -_EDGE_TOLERANCE
            patch = Path(v).contains_points(centres, radius=radius).reshape(len(a0), len(a1))
            if not patch.any():
                reasons[i] = f"covers no pixel centre of the image: {np.asarray(poly).tolist()}"
                continue
            patches[i] = ((slice(int(lo[0]), int(hi[0]) + 1), slice(int(lo[1]), int(hi[1]) + 1)), patch)
            clipped[i] = bool(np.any(v.min(axis=0) < 0) or np.any(v.max(axis=0) > size))
        keep = self._apply_policy(reasons, ctx)
        return _Prepared(keep=keep, patches=[patches[i] for i in keep], clipped=int(clipped[keep].sum()) if keep else 0)


class PolygonsToMaskd(AnnotationToMaskd):
    """Dictionary form of :class:`PolygonsToMask`.

    Args:
        keys: polygon key(s). Default ``"polygons"``.
        ref_key, mask_key: reference image key (default ``"image"``) and output key(s) (default ``"mask"``).
        label_key, reader_key, image_readers_key: defaults ``"polygon_labels"``, ``"polygon_readers"``,
            ``"readers"``; used when present in the data.
        allow_missing_keys: skip absent polygon keys.
        Other arguments: see :class:`PolygonsToMask`.
    """

    def __init__(
        self,
        keys: KeysCollection = "polygons",
        ref_key: Hashable = "image",
        mask_key: KeysCollection = "mask",
        label_key: KeysCollection | None = "polygon_labels",
        reader_key: KeysCollection | None = "polygon_readers",
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
        converter = PolygonsToMask(
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


PolygonsToMaskD = PolygonsToMaskDict = PolygonsToMaskd
