"""Coordinate helpers of the rasterisers (monai_explain.transforms.geometry), by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_explain.transforms.geometry import (
    as_coordinate_rows,
    ellipsoid_patch,
    round_boxes,
    storage_shape,
    swap_xy,
    world_to_voxel,
)


def test_swap_xy_and_storage_shape():
    coords = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert swap_xy(coords).tolist() == [[2.0, 1.0, 3.0], [5.0, 4.0, 6.0]] and coords[0, 0] == 1.0  # a copy
    assert storage_shape((6, 4)) == (4, 6) and storage_shape((6, 4, 3)) == (4, 6, 3)
    assert storage_shape((6, 4), "yx") == (6, 4)


def test_as_coordinate_rows():
    assert as_coordinate_rows(None, 4).shape == (0, 4) and as_coordinate_rows([], 6).shape == (0, 6)
    np.testing.assert_array_equal(as_coordinate_rows(torch.tensor([[1, 2, 3, 4]]), 4), [[1.0, 2.0, 3.0, 4.0]])
    with pytest.raises(ValueError, match=r"boxes must have shape \(N, 4\), got \(1, 3\) \(key 'b'\)"):
        as_coordinate_rows([[1, 2, 3]], 4, "boxes", " (key 'b')")
    with pytest.raises(ValueError, match="numeric array"):
        as_coordinate_rows([["a", "b"]], 2)


@pytest.mark.parametrize(
    "rounding, expected", [("outer", [0, 1, 3, 3]), ("inner", [1, 2, 2, 3]), ("nearest", [1, 1, 3, 3])]
)
def test_round_boxes(rounding, expected):
    assert round_boxes(np.array([[0.5, 1.2, 2.5, 3.00001]]), rounding).tolist() == [expected]


def test_world_to_voxel_and_ellipsoid_patch():
    affine = np.diag([2.0, 2.0, 1.0])
    affine[:2, 2] = [10.0, -4.0]
    np.testing.assert_allclose(world_to_voxel([[14.0, 0.0]], affine), [[2.0, 2.0]])
    np.testing.assert_allclose(world_to_voxel([[-14.0, 0.0]], affine, "LPS", "RAS"), [[2.0, 2.0]])  # x, y negated
    sl, patch = ellipsoid_patch([0.2, 0.0], np.diag([1.0, 0.25]), (4, 4))  # semi-axes 1 and 2, at the corner
    # (j0 - 0.2)^2 + j1^2 / 4 <= 1: (0, 2) gives 1.04 and (2, 0) gives 3.24, both outside
    assert sl == (slice(0, 3), slice(0, 3)) and patch.astype(int).tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 0]]
    assert ellipsoid_patch([10.0, 10.0], np.eye(2), (4, 4)) is None
    with pytest.raises(ValueError, match="positive definite"):
        ellipsoid_patch([1.0, 1.0], np.zeros((2, 2)), (4, 4))
