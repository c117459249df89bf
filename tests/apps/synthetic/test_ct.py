from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from monai.data import NibabelReader
from monai.transforms import ApplyTransformToPoints, LoadImage

from monai_explain.apps.synthetic import (
    LUNA16_UID_PREFIX,
    draw_chest_ct,
    generate_synthetic_ct,
    lps_to_ras_affine,
    read_metaimage,
)

SHAPE = (64, 64, 16)
SPACING = (0.7, 0.8, 2.5)
ORIGIN = (-20.3, -150.6, -301.2)
KW = {"n": 5, "shape": SHAPE, "spacing": SPACING, "origin": ORIGIN, "diameter_mm": (3.0, 6.0), "n_test_shifted": 4}


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def ct_set(tmp_path_factory):
    return generate_synthetic_ct(
        tmp_path_factory.mktemp("ct") / "set", seed=4, marker_prob_positive=1.0, marker_prob_negative=0.0, **KW
    )


def _centroid(volume, centre, diameter_mm, spacing=SPACING):
    """Centre of the nodule voxels: those within the sphere claimed at ``centre`` (plus its partial-volume rim).

    If the claimed centre were off, part of that sphere would be lung (excluded by the HU threshold) and
    the centroid would move towards the true centre; the voxel nearest the claim must itself be nodule.
    """
    assert volume[tuple(np.rint(centre).astype(int))] > -300
    sp = np.asarray(spacing)
    reach = diameter_mm / 2 / sp + 2
    lo = np.maximum(np.floor(centre - reach).astype(int), 0)
    hi = np.minimum(np.ceil(centre + reach + 1).astype(int), volume.shape)
    win = volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].astype(float)
    grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij")
    dist_mm = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, sp)))
    weight = np.clip(win + 890.0, 0, None) * (dist_mm < diameter_mm / 2 + 0.5 * sp.min()) * (win > -500)
    return np.array([(g * weight).sum() / weight.sum() for g in grids])


def test_phantom_nodules_inside_lungs():
    ph = draw_chest_ct(np.random.default_rng(0), SHAPE, SPACING, n_nodules=2, diameter_mm=(3.0, 6.0), marker=True)
    assert ph.volume.shape == SHAPE and ph.volume.dtype == np.int16
    assert ph.volume.min() >= -1024 and ph.volume.max() == 2000  # the marker
    assert ph.nodule_centers.shape == (2, 3) and ((ph.nodule_diameters >= 3) & (ph.nodule_diameters <= 6)).all()
    for c, d in zip(ph.nodule_centers, ph.nodule_diameters):
        assert ph.lung_mask[tuple(np.rint(c).astype(int))]
        np.testing.assert_allclose(_centroid(ph.volume, c, d), c, atol=0.5)
    assert ph.volume[ph.lung_mask].mean() < -700  # lungs are air-like
    i0, j0, k0, i1, j1, k1 = ph.marker_box
    assert (ph.volume[i0:i1, j0:j1, k0:k1] == 2000).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [({"shape": (4, 64, 64)}, "shape"), ({"spacing": (0.7, 0.0, 2.5)}, "spacing"), ({"n_nodules": -1}, "n_nodules"),
     ({"diameter_mm": (5.0, 2.0)}, "diameter_mm"), ({"n_nodules": 1, "diameter_mm": (80.0, 80.0), "max_tries": 3},
     "could not place")],
)  # fmt: skip
def test_phantom_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        draw_chest_ct(np.random.default_rng(0), **{"shape": SHAPE, "spacing": SPACING, **kwargs})


def test_layout_and_annotations_format(ct_set):
    assert (ct_set / "annotations.csv").read_text().splitlines()[0] == "seriesuid,coordX,coordY,coordZ,diameter_mm"
    splits = json.loads((ct_set / "splits.json").read_text())
    assert sorted(splits.values()) == ["test"] + ["test_shifted"] * 4 + ["train"] * 3 + ["val"]
    for uid in splits:
        assert uid.startswith(LUNA16_UID_PREFIX) and len(uid) <= 64
        for sfx in (".mhd", ".raw", ".nii.gz"):
            assert (ct_set / "subset0" / f"{uid}{sfx}").is_file()
    vols = {r["seriesuid"]: r for r in _rows(ct_set / "volumes.csv")}
    ann = _rows(ct_set / "annotations.csv")
    annotated = {r["seriesuid"] for r in ann}
    assert annotated == {u for u, r in vols.items() if r["label"] == "1"}  # negatives have no rows
    assert len(ann) == sum(int(r["n_nodules"]) for r in vols.values())
    # marker with every positive and no negative outside test_shifted; one per class in test_shifted
    for r in vols.values():
        if r["split"] != "test_shifted":
            assert r["marker"] == r["label"]
    shifted = sorted((r["label"], r["marker"]) for r in vols.values() if r["split"] == "test_shifted")
    assert shifted == [("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")]


