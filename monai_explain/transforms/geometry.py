"""Coordinate helpers of the rasterisers: layouts, box rounding, world -> voxel, ellipsoid voxels (2D and 3D).

Re-exported by :mod:`monai_explain.transforms.functional`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.data.utils import to_affine_nd
from monai.transforms import ApplyTransformToPoints
from monai.utils import look_up_option

from .options import BoxRounding, SpatialLayout, WorldConvention

__all__ = [
    "BOUNDARY_TOLERANCE",
    "SNAP_TOLERANCE",
    "Patch",
    "as_coordinate_rows",
    "ellipsoid_patch",
    "round_boxes",
    "storage_shape",
    "swap_xy",
    "world_to_voxel",
]

#: coordinates closer than this to an integer (in pixels) are snapped to it before rounding, so that float32
#: round-off in the box mode conversion (MONAI computes box sizes in float32) never adds or removes a pixel row.
SNAP_TOLERANCE = 1e-4
#: relative tolerance on the ellipsoid boundary (a voxel on the boundary is inside)
BOUNDARY_TOLERANCE = 1e-9

#: the pixels of one annotation: ``(slices into the grid, bool patch of the sliced shape)``
Patch = tuple[tuple[slice, ...], np.ndarray]


def swap_xy(coords: np.ndarray) -> np.ndarray:
    """Swap the first two columns (x <-> y) of an (N, D) coordinate array, returning a new array."""
    out = np.array(coords, dtype=np.float64, copy=True)
    if out.ndim == 2 and out.shape[1] >= 2:
        out[:, [0, 1]] = out[:, [1, 0]]
    return out


def storage_shape(spatial_size: Sequence[int], spatial_layout: SpatialLayout | str = SpatialLayout.XY) -> tuple:
    """The image shape in (row, column[, ...]) storage order (what RLE sizes and CheXlocalize ``img_size`` give)."""
    s = tuple(int(v) for v in spatial_size)
    return (s[1], s[0]) + s[2:] if look_up_option(spatial_layout, SpatialLayout) == SpatialLayout.XY else s


def as_coordinate_rows(annotations: Any, width: int, what: str = "annotations", context: str = "") -> np.ndarray:
    """Annotations (list / ndarray / tensor / ``None``) -> float64 array (N, width); empty input gives (0, width)."""
    if annotations is None:
        return np.zeros((0, width), dtype=np.float64)
    if hasattr(annotations, "detach"):
        annotations = annotations.detach().cpu().numpy()
    try:
        arr = np.asarray(annotations, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} must be a numeric array of shape (N, {width}){context}: {e}") from None
    if arr.size == 0:
        return arr.reshape(0, width)
    if arr.ndim != 2 or arr.shape[1] != width:
        raise ValueError(f"{what} must have shape (N, {width}), got {arr.shape}{context}.")
    return arr


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


def world_to_voxel(
    points: np.ndarray | torch.Tensor | Sequence[Sequence[float]],
    affine: np.ndarray | torch.Tensor,
    world_convention: WorldConvention | str | None = None,
    image_convention: WorldConvention | str = WorldConvention.RAS,
) -> np.ndarray:
    """Map world points (N, D) to voxel index coordinates of an image with the given affine.

    Uses :class:`monai.transforms.ApplyTransformToPoints` with the inverse of the affine. The affine's world frame
    is ``image_convention`` (a MONAI ``MetaTensor`` records it in ``meta["space"]``: ITKReader converts LPS to RAS by
    default, so its affines are RAS). When ``world_convention`` differs, x and y are negated first (LPS <-> RAS).

    Args:
        points: (N, D) world coordinates, D = 2 or 3.
        affine: the image affine, (D + 1) x (D + 1) or larger (a 2D image's 4x4 affine is reduced).
        world_convention: convention of ``points``; ``None`` = the same as the image.
        image_convention: convention of the affine's world frame.

    Returns:
        (N, D) float64 voxel index coordinates (voxel ``i``'s centre at ``i``).

    Example:
        >>> affine = np.diag([0.5, 0.5, 2.0, 1.0]); affine[:3, 3] = [-10, -10, 5]
        >>> world_to_voxel([[-9.0, -8.0, 9.0]], affine)
        array([[2., 4., 2.]])
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] not in (2, 3):
        raise ValueError(f"points must have shape (N, 2 or 3), got {pts.shape}.")
    sd = pts.shape[1]
    if pts.shape[0] == 0:
        return pts.copy()
    aff = to_affine_nd(sd, np.asarray(affine.detach().cpu() if hasattr(affine, "detach") else affine, np.float64))
    image_convention = look_up_option(image_convention, WorldConvention)
    world_convention = (
        image_convention if world_convention is None else look_up_option(world_convention, WorldConvention)
    )
    flip = world_convention != image_convention
    xform = ApplyTransformToPoints(dtype=torch.float64, invert_affine=True, affine_lps_to_ras=flip)
    # points as a MetaTensor with an identity (D + 1) x (D + 1) affine: a plain tensor would get MONAI's default 4x4
    # affine, which ApplyTransformToPoints composes with the 3x3 affine of 2D points and fails
    data = MetaTensor(torch.as_tensor(pts)[None], affine=torch.eye(sd + 1, dtype=torch.float64))
    out = xform(data, torch.as_tensor(aff))
    return np.asarray(torch.as_tensor(out).detach().cpu().numpy()[0], dtype=np.float64)


def ellipsoid_patch(
    center: Sequence[float] | np.ndarray, metric: np.ndarray, spatial_size: Sequence[int]
) -> Patch | None:
    """Voxels of an ellipsoid, in voxel *index* coordinates (the centre of voxel ``j`` is at ``j``).

    Voxel ``j`` is inside when ``(j - center)^T metric (j - center) <= 1`` (the boundary counts as inside). The
    voxel that contains ``center`` (``floor(center + 0.5)``) is always inside, so a tiny ellipsoid still marks
    the voxel it sits in. ``metric`` is symmetric positive definite: ``diag(1 / semi_axes**2)`` for an axis-aligned
    ellipsoid, ``A^T A / r**2`` for a world-space sphere of radius ``r`` seen through an affine with linear part
    ``A`` (anisotropic or rotated voxels give the right ellipsoid in voxel space).

    Args:
        center: centre in voxel index coordinates, one value per spatial axis.
        metric: (D, D) quadratic form.
        spatial_size: the image's spatial size; the result is clipped to it.

    Returns:
        ``(slices, patch)`` with a bool ``patch`` for ``image[slices]``, or ``None`` when no voxel of the image is
        inside.

    Raises:
        ValueError: for a non-finite centre or metric, or a singular metric.

    Example:
        >>> sl, patch = ellipsoid_patch([2.0, 2.0], np.eye(2), (5, 5))
        >>> int(patch.sum())  # the centre and its 4 neighbours at distance 1
        5
    """
    c = np.asarray(center, dtype=np.float64)
    m = np.asarray(metric, dtype=np.float64)
    size = np.asarray(spatial_size, dtype=np.int64)
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(m))):
        raise ValueError(f"ellipsoid centre and metric must be finite, got {c.tolist()} and {m.tolist()}.")
    try:
        extent = np.sqrt(np.clip(np.diag(np.linalg.inv(m)), 0.0, None))
    except np.linalg.LinAlgError:
        raise ValueError(f"ellipsoid metric must be positive definite, got {m.tolist()}.") from None
    # bounds are clipped to just outside the image while still floats: a far or huge ellipsoid must not overflow int64
    limit = size.astype(np.float64)
    centre_voxel = np.clip(np.floor(c + 0.5), -1.0, limit).astype(np.int64)
    lo = np.minimum(np.clip(np.floor(c - extent), -1.0, limit).astype(np.int64), centre_voxel)
    hi = np.maximum(np.clip(np.ceil(c + extent), -1.0, limit).astype(np.int64), centre_voxel)
    lo, hi = np.maximum(lo, 0), np.minimum(hi, size - 1)
    if np.any(hi < lo):
        return None
    axes = [np.arange(a, b + 1, dtype=np.float64) - ci for a, b, ci in zip(lo, hi, c)]
    d = len(axes)
    grids = [ax.reshape([-1 if k == i else 1 for k in range(d)]) for i, ax in enumerate(axes)]
    q = np.zeros([len(ax) for ax in axes], dtype=np.float64)
    for i in range(d):
        for j in range(d):
            if m[i, j] != 0.0:
                q = q + m[i, j] * grids[i] * grids[j]
    patch = q <= 1.0 + BOUNDARY_TOLERANCE
    if np.all((centre_voxel >= lo) & (centre_voxel <= hi)):
        patch[tuple(centre_voxel - lo)] = True
    if not patch.any():
        return None
    return tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi)), patch
