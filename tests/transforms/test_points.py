"""PointsToMask / PointsToMaskd: spheres from world mm through the affine (LUNA16), LPS/RAS, voxel discs."""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImaged

from monai_explain.transforms import PointsToMask, PointsToMaskD, PointsToMaskd, annotation_stats, world_to_voxel


def _luna_like_affine():
    """Anisotropic spacing, a 30 degree in-plane rotation with a flipped y axis, and an offset origin."""
    a = np.deg2rad(30.0)
    direction = np.array([[np.cos(a), np.sin(a), 0], [np.sin(a), -np.cos(a), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = direction @ np.diag([0.7, 0.9, 2.5])
    affine[:3, 3] = [-120.0, 35.5, -300.0]
    return affine


def _centroid(mask):
    idx = np.argwhere(np.asarray(mask) > 0)
    return idx.mean(axis=0)


def test_world_to_voxel_by_hand():
    affine = np.diag([0.5, 0.5, 2.0, 1.0])
    affine[:3, 3] = [-10, -10, 5]
    np.testing.assert_allclose(world_to_voxel([[-9.0, -8.0, 9.0]], affine), [[2, 4, 2]])
    # LPS point on a RAS affine: x, y flipped first
    np.testing.assert_allclose(world_to_voxel([[9.0, 8.0, 9.0]], affine, "LPS", "RAS"), [[2, 4, 2]])
    np.testing.assert_allclose(world_to_voxel([[9.0, 8.0, 9.0]], affine, "LPS", "LPS"), [[38, 36, 2]])
    # 2D points with a 4x4 affine (what MONAI gives 2D images)
    np.testing.assert_allclose(world_to_voxel([[-9.0, -8.0]], affine), [[2, 4]])
    assert world_to_voxel(np.zeros((0, 3)), affine).shape == (0, 3)
    with pytest.raises(ValueError, match=r"shape \(N, 2 or 3\)"):
        world_to_voxel([[1.0]], affine)


def test_luna16_world_point_lands_at_the_sphere_centroid():
    affine = _luna_like_affine()
    v0 = np.array([12.3, 9.6, 5.2])
    world_ras = affine[:3, :3] @ v0 + affine[:3, 3]
    world_lps = world_ras * np.array([-1, -1, 1])  # what annotations.csv gives
    ct = MetaTensor(torch.rand(1, 28, 24, 12), affine=torch.as_tensor(affine), meta={"space": "RAS"})
    t = PointsToMask(world_convention="LPS")
    mask = t([[*world_lps, 6.0]], image=ct)  # coordX, coordY, coordZ, diameter_mm
    assert torch.equal(mask.affine, ct.affine)
    assert np.all(np.abs(_centroid(mask[0]) - v0) < 0.5)
    # the ellipsoid in voxel space is elongated along the fine axes: radius 3 mm = 4.3, 3.3, 1.2 voxels
    idx = np.argwhere(mask[0].numpy() > 0)
    extent = idx.max(0) - idx.min(0)
    assert extent[0] > extent[1] > extent[2]
    # every marked voxel centre lies within 3 mm of the nodule centre in world space
    world = (affine[:3, :3] @ idx.T).T + affine[:3, 3]
    assert np.all(np.linalg.norm(world - world_ras, axis=1) <= 3.0 + 1e-9)
    # the same point read as RAS lands elsewhere (here: outside the volume)
    with pytest.raises(ValueError, match="point 0 lies entirely outside the image"):
        PointsToMask(world_convention="RAS")([[*world_lps, 6.0]], image=ct)


def test_image_in_lps_space_needs_no_flip():
    affine = _luna_like_affine()
    lps_affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine  # the same grid with an LPS world frame
    v0 = np.array([12.3, 9.6, 5.2])
    world_lps = lps_affine[:3, :3] @ v0 + lps_affine[:3, 3]
    ct = MetaTensor(torch.rand(1, 28, 24, 12), affine=torch.as_tensor(lps_affine), meta={"space": "LPS"})
    for convention in ("LPS", None):
        mask = PointsToMask(world_convention=convention)([[*world_lps, 6.0]], image=ct)
        assert np.all(np.abs(_centroid(mask[0]) - v0) < 0.5)


def test_nifti_round_trip_pixel_exact(tmp_path):
    affine = np.diag([-0.8, 0.8, 2.0, 1.0])
    affine[:3, 3] = [40.0, -20.0, 10.0]
    path = str(tmp_path / "ct.nii.gz")
    nib.save(nib.Nifti1Image(np.random.rand(10, 9, 6).astype(np.float32), affine), path)
    data = LoadImaged("image", ensure_channel_first=True, image_only=True)({"image": path})
    v0 = np.array([4.0, 5.0, 2.0])
    ras = affine[:3, :3] @ v0 + affine[:3, 3]
    # radius 1.5 mm: 1.875 voxels in-plane, 0.75 across slices -> the 3 x 3 in-plane block at slice 2
    expected = np.zeros((10, 9, 6), np.float32)
    expected[3:6, 4:7, 2] = 1
    data["points"] = np.array([ras])
    data["point_diameters"] = np.array([3.0])
    out = PointsToMaskd()(data)
    np.testing.assert_array_equal(out["mask"][0].numpy(), expected)
    lps = ras * np.array([-1, -1, 1])
    out = PointsToMask(world_convention="LPS")(np.array([lps]), image=data["image"], diameters=3.0)
    np.testing.assert_array_equal(out[0].numpy(), expected)


def test_2d_world_point_disc():
    image = MetaTensor(torch.rand(1, 6, 4), affine=torch.diag(torch.tensor([0.5, 0.5, 1.0, 1.0], dtype=torch.float64)))
    # (1.25, 0.75) mm = voxel (2.5, 1.5); radius 0.5 mm = 1 voxel: the 4 voxels around it (distance 0.707)
    out = PointsToMask(diameter=1.0)([[1.25, 0.75]], image=image)
    expected = np.zeros((6, 4), np.float32)
    expected[2:4, 1:3] = 1
    np.testing.assert_array_equal(out[0].numpy(), expected)


@pytest.mark.parametrize(
    "layout, size, region", [("xy", (5, 4), (slice(1, 4), slice(0, 3))), ("yx", (4, 5), (slice(0, 3), slice(1, 4)))]
)
def test_voxel_space_disc_and_layout(layout, size, region):
    # centre (x=2, y=1) in index coordinates, diameter 3 voxels: offsets with dx^2 + dy^2 <= 2.25 -> 3 x 3 block
    out = PointsToMask(space="voxel", diameter=3.0, spatial_layout=layout)([[2, 1]], spatial_size=size)
    expected = np.zeros(size, np.float32)
    expected[region] = 1
    np.testing.assert_array_equal(out[0].numpy(), expected)


def test_tiny_sphere_marks_its_voxel_and_classes():
    out = PointsToMask(space="voxel", num_classes=2)(
        [[1.2, 2.4, 0.0], [3, 3, 1]], labels=[1, 0], spatial_size=(5, 5, 2), diameters=[0.1, 0.1]
    )
    expected = np.zeros((2, 5, 5, 2), np.float32)
    expected[1, 1, 2, 0] = 1
    expected[0, 3, 3, 1] = 1
    np.testing.assert_array_equal(out.numpy(), expected)


def test_partly_outside_is_clipped_and_counted(caplog):
    t = PointsToMask(space="voxel", diameter=3.0)
    with caplog.at_level(logging.INFO, logger="monai_explain.transforms.annotation_mask"):
        out = t([[0, 0]], spatial_size=(4, 4))
    expected = np.zeros((4, 4), np.float32)
    expected[0:2, 0:2] = 1
    np.testing.assert_array_equal(out[0].numpy(), expected)
    assert annotation_stats(out)["clipped"] == 1 and "1 of 1 points clipped" in caplog.text


@pytest.mark.parametrize(
    "points, kwargs, match",
    [
        ([[1, float("nan"), 3.0]], {}, "point 0 has a NaN"),
        ([[1, 1, 0.0]], {}, "point 0 has a non-positive or non-finite diameter 0.0"),
        ([[1, 1, -2.0]], {}, "point 0 has a non-positive"),
        ([[1, 1, 2.0], [40, 40, 2.0]], {}, r"point 1 lies entirely outside the image of size \(5, 5\)"),
    ],
)
def test_invalid_points(points, kwargs, match):
    with pytest.raises(ValueError, match=match):
        PointsToMask(space="voxel", **kwargs)(points, spatial_size=(5, 5))
    t = PointsToMask(space="voxel", invalid="drop", **kwargs)
    assert annotation_stats(t(points, spatial_size=(5, 5)))["dropped"] == 1


def test_bad_point_input():
    with pytest.raises(ValueError, match="need a diameter"):
        PointsToMask(space="voxel")([[1, 1]], spatial_size=(5, 5))
    with pytest.raises(ValueError, match="got 2 points but 3 diameters"):
        PointsToMask(space="voxel")([[1, 1], [2, 2]], spatial_size=(5, 5), diameters=[1, 2, 3])
    with pytest.raises(ValueError, match="diameter column and diameters"):
        PointsToMask(space="voxel")([[1, 1, 2]], spatial_size=(5, 5), diameters=[1])
    with pytest.raises(ValueError, match="need the reference image's affine"):
        PointsToMask(diameter=2.0)([[1, 1]], image=torch.rand(1, 5, 5))
    with pytest.raises(ValueError, match=r"must have shape \(N, 2\)"):
        PointsToMask(space="voxel", diameter=1.0)([[1, 1, 1, 1]], spatial_size=(5, 5))
    with pytest.raises(ValueError, match="positive number"):
        PointsToMask(diameter=0.0)
    with pytest.raises(ValueError, match="LPS|RAS|ras"):
        PointsToMask(world_convention="XYZ")
    assert float(PointsToMask()([], image=torch.rand(1, 3, 3)).sum()) == 0.0


def test_dict_luna16_rows():
    assert PointsToMaskD is PointsToMaskd
    affine = _luna_like_affine()
    ct = MetaTensor(torch.rand(1, 28, 24, 12), affine=torch.as_tensor(affine), meta={"space": "RAS"})
    centres = np.array([[5.0, 6.0, 3.0], [20.0, 15.0, 8.0]])
    rows = []
    for v in centres:
        ras = affine[:3, :3] @ v + affine[:3, 3]
        rows.append([-ras[0], -ras[1], ras[2], 5.0])
    out = PointsToMaskd(world_convention="LPS", per_instance=True)({"image": ct, "points": rows})
    assert tuple(out["mask"].shape) == (2, 28, 24, 12)
    for c, v in enumerate(centres):
        assert np.all(np.abs(_centroid(out["mask"][c]) - v) < 0.5)
