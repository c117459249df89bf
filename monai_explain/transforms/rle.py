"""Run-length encoded masks -> mask: SIIM-ACR RLE strings (relative or absolute starts) and COCO RLE dicts.

The encoders and decoders live in :mod:`monai_explain.transforms.rle_codec` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.utils import look_up_option

from .annotation_mask import AnnotationToMask, AnnotationToMaskd
from .functional import AnnotationRegions, ReferenceGrid, rasterize_rle
from .options import FusionMethod, InvalidPolicy, RLEStart, SpatialLayout
from .polygons import flatten_named
from .rle_codec import (
    coco_counts_from_string,
    coco_counts_to_string,
    decode_coco_rle,
    decode_siim_rle,
    encode_coco_rle,
    encode_siim_rle,
)

__all__ = [
    "RLEStart",
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


class RLEToMask(AnnotationToMask):
    """Decode run-length encoded annotations (SIIM-ACR strings, COCO RLE dicts) into a mask in the image's grid.

    Each item is one instance: a SIIM string (``"-1"`` / ``""`` = empty, kept as an empty instance and counted in
    ``mask.meta["annotation_stats"]["empty"]``) or a COCO dict. Input: one string or dict, a list of them (e.g. all rows of one SIIM
    image), or a CheXlocalize mapping ``{pathology: coco_rle}`` whose keys are the labels. Several instances are
    unioned (default) or kept one channel each (``per_instance=True``), or split by class / fused by reader as for
    any :class:`~monai_explain.transforms.AnnotationToMask`.

    The encodings describe the original image stored (row, column): with the default ``spatial_layout="xy"``
    (MONAI readers: axis 0 = column) the decoded mask is transposed to (column, row); with ``"yx"`` it is used as
    decoded. The reference image must be in the grid the RLE was made for (e.g. SIIM 1024 x 1024, before any
    resizing); a COCO ``size`` must match it and SIIM runs must fit in it. Malformed RLE is invalid
    (``invalid`` policy). SIIM-ACR's own RLE has *relative* starts (gaps since the previous run); RLE written with
    *absolute* 1-based starts (Kaggle's usual ``rle_encode``) needs ``rle_starts="absolute"`` - a relative decoding
    that runs past the image says when the values fit as absolute starts.

    Args:
        rle_starts: ``"relative"`` (default, SIIM-ACR) or ``"absolute"`` (1-based); see
            :class:`~monai_explain.transforms.RLEStart`.
        num_classes, class_names, per_instance, fusion, spatial_layout, sigma, invalid, allow_transformed_image:
            see :class:`~monai_explain.transforms.AnnotationToMask`.

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
        rle_starts: RLEStart | str = RLEStart.RELATIVE,
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
        self.rle_starts = look_up_option(rle_starts, RLEStart)

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
        return super().__call__(rle, labels, image, readers, image_readers, spatial_size, context)

    def _normalize(self, annotations: Any, labels: Any, grid: ReferenceGrid, ctx: str) -> tuple[Any, Any]:
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

    def _rasterize(self, items: Any, grid: ReferenceGrid, ctx: str, **kwargs: Any) -> AnnotationRegions:
        return rasterize_rle(items, grid.spatial_size, self.spatial_layout, self.rle_starts)


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
        rle_starts: RLEStart | str = RLEStart.RELATIVE,
        allow_transformed_image: bool = False,
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
            rle_starts=rle_starts,
            allow_transformed_image=allow_transformed_image,
        )
        super().__init__(
            keys, converter, ref_key, mask_key, label_key, reader_key, image_readers_key, allow_missing_keys
        )


RLEToMaskD = RLEToMaskDict = RLEToMaskd
