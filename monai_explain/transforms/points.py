"""Points + diameters -> spheres / discs (LUNA16 nodules), from world millimetres through the image affine."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.utils import look_up_option

from .annotation_mask import AnnotationToMask, AnnotationToMaskd
from .functional import AnnotationRegions, ReferenceGrid, as_coordinate_rows, rasterize_points, world_to_voxel
from .options import FusionMethod, InvalidPolicy, PointSpace, SpatialLayout, WorldConvention

__all__ = [
    "PointSpace",
    "PointsToMask",
    "PointsToMaskD",
    "PointsToMaskDict",
    "PointsToMaskd",
    "WorldConvention",
    "world_to_voxel",
]


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
        num_classes, class_names, per_instance, fusion, spatial_layout, sigma, invalid, allow_transformed_image:
            see :class:`~monai_explain.transforms.AnnotationToMask`. World-space points are accepted after spatial
            transforms of the image (they go through its affine); voxel points are not (see the base class).

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
        return super().__call__(
            points, labels, image, readers, image_readers, spatial_size, context, diameters=diameters
        )

    def _normalize(self, annotations: Any, labels: Any, grid: ReferenceGrid, ctx: str) -> tuple[Any, Any]:
        sd = grid.spatial_dims
        if sd not in (2, 3):
            raise ValueError(f"points need a 2D or 3D image, got spatial size {grid.spatial_size}{ctx}.")
        if annotations is None:
            return np.zeros((0, sd)), labels
        if hasattr(annotations, "detach"):
            annotations = annotations.detach().cpu().numpy()
        try:
            shape = np.shape(np.asarray(annotations, dtype=np.float64))
        except (TypeError, ValueError):
            shape = ()
        width = sd + 1 if len(shape) == 2 and shape[1] == sd + 1 else sd
        return as_coordinate_rows(annotations, width, self.item_plural, ctx), labels

    def _grid_sensitive(self) -> bool:
        # world points go through the affine, which MONAI's spatial transforms keep up to date
        return self.space == PointSpace.VOXEL

    def _rasterize(self, items: Any, grid: ReferenceGrid, ctx: str, **kwargs: Any) -> AnnotationRegions:
        sd, n = grid.spatial_dims, items.shape[0]
        diameters = kwargs.get("diameters")
        if items.shape[1] == sd + 1:
            if diameters is not None:
                raise ValueError(f"points carry a diameter column and diameters were also given{ctx}.")
            centres, diam = items[:, :sd], items[:, sd]
        else:
            centres = items
            diam = diameters if diameters is not None else self.diameter
            if n and diam is None:
                raise ValueError(f"points need a diameter (a last column, diameters=... or diameter=...){ctx}.")
        return rasterize_points(
            centres,
            1.0 if diam is None else diam,
            grid.spatial_size,
            self.space,
            grid.affine,
            self.world_convention,
            grid.space,
            self.spatial_layout,
            ctx,
        )


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
        allow_transformed_image: bool = False,
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
            allow_transformed_image=allow_transformed_image,
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
