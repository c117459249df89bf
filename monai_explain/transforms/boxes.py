"""Bounding boxes -> mask, in any MONAI box mode, 2D and 3D (VinDr-CXR, RSNA, NIH, MS-CXR, DeepLesion boxes)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data.box_utils import BoxMode, get_boxmode
from monai.utils import ensure_tuple, look_up_option

from .annotation_mask import AnnotationToMask, AnnotationToMaskd
from .functional import AnnotationRegions, ReferenceGrid, as_coordinate_rows, rasterize_boxes, round_boxes
from .options import BoxRounding, FusionMethod, InvalidPolicy, MarginMode, SpatialLayout

__all__ = [
    "BoxRounding",
    "BoxesToMask",
    "BoxesToMaskD",
    "BoxesToMaskDict",
    "BoxesToMaskd",
    "MarginMode",
    "round_boxes",
]


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
    left out, counted (``mask.meta["annotation_stats"]["dropped"]``) and logged. A box partly outside the image is
    clipped, counted (``["clipped"]``) and logged at INFO level. No boxes gives an all-zero mask (a negative).

    The boxes are in the original image's pixels: the reference image must not have gone through a spatial
    transform (``Resized``, ``Spacingd``, a crop ...), which its ``applied_operations`` record - that raises a
    ``ValueError`` saying so. Apply ``BoxesToMaskd`` right after ``LoadImaged`` and resize image and mask together
    (``allow_transformed_image=True`` if the boxes are given in the transformed grid).

    This class composes :func:`~monai_explain.transforms.functional.rasterize_boxes` with the channel, fusion,
    softening and policy functions of :mod:`monai_explain.transforms.functional`.

    Args:
        box_mode: the boxes' mode (string, ``BoxMode`` class or instance); ``None`` = ``StandardMode``
            (``xyxy`` / ``xyzxyz``).
        rounding: ``"outer"`` (default), ``"nearest"`` or ``"inner"``; see :class:`BoxRounding`.
        margin: grow (> 0) or shrink (< 0) each box before rasterising, a scalar or one value per axis in the
            boxes' own coordinate order (x, y[, z]).
        margin_mode: ``"pixel"`` or ``"fraction"`` (of the box size, per side); see :class:`MarginMode`.
        num_classes, class_names, per_instance, fusion, spatial_layout, sigma, invalid, allow_transformed_image:
            see :class:`~monai_explain.transforms.AnnotationToMask`.

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
        return super().__call__(boxes, labels, image, readers, image_readers, spatial_size, context)

    # ------------------------------------------------------------------
    def _normalize(self, annotations: Any, labels: Any, grid: ReferenceGrid, ctx: str) -> tuple[Any, Any]:
        sd = grid.spatial_dims
        if sd not in (2, 3):
            raise ValueError(f"{self.item_plural} need a 2D or 3D image, got spatial size {grid.spatial_size}{ctx}.")
        return as_coordinate_rows(annotations, 2 * sd, self.item_plural, ctx), labels

    def _rasterize(self, items: Any, grid: ReferenceGrid, ctx: str, **kwargs: Any) -> AnnotationRegions:
        return rasterize_boxes(
            items, grid.spatial_size, self.box_mode, self.rounding, self.margin, self.margin_mode, self.spatial_layout
        )


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
        allow_transformed_image: bool = False,
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
            allow_transformed_image=allow_transformed_image,
        )
        super().__init__(
            keys, converter, ref_key, mask_key, label_key, reader_key, image_readers_key, allow_missing_keys
        )


BoxesToMaskD = BoxesToMaskDict = BoxesToMaskd
