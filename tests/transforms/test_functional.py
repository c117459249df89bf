"""The functional core of the mask transforms: each piece on its own, 2D and 3D, and the transforms as compositions."""

from __future__ import annotations

import ast
import logging
import pathlib

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset, MetaTensor
from monai.transforms import Compose, Resized, Spacingd

import monai_explain
from monai_explain.transforms import (
    ANNOTATION_STATS_KEY,
    AnnotationRegions,
    BoxesToMask,
    BoxesToMaskd,
    PointsToMaskd,
    PolygonsToMask,
    RLEToMask,
    annotation_channels,
    annotation_stats,
    apply_invalid_policy,
    check_untransformed,
    decode_siim_rle,
    encode_siim_rle,
    rasterize_boxes,
    rasterize_ellipses,
    rasterize_points,
    rasterize_polygons,
    rasterize_rle,
    reference_grid,
    render_mask,
    soften_mask,
)

BOXES = np.array([[1, 1, 3, 3], [np.nan, 0, 1, 1], [2, 0, 7, 2], [9, 9, 10, 10]], dtype=np.float64)


# ------------------------------------------------------------------------------------------------ rasterisers
@pytest.mark.parametrize("size", [(6, 4), (6, 4, 3)])
def test_rasterize_boxes_one_path_for_2d_and_3d(size):
    sd = len(size)
    boxes = np.array([[1, 1, 3, 3], [4, 2, 8, 5]], dtype=np.float64)
    if sd == 3:
        boxes = np.array([[1, 1, 0, 3, 3, 2], [4, 2, 1, 8, 5, 3]], dtype=np.float64)
    regions = rasterize_boxes(boxes, size)
    assert isinstance(regions, AnnotationRegions) and len(regions) == 2 and regions.reasons == [None, None]
    expected = np.zeros(size, bool)
    expected[(slice(1, 3), slice(1, 3)) + ((slice(0, 2),) if sd == 3 else ())] = True
    expected[(slice(4, 6), slice(2, 4)) + ((slice(1, 3),) if sd == 3 else ())] = True  # clipped to the grid
    np.testing.assert_array_equal(regions.union(), expected)
    assert regions.clipped.tolist() == [False, True]
    np.testing.assert_array_equal(regions.union([0]), expected & (np.indices(size)[0] < 3))


def test_rasterize_boxes_reasons_and_layout():
    regions = rasterize_boxes(BOXES, (6, 4))
    assert regions.reasons[0] is None and regions.patches[1] is None
    assert regions.reasons[1].startswith("has a NaN") and regions.reasons[3].startswith("lies entirely outside")
    yx = rasterize_boxes([[0, 1, 2, 4]], (4, 6), spatial_layout="yx").union()  # x = column = axis 1
    np.testing.assert_array_equal(yx, rasterize_boxes([[0, 1, 2, 4]], (6, 4)).union().T)


def test_other_rasterisers_return_regions():
    ell = rasterize_ellipses([[0, 0, 6, 4]], (6, 4))
    assert int(ell.union().sum()) == 20 and ell.reasons == [None]
    poly = rasterize_polygons([[[1, 1], [4, 1], [4, 3], [1, 3]], [[0, 0], [1, 1]]], (5, 4))
    assert int(poly.union().sum()) == 6 and poly.reasons[1].startswith("has 2 vertices")
    pts = rasterize_points([[2.0, 2.0, 2.0]], [3.0], (5, 5, 5))
    assert int(pts.union().sum()) == 1 + 6 + 12  # radius 1.5: the centre, 6 neighbours at 1, 12 at sqrt(2)
    rle = rasterize_rle(["1 2 3 1", "-1", "9 9"], (2, 4), "yx")
    assert rle.empty.tolist() == [False, True, False] and rle.reasons[2].startswith("is malformed")
    assert rle.union().astype(int).tolist() == [[0, 1, 0, 1], [1, 0, 0, 0]]


