"""Clinical annotations -> masks in the image's own grid (array and dictionary forms, 2D and 3D).

Boxes (any MONAI box mode), ellipses given by their bounding boxes, polygons, run-length encodings (SIIM-ACR,
COCO) and points with a diameter (world mm through the image affine) become a float32 mask (C, *spatial) with the
reference image's affine and meta, so it follows the image through MONAI's spatial transforms. Several readers'
annotations can be fused (union / intersection / majority / soft mean), boxes grown or shrunk, and edges softened.

The transforms compose the plain functions of :mod:`monai_explain.transforms.functional` (rasterisers, invalid
policy, channel grouping, fusion, softening); the per-image annotation statistics are written in the mask's meta
(:func:`annotation_stats`).
"""

from __future__ import annotations

from .annotation_mask import ANNOTATION_STATS_KEY, AnnotationToMask, AnnotationToMaskd, annotation_stats
from .boxes import BoxesToMask, BoxesToMaskD, BoxesToMaskd, BoxesToMaskDict
from .ellipses import EllipsesToMask, EllipsesToMaskD, EllipsesToMaskd, EllipsesToMaskDict
from .functional import (
    AnnotationRegions,
    ReferenceGrid,
    annotation_channels,
    apply_invalid_policy,
    box_corners,
    check_untransformed,
    ellipsoid_patch,
    fuse_per_reader,
    fuse_reader_masks,
    rasterize_boxes,
    rasterize_ellipses,
    rasterize_points,
    rasterize_polygons,
    rasterize_rle,
    reader_ids,
    reference_grid,
    render_mask,
    round_boxes,
    soften_mask,
    storage_shape,
    swap_xy,
    world_to_voxel,
)
from .options import (
    BoxRounding,
    FusionMethod,
    InvalidPolicy,
    MarginMode,
    PointSpace,
    RLEStart,
    SpatialLayout,
    WorldConvention,
)
from .points import PointsToMask, PointsToMaskD, PointsToMaskd, PointsToMaskDict
from .polygons import PolygonsToMask, PolygonsToMaskD, PolygonsToMaskd, PolygonsToMaskDict, flatten_named
from .rle import RLEToMask, RLEToMaskD, RLEToMaskd, RLEToMaskDict
from .rle_codec import (
    coco_counts_from_string,
    coco_counts_to_string,
    decode_coco_rle,
    decode_siim_rle,
    encode_coco_rle,
    encode_siim_rle,
)

__all__ = [
    "ANNOTATION_STATS_KEY",
    "AnnotationRegions",
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
    "RLEStart",
    "RLEToMask",
    "RLEToMaskD",
    "RLEToMaskDict",
    "RLEToMaskd",
    "ReferenceGrid",
    "SpatialLayout",
    "WorldConvention",
    "annotation_channels",
    "annotation_stats",
    "apply_invalid_policy",
    "box_corners",
    "check_untransformed",
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
    "rasterize_boxes",
    "rasterize_ellipses",
    "rasterize_points",
    "rasterize_polygons",
    "rasterize_rle",
    "reader_ids",
    "reference_grid",
    "render_mask",
    "round_boxes",
    "soften_mask",
    "storage_shape",
    "swap_xy",
    "world_to_voxel",
]
