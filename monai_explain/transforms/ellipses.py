"""Ellipses (ellipsoids in 3D) given by their bounding boxes -> mask (REFLACX), and the shared ellipsoid rasteriser."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data.box_utils import BoxMode

from .annotation_mask import AnnotationToMask, AnnotationToMaskd, InvalidPolicy, SpatialLayout, _Geometry, _Prepared
from .boxes import BoxesToMask, MarginMode
from .fusion import FusionMethod

__all__ = ["EllipsesToMask", "EllipsesToMaskD", "EllipsesToMaskDict", "EllipsesToMaskd", "ellipsoid_patch"]

_BOUNDARY_TOLERANCE = 1e-9


def ellipsoid_patch(
    center: Sequence[float] | np.ndarray, metric: np.ndarray, spatial_size: Sequence[int]
) -> tuple[tuple[slice, ...], np.ndarray] | None:
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
    patch = q <= 1.0 + _BOUNDARY_TOLERANCE
    if np.all((centre_voxel >= lo) & (centre_voxel <= hi)):
        patch[tuple(centre_voxel - lo)] = True
    if not patch.any():
        return None
    return tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi)), patch


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
        num_classes, class_names, per_instance, fusion, spatial_layout, sigma, invalid: see
            :class:`~monai_explain.transforms.AnnotationToMask`.

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
        return self._make_mask(ellipses, labels, image, readers, image_readers, spatial_size, context)

    def _prepare(self, items: Any, geometry: _Geometry, ctx: str, **kwargs: Any) -> _Prepared:
        corners, reasons = self._validated_corners(items, geometry)
        sd, n = geometry.spatial_dims, corners.shape[0]
        size = np.asarray(geometry.spatial_size, dtype=np.float64)
        patches: list[Any] = [None] * n
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
                    f"is too large or too small to rasterise in float64 (semi-axes {semi.tolist()}): "
                    f"{items[i].tolist()}"
                )
                continue
            patch = ellipsoid_patch((lo + hi) / 2.0 - 0.5, np.diag(inv_sq), geometry.spatial_size)
            if patch is None:
                reasons[i] = f"covers no pixel of the image of size {geometry.spatial_size}: {items[i].tolist()}"
                continue
            patches[i] = patch
            clipped[i] = bool(np.any(lo < 0) or np.any(hi > size))
        keep = self._apply_policy(reasons, ctx)
        return _Prepared(keep=keep, patches=[patches[i] for i in keep], clipped=int(clipped[keep].sum()) if keep else 0)

    def _render_group(self, prepared: _Prepared, positions: Sequence[int], spatial_size: tuple[int, ...]) -> np.ndarray:
        # the patch-based union of the base class, not the box drawing of BoxesToMask
        return AnnotationToMask._render_group(self, prepared, positions, spatial_size)


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
        )
        super().__init__(
            keys, converter, ref_key, mask_key, label_key, reader_key, image_readers_key, allow_missing_keys
        )


EllipsesToMaskD = EllipsesToMaskDict = EllipsesToMaskd
