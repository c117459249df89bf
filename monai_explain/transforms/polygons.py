"""Polygons -> mask (CheXlocalize ``gt_annotations``: several polygons per pathology)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor

from .annotation_mask import AnnotationToMask, AnnotationToMaskd
from .functional import AnnotationRegions, ReferenceGrid, rasterize_polygons, storage_shape
from .options import FusionMethod, InvalidPolicy, SpatialLayout

__all__ = ["PolygonsToMask", "PolygonsToMaskD", "PolygonsToMaskDict", "PolygonsToMaskd", "flatten_named"]

#: keys of a CheXlocalize per-image record that are not annotations
SIZE_KEYS = ("img_size",)


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
        if name in SIZE_KEYS:
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
        num_classes, class_names, per_instance, fusion, spatial_layout, sigma, invalid, allow_transformed_image:
            see :class:`~monai_explain.transforms.AnnotationToMask`. Use ``class_names`` with the mapping input.

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
        allow_transformed_image: bool = False,
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            class_names=class_names,
            per_instance=per_instance,
            fusion=fusion,
            spatial_layout=spatial_layout,
            sigma=sigma,
            invalid=invalid,
            allow_transformed_image=allow_transformed_image,
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
        return super().__call__(polygons, labels, image, readers, image_readers, spatial_size, context)

    def _normalize(self, annotations: Any, labels: Any, grid: ReferenceGrid, ctx: str) -> tuple[Any, Any]:
        if grid.spatial_dims != 2:
            raise ValueError(f"polygons need a 2D image, got spatial size {grid.spatial_size}{ctx}.")
        if annotations is None:
            return [], labels
        if isinstance(annotations, Mapping):
            if "img_size" in annotations:
                expected = list(storage_shape(grid.spatial_size, self.spatial_layout))
                if [int(v) for v in annotations["img_size"]] != expected:
                    raise ValueError(
                        f"img_size {list(annotations['img_size'])} does not match the image (rows, columns) "
                        f"{expected}{ctx}."
                    )
            return flatten_named(annotations, labels, ctx)
        return list(annotations), labels  # a list of polygons or an (N, V, 2) array

    def _rasterize(self, items: Any, grid: ReferenceGrid, ctx: str, **kwargs: Any) -> AnnotationRegions:
        return rasterize_polygons(items, grid.spatial_size, self.spatial_layout)


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
        allow_transformed_image: bool = False,
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
            allow_transformed_image=allow_transformed_image,
        )
        super().__init__(
            keys, converter, ref_key, mask_key, label_key, reader_key, image_readers_key, allow_missing_keys
        )


PolygonsToMaskD = PolygonsToMaskDict = PolygonsToMaskd