# ------------------------------------------------------------------------------------------------ the other pieces
def test_invalid_policy_channels_render_and_soften():
    regions = rasterize_boxes(BOXES, (6, 4))
    with pytest.raises(ValueError, match=r"box 1 has a NaN.* \(here\) \(use invalid='drop'"):
        apply_invalid_policy(regions.reasons, "raise", "box", " (here)")
    keep, dropped = apply_invalid_policy(regions.reasons, "drop", "box")
    assert keep == [0, 2] and len(dropped) == 2 and dropped[1].startswith("box 3 lies entirely outside")
    channels = annotation_channels(["b", "a", "a", "b"], 4, class_names=["a", "b"])
    assert channels.tolist() == [1, 0, 0, 1]
    with pytest.raises(ValueError, match="box 1 has label 'c'"):
        annotation_channels(["a", "c", "a", "a"], 4, class_names=["a", "b"], item_name="box")
    mask = render_mask(regions, keep, channels[keep], 2)
    assert mask.shape == (2, 6, 4) and mask[1, 1:3, 1:3].all() and mask[0, 2:6, 0:2].all() and mask.sum() == 12
    # fusion: 2 readers drew boxes 0 and 2, the image had 3 readers -> mean = 1/3 where one drew
    fused = render_mask(regions, keep, [0, 0], 1, ["R1", "R2"], 3, "mean")
    assert {round(float(v), 4) for v in np.unique(fused)} == {0.0, 0.3333, 0.6667}
    soft = soften_mask(mask, 1.0)
    assert soft.min() >= 0 and soft.max() <= 1 and 0 < soft[1, 0, 2] < 1 and soft is not mask
    assert soften_mask(mask, 0.0) is mask
    with pytest.raises(ValueError, match="sigma needs 1 or 2 values"):
        soften_mask(mask, [1.0, 1.0, 1.0])


def test_transform_is_the_composition_of_the_functions():
    """BoxesToMask(num_classes=2, invalid='drop', sigma=0.7) == the functions chained by hand."""
    labels = [1, 0, 0, 1]
    out = BoxesToMask(num_classes=2, invalid="drop", sigma=0.7)(BOXES, labels=labels, spatial_size=(6, 4))
    regions = rasterize_boxes(BOXES, (6, 4))
    keep, _ = apply_invalid_policy(regions.reasons, "drop", "box")
    channels = annotation_channels(labels, 4, num_classes=2)[keep]
    by_hand = soften_mask(render_mask(regions, keep, channels, 2), 0.7)
    np.testing.assert_array_equal(out.numpy(), by_hand)


# ------------------------------------------------------------------------------------------------ statistics
def test_statistics_are_in_the_mask_meta_not_in_the_transform(caplog):
    t = BoxesToMask(invalid="drop")
    with caplog.at_level(logging.INFO, logger="monai_explain.transforms.annotation_mask"):
        out = t(BOXES, image=MetaTensor(torch.rand(1, 6, 4)))
    stats = out.meta[ANNOTATION_STATS_KEY]
    assert stats == {"annotations": 4, "kept": 2, "dropped": 2, "clipped": 1, "empty": 0, "single_reader": 0}
    assert annotation_stats(out) == stats
    assert "dropped box 1 has a NaN" in caplog.text and "1 of 4 boxes clipped" in caplog.text
    assert not hasattr(t, "counts")  # no state that changes per call
    before = dict(vars(t))
    t([[0, 0, 1, 1]], spatial_size=(3, 3))
    assert vars(t) == before
    print("mask meta annotation_stats:", stats)


def test_statistics_survive_dataloader_workers():
    """Each sample's statistics travel with its mask through worker processes and collate into the batch."""
    records = [
        {"image": np.random.default_rng(i).random((1, 8, 8), dtype=np.float32), "boxes": boxes}
        for i, boxes in enumerate([[[0, 0, 2, 2]], [[0, 0, 2, 2], [np.nan, 0, 1, 1]], [[6, 6, 12, 12], [9, 9, 9, 9]]])
    ]
    pipeline = Compose([BoxesToMaskd(keys="boxes", invalid="drop"), lambda d: {"mask": d["mask"]}])
    ds = Dataset([{**r, "image": MetaTensor(torch.from_numpy(r["image"]))} for r in records], transform=pipeline)
    batch = next(iter(DataLoader(ds, batch_size=3, num_workers=2)))
    stats = batch["mask"].meta[ANNOTATION_STATS_KEY]
    assert stats["kept"].tolist() == [1, 1, 1] and stats["dropped"].tolist() == [0, 1, 1]
    assert stats["clipped"].tolist() == [0, 0, 1]
    print("collated from 2 workers:", {k: v.tolist() for k, v in stats.items()})


