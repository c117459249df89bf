"""Points + diameters -> spheres / discs (LUNA16 nodules), from world millimetres through the image affine."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.data.utils import to_affine_nd
from monai.transforms import ApplyTransformToPoints
from monai.utils import StrEnum, look_up_option

from .annotation_mask import (
    AnnotationToMask,
    AnnotationToMaskd,
    InvalidPolicy,
    SpatialLayout,
    _as_float_rows,
    _Geometry,
    _Prepared,
)
from .ellipses import ellipsoid_patch
from .fusion import FusionMethod

__all__ = [
    "PointSpace",
    "PointsToMask",
    "PointsToMaskD",
    "PointsToMaskDict",
    "PointsToMaskd",
    "WorldConvention",
    "world_to_voxel",
]


class PointSpace(StrEnum):
    """Where point coordinates live.

    - ``world``: world millimetres, mapped to voxels through the reference image's affine (``MetaTensor.affine``);
      the diameter is in millimetres too. ``spatial_layout`` does not apply (the affine fixes the axes).
    - ``voxel``: voxel *index* coordinates in the dataset's (x=column, y=row[, z]) order - the centre of voxel ``i``
      is at ``i`` - swapped by ``spatial_layout="yx"``; the diameter is in voxels.
    """

    WORLD = "world"
    VOXEL = "voxel"


class WorldConvention(StrEnum):
    """Patient coordinate convention of world points: ``RAS`` (NIfTI, MONAI's default) or ``LPS`` (DICOM, ITK
    MetaImage, LUNA16 ``annotations.csv``). They differ by the sign of x and y."""

    RAS = "RAS"
    LPS = "LPS"


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


class PointsToMask(AnnotationToMask):
    """Rasterise points with a diameter as spheres (3D) or discs (2D) in the reference image's own grid (LUNA16).

    Each point is a centre and a diameter. In ``space="world"`` the centre (mm) goes through the inverse of the
    image affine (:func:`world_to_voxel`, honouring ``world_convention``) and the sphere is measured in mm: voxel
    ``j`` is inside when ``|A (j - v)| <= d / 2`` with ``A`` the affine's linear part and ``v`` the centre in voxel
    index coordinates, so anisotropic (or rotated) voxels give the matching ellipsoid in voxel space. The voxel
    containing the centre is always inside. A sphere partly outside the image is clipped and counted; one with
    no voxel in the image, a NaN coordinate or a non-positive diameter is invalid (``invalid`` policy).

    Args:
        diameter: default diameter for points that come without one.
        space: ``"world"`` (mm, via the affine; default) or ``"voxel"``; see :class:`PointSpace`.
        world_convention: ``"LPS"`` or ``"RAS"``: the convention of world points. LUNA16 gives LPS; with an image
            loaded by ITKReader (RAS affine, ``meta["space"] == "RAS"``) use ``"LPS"`` and x, y are flipped. ``None``:
            the image's own convention (``meta["space"]``, RAS when absent).
        num_classes, class_names, per_instance, fusion, spatial_layout, sigma, invalid: see
            :class:`~monai_explain.transforms.AnnotationToMask`.

    Example:
        >>> import torch
        >>> from monai.data import MetaTensor
        >>> ct = MetaTensor(torch.zeros(1, 8, 8, 4), affine=torch.diag(torch.tensor([0.7, 0.7, 2.5, 1.0])))
        >>> mask = PointsToMask(world_convention="RAS")([[2.8, 2.8, 5.0, 3.0]], image=ct)
        >>> mask.shape
        torch.Size([1, 8, 8, 4])
    """

    item_name = "point"
    item_plural = "points"

    def __init__(
        self,
        diameter: float | None = None,
        space: PointSpace | str = PointSpace.WORLD,
        world_convention: WorldConvention | str | None = None,
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
        if diameter is not None and not (np.isfinite(diameter) and diameter > 0):
            raise ValueError(f"diameter must be a positive number, got {diameter}.")
        self.diameter = diameter
        self.space = look_up_option(space, PointSpace)
        self.world_convention = None if world_convention is None else look_up_option(world_convention, WorldConvention)

    def __call__(  # type: ignore[override]
        self,
        points: NdarrayOrTensor | Sequence[Sequence[float]] | None,
        labels: Sequence[Any] | NdarrayOrTensor | None = None,
        image: NdarrayOrTensor | None = None,
        readers: Sequence[Any] | NdarrayOrTensor | None = None,
        image_readers: Sequence[Any] | None = None,
        spatial_size: Sequence[int] | None = None,
        context: str | None = None,
        diameters: float | Sequence[float] | NdarrayOrTensor | None = None,
    ) -> NdarrayOrTensor:
        """Rasterise ``points``.

        Args:
            points: (N, dims) centres, or (N, dims + 1) with the diameter in the last column (a LUNA16 row:
                coordX, coordY, coordZ, diameter_mm).
            labels, image, readers, image_readers, spatial_size, context: as :meth:`BoxesToMask.__call__`.
                ``space="world"`` needs ``image`` to be a ``MetaTensor`` (its affine).
            diameters: (N,) diameters or one for all; else the last column of ``points``, else ``diameter``.

        Returns:
            float32 mask (C, *spatial).

        Raises:
            ValueError: bad shapes, no diameter, world points without an affine, or an invalid point when
                ``invalid="raise"``.
        """
        return self._make_mask(
            points, labels, image, readers, image_readers, spatial_size, context, diameters=diameters
        )

    def _normalize(self, annotations: Any, labels: Any, geometry: _Geometry, ctx: str) -> tuple[Any, Any]:
        sd = geometry.spatial_dims
        if sd not in (2, 3):
            raise ValueError(f"points need a 2D or 3D image, got spatial size {geometry.spatial_size}{ctx}.")
        if annotations is None:
            return np.zeros((0, sd)), labels
        if hasattr(annotations, "detach"):
            annotations = annotations.detach().cpu().numpy()
        try:
            shape = np.shape(np.asarray(annotations, dtype=np.float64))
        except (TypeError, ValueError):
            shape = ()
        width = sd + 1 if len(shape) == 2 and shape[1] == sd + 1 else sd
        return _as_float_rows(annotations, width, self.item_plural, ctx), labels

    def _prepare(self, items: Any, geometry: _Geometry, ctx: str, **kwargs: Any) -> _Prepared:
        sd, n = geometry.spatial_dims, items.shape[0]
        diameters = kwargs.get("diameters")
        if items.shape[1] == sd + 1:
            if diameters is not None:
                raise ValueError(f"points carry a diameter column and diameters were also given{ctx}.")
            centres, diam = items[:, :sd], items[:, sd]
        else:
            centres = items
            given = diameters if diameters is not None else self.diameter
            if n == 0:
                return _Prepared(keep=[])
            if given is None:
                raise ValueError(f"points need a diameter (a last column, diameters=... or diameter=...){ctx}.")
            if hasattr(given, "detach"):
                given = given.detach().cpu().numpy()
            diam = np.asarray(given, dtype=np.float64).reshape(-1)
            if diam.size not in (1, n):
                raise ValueError(f"got {n} points but {diam.size} diameters{ctx}.")
            diam = np.broadcast_to(diam, (n,))
        if n == 0:
            return _Prepared(keep=[])
        finite = np.isfinite(centres).all(axis=1)
        if self.space == PointSpace.WORLD:
            if geometry.affine is None:
                raise ValueError(f"world-space points need the reference image's affine (a MetaTensor image){ctx}.")
            affine = to_affine_nd(sd, geometry.affine)
            linear = affine[:sd, :sd]
            if not np.all(np.isfinite(affine)) or np.linalg.matrix_rank(linear) < sd:
                raise ValueError(
                    f"world-space points need a finite and invertible image affine, got {affine.tolist()}{ctx}."
                )
            voxels = world_to_voxel(
                np.where(finite[:, None], centres, 0.0), geometry.affine, self.world_convention, geometry.space
            )
            gram = linear.T @ linear
        else:
            voxels = self._swap_if_yx(np.where(finite[:, None], centres, 0.0))
            gram = np.eye(sd)
        size = np.asarray(geometry.spatial_size, dtype=np.float64)
        extent_unit = np.sqrt(np.clip(np.diag(np.linalg.inv(gram)), 0.0, None))
        reasons: list[str | None] = [None] * n
        patches: list[Any] = [None] * n
        clipped = np.zeros(n, dtype=bool)
        for i in range(n):
            values = items[i].tolist()
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
            patch = (
                ellipsoid_patch(voxels[i], metric, geometry.spatial_size) if np.all(np.isfinite(voxels[i])) else None
            )
            if patch is None:
                reasons[i] = (
                    f"lies entirely outside the image of size {geometry.spatial_size} "
                    f"(voxel centre {np.round(voxels[i], 3).tolist()}): {values}"
                )
                continue
            patches[i] = patch
            ext = radius * extent_unit
            clipped[i] = bool(np.any(voxels[i] - ext < -0.5) or np.any(voxels[i] + ext > size - 0.5))
        keep = self._apply_policy(reasons, ctx)
        return _Prepared(keep=keep, patches=[patches[i] for i in keep], clipped=int(clipped[keep].sum()) if keep else 0)


class PointsToMaskd(AnnotationToMaskd):
    """Dictionary form of :class:`PointsToMask`.

    Args:
        keys: point key(s). Default ``"points"``.
        ref_key, mask_key: reference image key (default ``"image"``) and output key(s) (default ``"mask"``).
        label_key, reader_key, image_readers_key: defaults ``"point_labels"``, ``"point_readers"``, ``"readers"``.
        diameter_key: key of the (N,) diameters, used when present (default ``"point_diameters"``); otherwise the
            last column of the points or ``diameter``.
        allow_missing_keys: skip absent point keys.
        Other arguments: see :class:`PointsToMask`.
    """

    def __init__(
        self,
        keys: KeysCollection = "points",
        ref_key: Hashable = "image",
        mask_key: KeysCollection = "mask",
        label_key: KeysCollection | None = "point_labels",
        reader_key: KeysCollection | None = "point_readers",
        image_readers_key: Hashable | None = "readers",
        diameter_key: Hashable | None = "point_diameters",
        diameter: float | None = None,
        space: PointSpace | str = PointSpace.WORLD,
        world_convention: WorldConvention | str | None = None,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        per_instance: bool = False,
        fusion: FusionMethod | str | None = None,
        spatial_layout: SpatialLayout | str = SpatialLayout.XY,
        sigma: float | Sequence[float] = 0.0,
        invalid: InvalidPolicy | str = InvalidPolicy.RAISE,
        allow_missing_keys: bool = False,
    ) -> None:
        converter = PointsToMask(
            diameter=diameter,
            space=space,
            world_convention=world_convention,
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
        self.diameter_key = diameter_key

    def _extra(self, d: Mapping, key: Hashable) -> dict[str, Any]:
        if self.diameter_key is not None and d.get(self.diameter_key) is not None:
            return {"diameters": d[self.diameter_key]}
        return {}


PointsToMaskD = PointsToMaskDict = PointsToMaskd
