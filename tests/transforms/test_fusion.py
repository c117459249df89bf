"""Reader fusion: union / intersection / majority / mean, by hand, numpy and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_explain.transforms import BoxesToMask, FusionMethod, fuse_per_reader, fuse_reader_masks

# three annotations over 4 pixels: R1 draws two (unioned to [1, 1, 1, 0]), R2 one, R3 one
MASKS = np.array(
    [
        [1, 1, 0, 0],  # R1
        [0, 1, 1, 0],  # R1
        [0, 1, 1, 1],  # R2
        [0, 0, 1, 0],  # R3
    ],
    dtype=np.float32,
)
READERS = ["R1", "R1", "R2", "R3"]
# per-pixel votes of the 3 readers: [1, 2, 3, 1]


@pytest.mark.parametrize(
    "method, all_readers, expected",
    [
        ("union", None, [1, 1, 1, 1]),
        ("intersection", None, [0, 0, 1, 0]),
        ("majority", None, [0, 1, 1, 0]),  # > 3/2 -> at least 2 votes
        ("mean", None, [1 / 3, 2 / 3, 1, 1 / 3]),
        # a 4th reader who drew nothing still votes: > 4/2 needs 3 votes; mean divides by 4; intersection is empty
        ("majority", ["R1", "R2", "R3", "R4"], [0, 0, 1, 0]),
        ("mean", ["R1", "R2", "R3", "R4"], [0.25, 0.5, 0.75, 0.25]),
        ("intersection", ["R1", "R2", "R3", "R4"], [0, 0, 0, 0]),
        ("union", ["R1", "R2", "R3", "R4"], [1, 1, 1, 1]),
    ],
)
def test_fuse_reader_masks_by_hand(method, all_readers, expected):
    out = fuse_reader_masks(MASKS, READERS, method, all_readers=all_readers)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_allclose(out, np.array(expected, dtype=np.float32), rtol=1e-6)


@pytest.mark.parametrize("method", list(FusionMethod))
def test_fuse_torch_matches_numpy(method):
    out_t = fuse_reader_masks(torch.from_numpy(MASKS), READERS, method)
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float32
    np.testing.assert_allclose(out_t.numpy(), fuse_reader_masks(MASKS, READERS, method), rtol=1e-6)


def test_fuse_two_readers_majority_needs_both():
    m = np.array([[1, 1, 0], [0, 1, 1]], dtype=np.float32)
    np.testing.assert_array_equal(fuse_reader_masks(m, [7, 8], "majority"), [0, 1, 0])


def test_fuse_sequence_input_and_2d_spatial():
    a = np.zeros((2, 2), np.float32)
    a[0, 0] = 1
    b = np.ones((2, 2), np.float32)
    out = fuse_reader_masks([a, b], ["A", "B"], "mean")
    np.testing.assert_allclose(out, [[1.0, 0.5], [0.5, 0.5]])


def test_fuse_no_annotations_gives_zeros():
    out = fuse_reader_masks(np.zeros((0, 3), np.float32), [], "majority", all_readers=["R1"])
    np.testing.assert_array_equal(out, np.zeros(3))


def test_fuse_per_reader_core():
    per_reader = np.array([[1, 0], [1, 1]], dtype=np.float32)
    np.testing.assert_array_equal(fuse_per_reader(per_reader, 3, "majority"), [1, 0])
    np.testing.assert_array_equal(fuse_per_reader(per_reader, 3, "intersection"), [0, 0])
    np.testing.assert_array_equal(fuse_per_reader(per_reader, 2, "intersection"), [1, 0])
    with pytest.raises(ValueError, match="only 1 readers listed"):
        fuse_per_reader(per_reader, 1, "union")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"masks": MASKS, "readers": READERS[:3]}, "4 masks but 3 reader ids"),
        ({"masks": MASKS, "readers": READERS, "all_readers": ["R1", "R2"]}, r"readers \['R3'\]"),
        ({"masks": MASKS * 2, "readers": READERS}, r"values in \[0, 1\]"),
        ({"masks": MASKS * np.nan, "readers": READERS}, "no NaN"),
        ({"masks": MASKS, "readers": READERS, "method": "vote"}, "vote"),
        ({"masks": [], "readers": []}, "empty sequence"),
    ],
)
def test_fuse_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fuse_reader_masks(**kwargs)


def test_boxes_fusion_option_by_hand():
    """Three VinDr-style readers on a 1-row image: R1 [0, 3), R2 [1, 4), R3 [2, 5) along x."""
    boxes = np.array([[0, 0, 3, 1], [1, 0, 4, 1], [2, 0, 5, 1]], dtype=np.float32)
    readers = np.array(["R1", "R2", "R3"])
    image = torch.rand(1, 6, 1)
    expected = {
        "union": [1, 1, 1, 1, 1, 0],
        "intersection": [0, 0, 1, 0, 0, 0],
        "majority": [0, 1, 1, 1, 0, 0],
        "mean": [1 / 3, 2 / 3, 1, 2 / 3, 1 / 3, 0],
    }
    for method, values in expected.items():
        out = BoxesToMask(fusion=method)(boxes, image=image, readers=readers)
        np.testing.assert_allclose(out[0, :, 0].numpy(), values, rtol=1e-6, err_msg=method)
    # listing a 4th reader who drew nothing: majority now needs 3 of 4 votes (only pixel 2 has them)
    out = BoxesToMask(fusion="majority")(boxes, image=image, readers=readers, image_readers=["R1", "R2", "R3", "R9"])
    np.testing.assert_array_equal(out[0, :, 0].numpy(), [0, 0, 1, 0, 0, 0])
