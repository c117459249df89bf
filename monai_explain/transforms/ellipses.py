"""Ellipses (ellipsoids in 3D) given by their bounding boxes -> mask (REFLACX)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from monai.config import KeysCollection, NdarrayOrTensor
from monai.data.box_utils import BoxMode

from .annotation_mask import AnnotationToMaskd
from .boxes import BoxesToMask
from .functional import AnnotationRegions, ReferenceGrid, ellipsoid_patch, rasterize_ellipses
from .options import FusionMethod, InvalidPolicy, MarginMode, SpatialLayout

__all__ = ["EllipsesToMask", "EllipsesToMaskD", "EllipsesToMaskDict", "EllipsesToMaskd", "ellipsoid_patch"]


class EllipsesToMask(BoxesToMask):
    """Rasterise ellipses (2D) or ellipsoids (3D) given by their axis-aligned bounding boxes (REFLACX).

    The bounding boxes go through the same mode conversion, validation, margin, layout and policy as
    :class:`~monai_explain.transforms.BoxesToMask`; the shape is then drawn analytically, without rounding: pixel
    ``i`` (centre ``i + 0.5`` in box coordinates) is inside when ``sum(((i + 0.5 - c) / a) ** 2) <= 1`` with
    ``c`` the box centre and ``a`` the half sizes; the pixel containing the centre is always inside. An ellipse
    whose box lies partly outside the image is clipped and counted; one with no pixel in the image is invalid.

    Args:
        box_mode: mode of the bounding boxes (REFLACX: ``"xyxy"``, the default ``None`` = ``StandardMode``).
        margin, margin_mode: grow / shrink the bounding box first, as in :class:`BoxesToMask`.
        num_classes, class_names, per_instance, fusion, spatial_layout, sigma, invalid, allow_transformed_image:
            see :class:`~monai_explain.transforms.AnnotationToMask`.

    Example:
        >>> import torch
        >>> EllipsesToMask()([[0, 0, 6, 4]], spatial_size=(6, 4))[0].int().T.tolist()
        [[0, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 0]]
    """

    item_name = "ellipse"
    item_plural = "ellipses"

    def __init__(
        self,
        box_mode: str | BoxMode | type[BoxMode] | None = None,
        margin: float | Sequence[float] = 0.0,
        margin_mode: MarginMode | str = MarginMode.PIXEL,
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
            box_mode=box_mode,
            margin=margin,
            margin_mode=margin_mode,
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
        ellipses: NdarrayOrTensor | Sequence[Sequence[float]] | None,
        labels: Sequence[Any] | NdarrayOrTensor | None = None,
        image: NdarrayOrTensor | None = None,
        readers: Sequence[Any] | NdarrayOrTensor | None = None,
        image_readers: Sequence[Any] | None = None,
        spatial_size: Sequence[int] | None = None,
        context: str | None = None,
    ) -> NdarrayOrTensor:
        """Rasterise ``ellipses`` (bounding boxes, (N, 2 * dims), in ``box_mode``); arguments and return value as
        :meth:`BoxesToMask.__call__`."""
        return super().__call__(ellipses, labels, image, readers, image_readers, spatial_size, context)

    def _rasterize(self, items: Any, grid: ReferenceGrid, ctx: str, **kwargs: Any) -> AnnotationRegions:
        return rasterize_ellipses(
            items, grid.spatial_size, self.box_mode, self.margin, self.margin_mode, self.spatial_layout
        )


class EllipsesToMaskd(AnnotationToMaskd):
    """Dictionary form of :class:`EllipsesToMask`.

    Args:
        keys: ellipse key(s). Default ``"ellipses"``.
        ref_key, mask_key: reference image key (default ``"image"``) and output key(s) (default ``"mask"``).
        label_key, reader_key, image_readers_key: defaults ``"ellipse_labels"``, ``"ellipse_readers"``,
            ``"readers"``; used when present in the data.
        allow_missing_keys: skip absent ellipse keys.
        Other arguments: see :class:`EllipsesToMask`.
    """

    def __init__(
        self,
        keys: KeysCollection = "ellipses",
        ref_key: Hashable = "image",
        mask_key: KeysCollection = "mask",
        label_key: KeysCollection | None = "ellipse_labels",
        reader_key: KeysCollection | None = "ellipse_readers",
        image_readers_key: Hashable | None = "readers",
        box_mode: str | BoxMode | type[BoxMode] | None = None,
        margin: float | Sequence[float] = 0.0,
        margin_mode: MarginMode | str = MarginMode.PIXEL,
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
        converter = EllipsesToMask(
            box_mode=box_mode,
            margin=margin,
            margin_mode=margin_mode,
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


EllipsesToMaskD = EllipsesToMaskDict = EllipsesToMaskd
