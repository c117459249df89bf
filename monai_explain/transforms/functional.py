"""Functional core of the annotation -> mask transforms: plain functions on arrays, one code path for 2D and 3D.

The transforms of :mod:`monai_explain.transforms` are compositions of these pieces, each usable on its own:

1. **rasterisers** - :func:`rasterize_boxes`, :func:`rasterize_ellipses`, :func:`rasterize_polygons`,
   :func:`rasterize_points`, :func:`rasterize_rle` - turn N annotations into :class:`AnnotationRegions`: for each
   annotation its pixels in the grid (a patch), or the reason it is invalid, and whether it was clipped;
   coordinate layout (:class:`~monai_explain.transforms.SpatialLayout`) is an argument of each rasteriser;
2. **invalid-annotation policy** - :func:`apply_invalid_policy` raises for, or leaves out, invalid annotations;
3. **channel grouping** - :func:`annotation_channels` maps each annotation to its output channel (one merged
   channel, one per class, or one per instance);
4. **reader fusion** - :func:`render_mask` draws each channel, fusing several readers with
   :func:`fuse_per_reader` (:func:`fuse_reader_masks` does the same on ready-made masks);
5. **softening** - :func:`soften_mask` blurs the edges with a Gaussian.

:func:`reference_grid` reads the grid (size, affine) from a reference image and :func:`check_untransformed`
refuses a reference image that went through a spatial transform (the annotations are in its original pixels).
The coordinate helpers (:func:`round_boxes`, :func:`world_to_voxel`, :func:`ellipsoid_patch`, :func:`swap_xy`, ...)
live in :mod:`monai_explain.transforms.geometry` and are re-exported here.

Pixel geometry: continuous pixel coordinates put pixel ``i`` over ``[i, i + 1)`` with its centre at ``i + 0.5``
(MONAI's box convention, ``TO_REMOVE = 0``), so the box ``[2, 5]`` covers pixels 2, 3, 4. Voxel *index*
coordinates (used by points and by the affine) put the centre of voxel ``i`` at ``i``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from monai.apps.detection.transforms.box_ops import convert_box_to_mask
from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.data.box_utils import (
    BoxMode,
    CenterSizeMode,
    CornerSizeMode,
    StandardMode,
    clip_boxes_to_image,
    convert_box_mode,
    get_boxmode,
)
from monai.data.utils import to_affine_nd
from monai.utils import ensure_tuple, look_up_option, optional_import
from monai.utils.type_conversion import convert_to_dst_type, convert_to_tensor

from .geometry import Patch, as_coordinate_rows, ellipsoid_patch, round_boxes, storage_shape, swap_xy, world_to_voxel
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
from .rle_codec import EMPTY_SIIM_RLE, decode_coco_rle, decode_siim_rle

__all__ = [
    "AnnotationRegions",
    "ReferenceGrid",
    "annotation_channels",
    "apply_invalid_policy",
    "as_coordinate_rows",
    "box_corners",
    "check_untransformed",
    "ellipsoid_patch",
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

#: pixel centres within about this distance (pixels) of a polygon edge count as inside
EDGE_TOLERANCE = 1e-6


# ----------------------------------------------------------------------------------------------- data structures
@dataclass
class AnnotationRegions:
    """What a rasteriser returns: one entry per input annotation, in input order.

    Attributes:
        spatial_size: the grid the patches live in.
        patches: for annotation ``i``, ``(slices, bool patch)``: its pixels are ``patch`` inside ``grid[slices]``;
            ``None`` when it is invalid or empty by design.
        reasons: why annotation ``i`` is invalid (``None``: valid).
        clipped: (N,) bool: valid annotations partly outside the grid, clipped to it.
        empty: (N,) bool: valid annotations that are empty by design (a SIIM ``"-1"`` row).
    """

    spatial_size: tuple[int, ...]
    patches: list[Patch | None]
    reasons: list[str | None]
    clipped: np.ndarray
    empty: np.ndarray

    def __len__(self) -> int:
        return len(self.patches)

    def union(self, indices: Sequence[int] | None = None) -> np.ndarray:
        """Bool array of ``spatial_size``: the union of the annotations at ``indices`` (default all)."""
        out = np.zeros(self.spatial_size, dtype=bool)
        for i in range(len(self)) if indices is None else indices:
            patch = self.patches[int(i)]
            if patch is not None:
                sl, m = patch
                out[sl] |= m
        return out

    @classmethod
    def build(
        cls,
        spatial_size: Sequence[int],
        patches: list[Patch | None],
        reasons: list[str | None],
        clipped: Sequence[bool] | np.ndarray | None = None,
        empty: Sequence[bool] | np.ndarray | None = None,
    ) -> AnnotationRegions:
        """Assemble regions; ``clipped`` / ``empty`` default to all ``False``."""
        n = len(patches)
        return cls(
            tuple(int(s) for s in spatial_size),
            patches,
            reasons,
            np.zeros(n, dtype=bool) if clipped is None else np.asarray(clipped, dtype=bool),
            np.zeros(n, dtype=bool) if empty is None else np.asarray(empty, dtype=bool),
        )


@dataclass
class ReferenceGrid:
    """The grid annotations are rasterised into: spatial size, affine (``None`` without one) and its world frame."""

    spatial_size: tuple[int, ...]
    affine: np.ndarray | None = None
    space: str = "RAS"

    @property
    def spatial_dims(self) -> int:
        return len(self.spatial_size)


# ----------------------------------------------------------------------------------------------- reference image
def reference_grid(image: NdarrayOrTensor | None, spatial_size: Sequence[int] | None = None) -> ReferenceGrid:
    """The grid of a channel-first reference image (its affine when it is a ``MetaTensor``), or of ``spatial_size``.

    Raises:
        ValueError: no image and no size, an image that is not channel-first, or a non-positive size.
    """
    affine, space = None, "RAS"
    if image is not None:
        if image.ndim < 3:
            raise ValueError(
                f"the reference image must be channel-first (C, *spatial), got shape {tuple(image.shape)}."
            )
        size = tuple(int(s) for s in image.shape[1:])
        if isinstance(image, MetaTensor):
            affine = image.affine.detach().cpu().numpy().astype(np.float64)
            space = str(image.meta.get("space", "RAS"))
    elif spatial_size is None:
        raise ValueError("give the reference image (channel-first) or spatial_size.")
    else:
        size = tuple(int(s) for s in ensure_tuple(spatial_size))
    if any(s < 1 for s in size):
        raise ValueError(f"the spatial size must be positive, got {size}.")
    return ReferenceGrid(size, affine, space)


def check_untransformed(image: Any, what: str = "annotations", context: str = "") -> None:
    """Refuse a reference image that already went through a spatial transform.

    Annotations are given in the original image's pixels; a ``MetaTensor`` records every spatial transform applied
    to it (``applied_operations``, and ``pending_operations`` under lazy resampling). Rasterising into the
    transformed grid would put the annotations in the wrong place, so this raises instead. Apply the annotation
    transform right after ``LoadImaged``, then the spatial transforms to image and mask together.

    Raises:
        ValueError: naming the recorded operations.
    """
    if not isinstance(image, MetaTensor):
        return
    ops = list(image.applied_operations) + list(image.pending_operations)
    if ops:
        names = [str(op.get("class", "?")) if isinstance(op, Mapping) else type(op).__name__ for op in ops]
        raise ValueError(
            f"the reference image was already transformed by {names} (recorded in its applied_operations){context}: "
            f"the {what} are in the original image's pixels and would be drawn in the wrong place. Put the "
            "annotation transform before any spatial transform (right after LoadImaged) and apply the spatial "
            "transforms to image and mask together, or pass allow_transformed_image=True if the annotations are "
            "already in the transformed grid."
        )


# ----------------------------------------------------------------------------------------------- rasterisers
def box_corners(
    boxes: Any,
    spatial_dims: int,
    box_mode: str | BoxMode | type[BoxMode] | None = None,
    margin: float | Sequence[float] | np.ndarray = 0.0,
    margin_mode: MarginMode | str = MarginMode.PIXEL,
    spatial_layout: SpatialLayout | str = SpatialLayout.XY,
) -> tuple[np.ndarray, list[str | None]]:
    """Validated ``StandardMode`` corners of boxes in array axis order, after the margin, and why any is invalid.

    The boxes are converted from ``box_mode`` with :func:`monai.data.box_utils.convert_box_mode`; a NaN/inf
    coordinate, an inverted box (max < min, or a negative size), a degenerate box (zero size on an axis) or a box
    with no extent left after a negative margin gets a reason. ``spatial_layout="yx"`` swaps x and y.

    Returns:
        ``(corners (N, 2 * dims) float64, reasons)``.
    """
    sd = int(spatial_dims)
    mode = get_boxmode(box_mode)
    margin_mode = MarginMode(look_up_option(margin_mode, MarginMode))
    layout = look_up_option(spatial_layout, SpatialLayout)
    boxes = as_coordinate_rows(boxes, 2 * sd, "boxes")
    n = boxes.shape[0]
    reasons: list[str | None] = [None] * n
    if n == 0:
        return boxes.reshape(0, 2 * sd), reasons
    m = np.asarray(ensure_tuple(margin), dtype=np.float64)
    if m.size not in (1, sd):
        raise ValueError(f"margin must be a scalar or have {sd} values, got {m.tolist()}.")
    m = np.broadcast_to(m, (sd,)).astype(np.float64)
    finite = np.isfinite(boxes).all(axis=1)
    safe = np.where(finite[:, None], boxes, 0.0)
    with warnings.catch_warnings():  # MONAI warns on inverted boxes; they are reported below, per box
        warnings.simplefilter("ignore")
        corners = np.asarray(convert_box_mode(safe, src_mode=mode, dst_mode=StandardMode()))
    lo, hi = corners[:, :sd], corners[:, sd:]
    negative_size = np.zeros(n, dtype=bool)
    if isinstance(mode, (CornerSizeMode, CenterSizeMode)):
        negative_size = np.asarray((safe[:, sd:] < 0).any(axis=1))
    inverted = (hi < lo).any(axis=1) | negative_size
    degenerate = (hi == lo).any(axis=1)
    grow = m[None] * (hi - lo) if margin_mode == MarginMode.FRACTION else np.broadcast_to(m, lo.shape)
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
            reasons[i] = f"has no extent left after margin={m.tolist()} ({margin_mode.value}): {values}"
    out = np.concatenate([lo, hi], axis=1)
    if layout == SpatialLayout.YX:
        out[:, [0, 1, sd, sd + 1]] = out[:, [1, 0, sd + 1, sd]]
    return out, reasons


def rasterize_boxes(
    boxes: Any,
    spatial_size: Sequence[int],
    box_mode: str | BoxMode | type[BoxMode] | None = None,
    rounding: BoxRounding | str = BoxRounding.OUTER,
    margin: float | Sequence[float] | np.ndarray = 0.0,
    margin_mode: MarginMode | str = MarginMode.PIXEL,
    spatial_layout: SpatialLayout | str = SpatialLayout.XY,
) -> AnnotationRegions:
    """Boxes (N, 2 * dims) in any MONAI box mode -> :class:`AnnotationRegions` (2D or 3D).

    Corners from :func:`box_corners`, rounded to whole pixels (:func:`round_boxes`), clipped with
    :func:`monai.data.box_utils.clip_boxes_to_image` and drawn with MONAI's
    :func:`~monai.apps.detection.transforms.box_ops.convert_box_to_mask`. Besides the reasons of
    :func:`box_corners`, a box covering no pixel after rounding or lying entirely outside the grid is invalid.

    Example:
        >>> regions = rasterize_boxes([[1, 2, 3, 2]], (6, 5), box_mode="xywh")
        >>> int(regions.union().sum()), regions.reasons
        (6, [None])
    """
    size = tuple(int(s) for s in spatial_size)
    sd = len(size)
    raw = as_coordinate_rows(boxes, 2 * sd, "boxes")
    corners, reasons = box_corners(raw, sd, box_mode, margin, margin_mode, spatial_layout)
    rounding = BoxRounding(look_up_option(rounding, BoxRounding))
    n = corners.shape[0]
    patches: list[Patch | None] = [None] * n
    clipped = np.zeros(n, dtype=bool)
    if n == 0:
        return AnnotationRegions.build(size, patches, reasons)
    valid = np.array([r is None for r in reasons])
    rounded = round_boxes(np.where(valid[:, None], corners, 0.0), rounding)
    inside_box = np.asarray(clip_boxes_to_image(rounded, size, remove_empty=False)[0])
    for i in range(n):
        if not valid[i]:
            continue
        if np.any(rounded[i, sd:] <= rounded[i, :sd]):
            reasons[i] = f"covers no pixel after {rounding.value} rounding: {raw[i].tolist()}"
            continue
        lo, hi = inside_box[i, :sd].astype(np.int64), inside_box[i, sd:].astype(np.int64)
        if np.any(hi <= lo):
            reasons[i] = f"lies entirely outside the image of size {size}: {raw[i].tolist()}"
            continue
        shape = tuple(int(v) for v in hi - lo)
        local = np.concatenate([np.zeros(sd, dtype=np.int64), hi - lo])[None]
        drawn = convert_box_to_mask(local, np.ones(1, dtype=np.int64), shape, bg_label=0)
        patches[i] = (tuple(slice(int(a), int(b)) for a, b in zip(lo, hi)), np.asarray(drawn)[0] > 0)
        clipped[i] = bool(np.any(inside_box[i] != rounded[i]))
    return AnnotationRegions.build(size, patches, reasons, clipped)


def rasterize_ellipses(
    ellipses: Any,
    spatial_size: Sequence[int],
    box_mode: str | BoxMode | type[BoxMode] | None = None,
    margin: float | Sequence[float] | np.ndarray = 0.0,
    margin_mode: MarginMode | str = MarginMode.PIXEL,
    spatial_layout: SpatialLayout | str = SpatialLayout.XY,
) -> AnnotationRegions:
    """Ellipses (ellipsoids in 3D) given by their bounding boxes -> :class:`AnnotationRegions` (REFLACX).

    The boxes go through :func:`box_corners`; the shape is drawn analytically, without rounding: pixel ``i``
    (centre ``i + 0.5`` in box coordinates) is inside when ``sum(((i + 0.5 - c) / a) ** 2) <= 1`` with ``c`` the
    box centre and ``a`` the half sizes (:func:`ellipsoid_patch`); the pixel containing the centre is always inside.

    Example:
        >>> rasterize_ellipses([[0, 0, 6, 4]], (6, 4)).union().astype(int).T.tolist()
        [[0, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 0]]
    """
    size = tuple(int(s) for s in spatial_size)
    sd = len(size)
    raw = as_coordinate_rows(ellipses, 2 * sd, "ellipses")
    corners, reasons = box_corners(raw, sd, box_mode, margin, margin_mode, spatial_layout)
    n = corners.shape[0]
    limit = np.asarray(size, dtype=np.float64)
    patches: list[Patch | None] = [None] * n
    clipped = np.zeros(n, dtype=bool)
    for i in range(n):
        if reasons[i] is not None:
            continue
        lo, hi = corners[i, :sd], corners[i, sd:]
        semi = (hi - lo) / 2.0
        with np.errstate(over="ignore", divide="ignore"):
            inv_sq = 1.0 / semi**2
        if not (np.all(np.isfinite(semi)) and np.all(np.isfinite(inv_sq)) and np.all(inv_sq > 0)):
            reasons[i] = (
                f"is too large or too small to rasterise in float64 (semi-axes {semi.tolist()}): {raw[i].tolist()}"
            )
            continue
        patch = ellipsoid_patch((lo + hi) / 2.0 - 0.5, np.diag(inv_sq), size)
        if patch is None:
            reasons[i] = f"covers no pixel of the image of size {size}: {raw[i].tolist()}"
            continue
        patches[i] = patch
        clipped[i] = bool(np.any(lo < 0) or np.any(hi > limit))
    return AnnotationRegions.build(size, patches, reasons, clipped)


def rasterize_polygons(
    polygons: Sequence[Any], spatial_size: Sequence[int], spatial_layout: SpatialLayout | str = SpatialLayout.XY
) -> AnnotationRegions:
    """2D polygons (each a (V, 2) list of ``[x, y]`` vertices) -> :class:`AnnotationRegions`.

    Pixel-centre rule: pixel ``i`` is inside when its centre ``i + 0.5`` is inside the polygon or on an edge
    (within 1e-6 pixel), tested with :meth:`matplotlib.path.Path.contains_points` (matplotlib is needed here only;
    the polygon is closed implicitly, either vertex order works). Fewer than 3 vertices, a NaN coordinate, zero
    area, no pixel centre inside, or lying entirely outside the grid is invalid.

    Example:
        >>> rasterize_polygons([[[1, 1], [4, 1], [4, 3], [1, 3]]], (5, 4)).union().astype(int).T.tolist()
        [[0, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]]
    """
    mpl_path, has_mpl = optional_import("matplotlib.path", name="Path")
    size_t = tuple(int(s) for s in spatial_size)
    if len(size_t) != 2:
        raise ValueError(f"polygons need a 2D image, got spatial size {size_t}.")
    layout = look_up_option(spatial_layout, SpatialLayout)
    size = np.asarray(size_t, dtype=np.int64)
    n = len(polygons)
    reasons: list[str | None] = [None] * n
    patches: list[Patch | None] = [None] * n
    clipped = np.zeros(n, dtype=bool)
    for i, poly in enumerate(polygons):
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
        v = swap_xy(v) if layout == SpatialLayout.YX else v
        if np.any(v.max(axis=0) <= 0) or np.any(v.min(axis=0) >= size):
            reasons[i] = f"lies entirely outside the image of size {size_t}: {np.asarray(poly).tolist()}"
            continue
        # clipped while still floats: far vertices must not overflow int64
        lo = np.maximum(np.ceil(np.clip(v.min(axis=0) - 0.5, -1.0, size)).astype(np.int64), 0)
        hi = np.minimum(np.floor(np.clip(v.max(axis=0) - 0.5, -1.0, size)).astype(np.int64), size - 1)
        if np.any(hi < lo):
            reasons[i] = f"covers no pixel centre of the image: {np.asarray(poly).tolist()}"
            continue
        if not has_mpl:
            raise ImportError("rasterising polygons needs matplotlib: pip install 'monai-explain[masks]'.")
        a0 = np.arange(lo[0], hi[0] + 1) + 0.5
        a1 = np.arange(lo[1], hi[1] + 1) + 0.5
        centres = np.stack(np.meshgrid(a0, a1, indexing="ij"), axis=-1).reshape(-1, 2)
        # matplotlib grows the polygon by a positive radius when its vertices run counter-clockwise (positive
        # signed area in array axes) and by a negative one otherwise: a tiny growth makes edges inclusive.
        ccw = (signed_area > 0) == (layout == SpatialLayout.XY)
        radius = EDGE_TOLERANCE if ccw else -EDGE_TOLERANCE
        patch = mpl_path(v).contains_points(centres, radius=radius).reshape(len(a0), len(a1))
        if not patch.any():
            reasons[i] = f"covers no pixel centre of the image: {np.asarray(poly).tolist()}"
            continue
        patches[i] = ((slice(int(lo[0]), int(hi[0]) + 1), slice(int(lo[1]), int(hi[1]) + 1)), patch)
        clipped[i] = bool(np.any(v.min(axis=0) < 0) or np.any(v.max(axis=0) > size))
    return AnnotationRegions.build(size_t, patches, reasons, clipped)


def rasterize_points(
    centres: Any,
    diameters: float | Sequence[float] | np.ndarray,
    spatial_size: Sequence[int],
    space: PointSpace | str = PointSpace.VOXEL,
    affine: np.ndarray | torch.Tensor | None = None,
    world_convention: WorldConvention | str | None = None,
    image_convention: WorldConvention | str = WorldConvention.RAS,
    spatial_layout: SpatialLayout | str = SpatialLayout.XY,
    context: str = "",
) -> AnnotationRegions:
    """Points with a diameter -> spheres (3D) or discs (2D) as :class:`AnnotationRegions` (LUNA16 nodules).

    In ``space="world"`` each centre (mm) goes through the inverse of ``affine`` (:func:`world_to_voxel`,
    honouring the conventions) and the sphere is measured in mm: voxel ``j`` is inside when ``|A (j - v)| <= d / 2``
    with ``A`` the affine's linear part, so anisotropic (or rotated) voxels give the matching ellipsoid. In
    ``space="voxel"`` centres are voxel index coordinates (x, y[, z]), swapped by ``spatial_layout="yx"``. The voxel
    containing the centre is always inside. A NaN coordinate, a non-positive diameter or a sphere with no voxel in
    the grid is invalid.

    Args:
        centres: (N, dims) centres.
        diameters: one diameter for all, or (N,).
        spatial_size: the grid.
        space, world_convention: see :class:`PointSpace` / :class:`WorldConvention`.
        affine: the grid's affine (needed for ``space="world"``).
        image_convention: the world frame of ``affine``.
        spatial_layout: for voxel points.
        context: appended to error messages.

    Raises:
        ValueError: a diameter count that does not match, or world points without a finite invertible affine.

    Example:
        >>> int(rasterize_points([[2.0, 2.0]], 3.0, (5, 5)).union().sum())
        9
    """
    size = tuple(int(s) for s in spatial_size)
    sd = len(size)
    space = look_up_option(space, PointSpace)
    pts = as_coordinate_rows(centres, sd, "points", context)
    n = pts.shape[0]
    if n == 0:
        return AnnotationRegions.build(size, [], [])
    diam = np.asarray(diameters.detach().cpu() if hasattr(diameters, "detach") else diameters, np.float64).reshape(-1)
    if diam.size not in (1, n):
        raise ValueError(f"got {n} points but {diam.size} diameters{context}.")
    diam = np.broadcast_to(diam, (n,))
    finite = np.isfinite(pts).all(axis=1)
    if space == PointSpace.WORLD:
        if affine is None:
            raise ValueError(f"world-space points need the reference image's affine (a MetaTensor image){context}.")
        aff = to_affine_nd(sd, np.asarray(affine.detach().cpu() if hasattr(affine, "detach") else affine, np.float64))
        linear = aff[:sd, :sd]
        if not np.all(np.isfinite(aff)) or np.linalg.matrix_rank(linear) < sd:
            raise ValueError(
                f"world-space points need a finite and invertible image affine, got {aff.tolist()}{context}."
            )
        voxels = world_to_voxel(np.where(finite[:, None], pts, 0.0), aff, world_convention, image_convention)
        gram = linear.T @ linear
    else:
        safe = np.where(finite[:, None], pts, 0.0)
        voxels = swap_xy(safe) if look_up_option(spatial_layout, SpatialLayout) == SpatialLayout.YX else safe
        gram = np.eye(sd)
    limit = np.asarray(size, dtype=np.float64)
    extent_unit = np.sqrt(np.clip(np.diag(np.linalg.inv(gram)), 0.0, None))
    reasons: list[str | None] = [None] * n
    patches: list[Patch | None] = [None] * n
    clipped = np.zeros(n, dtype=bool)
    for i in range(n):
        values = pts[i].tolist() + [float(diam[i])]
        if not finite[i]:
            reasons[i] = f"has a NaN or infinite coordinate: {values}"
            continue
        if not (np.isfinite(diam[i]) and diam[i] > 0):
            reasons[i] = f"has a non-positive or non-finite diameter {diam[i]}: {values}"
            continue
        radius = diam[i] / 2.0
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            metric = gram / radius**2
        if not (np.all(np.isfinite(metric)) and np.all(np.diag(metric) > 0)):
            reasons[i] = f"has a diameter {diam[i]} too large or too small to rasterise in float64: {values}"
            continue
        patch = ellipsoid_patch(voxels[i], metric, size) if np.all(np.isfinite(voxels[i])) else None
        if patch is None:
            reasons[i] = (
                f"lies entirely outside the image of size {size} (voxel centre {np.round(voxels[i], 3).tolist()}): "
                f"{values}"
            )
            continue
        patches[i] = patch
        ext = radius * extent_unit
        clipped[i] = bool(np.any(voxels[i] - ext < -0.5) or np.any(voxels[i] + ext > limit - 0.5))
    return AnnotationRegions.build(size, patches, reasons, clipped)


def rasterize_rle(
    rles: Sequence[Any],
    spatial_size: Sequence[int],
    spatial_layout: SpatialLayout | str = SpatialLayout.XY,
    rle_starts: RLEStart | str = RLEStart.RELATIVE,
) -> AnnotationRegions:
    """Run-length encodings (SIIM strings or COCO dicts, one per instance) -> :class:`AnnotationRegions`.

    The encodings describe the image stored (row, column); with ``spatial_layout="xy"`` (MONAI readers) the
    decoded mask is transposed to (column, row). A SIIM ``"-1"`` / ``""`` is a valid instance that is empty by
    design (``regions.empty``). A COCO ``size`` must match the grid; malformed RLE is invalid (the reason says why,
    with a hint when a relative SIIM RLE looks absolute, see :class:`RLEStart`).

    Example:
        >>> rasterize_rle(["1 2 3 1", "-1"], (2, 4), "yx").union().astype(int).tolist()
        [[0, 1, 0, 1], [1, 0, 0, 0]]
    """
    size = tuple(int(s) for s in spatial_size)
    layout = look_up_option(spatial_layout, SpatialLayout)
    rc_shape = storage_shape(size, layout)
    full = tuple(slice(None) for _ in size)
    n = len(rles)
    reasons: list[str | None] = [None] * n
    patches: list[Patch | None] = [None] * n
    empty = np.zeros(n, dtype=bool)
    for i, item in enumerate(rles):
        if isinstance(item, bytes):
            item = item.decode()
        if isinstance(item, str) and item.strip() in EMPTY_SIIM_RLE:
            empty[i] = True
            continue
        if not isinstance(item, (str, Mapping)):
            reasons[i] = f"is neither a SIIM RLE string nor a COCO RLE dict: {item!r:.60}"
            continue
        try:
            if isinstance(item, str):
                decoded = decode_siim_rle(item, rc_shape, starts=rle_starts)
            else:
                coco_size = [int(v) for v in item.get("size", [])]
                if coco_size != list(rc_shape):
                    raise ValueError(f"COCO size {coco_size} does not match the image (rows, columns) {list(rc_shape)}")
                decoded = decode_coco_rle(item)
        except (TypeError, ValueError) as e:
            reasons[i] = f"is malformed: {e}"
            continue
        if layout == SpatialLayout.XY:
            decoded = np.swapaxes(decoded, 0, 1)
        patches[i] = (full, np.ascontiguousarray(decoded))
    return AnnotationRegions.build(size, patches, reasons, empty=empty)


# ----------------------------------------------------------------------------------------------- policy, channels
def apply_invalid_policy(
    reasons: Sequence[str | None],
    invalid: InvalidPolicy | str = InvalidPolicy.RAISE,
    item_name: str = "annotation",
    context: str = "",
) -> tuple[list[int], list[str]]:
    """Raise for, or leave out, the annotations that have a reason to be invalid.

    Args:
        reasons: one per annotation, ``None`` for a valid one (:attr:`AnnotationRegions.reasons`).
        invalid: ``"raise"`` or ``"drop"``; see :class:`InvalidPolicy`.
        item_name: what an annotation is called in messages ("box", "polygon", ...).
        context: appended to messages (record key, image file).

    Returns:
        ``(kept indices, messages of the dropped ones)`` - the caller counts and logs the messages.

    Raises:
        ValueError: for the first invalid annotation under ``invalid="raise"``.
    """
    invalid = look_up_option(invalid, InvalidPolicy)
    dropped: list[str] = []
    for i, reason in enumerate(reasons):
        if reason is None:
            continue
        msg = f"{item_name} {i} {reason.rstrip('.')}{context}"
        if invalid == InvalidPolicy.RAISE:
            raise ValueError(msg + " (use invalid='drop' to leave such annotations out).")
        dropped.append(msg)
    return [i for i, reason in enumerate(reasons) if reason is None], dropped


def reader_ids(readers: Any) -> list:
    """Return reader ids (or labels) as a plain Python list (accepts lists, tuples, numpy arrays and tensors)."""
    if readers is None:
        return []
    if isinstance(readers, (str, bytes)):
        return [readers]
    if hasattr(readers, "tolist"):
        out = readers.tolist()
        return out if isinstance(out, list) else [out]
    return list(readers)


def annotation_channels(
    labels: Any,
    num_annotations: int,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    item_name: str = "annotation",
    context: str = "",
    item_plural: str | None = None,
) -> np.ndarray:
    """Output channel of each annotation: 0 for a merged mask (``num_classes=None``), else its class index.

    Labels may be class ids ``0 .. num_classes - 1`` or names in ``class_names``; they are always checked (a bad
    label is a configuration error, whatever the invalid-annotation policy).

    Returns:
        (N,) int64.

    Raises:
        ValueError: missing labels for a per-class mask, a count mismatch, or an unknown label.
    """
    n = int(num_annotations)
    if class_names is not None:
        num_classes = len(class_names)
    if num_classes is None:
        return np.zeros(n, dtype=np.int64)
    if labels is None:
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        raise ValueError(f"labels are needed for a per-class mask (num_classes={num_classes}){context}.")
    labs = reader_ids(labels)
    if len(labs) != n:
        raise ValueError(f"got {n} {item_plural or item_name + 's'} but {len(labs)} labels{context}.")
    out = np.empty(n, dtype=np.int64)
    names = None if class_names is None else list(class_names)
    for i, lab in enumerate(labs):
        if isinstance(lab, (str, bytes)):
            name = lab.decode() if isinstance(lab, bytes) else lab
            if names is None or name not in names:
                raise ValueError(f"{item_name} {i} has label {name!r}, which is not in class_names={names}{context}.")
            out[i] = names.index(name)
            continue
        try:
            value = float(lab)
        except (TypeError, ValueError):
            raise ValueError(f"{item_name} {i} has label {lab!r}, not a class id or name{context}.") from None
        if not value.is_integer() or not 0 <= value < num_classes:
            raise ValueError(f"{item_name} {i} has label {lab!r}, outside the class ids 0..{num_classes - 1}{context}.")
        out[i] = int(value)
    return out


# ----------------------------------------------------------------------------------------------- fusion
def fuse_per_reader(per_reader: Any, num_readers: int, method: FusionMethod | str) -> Any:
    """Fuse one mask per reader who annotated the image, out of ``num_readers`` listed readers.

    The core of :func:`fuse_reader_masks` without input checks (readers absent from ``per_reader`` drew nothing).

    Args:
        per_reader: (R, *spatial) numpy array or tensor in [0, 1], R <= ``num_readers``.
        num_readers: the number of readers listed for the image.
        method: see :class:`FusionMethod`.

    Returns:
        float32 (*spatial) array / tensor, all zero when ``num_readers`` or R is 0.

    Example:
        >>> fuse_per_reader(np.array([[1, 1, 0], [0, 1, 0]], dtype=np.float32), 3, "majority")
        array([0., 1., 0.], dtype=float32)
    """
    method = look_up_option(method, FusionMethod)
    r = int(per_reader.shape[0])
    if r > num_readers:
        raise ValueError(f"{r} reader masks but only {num_readers} readers listed.")
    is_torch = isinstance(per_reader, torch.Tensor)
    spatial = tuple(per_reader.shape[1:])
    if r == 0 or (method == FusionMethod.INTERSECTION and r < num_readers):
        return per_reader.new_zeros(spatial, dtype=torch.float32) if is_torch else np.zeros(spatial, np.float32)
    if method == FusionMethod.MAJORITY:
        votes = (per_reader >= 0.5).sum(0)
        out = 2 * votes > num_readers
    elif method == FusionMethod.MEAN:
        out = per_reader.sum(0) / num_readers
    elif is_torch:
        out = per_reader.amax(0) if method == FusionMethod.UNION else per_reader.amin(0)
    else:
        out = per_reader.max(0) if method == FusionMethod.UNION else per_reader.min(0)
    return out.to(torch.float32) if is_torch else np.asarray(out, dtype=np.float32)


def fuse_reader_masks(
    masks: NdarrayOrTensor | Sequence[NdarrayOrTensor],
    readers: Sequence[Any] | NdarrayOrTensor,
    method: FusionMethod | str = FusionMethod.UNION,
    all_readers: Sequence[Any] | None = None,
) -> NdarrayOrTensor:
    """Fuse per-annotation masks drawn by several readers of the same image into one mask.

    Annotations of the same reader are first combined by their maximum (union), giving one mask per reader; the
    reader masks are then fused by ``method`` (see :class:`FusionMethod`). The number of readers ``R`` that the
    majority and the mean divide by is the number of readers *listed for the image*: ``all_readers`` when given
    (pass it: a reader who read the image and drew nothing, e.g. a VinDr-CXR "No finding" reader, still votes),
    else the distinct ids in ``readers``.

    Args:
        masks: per-annotation masks, shape (N, *spatial), values in [0, 1] (binary masks are the usual input).
        readers: reader id of each annotation, length N (str or int ids).
        method: one of ``"union"``, ``"intersection"``, ``"majority"``, ``"mean"``.
        all_readers: every reader who read this image (ids); must contain every id in ``readers``.

    Returns:
        float32 mask of shape ``masks.shape[1:]``: a numpy array for numpy input, else a tensor on ``masks``' device.
        All zero when there are no annotations or no readers.

    Raises:
        ValueError: unknown method, length mismatch between ``masks`` and ``readers``, values outside [0, 1], or a
            reader missing from ``all_readers``.

    Example:
        >>> m = np.array([[1, 1, 0], [0, 1, 1], [0, 1, 0]], dtype=np.float32)
        >>> fuse_reader_masks(m, ["R1", "R2", "R3"], "majority")
        array([0., 1., 0.], dtype=float32)
        >>> fuse_reader_masks(m, ["R1", "R2", "R3"], "mean")
        array([0.33333334, 1.        , 0.33333334], dtype=float32)
    """
    method = look_up_option(method, FusionMethod)
    if isinstance(masks, (list, tuple)):
        if len(masks) == 0:
            raise ValueError("masks is an empty sequence: pass an array of shape (0, *spatial) for no annotations.")
        first = masks[0]
        masks = (
            torch.stack([torch.as_tensor(x) for x in masks])
            if isinstance(first, torch.Tensor)
            else np.stack([np.asarray(x) for x in masks])
        )
    is_torch = isinstance(masks, torch.Tensor)
    m: Any = (
        convert_to_tensor(masks, track_meta=False, dtype=torch.float32)
        if is_torch
        else np.asarray(masks, dtype=np.float32)
    )
    if m.ndim < 1:
        raise ValueError(f"masks must have shape (N, *spatial), got {tuple(m.shape)}.")
    ids = reader_ids(readers)
    if len(ids) != m.shape[0]:
        raise ValueError(f"got {m.shape[0]} masks but {len(ids)} reader ids: give one reader id per mask.")
    if m.size if not is_torch else m.numel():
        lo, hi = (float(m.min()), float(m.max()))
        if not (0.0 <= lo and hi <= 1.0):  # also catches NaN
            raise ValueError(f"masks must hold values in [0, 1] (no NaN), got [{lo}, {hi}].")
    listed = list(dict.fromkeys(reader_ids(all_readers) if all_readers is not None else ids))
    index = {r: j for j, r in enumerate(listed)}
    unknown = [r for r in dict.fromkeys(ids) if r not in index]
    if unknown:
        raise ValueError(f"readers {unknown} annotated the image but are not in all_readers={listed}.")
    # one mask per reader who drew something (max over that reader's annotations)
    present = list(dict.fromkeys(ids))
    sel = np.asarray([index[r] for r in ids], dtype=np.int64)
    groups = [np.flatnonzero(sel == index[r]) for r in present]
    if is_torch:
        stacked = (
            torch.stack([m[torch.as_tensor(g, device=m.device)].amax(0) for g in groups])
            if groups
            else m.new_zeros((0,) + tuple(m.shape[1:]))
        )
    else:
        stacked = np.stack([m[g].max(0) for g in groups]) if groups else np.zeros((0,) + m.shape[1:], np.float32)
    out = fuse_per_reader(stacked, len(listed), method)
    # is_torch: masks is a Tensor
    return convert_to_dst_type(out, dst=cast(torch.Tensor, masks), dtype=torch.float32)[0] if is_torch else out


def render_mask(
    regions: AnnotationRegions,
    keep: Sequence[int],
    channels: Sequence[int] | np.ndarray,
    num_channels: int,
    readers: Sequence[Any] | None = None,
    num_readers: int | None = None,
    fusion: FusionMethod | str | None = None,
) -> np.ndarray:
    """Draw the kept annotations into a float32 mask (``num_channels``, *spatial).

    Within a channel the annotations are unioned, or - with ``fusion`` - each reader's annotations are unioned and
    the readers fused by :func:`fuse_per_reader` over ``num_readers`` listed readers.

    Args:
        regions: the rasteriser's output.
        keep: indices (into ``regions``) of the annotations to draw.
        channels: the output channel of each kept annotation (aligned with ``keep``).
        num_channels: number of output channels.
        readers: reader id of each kept annotation (aligned with ``keep``); needed with ``fusion``.
        num_readers: readers listed for the image (default: the distinct ``readers``).
        fusion: ``None`` (union, readers ignored) or a :class:`FusionMethod`.

    Example:
        >>> regions = rasterize_boxes([[0, 0, 2, 1], [1, 0, 3, 1]], (3, 1))
        >>> [round(float(v), 4) for v in render_mask(regions, [0, 1], [0, 0], 1, ["R1", "R2"], 3, "mean")[0, :, 0]]
        [0.3333, 0.6667, 0.3333]
    """
    keep = [int(k) for k in keep]
    channels = np.asarray(channels, dtype=np.int64).reshape(-1)
    if channels.size != len(keep):
        raise ValueError(f"got {len(keep)} kept annotations but {channels.size} channels.")
    mask = np.zeros((int(num_channels),) + regions.spatial_size, dtype=np.float32)
    fusion = None if fusion is None else look_up_option(fusion, FusionMethod)
    if fusion is not None:
        if readers is None or len(readers) != len(keep):
            raise ValueError("fusion needs one reader id per kept annotation.")
        num_readers = len(set(readers)) if num_readers is None else int(num_readers)
    reader_seq: Sequence[Any] = () if readers is None else readers  # given (checked above) with fusion
    for c in np.unique(channels):
        positions = np.flatnonzero(channels == c)
        members = [keep[p] for p in positions]
        if fusion is None:
            mask[int(c)] = regions.union(members)
            continue
        owners = [reader_seq[int(p)] for p in positions]
        per_reader = np.stack(
            [regions.union([m for m, r in zip(members, owners) if r == rid]) for rid in dict.fromkeys(owners)]
        )
        mask[int(c)] = fuse_per_reader(per_reader, num_readers, fusion)  # type: ignore[arg-type]
    return mask


# ----------------------------------------------------------------------------------------------- softening
def soften_mask(mask: np.ndarray, sigma: float | Sequence[float]) -> np.ndarray:
    """Soften the edges of each channel of a (C, *spatial) mask with a Gaussian, keeping values in [0, 1].

    ``scipy.ndimage.gaussian_filter`` with ``mode="nearest"`` (a region touching the image border is not faded
    there) and ``truncate=4``; all-zero channels stay zero. ``sigma`` is in pixels, one value or one per spatial
    axis in array order; ``0`` returns the mask unchanged. A region narrower than a few sigma loses its peak value
    (blurring, not rescaling).

    Raises:
        ValueError: a negative / non-finite sigma, or a per-axis sigma of the wrong length.

    Example:
        >>> m = np.zeros((1, 5), np.float32); m[0, 2] = 1
        >>> bool(soften_mask(m, 1.0)[0, 1] > 0)
        True
    """
    sig = np.asarray(ensure_tuple(sigma), dtype=np.float64)
    if not np.all(np.isfinite(sig)) or np.any(sig < 0):
        raise ValueError(f"sigma must be finite and >= 0, got {sigma}.")
    if not sig.size or not np.any(sig > 0):
        return mask
    spatial = mask.ndim - 1
    if sig.size not in (1, spatial):
        raise ValueError(f"sigma needs 1 or {spatial} values for this image, got {sig.tolist()}.")
    gaussian_filter, has_scipy = optional_import("scipy.ndimage", name="gaussian_filter")
    if not has_scipy:
        raise ImportError("softening masks (sigma > 0) needs scipy: pip install 'monai-explain[masks]'.")
    sig = np.broadcast_to(sig, (spatial,))
    out = np.array(mask, dtype=np.float32, copy=True)
    for ch in range(out.shape[0]):
        if out[ch].any():
            out[ch] = gaussian_filter(out[ch], sigma=sig.tolist(), mode="nearest", truncate=4.0)
    return np.clip(out, 0.0, 1.0, out=out)
