"""BoxesToMask / BoxesToMaskd: box modes, rounding, coordinate order, margins, bad boxes, properties."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from monai.data import MetaTensor
from monai.transforms import LoadImaged
from PIL import Image

from monai_explain.transforms import BoxesToMask, BoxesToMaskd, annotation_stats, round_boxes

# ----------------------------------------------------------------------------- box modes, 2D and 3D
# 2D image (x=6, y=5); the box covers x in [1, 4), y in [2, 4): pixels x=1..3, y=2..3
MODES_2D = [
    ("xyxy", [1, 2, 4, 4]),
    ("xywh", [1, 2, 3, 2]),
    ("ccwh", [2.5, 3, 3, 2]),
    ("xxyy", [1, 4, 2, 4]),
]
# 3D image (5, 4, 3); the box covers x in [1, 3), y in [0, 2), z in [1, 3)
MODES_3D = [
    ("xyzxyz", [1, 0, 1, 3, 2, 3]),
    ("xyzwhd", [1, 0, 1, 2, 2, 2]),
    ("cccwhd", [2, 1, 2, 2, 2, 2]),
    ("xxyyzz", [1, 3, 0, 2, 1, 3]),
    ("xyxyzz", [1, 0, 3, 2, 1, 3]),
]


@pytest.mark.parametrize("mode, box", MODES_2D)
def test_box_modes_2d(mode, box):
    out = BoxesToMask(box_mode=mode)([box], image=torch.rand(1, 6, 5))
    expected = np.zeros((1, 6, 5), np.float32)
    expected[0, 1:4, 2:4] = 1
    np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize("mode, box", MODES_3D)
def test_box_modes_3d(mode, box):
    out = BoxesToMask(box_mode=mode)(np.array([box], dtype=np.float64), image=torch.rand(1, 5, 4, 3))
    expected = np.zeros((1, 5, 4, 3), np.float32)
    expected[0, 1:3, 0:2, 1:3] = 1
    np.testing.assert_array_equal(out.numpy(), expected)


def test_default_mode_is_standard_mode_and_bad_mode():
    np.testing.assert_array_equal(
        BoxesToMask()([[1, 2, 4, 4]], spatial_size=(6, 5)),
        BoxesToMask(box_mode="xyxy")([[1, 2, 4, 4]], spatial_size=(6, 5)),
    )
    with pytest.raises(ValueError, match="Unsupported box mode"):
        BoxesToMask(box_mode="xyhw")


# ----------------------------------------------------------------------------- rounding of float boxes
@pytest.mark.parametrize(
    "rounding, expected_rows",
    [
        # box x in [0.5, 2.5], y in [1.2, 3.0] on a 4x4 image; rows below are x, columns y
        ("outer", [[0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]),  # x 0..2, y 1..2
        ("nearest", [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]),  # x [1, 3), y [1, 3)
        ("inner", [[0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]),  # x [1, 2), y [2, 3)
    ],
)
def test_rounding(rounding, expected_rows):
    out = BoxesToMask(rounding=rounding)([[0.5, 1.2, 2.5, 3.0]], spatial_size=(4, 4))
    np.testing.assert_array_equal(out[0].numpy(), np.array(expected_rows, np.float32))


def test_round_boxes_snaps_float_noise():
    np.testing.assert_array_equal(round_boxes(np.array([[0.99999999, 1.2, 3.00000001, 2.0]])), [[1, 1, 3, 2]])
    np.testing.assert_array_equal(round_boxes(np.array([[0.5, 0.5, 1.5, 2.5]]), "nearest"), [[1, 1, 2, 3]])


def test_float32_size_mode_does_not_gain_a_row():
    # MONAI converts sizes through float32; 0.7 + 0.3 must still end at pixel edge 1, not 2
    out = BoxesToMask(box_mode="xywh")([[0.7, 0.0, 0.3, 1.0]], spatial_size=(4, 2))
    np.testing.assert_array_equal(out[0].numpy(), [[1, 0], [0, 0], [0, 0], [0, 0]])


# ----------------------------------------------------------------------------- coordinate order
def test_coordinate_order_xy_vs_yx_pixel_exact():
    box = [[1, 2, 4, 4]]  # dataset (x=column, y=row): columns 1..3, rows 2..3
    xy = BoxesToMask()(box, image=torch.rand(1, 6, 5))  # MONAI reader layout (C, x, y)
    yx = BoxesToMask(spatial_layout="yx")(box, image=torch.rand(1, 5, 6))  # numpy layout (C, rows, cols)
    expected_yx = np.zeros((5, 6), np.float32)
    expected_yx[2:4, 1:4] = 1
    np.testing.assert_array_equal(yx[0].numpy(), expected_yx)
    np.testing.assert_array_equal(xy[0].numpy(), expected_yx.T)


def test_coordinate_order_3d_yx_swaps_only_x_and_y():
    out = BoxesToMask(spatial_layout="yx")([[0, 1, 2, 1, 3, 3]], spatial_size=(4, 2, 3))  # (rows, cols, slices)
    expected = np.zeros((4, 2, 3), np.float32)
    expected[1:3, 0:1, 2:3] = 1
    np.testing.assert_array_equal(out[0].numpy(), expected)


def test_dataset_box_on_images_loaded_both_ways(tmp_path):
    """A PNG with a bright rectangle at columns 5..14, rows 8..19 and its dataset box (x, y) = (column, row)."""
    pixels = np.zeros((30, 40), np.uint8)  # (rows, columns), as PIL/numpy store it
    pixels[8:20, 5:15] = 255
    path = str(tmp_path / "cxr.png")
    Image.fromarray(pixels).save(path)
    box = np.array([[5.0, 8.0, 15.0, 20.0]])  # xyxy in (column, row)

    data = LoadImaged("image", ensure_channel_first=True, image_only=True)({"image": path, "boxes": box})
    assert tuple(data["image"].shape) == (1, 40, 30)  # MONAI's PILReader: first spatial axis = column
    loaded = BoxesToMaskd()(data)
    np.testing.assert_array_equal(loaded["mask"][0].numpy(), (data["image"][0].numpy() > 0).astype(np.float32))

    as_array = np.asarray(Image.open(path))[None].astype(np.float32)  # (1, rows, columns)
    stored = BoxesToMask(spatial_layout="yx")(box, image=as_array)
    np.testing.assert_array_equal(stored[0], (as_array[0] > 0).astype(np.float32))


# ----------------------------------------------------------------------------- margins
@pytest.mark.parametrize(
    "margin, mode, box, region",
    [
        (1, "pixel", [2, 2, 4, 4], (slice(1, 5), slice(1, 5))),
        ((1, 0), "pixel", [2, 2, 4, 4], (slice(1, 5), slice(2, 4))),
        (-1, "pixel", [1, 1, 5, 5], (slice(2, 4), slice(2, 4))),
        (0.5, "fraction", [2, 2, 4, 4], (slice(1, 5), slice(1, 5))),  # each side by 0.5 * size 2 = 1
        (-0.25, "fraction", [0, 0, 8, 4], (slice(2, 6), slice(1, 3))),  # sides by 2 along x, 1 along y
        (0.5, "pixel", [2, 2, 4, 4], (slice(1, 5), slice(1, 5))),  # [1.5, 4.5] -> outer rounding
    ],
)
def test_margin(margin, mode, box, region):
    out = BoxesToMask(margin=margin, margin_mode=mode)([box], spatial_size=(8, 6))
    expected = np.zeros((8, 6), np.float32)
    expected[region] = 1
    np.testing.assert_array_equal(out[0].numpy(), expected)


def test_margin_in_dataset_order_with_yx_layout():
    out = BoxesToMask(margin=(1, 0), spatial_layout="yx")([[2, 2, 4, 4]], spatial_size=(6, 8))  # x grows
    expected = np.zeros((6, 8), np.float32)
    expected[2:4, 1:5] = 1
    np.testing.assert_array_equal(out[0].numpy(), expected)


def test_margin_errors():
    with pytest.raises(ValueError, match="no extent left after margin"):
        BoxesToMask(margin=-1)([[1, 1, 3, 5]], spatial_size=(8, 8))
    with pytest.raises(ValueError, match="> -0.5"):
        BoxesToMask(margin=-0.5, margin_mode="fraction")
    with pytest.raises(ValueError, match="finite"):
        BoxesToMask(margin=float("nan"))
    with pytest.raises(ValueError, match="scalar or have 2 values"):
        BoxesToMask(margin=(1, 2, 3))([[1, 1, 3, 5]], spatial_size=(8, 8))


# ----------------------------------------------------------------------------- bad boxes
@pytest.mark.parametrize(
    "boxes, mode, match",
    [
        ([[0, 0, 2, 2], [float("nan"), 1, 2, 2]], "xyxy", r"box 1 has a NaN or infinite coordinate"),
        ([[0, 0, 2, float("inf")]], "xyxy", r"box 0 has a NaN or infinite"),
        ([[3, 0, 1, 2]], "xyxy", r"box 0 is inverted"),
        ([[1, 1, -2, 2]], "xywh", r"box 0 is inverted"),
        ([[2, 2, 2, -1]], "ccwh", r"box 0 is inverted"),
        ([[1, 1, 1, 3]], "xyxy", r"box 0 is degenerate"),
        ([[1, 1, 0, 3]], "xywh", r"box 0 is degenerate"),
        ([[0, 0, 1, 1], [9, 9, 12, 12]], "xyxy", r"box 1 lies entirely outside the image of size \(8, 6\)"),
        ([[-5, 1, -1, 2]], "xyxy", r"box 0 lies entirely outside"),
        ([[1, 1, 2, 2, 3]], "xyxy", r"must have shape \(N, 4\)"),
        ([[1, 1, 2, 2, 3, 3]], "xyxy", r"must have shape \(N, 4\)"),
        ([[1, "a", 2, 2]], "xyxy", r"numeric array of shape \(N, 4\)"),
    ],
)
def test_invalid_boxes_raise(boxes, mode, match):
    with pytest.raises(ValueError, match=match):
        BoxesToMask(box_mode=mode)(boxes, image=torch.rand(1, 8, 6))


def test_inner_rounding_can_leave_no_pixel():
    with pytest.raises(ValueError, match="box 0 covers no pixel after inner rounding"):
        BoxesToMask(rounding="inner")([[0.2, 0.2, 0.8, 3]], spatial_size=(4, 4))


def test_invalid_boxes_dropped_counted_and_logged(caplog):
    t = BoxesToMask(invalid="drop")
    boxes = [[1, 1, 3, 3], [np.nan, 0, 1, 1], [4, 0, 2, 2], [2, 2, 2, 4], [10, 10, 11, 11], [-2, 4, 2, 8]]
    with caplog.at_level(logging.INFO, logger="monai_explain.transforms.annotation_mask"):
        out = t(boxes, image=torch.rand(1, 8, 6))
    expected = np.zeros((8, 6), np.float32)
    expected[1:3, 1:3] = 1
    expected[0:2, 4:6] = 1  # the last box, clipped
    np.testing.assert_array_equal(out[0].numpy(), expected)
    stats = annotation_stats(out)
    assert stats["dropped"] == 4 and stats["clipped"] == 1 and stats["annotations"] == 6 and stats["kept"] == 2
    for index in (1, 2, 3, 4):
        assert f"dropped box {index} " in caplog.text
    assert "1 of 6 boxes clipped" in caplog.text


def test_clipped_boxes_are_counted(caplog):
    t = BoxesToMask()
    with caplog.at_level(logging.INFO, logger="monai_explain.transforms.annotation_mask"):
        out = t(np.array([[-2.0, 1.0, 3.0, 3.0], [1, 1, 2, 2]]), image=torch.rand(1, 4, 4))
    expected = np.zeros((4, 4), np.float32)
    expected[0:3, 1:3] = 1
    np.testing.assert_array_equal(out[0].numpy(), expected)
    assert annotation_stats(out)["clipped"] == 1 and "1 of 2 boxes clipped to the image of size (4, 4)" in caplog.text


def test_torch_boxes_and_many_boxes_chunked():
    boxes = torch.tensor([[i % 7, i % 5, i % 7 + 1, i % 5 + 1] for i in range(35)], dtype=torch.float32)
    out = BoxesToMask()(boxes, spatial_size=(7, 5))
    np.testing.assert_array_equal(out[0].numpy(), np.ones((7, 5), np.float32))  # 35 distinct unit boxes


# ----------------------------------------------------------------------------- dictionary form
def test_dict_form_accepts_lists_and_arrays():
    image = MetaTensor(torch.rand(1, 6, 5))
    a = BoxesToMaskd(box_mode="xywh")({"image": image, "boxes": [[1, 2, 3, 2]]})["mask"]
    b = BoxesToMaskd(box_mode="xywh")({"image": image, "boxes": np.array([[1, 2, 3, 2]], np.float32)})["mask"]
    assert torch.equal(a, b) and float(a.sum()) == 6.0


# ----------------------------------------------------------------------------- properties
SIZE_2D, SIZE_3D = (16, 12), (6, 5, 4)
coordinate = st.one_of(
    st.floats(min_value=-8, max_value=24, allow_nan=False, width=64),
    st.integers(min_value=-8, max_value=24).map(float),
    st.just(float("nan")),
)


def _expected_box(box, size):
    """Documented rule, written independently: None for an invalid box, else the clipped pixel range."""
    sd = len(size)
    b = np.asarray(box, dtype=np.float64)
    lo, hi = b[:sd], b[sd:]
    if not np.all(np.isfinite(b)) or np.any(hi <= lo):
        return None
    snap = [round(v) if abs(v - round(v)) <= 1e-4 else v for v in b.tolist()]
    start = [max(math.floor(v), 0) for v in snap[:sd]]
    stop = [min(math.ceil(v), s) for v, s in zip(snap[sd:], size)]
    if any(e <= s for s, e in zip(start, stop)):
        return None
    return tuple(slice(s, e) for s, e in zip(start, stop))


def _check_single_box(box, size, invalid):
    region = _expected_box(box, size)
    t = BoxesToMask(invalid=invalid)
    if region is None and invalid == "raise":
        with pytest.raises(ValueError, match=r"^box 0 (has a NaN|is inverted|is degenerate|lies entirely|covers no)"):
            t([box], spatial_size=size)
        return
    mask = t([box], spatial_size=size)
    out = mask[0].numpy()
    expected = np.zeros(size, np.float32)
    if region is not None:
        expected[region] = 1
    np.testing.assert_array_equal(out, expected)
    assert out.sum() == (0 if region is None else math.prod(s.stop - s.start for s in region))
    assert annotation_stats(mask)["dropped"] == (1 if region is None else 0)


@settings(max_examples=200, deadline=None)
@given(box=st.lists(coordinate, min_size=4, max_size=4), invalid=st.sampled_from(["raise", "drop"]))
def test_property_single_box_2d(box, invalid):
    _check_single_box(box, SIZE_2D, invalid)


@settings(max_examples=200, deadline=None)
@given(box=st.lists(coordinate, min_size=6, max_size=6), invalid=st.sampled_from(["raise", "drop"]))
def test_property_single_box_3d(box, invalid):
    _check_single_box(box, SIZE_3D, invalid)


@settings(max_examples=200, deadline=None)
@given(boxes=st.lists(st.lists(coordinate, min_size=4, max_size=4), min_size=0, max_size=5))
def test_property_union_of_boxes_with_drop(boxes):
    t = BoxesToMask(invalid="drop", per_instance=False)
    mask = t(np.array(boxes, dtype=np.float64).reshape(-1, 4), spatial_size=SIZE_2D)
    out = mask[0].numpy()
    expected = np.zeros(SIZE_2D, np.float32)
    n_invalid = 0
    for box in boxes:
        region = _expected_box(box, SIZE_2D)
        if region is None:
            n_invalid += 1
        else:
            expected[region] = 1
    np.testing.assert_array_equal(out, expected)
    assert annotation_stats(mask)["dropped"] == n_invalid
