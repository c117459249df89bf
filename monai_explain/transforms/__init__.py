"""Clinical annotations -> masks in the image's own grid (array and dictionary forms, 2D and 3D).

Boxes (any MONAI box mode), ellipses given by their bounding boxes, polygons, run-length encodings (SIIM-ACR,
COCO) and points with a diameter (world mm through the image affine) become a float32 mask (C, *spatial) with the
reference image's affine and meta, so it follows the image through MONAI's spatial transforms. Several readers'
annotations can be fused (union / intersection / majority / soft mean), boxes grown or shrunk, and edges softened.
"""

from __future__ import annotations

from .annotation_mask import AnnotationToMask, AnnotationToMaskd, InvalidPolicy, SpatialLayout, swap_xy
from .boxes import BoxesToMask, BoxesToMaskD, BoxesToMaskd, BoxesToMaskDict, BoxRounding, MarginMode, round_boxes
from .ellipses import EllipsesToMask, EllipsesToMaskD, EllipsesToMaskd, EllipsesToMaskDict, ellipsoid_patch
from .fusion import FusionMethod, fuse_per_reader, fuse_reader_masks, reader_ids
from .points import (
    PointSpace,
    PointsToMask,
    PointsToMaskD,
    PointsToMaskd,
    PointsToMaskDict,
    WorldConvention,
    world_to_voxel,
)
from .polygons import PolygonsToMask, PolygonsToMaskD, PolygonsToMaskd, PolygonsToMaskDict, flatten_named
from .rle import (
    RLEToMask,
    RLEToMaskD,
    RLEToMaskd,
    RLEToMaskDict,
    coco_counts_from_string,
    coco_counts_to_string,
    decode_coco_rle,
    decode_siim_rle,
    encode_coco_rle,
    encode_siim_rle,
)

__all__ = [
    "AnnotationToMask",
    "AnnotationToMaskd",
    "BoxRounding",
    "BoxesToMask",
    "BoxesToMaskD",
    "BoxesToMaskDict",
    "BoxesToMaskd",
    "EllipsesToMask",
    "EllipsesToMaskD",
    "EllipsesToMaskDict",
    "EllipsesToMaskd",
    "FusionMethod",
    "InvalidPolicy",
    "MarginMode",
    "PointSpace",
    "PointsToMask",
    "PointsToMaskD",
    "PointsToMaskDict",
    "PointsToMaskd",
    "PolygonsToMask",
    "PolygonsToMaskD",
    "PolygonsToMaskDict",
    "PolygonsToMaskd",
    "RLEToMask",
    "RLEToMaskD",
    "RLEToMaskDict",
    "RLEToMaskd",
    "SpatialLayout",
    "WorldConvention",
    "coco_counts_from_string",
    "coco_counts_to_string",
    "decode_coco_rle",
    "decode_siim_rle",
    "ellipsoid_patch",
    "encode_coco_rle",
    "encode_siim_rle",
    "flatten_named",
    "fuse_per_reader",
    "fuse_reader_masks",
    "reader_ids",
    "round_boxes",
    "swap_xy",
    "world_to_voxel",
]
