"""EllipsesToMask / EllipsesToMaskd and the ellipsoid rasteriser, by hand in 2D and 3D."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_explain.transforms import EllipsesToMask, EllipsesToMaskD, EllipsesToMaskd, annotation_stats, ellipsoid_patch

# ellipse in the box [0, 6] x [0, 4]: centre (3, 2), half axes (3, 2); pixel centres at i + 0.5.
# rows y = 0.5 / 3.5: ((1.5) / 2)^2 = 0.5625, so |x - 3| <= 3 * sqrt(0.4375) = 1.98 -> x = 1.5 .. 4.5 (pixels 1..4)
# rows y = 1.5 / 2.5: 0.0625, so |x - 3| <= 2.90 -> all of x = 0.5 .. 5.5 (pixels 0..5)
ELLIPSE_6x4 = np.array(
    [[0, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 0]], dtype=np.float32
).T  # (x, y)


def test_ellipse_2d_by_hand():
    out = EllipsesToMask()([[0, 0, 6, 4]], image=torch.rand(1, 6, 4))
    np.testing.assert_array_equal(out[0].numpy(), ELLIPSE_6x4)


def test_ellipse_box_modes_and_yx_layout():
    xywh = EllipsesToMask(box_mode="xywh")([[0, 0, 6, 4]], spatial_size=(6, 4))
    np.testing.assert_array_equal(xywh[0].numpy(), ELLIPSE_6x4)
    yx = EllipsesToMask(spatial_layout="yx")([[0, 0, 6, 4]], spatial_size=(4, 6))
    np.testing.assert_array_equal(yx[0].numpy(), ELLIPSE_6x4.T)


def test_ellipsoid_3d_by_hand():
    # box [0, 6] x [0, 4] x [0, 2]: at z = 0.5 and 1.5 the term ((z - 1) / 1)^2 = 0.25 leaves 0.75:
    # y = 0.5 / 3.5 -> |x - 3| <= 3 * sqrt(0.1875) = 1.30 -> pixels 2, 3; y = 1.5 / 2.5 -> |x - 3| <= 2.49 -> 1..4
    plane = np.array([[0, 0, 1, 1, 0, 0], [0, 1, 1, 1, 1, 0], [0, 1, 1, 1, 1, 0], [0, 0, 1, 1, 0, 0]], np.float32).T
    out = EllipsesToMask()([[0, 0, 0, 6, 4, 2]], image=torch.rand(1, 6, 4, 3))
    expected = np.zeros((6, 4, 3), np.float32)
    expected[:, :, 0] = plane
    expected[:, :, 1] = plane
    np.testing.assert_array_equal(out[0].numpy(), expected)


def test_tiny_ellipse_marks_its_pixel():
    out = EllipsesToMask()([[2.2, 1.1, 2.4, 1.3]], spatial_size=(4, 3))
    expected = np.zeros((4, 3), np.float32)
    expected[2, 1] = 1
    np.testing.assert_array_equal(out[0].numpy(), expected)


def test_ellipse_partly_outside_is_clipped_and_counted(caplog):
    t = EllipsesToMask()
    with caplog.at_level(logging.INFO, logger="monai_explain.transforms.annotation_mask"):
        out = t([[-3, 0, 3, 4]], spatial_size=(6, 4))  # right half of the 6x4 ellipse, moved to x = -3
    expected = np.zeros((6, 4), np.float32)
    expected[0:3] = ELLIPSE_6x4[3:6]
    np.testing.assert_array_equal(out[0].numpy(), expected)
    assert annotation_stats(out)["clipped"] == 1 and "1 of 1 ellipses clipped" in caplog.text


def test_ellipse_margin_and_classes():
    out = EllipsesToMask(margin=1, num_classes=2)([[1, 1, 5, 3], [0, 0, 1, 1]], labels=[1, 0], spatial_size=(6, 4))
    np.testing.assert_array_equal(out[1].numpy(), ELLIPSE_6x4)  # [1, 5] x [1, 3] grown by 1 = [0, 6] x [0, 4]
    # [0, 1]^2 grown by 1 is [-1, 2]^2: a disc of radius 1.5 around (0.5, 0.5); inside the image the pixel
    # centres (0.5 | 1.5, 0.5 | 1.5) are within distance sqrt(2) <= 1.5, (2.5, 0.5) is at 2 > 1.5
    expected0 = np.zeros((6, 4), np.float32)
    expected0[0:2, 0:2] = 1
    np.testing.assert_array_equal(out[0].numpy(), expected0)


@pytest.mark.parametrize(
    "ellipses, match",
    [
        ([[0, 0, 2, float("nan")]], "ellipse 0 has a NaN"),
        ([[2, 0, 1, 2]], "ellipse 0 is inverted"),
        ([[1, 0, 1, 2]], "ellipse 0 is degenerate"),
        ([[0, 0, 1, 1], [7, 0, 9, 2]], r"ellipse 1 covers no pixel of the image of size \(6, 4\)"),
        ([[-2, -2, 0.2, 0.2]], "ellipse 0 covers no pixel"),  # only its box corner reaches into the image
    ],
)
def test_invalid_ellipses(ellipses, match):
    with pytest.raises(ValueError, match=match):
        EllipsesToMask()(ellipses, spatial_size=(6, 4))
    t = EllipsesToMask(invalid="drop")
    assert annotation_stats(t(ellipses, spatial_size=(6, 4)))["dropped"] == 1


def test_ellipsoid_patch_metric_and_outside():
    sl, patch = ellipsoid_patch([2.0, 2.0], np.eye(2), (5, 5))
    full = np.zeros((5, 5), bool)
    full[sl] = patch
    expected = np.zeros((5, 5), bool)
    expected[[2, 1, 3, 2, 2], [2, 2, 2, 1, 3]] = True
    np.testing.assert_array_equal(full, expected)
    assert ellipsoid_patch([-5.0, 2.0], np.eye(2), (5, 5)) is None


def test_dict_form():
    assert EllipsesToMaskD is EllipsesToMaskd
    image = MetaTensor(torch.rand(1, 6, 4), affine=torch.diag(torch.tensor([0.2, 0.2, 1.0, 1.0], dtype=torch.float64)))
    d = EllipsesToMaskd()({"image": image, "ellipses": np.array([[0, 0, 6, 4]]), "ellipse_labels": [3]})
    np.testing.assert_array_equal(d["mask"][0].numpy(), ELLIPSE_6x4)
    assert torch.equal(d["mask"].affine, image.affine)
