"""Shared behaviour of the annotation -> mask transforms: channels, output geometry, softening, dict wrapper."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_explain.transforms import (
    AnnotationToMask,
    BoxesToMask,
    BoxesToMaskD,
    BoxesToMaskd,
    BoxesToMaskDict,
    InvalidPolicy,
    SpatialLayout,
    annotation_stats,
    swap_xy,
)

BOXES = np.array([[0, 0, 2, 1], [1, 1, 3, 3], [2, 0, 4, 2]], dtype=np.float32)  # xyxy on a (4, 3) image


def _ref(shape=(1, 4, 3)):
    affine = torch.tensor([[0.5, 0, 0, 10], [0, 2.0, 0, -3], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64)
    return MetaTensor(torch.rand(shape), affine=affine, meta={"filename_or_obj": "case_7.dcm"})


def _filled(shape, *slices):
    out = np.zeros(shape, dtype=np.float32)
    for sl in slices:
        out[sl] = 1
    return out


@pytest.mark.parametrize(
    "kwargs, labels, expected",
    [
        # merged: one channel, union of the three boxes
        (
            {},
            None,
            _filled(
                (1, 4, 3), (0, slice(0, 2), slice(0, 1)), (0, slice(1, 3), slice(1, 3)), (0, slice(2, 4), slice(0, 2))
            ),
        ),
        # per class: box 0 and 2 are class 1, box 1 is class 0; class 2 is empty
        (
            {"num_classes": 3},
            [1, 0, 1],
            _filled(
                (3, 4, 3), (1, slice(0, 2), slice(0, 1)), (0, slice(1, 3), slice(1, 3)), (1, slice(2, 4), slice(0, 2))
            ),
        ),
        # names, mixed with ids
        (
            {"class_names": ["a", "b"]},
            ["b", 0, "b"],
            _filled(
                (2, 4, 3), (1, slice(0, 2), slice(0, 1)), (0, slice(1, 3), slice(1, 3)), (1, slice(2, 4), slice(0, 2))
            ),
        ),
        # one channel per box
        (
            {"per_instance": True},
            None,
            _filled(
                (3, 4, 3), (0, slice(0, 2), slice(0, 1)), (1, slice(1, 3), slice(1, 3)), (2, slice(2, 4), slice(0, 2))
            ),
        ),
    ],
)
def test_channels(kwargs, labels, expected):
    out = BoxesToMask(**kwargs)(BOXES, labels=labels, image=_ref())
    np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize(
    "kwargs, shape", [({}, (1, 4, 3)), ({"num_classes": 5}, (5, 4, 3)), ({"per_instance": True}, (1, 4, 3))]
)
@pytest.mark.parametrize("empty", [[], np.zeros((0, 4)), None])
def test_no_annotation_is_a_negative(kwargs, shape, empty):
    out = BoxesToMask(**kwargs)(empty, image=_ref())
    assert tuple(out.shape) == shape and float(out.abs().sum()) == 0.0


def test_output_follows_reference_type_and_meta():
    ref = _ref()
    out = BoxesToMask()(BOXES, image=ref)
    assert isinstance(out, MetaTensor) and out.dtype == torch.float32
    assert torch.equal(out.affine, ref.affine) and out.meta["filename_or_obj"] == "case_7.dcm"
    out.meta["filename_or_obj"] = "changed"
    assert ref.meta["filename_or_obj"] == "case_7.dcm"  # a copy, not shared
    out_np = BoxesToMask()(BOXES, image=np.random.rand(1, 4, 3))
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float32
    out_t = BoxesToMask()(BOXES, image=torch.rand(1, 4, 3, dtype=torch.float64))
    # a plain tensor goes through MONAI's convert_to_tensor(track_meta=True): a MetaTensor carrying the statistics
    assert isinstance(out_t, MetaTensor) and out_t.dtype == torch.float32 and annotation_stats(out_t)["kept"] == 3
    out_s = BoxesToMask()(BOXES, spatial_size=(4, 3))
    assert tuple(out_s.shape) == (1, 4, 3) and float(out_s.sum()) == 9.0


def test_sigma_softens_edges():
    out = BoxesToMask(sigma=1.0)([[3, 3, 7, 7]], spatial_size=(10, 10))[0].numpy()
    binary = BoxesToMask()([[3, 3, 7, 7]], spatial_size=(10, 10))[0].numpy()
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out[5, 5] > 0.5 and 0.0 < out[2, 5] < 0.5 and 0.0 < out[3, 5] < 1.0  # soft inside and out
    np.testing.assert_allclose(out, out.T, atol=1e-6)  # the square stays symmetric
    np.testing.assert_allclose(out.sum(), binary.sum(), rtol=1e-3)  # mass is kept (the border is far away)


def test_sigma_per_axis_and_border():
    # a box touching the border stays ~1 at the border (mode="nearest"; zero padding would give ~0.5 there)
    out = BoxesToMask(sigma=(1.0, 0.0))([[0, 0, 4, 3]], spatial_size=(8, 3))[0].numpy()
    np.testing.assert_allclose(out[0], 1.0, atol=1e-3)
    np.testing.assert_allclose(out[:, 0], out[:, 2], atol=1e-7)  # sigma 0 along axis 1
    with pytest.raises(ValueError, match="sigma needs 1 or 2 values"):
        BoxesToMask(sigma=(1.0, 1.0, 1.0))([[0, 0, 4, 3]], spatial_size=(8, 3))


def test_swap_xy():
    np.testing.assert_array_equal(swap_xy(np.array([[1, 2, 3]])), [[2, 1, 3]])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_classes": 2, "class_names": ["a", "b", "c"]}, "does not match"),
        ({"class_names": ["a", "a"]}, "unique"),
        ({"num_classes": 0}, "positive"),
        ({"per_instance": True, "num_classes": 2}, "per_instance"),
        ({"per_instance": True, "fusion": "union"}, "per_instance"),
        ({"fusion": "vote"}, "vote"),
        ({"spatial_layout": "zyx"}, "zyx"),
        ({"invalid": "ignore"}, "ignore"),
        ({"sigma": -1.0}, "sigma"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BoxesToMask(**kwargs)


@pytest.mark.parametrize(
    "kwargs, call, match",
    [
        ({"num_classes": 2}, {"labels": None}, r"labels are needed .* \(image case_7.dcm\)"),
        ({"num_classes": 2}, {"labels": [0, 1]}, "got 3 boxes but 2 labels"),
        ({"num_classes": 2}, {"labels": [0, 2, 1]}, r"box 1 has label 2, outside the class ids 0..1"),
        ({"num_classes": 2}, {"labels": [0, 0.5, 1]}, "box 1 has label 0.5"),
        ({"class_names": ["a", "b"]}, {"labels": ["a", "c", "b"]}, "box 1 has label 'c'"),
        ({"num_classes": 2}, {"labels": [0, "a", 1]}, "not in class_names=None"),
        ({"fusion": "majority"}, {"readers": ["R1"]}, "got 3 boxes but 1 reader ids"),
        ({"fusion": "mean"}, {"readers": ["R1", "R2", "R3"], "image_readers": ["R1", "R2"]}, r"readers \['R3'\]"),
    ],
)
def test_bad_call(kwargs, call, match):
    with pytest.raises(ValueError, match=match):
        BoxesToMask(**kwargs)(BOXES, image=_ref(), **call)


def test_bad_reference():
    with pytest.raises(ValueError, match="channel-first"):
        BoxesToMask()(BOXES, image=torch.rand(4, 3))
    with pytest.raises(ValueError, match="reference image .* or spatial_size"):
        BoxesToMask()(BOXES)
    with pytest.raises(ValueError, match="2D or 3D image"):
        BoxesToMask()(BOXES, spatial_size=(4,))


def test_base_class_needs_rasterize():
    with pytest.raises(NotImplementedError, match="_rasterize"):
        AnnotationToMask()([1], spatial_size=(2, 2))


def test_enums():
    assert SpatialLayout("yx") == SpatialLayout.YX and InvalidPolicy("drop") == InvalidPolicy.DROP


# ---------------------------------------------------------------- dictionary wrapper
def test_dict_aliases_and_backend():
    assert BoxesToMaskD is BoxesToMaskd and BoxesToMaskDict is BoxesToMaskd
    assert BoxesToMaskd.backend == BoxesToMask.backend


def test_dict_reads_sibling_keys_and_keeps_the_rest():
    data = {
        "image": _ref(),
        "boxes": BOXES.tolist(),  # lists are fine
        "box_labels": np.array([1, 0, 1]),
        "box_readers": ["R1", "R1", "R2"],
        "readers": ["R1", "R2"],
        "label": 1,
    }
    out = BoxesToMaskd(num_classes=2, fusion="union")(data)
    assert set(out) == set(data) | {"mask"} and out["label"] == 1
    expected = BoxesToMask(num_classes=2)(BOXES, labels=[1, 0, 1], image=data["image"])
    assert torch.equal(out["mask"], expected)
    assert "mask" not in data  # input dict not modified


def test_dict_several_keys():
    data = {"image": _ref(), "a": [[0, 0, 1, 1]], "b": [[2, 2, 4, 3]]}
    out = BoxesToMaskd(keys=["a", "b"], mask_key=["mask_a", "mask_b"], label_key=None, reader_key=None)(data)
    assert float(out["mask_a"].sum()) == 1.0 and float(out["mask_b"].sum()) == 2.0
    with pytest.raises(ValueError, match="own mask_key"):
        BoxesToMaskd(keys=["a", "b"], mask_key="mask")


def test_dict_errors_name_the_key():
    with pytest.raises(ValueError, match=r"box 0 is degenerate.*key 'boxes'.*case_7.dcm"):
        BoxesToMaskd()({"image": _ref(), "boxes": [[1, 1, 1, 2]]})
    with pytest.raises(ValueError, match=r"labels are needed .*'box_labels' not in the data"):
        BoxesToMaskd(num_classes=2)({"image": _ref(), "boxes": BOXES})
    # no 'box_readers' in the record: one reader (RSNA, NIH, ...), the fused mask is the plain one
    fused = BoxesToMaskd(fusion="mean")({"image": _ref(), "boxes": BOXES})["mask"]
    assert torch.equal(
        torch.as_tensor(fused), torch.as_tensor(BoxesToMaskd()({"image": _ref(), "boxes": BOXES})["mask"])
    )
    with pytest.raises(KeyError, match="reference image key 'img'"):
        BoxesToMaskd(ref_key="img")({"image": _ref(), "boxes": BOXES})
    with pytest.raises(KeyError, match="boxes"):
        BoxesToMaskd()({"image": _ref()})


def test_dict_allow_missing_keys_and_counts(caplog):
    t = BoxesToMaskd(allow_missing_keys=True, invalid="drop")
    assert "mask" not in t({"image": _ref()})
    with caplog.at_level(logging.INFO, logger="monai_explain.transforms.annotation_mask"):
        out = t({"image": _ref(), "boxes": [[-1, 0, 2, 2], [np.nan, 0, 1, 1]]})
    stats = annotation_stats(out["mask"])
    assert stats["clipped"] == 1 and stats["dropped"] == 1 and stats["annotations"] == 2 and stats["kept"] == 1
    assert "1 of 2 boxes clipped" in caplog.text and "dropped box 1 has a NaN" in caplog.text


@pytest.mark.parametrize("fusion", ["union", "majority", "mean", "intersection"])
def test_fusion_without_reader_ids_is_one_reader(fusion):
    """Datasets without reader ids (RSNA, NIH, MS-CXR) work with a fusion option: one reader, mask unchanged."""
    plain = BoxesToMask()(BOXES, image=_ref())
    fused = BoxesToMask(fusion=fusion)
    out = fused(BOXES, image=_ref())
    assert torch.equal(torch.as_tensor(out), torch.as_tensor(plain))
    assert annotation_stats(out)["single_reader"] == 1 and annotation_stats(plain)["single_reader"] == 0
