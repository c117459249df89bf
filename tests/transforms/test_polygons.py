"""PolygonsToMask / PolygonsToMaskd: pixel-centre rule, CheXlocalize mapping, layouts, bad polygons."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_explain.transforms import BoxesToMask, PolygonsToMask, PolygonsToMaskd, PolygonsToMaskDict, annotation_stats

SQUARE = [[1, 1], [4, 1], [4, 3], [1, 3]]  # x in [1, 4], y in [1, 3]
TRIANGLE = [[0, 0], [4, 0], [0, 4]]  # pixel centres with x + y <= 4 (on the hypotenuse included)
# (x, y) layout, rows are x: centre (i + .5) + (j + .5) <= 4  <=>  i + j <= 3
TRIANGLE_5x5 = np.array(
    [[1, 1, 1, 1, 0], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=np.float32
)
# an L shape (not symmetric under x <-> y): x in [0, 3] for y in [0, 1], plus x in [0, 1] for y in [1, 4]
L_SHAPE = [[0, 0], [3, 0], [3, 1], [1, 1], [1, 4], [0, 4]]
L_XY = np.zeros((4, 5), np.float32)
L_XY[0:3, 0] = 1
L_XY[0, 0:4] = 1


def test_rectangle_polygon_equals_box():
    poly = PolygonsToMask()([SQUARE], spatial_size=(5, 4))
    box = BoxesToMask()([[1, 1, 4, 3]], spatial_size=(5, 4))
    expected = np.zeros((5, 4), np.float32)
    expected[1:4, 1:3] = 1
    np.testing.assert_array_equal(poly[0].numpy(), expected)
    np.testing.assert_array_equal(poly.numpy(), box.numpy())


@pytest.mark.parametrize("vertices", [TRIANGLE, TRIANGLE[::-1]])
def test_triangle_edges_inclusive_either_orientation(vertices):
    out = PolygonsToMask()([vertices], image=torch.rand(1, 5, 5))
    np.testing.assert_array_equal(out[0].numpy(), TRIANGLE_5x5)


@pytest.mark.parametrize("vertices", [L_SHAPE, L_SHAPE[::-1]])
def test_layouts_pixel_exact(vertices):
    xy = PolygonsToMask()([vertices], spatial_size=(4, 5))
    yx = PolygonsToMask(spatial_layout="yx")([vertices], spatial_size=(5, 4))
    np.testing.assert_array_equal(xy[0].numpy(), L_XY)
    np.testing.assert_array_equal(yx[0].numpy(), L_XY.T)


def test_several_polygons_per_class_are_unioned_and_array_input():
    polys = np.array([[[0, 0], [2, 0], [2, 1], [0, 1]], [[3, 2], [5, 2], [5, 4], [3, 4]]], dtype=np.float64)
    out = PolygonsToMask()(polys, spatial_size=(5, 4))
    expected = np.zeros((5, 4), np.float32)
    expected[0:2, 0] = 1
    expected[3:5, 2:4] = 1
    np.testing.assert_array_equal(out[0].numpy(), expected)


def test_chexlocalize_mapping_per_class():
    record = {
        "img_size": [4, 5],  # [h, w] = (rows, columns)
        "Edema": [SQUARE],
        "Cardiomegaly": [[[0, 0], [1, 0], [1, 1], [0, 1]], [[4, 3], [5, 3], [5, 4], [4, 4]]],
        "Atelectasis": [],
    }
    names = ["Atelectasis", "Cardiomegaly", "Edema"]
    out = PolygonsToMask(class_names=names)(record, image=torch.rand(1, 5, 4))
    expected = np.zeros((3, 5, 4), np.float32)
    expected[1, 0, 0] = 1
    expected[1, 4, 3] = 1
    expected[2, 1:4, 1:3] = 1
    np.testing.assert_array_equal(out.numpy(), expected)
    merged = PolygonsToMask()(record, image=torch.rand(1, 5, 4))
    np.testing.assert_array_equal(merged[0].numpy(), expected.max(0))


def test_clipped_polygon_counted(caplog):
    t = PolygonsToMask()
    with caplog.at_level(logging.INFO, logger="monai_explain.transforms.annotation_mask"):
        out = t([[[-2, -2], [2, -2], [2, 2], [-2, 2]]], spatial_size=(4, 4))
    expected = np.zeros((4, 4), np.float32)
    expected[0:2, 0:2] = 1
    np.testing.assert_array_equal(out[0].numpy(), expected)
    assert annotation_stats(out)["clipped"] == 1 and "1 of 1 polygons clipped" in caplog.text


@pytest.mark.parametrize(
    "polygons, match",
    [
        ([[[0, 0], [2, 0]]], "polygon 0 has 2 vertices, fewer than 3"),
        ([SQUARE, [[0, 0], [2, float("nan")], [2, 2]]], "polygon 1 has a NaN"),
        ([[[0, 0], [1, 1], [2, 2]]], r"polygon 0 is degenerate \(zero area\)"),
        ([[[6, 6], [8, 6], [8, 8]]], r"polygon 0 lies entirely outside the image of size \(5, 4\)"),
        ([[[1.1, 1.1], [1.4, 1.1], [1.4, 1.4]]], "polygon 0 covers no pixel centre"),
        ([[[0, 0, 0], [1, 0, 0], [1, 1, 0]]], r"polygon 0 must have shape \(V, 2\)"),
        ([[["a", 0], [1, 0], [1, 1]]], "polygon 0 is not a numeric list"),
    ],
)
def test_invalid_polygons(polygons, match):
    with pytest.raises(ValueError, match=match):
        PolygonsToMask()(polygons, spatial_size=(5, 4))
    t = PolygonsToMask(invalid="drop")
    assert annotation_stats(t(polygons, spatial_size=(5, 4)))["dropped"] == 1


def test_bad_polygon_input():
    with pytest.raises(ValueError, match="polygons need a 2D image"):
        PolygonsToMask()([SQUARE], spatial_size=(5, 4, 3))
    with pytest.raises(ValueError, match=r"img_size \[5, 4\] does not match the image \(rows, columns\) \[4, 5\]"):
        PolygonsToMask()({"img_size": [5, 4], "Edema": [SQUARE]}, spatial_size=(5, 4))
    with pytest.raises(ValueError, match="carry their labels"):
        PolygonsToMask(num_classes=2)({"Edema": [SQUARE]}, labels=[0], spatial_size=(5, 4))


def test_dict_form_with_meta():
    assert PolygonsToMaskDict is PolygonsToMaskd
    image = MetaTensor(torch.rand(1, 5, 4), meta={"filename_or_obj": "patient1_study1_view1_frontal.jpg"})
    out = PolygonsToMaskd(class_names=["Edema"])({"image": image, "polygons": {"Edema": [SQUARE]}})
    assert tuple(out["mask"].shape) == (1, 5, 4) and float(out["mask"].sum()) == 6.0
    with pytest.raises(ValueError, match=r"polygon 0 has 2 vertices.*key 'polygons'.*patient1_study1"):
        PolygonsToMaskd()({"image": image, "polygons": [[[0, 0], [1, 1]]]})