# ------------------------------------------------------------------------------------------------ spatial transforms
def test_boxes_after_a_spatial_transform_raise():
    """A box given in original pixels, applied after Resized of its image, used to give a silently wrong mask."""
    image = MetaTensor(torch.rand(1, 16, 12), meta={"filename_or_obj": "cxr_3.dcm"})
    data = Resized(keys="image", spatial_size=(8, 6))({"image": image, "boxes": [[2, 2, 6, 6]]})
    with pytest.raises(ValueError, match=r"already transformed by \['Resize'\].*key 'boxes'.*cxr_3\.dcm.*LoadImaged"):
        BoxesToMaskd(keys="boxes")(data)
    with pytest.raises(ValueError, match="already transformed"):
        PolygonsToMask()([[[1, 1], [4, 1], [4, 3]]], image=data["image"])
    with pytest.raises(ValueError, match="already transformed"):
        RLEToMask()("1 2", image=data["image"])
    # the right order: mask first, then the same resize for both -> the box lands at half its coordinates
    right = Resized(keys=["image", "mask"], spatial_size=(8, 6), mode="nearest")(
        BoxesToMaskd(keys="boxes")({"image": image, "boxes": [[2, 2, 6, 6]]})
    )
    assert right["mask"][0, 1:3, 1:3].all() and float(right["mask"].sum()) == 4.0
    # boxes already in the resized grid: accepted on request
    mask = BoxesToMaskd(keys="boxes", allow_transformed_image=True)({**data, "boxes": [[1, 1, 3, 3]]})["mask"]
    assert float(mask.sum()) == 4.0
    check_untransformed(image)  # an untransformed image passes


def test_world_points_follow_the_affine_after_spacing():
    """World-space points go through the affine, which Spacingd updates: accepted after it, and correct."""
    affine = torch.diag(torch.tensor([1.0, 1.0, 2.0, 1.0], dtype=torch.float64))
    image = MetaTensor(torch.rand(1, 10, 10, 5), affine=affine)
    resampled = Spacingd(keys="image", pixdim=(2.0, 2.0, 2.0))({"image": image})["image"]
    out = PointsToMaskd(keys="points", world_convention="RAS")(
        {"image": resampled, "points": [[4.0, 4.0, 4.0]], "point_diameters": [1.0]}
    )
    assert out["mask"].shape == resampled.shape and out["mask"][0, 2, 2, 2] == 1 and float(out["mask"].sum()) == 1
    with pytest.raises(ValueError, match="already transformed"):
        PointsToMaskd(keys="points", space="voxel", diameter=1.0)({"image": resampled, "points": [[2.0, 2.0, 2.0]]})


def test_reference_grid():
    grid = reference_grid(MetaTensor(torch.zeros(1, 4, 3), affine=torch.diag(torch.tensor([2.0, 2.0, 1.0, 1.0]))))
    assert grid.spatial_size == (4, 3) and grid.affine[0, 0] == 2.0 and grid.spatial_dims == 2
    with pytest.raises(ValueError, match="channel-first"):
        reference_grid(torch.zeros(4))


# ------------------------------------------------------------------------------------------------ RLE starts
def test_absolute_rle_gets_a_hint_and_an_option():
    mask = np.array([[0, 1, 0, 1], [1, 0, 0, 0]], dtype=bool)  # flat (column-major) pixels 1, 2 and 6
    absolute = encode_siim_rle(mask, starts="absolute")
    assert absolute == "2 2 7 1" and encode_siim_rle(mask) == "1 2 3 1"
    np.testing.assert_array_equal(decode_siim_rle(absolute, (2, 4), starts="absolute"), mask)
    with pytest.raises(
        ValueError, match=r"end at pixel 12, past the 8 pixels.*relative gaps.*rle_starts='absolute'.*most likely"
    ):
        decode_siim_rle(absolute, (2, 4))
    with pytest.raises(ValueError, match=r"RLE 0 is malformed.*fit the image as absolute starts"):
        RLEToMask(spatial_layout="yx")(absolute, spatial_size=(2, 4))
    out = RLEToMask(spatial_layout="yx", rle_starts="absolute")(absolute, spatial_size=(2, 4))
    np.testing.assert_array_equal(out[0].numpy().astype(bool), mask)
    with pytest.raises(ValueError, match="do not fit as absolute starts either"):
        decode_siim_rle("5 9", (2, 4))
    with pytest.raises(ValueError, match="start below 1 at pair 0; is it relative"):
        decode_siim_rle("0 2", (2, 4), starts="absolute")
    with pytest.raises(ValueError, match="relative|absolute"):
        RLEToMask(rle_starts="middle")


# ------------------------------------------------------------------------------------------------ module hygiene
def test_no_private_cross_module_imports():
    """transforms/ and data/adapters/ import no private name from another module."""
    root = pathlib.Path(monai_explain.__file__).parent
    offenders = []
    for folder in ("transforms", "data/adapters"):
        for path in sorted((root / folder).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                    offenders += [f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert offenders == []


def test_dictionary_transforms_call_the_public_array_transform():
    root = pathlib.Path(monai_explain.__file__).parent / "transforms"
    text = "".join(p.read_text() for p in root.glob("*.py"))
    assert "_make_mask" not in text and "self.counts" not in text