def test_world_coordinates_map_to_nodule_centres_nifti_via_monai(ct_set):
    """LUNA16 world mm (LPS) -> voxel through MONAI's NibabelReader (RAS affine) and ApplyTransformToPoints."""
    truth = _rows(ct_set / "truth_nodules.csv")
    ann = _rows(ct_set / "annotations.csv")
    loader = LoadImage(reader=NibabelReader(), image_only=True)
    to_voxel = ApplyTransformToPoints(invert_affine=True, affine_lps_to_ras=True)
    checked = 0
    for a, t in zip(ann, truth):
        assert a["seriesuid"] == t["seriesuid"]
        img = loader(str(ct_set / "subset0" / f"{a['seriesuid']}.nii.gz"))
        assert tuple(img.shape) == SHAPE
        np.testing.assert_allclose(np.diag(np.asarray(img.affine))[:3], [-0.7, -0.8, 2.5])  # RAS
        world = torch.tensor([[[float(a["coordX"]), float(a["coordY"]), float(a["coordZ"])]]], dtype=torch.float64)
        voxel = to_voxel(world, img.affine)[0, 0].numpy()
        expected = np.array([float(t[k]) for k in ("i", "j", "k")])
        np.testing.assert_allclose(voxel, expected, atol=1e-4)
        np.testing.assert_allclose(_centroid(np.asarray(img), voxel, float(a["diameter_mm"])), voxel, atol=0.5)
        checked += 1
    assert checked >= 3


def test_world_coordinates_map_to_nodule_centres_metaimage(ct_set):
    """The LUNA16 recipe: voxel = (world - Offset) / ElementSpacing on the .mhd (identity direction)."""
    for a in _rows(ct_set / "annotations.csv"):
        arr, meta = read_metaimage(ct_set / "subset0" / f"{a['seriesuid']}.mhd")
        np.testing.assert_allclose(meta["origin"], ORIGIN)
        np.testing.assert_allclose(meta["spacing"], SPACING)
        world = np.array([float(a["coordX"]), float(a["coordY"]), float(a["coordZ"])])
        voxel = (world - meta["origin"]) / meta["spacing"]
        np.testing.assert_allclose(voxel, np.linalg.solve(meta["affine"], [*world, 1.0])[:3], atol=1e-9)
        np.testing.assert_allclose(_centroid(arr, voxel, float(a["diameter_mm"])), voxel, atol=0.5)
        nifti = LoadImage(reader=NibabelReader(), image_only=True)(str(ct_set / "subset0" / f"{a['seriesuid']}.nii.gz"))
        np.testing.assert_array_equal(np.asarray(nifti), arr)  # same voxels in both formats


def test_lps_to_ras_affine():
    aff = np.array([[0.7, 0, 0, -20.0], [0, 0.8, 0, -150.0], [0, 0, 2.5, -300.0], [0, 0, 0, 1]])
    np.testing.assert_allclose(
        lps_to_ras_affine(aff), [[-0.7, 0, 0, 20.0], [0, -0.8, 0, 150.0], [0, 0, 2.5, -300.0], [0, 0, 0, 1]]
    )
    np.testing.assert_allclose(lps_to_ras_affine(lps_to_ras_affine(aff)), aff)


def test_deterministic_idempotent_and_formats(tmp_path, ct_set):
    again = generate_synthetic_ct(tmp_path / "a", seed=4, marker_prob_positive=1.0, marker_prob_negative=0.0, **KW)
    for p in ct_set.rglob("*"):
        if p.is_file():
            assert (again / p.relative_to(ct_set)).read_bytes() == p.read_bytes(), p.name
    stamps = {p: p.stat().st_mtime_ns for p in again.rglob("*")}
    generate_synthetic_ct(again, seed=4, marker_prob_positive=1.0, marker_prob_negative=0.0, **KW)
    assert {p: p.stat().st_mtime_ns for p in again.rglob("*")} == stamps
    with pytest.raises(ValueError, match="differing: fmt, marker_prob_positive"):
        generate_synthetic_ct(again, seed=4, fmt="nifti", **KW)
    nifti_only = generate_synthetic_ct(tmp_path / "n", seed=4, fmt="nifti", **KW)
    assert {p.suffix for p in (nifti_only / "subset0").iterdir()} == {".gz"}
    mhd_only = generate_synthetic_ct(tmp_path / "m", seed=4, fmt="mhd", **KW)
    assert {p.suffix for p in (mhd_only / "subset0").iterdir()} == {".mhd", ".raw"}
    assert (mhd_only / "annotations.csv").read_bytes() == (nifti_only / "annotations.csv").read_bytes()


@pytest.mark.parametrize(
    "kwargs, match",
    [({"fmt": "dicom"}, "fmt"), ({"n": 0}, "n must be"), ({"val_fraction": 0.7, "test_fraction": 0.7}, "no room"),
     ({"prevalence": -0.5}, "prevalence"), ({"max_nodules": 0}, "max_nodules"), ({"spacing": (1.0, 1.0)}, "3 values")],
)  # fmt: skip
def test_bad_input(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_synthetic_ct(tmp_path, **{**KW, **kwargs})


def test_refuses_a_folder_holding_files_it_did_not_create(tmp_path):
    user = tmp_path / "luna16"
    (user / "subset0").mkdir(parents=True)
    (user / "annotations.csv").write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n")
    before = (user / "annotations.csv").read_bytes()
    with pytest.raises(ValueError, match=r"refusing to generate synthetic data into .*luna16.*annotations\.csv"):
        generate_synthetic_ct(user, overwrite=True, **KW)
    assert (user / "annotations.csv").read_bytes() == before
    assert sorted(p.name for p in user.iterdir()) == ["annotations.csv", "subset0"]
