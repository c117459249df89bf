"""SIIM-ACR and COCO RLE: decoders/encoders by hand, RLEToMask / RLEToMaskd layouts, instances, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_explain.transforms import (
    RLEToMask,
    RLEToMaskd,
    RLEToMaskDict,
    annotation_stats,
    coco_counts_from_string,
    coco_counts_to_string,
    decode_coco_rle,
    decode_siim_rle,
    encode_coco_rle,
    encode_siim_rle,
)

# a 3 x 4 image stored (rows, columns); column-major flat index k = column * 3 + row
#   flat:  0 1 2 | 3 4 5 | 6 7 8 | 9 10 11
# SIIM "1 2 4 3": skip 1 -> pixels 1, 2; skip 4 (3..6) -> pixels 7, 8, 9
SIIM_A = "1 2 4 3"
MASK_A = np.array([[0, 0, 0, 1], [1, 0, 1, 0], [1, 0, 1, 0]], dtype=bool)  # (rows, columns)
# SIIM "0 1 10 1": pixel 0 and pixel 11
SIIM_B = "0 1 10 1"
MASK_B = np.array([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]], dtype=bool)


@pytest.mark.parametrize("rle, expected", [(SIIM_A, MASK_A), (SIIM_B, MASK_B), ("-1", np.zeros((3, 4), bool))])
def test_decode_siim_by_hand(rle, expected):
    np.testing.assert_array_equal(decode_siim_rle(rle, (3, 4)), expected)
    if expected.any():
        assert encode_siim_rle(expected) == rle


def test_siim_round_trip_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = rng.random((7, 9)) > 0.6
        np.testing.assert_array_equal(decode_siim_rle(encode_siim_rle(mask), (7, 9)), mask)
    assert encode_siim_rle(np.zeros((2, 2), bool)) == "-1"


@pytest.mark.parametrize(
    "rle, match",
    [
        ("1 2 x 3", "must hold integers"),
        ("1 2 4", "pairs, got 3 values"),
        ("1 2 -1 3", "negative gap at pair 1"),
        ("1 0", "non-positive run length at pair 0"),
        ("5 4 4 3", r"end at pixel 16, past the 12 pixels"),
    ],
)
def test_decode_siim_bad(rle, match):
    with pytest.raises(ValueError, match=match):
        decode_siim_rle(rle, (3, 4))


@pytest.mark.parametrize(
    "counts, text",
    [
        ([3], "3"),
        ([50], "b1"),  # 50 = 18 + 1 * 32: 'b' (18 | continuation 32) then '1'
        ([3, 2, 1], "321"),
        ([3, 2, 1, 4], "3212"),  # 4th count stored as 4 - 2 = 2
        ([1, 5, 1, 2], "151M"),  # 2 - 5 = -3: 29 with the sign bit, no continuation -> 'M'
    ],
)
def test_coco_counts_string_by_hand(counts, text):
    assert coco_counts_to_string(counts) == text
    assert coco_counts_from_string(text) == counts


def test_coco_decode_by_hand_and_round_trip():
    # MASK_A in column-major runs: 1 background, 2 foreground, 4 background, 3 foreground, 2 background
    coco = {"size": [3, 4], "counts": [1, 2, 4, 3, 2]}
    np.testing.assert_array_equal(decode_coco_rle(coco), MASK_A)
    assert encode_coco_rle(MASK_A, compress=False) == coco
    compressed = encode_coco_rle(MASK_A)
    assert compressed["counts"] == coco_counts_to_string([1, 2, 4, 3, 2])
    np.testing.assert_array_equal(decode_coco_rle(compressed), MASK_A)
    np.testing.assert_array_equal(decode_coco_rle({"size": [3, 4], "counts": compressed["counts"].encode()}), MASK_A)
    # a mask starting with foreground has a leading 0 background count
    assert encode_coco_rle(MASK_B, compress=False)["counts"] == [0, 1, 10, 1]
    rng = np.random.default_rng(1)
    for _ in range(20):
        mask = rng.random((9, 11)) > 0.5
        np.testing.assert_array_equal(decode_coco_rle(encode_coco_rle(mask)), mask)


@pytest.mark.parametrize(
    "rle, match",
    [
        ({"size": [3, 4]}, "'size' and 'counts'"),
        ({"size": [3, 4], "counts": [1, 2]}, "sum to 3, not size 3x4 = 12"),
        ({"size": [3, 4], "counts": [13, -1]}, "negative count at 1"),
        ({"size": [3, 4], "counts": "3~"}, "invalid character"),
        ({"size": [3, 4], "counts": "b"}, "ends in the middle of a value"),
    ],
)
def test_decode_coco_bad(rle, match):
    with pytest.raises(ValueError, match=match):
        decode_coco_rle(rle)
    with pytest.raises(ValueError, match=r"RLE 0 is malformed"):
        RLEToMask(spatial_layout="yx")([rle], spatial_size=(3, 4))


def test_encode_coco_needs_2d():
    with pytest.raises(ValueError, match="2D masks"):
        encode_coco_rle(np.zeros((2, 2, 2), bool))


# ----------------------------------------------------------------------------- RLEToMask
@pytest.mark.parametrize("rle", [SIIM_A, {"size": [3, 4], "counts": [1, 2, 4, 3, 2]}])
def test_layouts(rle):
    yx = RLEToMask(spatial_layout="yx")(rle, image=torch.rand(1, 3, 4))  # (C, rows, columns)
    xy = RLEToMask()(rle, image=torch.rand(1, 4, 3))  # MONAI reader layout (C, columns, rows)
    np.testing.assert_array_equal(yx[0].numpy(), MASK_A.astype(np.float32))
    np.testing.assert_array_equal(xy[0].numpy(), MASK_A.T.astype(np.float32))


def test_siim_rows_union_and_per_instance():
    rows = [SIIM_A, " -1", SIIM_B]  # the CSV's leading space is fine
    t = RLEToMask(spatial_layout="yx")
    union = t(rows, spatial_size=(3, 4))
    np.testing.assert_array_equal(union[0].numpy(), (MASK_A | MASK_B).astype(np.float32))
    assert annotation_stats(union)["empty"] == 1
    per = RLEToMask(spatial_layout="yx", per_instance=True)(rows, spatial_size=(3, 4))
    np.testing.assert_array_equal(per.numpy(), np.stack([MASK_A, np.zeros((3, 4), bool), MASK_B]).astype(np.float32))
    negative = RLEToMask(spatial_layout="yx")("-1", spatial_size=(3, 4))
    assert float(negative.sum()) == 0.0 and tuple(negative.shape) == (1, 3, 4)


def test_chexlocalize_segmentation_mapping():
    record = {
        "Edema": {"size": [3, 4], "counts": encode_coco_rle(MASK_A)["counts"]},
        "Cardiomegaly": {"size": [3, 4], "counts": [12]},  # an all-zero (negative) mask
    }
    out = RLEToMask(class_names=["Cardiomegaly", "Edema"], spatial_layout="yx")(record, spatial_size=(3, 4))
    np.testing.assert_array_equal(out.numpy(), np.stack([np.zeros((3, 4)), MASK_A]).astype(np.float32))


def test_3d_siim_style_rle_in_fortran_order():
    # a (rows 2, columns 2, slices 2) volume; column-major flat index k = row + 2 * column + 4 * slice
    out = RLEToMask(spatial_layout="yx")("3 2", spatial_size=(2, 2, 2))  # pixels 3 and 4
    expected = np.zeros((2, 2, 2), np.float32)
    expected[1, 1, 0] = 1
    expected[0, 0, 1] = 1
    np.testing.assert_array_equal(out[0].numpy(), expected)


@pytest.mark.parametrize(
    "rle, match",
    [
        ([SIIM_A, "1 2 30 1"], "RLE 1 is malformed: SIIM RLE runs end at pixel 34"),
        ([{"size": [4, 3], "counts": [12]}], r"RLE 0 is malformed: COCO size \[4, 3\] does not match .* \[3, 4\]"),
        ([3.5], "RLE 0 is neither a SIIM RLE string nor a COCO RLE dict"),
        ([float("nan")], "RLE 0 is neither"),
    ],
)
def test_invalid_rle(rle, match):
    with pytest.raises(ValueError, match=match):
        RLEToMask(spatial_layout="yx")(rle, spatial_size=(3, 4))
    t = RLEToMask(spatial_layout="yx", invalid="drop")
    assert annotation_stats(t(rle, spatial_size=(3, 4)))["dropped"] == 1


def test_dict_form_siim_record():
    assert RLEToMaskDict is RLEToMaskd
    image = MetaTensor(torch.rand(1, 4, 3), meta={"filename_or_obj": "1.2.276.0.7230010.3.1.4.dcm"})
    out = RLEToMaskd()({"image": image, "rle": np.array([SIIM_A, SIIM_B])})
    np.testing.assert_array_equal(out["mask"][0].numpy(), (MASK_A | MASK_B).T.astype(np.float32))
    with pytest.raises(ValueError, match=r"RLE 0 is malformed.*key 'rle'.*1\.2\.276"):
        RLEToMaskd()({"image": image, "rle": ["1 2 3"]})
