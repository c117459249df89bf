from __future__ import annotations

import csv
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from monai.data import PydicomReader
from monai.transforms import LoadImage
from scipy.stats import fisher_exact

from monai_explain.apps.synthetic import (
    NO_FINDING,
    exact_assignment,
    generate_shortcut_cxr,
    jitter_box,
    load_splits,
)

SMALL = {"n_train": 12, "n_val": 4, "n_test": 4, "n_test_shifted": 8, "image_size": (48, 64)}
HEADER = "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max"
# the default generator's output for HASHED (all files, see _tree_hash), recorded from the code before marker_kind
# and the shifted-pair option existed (commit 7fb62e3; numpy 2.4.6, pydicom 3.0.2): defaults stay byte-identical
HASHED = {"n_train": 6, "n_val": 2, "n_test": 2, "n_test_shifted": 4, "image_size": (40, 48), "seed": 3}
HASHED_DIGEST = "76e27e330aa304189d7a3e4b07269c0c9120f007767447e64e3322a66c55ccdd"
_PYDICOM_VERSIONED = {"FileMetaInformationGroupLength", "ImplementationClassUID", "ImplementationVersionName"}


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _file_digest(path: Path) -> str:
    """SHA-256 of a file; for a DICOM, every byte except the pydicom-version file meta elements."""
    data = path.read_bytes()
    if path.suffix == ".dicom":
        group_length = int.from_bytes(data[140:144], "little")  # (0002,0000) UL after preamble, "DICM", tag, VR
        meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
        kept = [(str(e.tag), str(e.value)) for e in meta if e.keyword not in _PYDICOM_VERSIONED]
        data = repr(kept).encode() + data[144 + group_length :]
    return hashlib.sha256(data).hexdigest()


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(f"{path.relative_to(root).as_posix()} {_file_digest(path)}\n".encode())
    return h.hexdigest()


def _box(row, prefix=""):
    return [int(row[f"{prefix}{k}"]) for k in ("x_min", "y_min", "x_max", "y_max")]


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    return generate_shortcut_cxr(tmp_path_factory.mktemp("cxr") / "set", seed=1, **SMALL)


@pytest.mark.parametrize(
    "n, p, expected", [(10, 0.5, 5), (7, 0.5, 4), (1, 0.5, 1), (5, 0.5, 3), (20, 0.95, 19), (20, 0.05, 1), (3, 0.0, 0)]
)
def test_exact_assignment_counts(n, p, expected):
    out = exact_assignment(np.random.default_rng(0), n, p)
    assert out.dtype == bool and out.shape == (n,) and int(out.sum()) == expected


def test_exact_assignment_bad_input():
    with pytest.raises(ValueError, match="probability"):
        exact_assignment(np.random.default_rng(0), 4, 1.5)


@pytest.mark.parametrize(
    "box, enlarge, shape, expected",
    [
        ([10, 20, 14, 30], 1.0, (64, 64), [10, 20, 14, 30]),
        ([10, 20, 14, 30], 2.0, (64, 64), [8, 15, 16, 35]),  # centre (12, 25), size 8 x 20
        ([0, 0, 4, 6], 2.0, (64, 64), [0, 0, 6, 9]),  # clipped at the image's top-left edge
        ([60, 58, 64, 64], 1.5, (64, 64), [59, 56, 64, 64]),  # clipped at the bottom-right edge
    ],
)
def test_jitter_box_enlarge_exact(box, enlarge, shape, expected):
    np.testing.assert_array_equal(jitter_box(np.random.default_rng(0), box, 0.0, enlarge, shape), expected)


def test_jitter_box_noise_is_relative_to_the_box_side():
    rng = np.random.default_rng(0)
    boxes = np.stack([jitter_box(rng, [100, 100, 120, 140], 0.1, 1.0, (512, 512)) for _ in range(400)])
    sd = (boxes - np.array([100, 100, 120, 140])).std(0)
    np.testing.assert_allclose(sd, [2.0, 4.0, 2.0, 4.0], rtol=0.2)  # 0.1 * width 20, 0.1 * height 40


def test_layout_and_csv_format(small_set):
    root = small_set
    assert sorted(p.name for p in root.iterdir()) == [
        ".monai_explain_synthetic", "confounder_boxes.csv", "images.csv", "manifest.json", "splits.json", "train",
        "train.csv", "truth_boxes.csv",
    ]  # fmt: skip
    lines = (root / "train.csv").read_text().splitlines()
    assert lines[0] == HEADER
    rows = _rows(root / "train.csv")
    images = {r["image_id"]: r for r in _rows(root / "images.csv")}
    splits = load_splits(root)
    assert set(splits) == set(images) and len(splits) == 28
    assert sorted(p.name for p in (root / "train").iterdir()) == sorted(f"{i}.dicom" for i in splits)
    for r in rows:
        label = images[r["image_id"]]["label"]
        if r["class_name"] == NO_FINDING:
            assert r["class_id"] == "14" and label == "0"
            assert r["x_min"] == r["y_min"] == r["x_max"] == r["y_max"] == ""
        else:
            assert (r["class_name"], r["class_id"], label) == ("Nodule/Mass", "8", "1")
            x0, y0, x1, y1 = (float(r[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
            assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 48  # x = column (64), y = row (48)
            assert r["x_min"].endswith(".0")
        assert r["rad_id"][0] == "R" and 1 <= int(r["rad_id"][1:]) <= 17
    for image_id in splits:  # 3 readers per image, each with one row (one lesion or "No finding")
        readers = [r["rad_id"] for r in rows if r["image_id"] == image_id]
        assert len(readers) == 3 and len(set(readers)) == 3


def test_counts_are_exact(small_set):
    manifest = json.loads((small_set / "manifest.json").read_text())
    assert manifest["kind"] == "shortcut_cxr" and manifest["parameters"]["seed"] == 1
    images = _rows(small_set / "images.csv")
    for split, n in (("train", 12), ("val", 4), ("test", 4), ("test_shifted", 8)):
        sel = [r for r in images if r["split"] == split]
        pos = [r for r in sel if r["label"] == "1"]
        neg = [r for r in sel if r["label"] == "0"]
        mono1 = [r for r in sel if r["photometric"] == "MONOCHROME1"]
        marked = (sum(r["marker"] == "1" for r in pos), sum(r["marker"] == "1" for r in neg))
        expected_marked = (2, 2) if split == "test_shifted" else (round(0.95 * n / 2), round(0.05 * n / 2))
        assert (len(sel), len(pos), marked, len(mono1)) == (n, n // 2, expected_marked, n // 4)
        assert manifest["counts"][split] == {
            "images": n, "positive": n // 2, "marker_positive": marked[0], "marker_negative": marked[1],
            "monochrome1": n // 4,
        }  # fmt: skip


def test_dicoms_readable_and_monochrome1_inverted(small_set):
    images = {r["image_id"]: r for r in _rows(small_set / "images.csv")}
    reader = LoadImage(reader=PydicomReader(), image_only=True)
    seen = set()
    for image_id, info in images.items():
        ds = pydicom.dcmread(small_set / "train" / f"{image_id}.dicom")
        assert ds.PhotometricInterpretation == info["photometric"] and ds.Modality == "DX"
        assert (ds.Rows, ds.Columns) == (48, 64) and ds.pixel_array.dtype == np.uint16
        seen.add(info["photometric"])
        # the body is bright and the air corners dark, once MONOCHROME1 is inverted
        arr = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        if ds.PhotometricInterpretation == "MONOCHROME1":
            arr = (2**ds.BitsStored - 1) - arr
        assert arr[20:28, 28:36].mean() > arr[-4:, :3].mean() + 400
    assert seen == {"MONOCHROME1", "MONOCHROME2"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = reader(str(small_set / "train" / f"{next(iter(images))}.dicom"))
    assert tuple(loaded.shape) == (64, 48)


@pytest.mark.parametrize("seed", [0, 5])
def test_lesion_pixels_fall_inside_csv_boxes_through_monai(tmp_path, seed):
    """Brightest pixels (the lesions, made very bright here) lie in the CSV box with x -> axis 0, y -> axis 1."""
    root = generate_shortcut_cxr(
        tmp_path, n_train=6, n_val=0, n_test=0, n_test_shifted=0, image_size=(56, 72), seed=seed,
        lesion_contrast=(0.9, 0.9), lesion_radius=(0.06, 0.08), marker_prob_positive=0.0, box_jitter=0.0,
        monochrome1_fraction=0.5,
    )  # fmt: skip
    rows = [r for r in _rows(root / "train.csv") if r["class_name"] != NO_FINDING]
    images = {r["image_id"]: r for r in _rows(root / "images.csv")}
    truth = {r["image_id"]: r for r in _rows(root / "truth_boxes.csv")}
    reader = LoadImage(reader=PydicomReader(), image_only=True)
    checked = 0
    for image_id in {r["image_id"] for r in rows}:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = np.asarray(reader(str(root / "train" / f"{image_id}.dicom")))
        assert img.shape == (72, 56)
        if images[image_id]["photometric"] == "MONOCHROME1":
            img = 4095 - img
        top = np.argsort(img.ravel())[-15:]
        ax0, ax1 = np.unravel_index(top, img.shape)
        for r in (r for r in rows if r["image_id"] == image_id):
            x0, y0, x1, y1 = (float(r[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
            assert (x0 <= ax0).all() and (ax0 < x1).all(), (image_id, r)
            assert (y0 <= ax1).all() and (ax1 < y1).all(), (image_id, r)
            # no jitter: every reader's box equals the tight truth box
            t = truth[image_id]
            assert [int(float(r[k])) for k in ("x_min", "y_min", "x_max", "y_max")] == [
                int(t[k]) for k in ("x_min", "y_min", "x_max", "y_max")
            ]
        checked += 1
    assert checked == 3


def test_marker_label_correlation_statistics(tmp_path):
    root = generate_shortcut_cxr(
        tmp_path, n_train=80, n_val=0, n_test=40, n_test_shifted=80, image_size=32, n_readers=1,
        monochrome1_fraction=0.0,
    )  # fmt: skip
    images = _rows(root / "images.csv")

    def table(split):
        sel = [(int(r["label"]), int(r["marker"])) for r in images if r["split"] == split]
        return [[sum(1 for lab, m in sel if lab == a and m == b) for b in (1, 0)] for a in (1, 0)]

    for split in ("train", "test"):
        t = table(split)
        odds, p = fisher_exact(t)
        assert p < 1e-8 and odds > 50, (split, t)
    t = table("test_shifted")
    assert t == [[20, 20], [20, 20]]
    assert fisher_exact(t)[1] == pytest.approx(1.0)


def test_shortcut_is_learned_and_fails_on_shifted_split(tmp_path):
    """A logistic regression on raw pixels reaches the marker's accuracy in distribution, chance on test_shifted."""
    root = generate_shortcut_cxr(
        tmp_path, n_train=120, n_val=0, n_test=60, n_test_shifted=60, image_size=32, n_readers=1,
        monochrome1_fraction=0.0,
    )  # fmt: skip
    images = _rows(root / "images.csv")
    data = {}
    for split in ("train", "test", "test_shifted"):
        sel = [r for r in images if r["split"] == split]
        x = np.stack([pydicom.dcmread(root / "train" / f"{r['image_id']}.dicom").pixel_array for r in sel])
        x = torch.as_tensor(x.reshape(len(sel), -1) / 4095.0, dtype=torch.float32)
        data[split] = (x - 0.4, torch.tensor([float(r["label"]) for r in sel]))
    w = torch.zeros(32 * 32, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.01)
    for _ in range(150):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(data["train"][0] @ w + b, data["train"][1])
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc = {k: float((((x @ w + b) > 0).float() == y).float().mean()) for k, (x, y) in data.items()}
    assert acc["test"] >= 0.85
    assert acc["test_shifted"] <= acc["test"] - 0.2


def test_deterministic_and_idempotent(tmp_path, small_set):
    again = generate_shortcut_cxr(tmp_path / "again", seed=1, **SMALL)
    for name in ("train.csv", "splits.json", "images.csv", "truth_boxes.csv", "manifest.json"):
        assert (again / name).read_bytes() == (small_set / name).read_bytes(), name
    for image_id in load_splits(again):
        assert (again / "train" / f"{image_id}.dicom").read_bytes() == (
            small_set / "train" / f"{image_id}.dicom"
        ).read_bytes()
    # a second call with the same arguments writes nothing
    stamps = {p: p.stat().st_mtime_ns for p in again.rglob("*")}
    assert generate_shortcut_cxr(again, seed=1, **SMALL) == again
    assert {p: p.stat().st_mtime_ns for p in again.rglob("*")} == stamps
    # another seed gives other images
    other = generate_shortcut_cxr(tmp_path / "other", seed=2, **SMALL)
    assert set(load_splits(other)).isdisjoint(load_splits(again))


def test_other_parameters_raise_unless_overwrite(tmp_path):
    kw = dict(SMALL, image_size=32)
    root = generate_shortcut_cxr(tmp_path, **kw)
    old_ids = set(load_splits(root))
    with pytest.raises(ValueError, match="differing: seed"):
        generate_shortcut_cxr(root, **dict(kw, seed=3))
    generate_shortcut_cxr(root, overwrite=True, **dict(kw, seed=3))
    new_ids = set(load_splits(root))
    assert new_ids.isdisjoint(old_ids)
    assert sorted(p.stem for p in (root / "train").iterdir()) == sorted(new_ids)  # stale files removed


def test_missing_file_triggers_regeneration(tmp_path):
    kw = dict(SMALL, image_size=32)
    root = generate_shortcut_cxr(tmp_path, **kw)
    victim = root / "train" / f"{next(iter(load_splits(root)))}.dicom"
    content = victim.read_bytes()
    victim.unlink()
    generate_shortcut_cxr(root, **kw)
    assert victim.read_bytes() == content


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_train": -1}, "n_train"),
        ({"prevalence": 1.5}, "prevalence"),
        ({"marker_prob_positive": -0.1}, "marker_prob_positive"),
        ({"n_readers": 18}, "n_readers"),
        ({"max_lesions": 0}, "max_lesions"),
        ({"box_enlarge": 0.0}, "box_enlarge"),
        ({"class_id": 14}, "No finding"),
        ({"image_size": 8}, "image_size"),
    ],
)
def test_bad_input(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_shortcut_cxr(tmp_path, **{**SMALL, **kwargs})


def test_load_splits_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="splits.json"):
        load_splits(tmp_path)
    (tmp_path / "splits.json").write_text(json.dumps({"abc": "holdout"}))
    with pytest.raises(ValueError, match="abc"):
        load_splits(tmp_path)


def test_readers_multiple_lesions_and_misses(tmp_path):
    root = generate_shortcut_cxr(
        tmp_path, n_train=16, n_val=0, n_test=0, n_test_shifted=0, image_size=64, max_lesions=2, n_readers=2,
        reader_miss_prob=0.5, lesion_radius=(0.04, 0.05),
    )  # fmt: skip
    rows = _rows(root / "train.csv")
    images = {r["image_id"]: r for r in _rows(root / "images.csv")}
    n_missed = 0
    for image_id, info in images.items():
        mine = [r for r in rows if r["image_id"] == image_id]
        by_reader = {}
        for r in mine:
            by_reader.setdefault(r["rad_id"], []).append(r)
        assert len(by_reader) == 2
        if info["label"] == "0":
            assert all(len(v) == 1 and v[0]["class_name"] == NO_FINDING for v in by_reader.values())
            continue
        n_les = int(info["n_lesions"])
        counts = sorted(len(v) if v[0]["class_name"] != NO_FINDING else 0 for v in by_reader.values())
        assert counts[-1] == n_les  # at least one reader marks every lesion
        n_missed += counts[0] == 0
    assert n_missed > 0
    assert {int(r["n_lesions"]) for r in images.values() if r["label"] == "1"} == {1, 2}


def test_bundle_config_entry_point(tmp_path):
    from monai.bundle import ConfigParser

    parser = ConfigParser(
        {
            "imports": ["$import monai_explain", "$import monai_explain.apps.synthetic"],
            "dataset_dir": str(tmp_path / "cfg"),
            "root": "$monai_explain.apps.synthetic.generate_shortcut_cxr(@dataset_dir, n_train=4, n_val=0, "
            "n_test=0, n_test_shifted=0, image_size=32)",
            "csv": "$str(@root / 'train.csv')",
        }
    )
    parser.get_parsed_content("imports")
    assert parser.get_parsed_content("root") == tmp_path / "cfg"
    with open(parser.get_parsed_content("csv")) as f:
        assert f.readline().strip() == HEADER


def test_refuses_a_folder_holding_files_it_did_not_create(tmp_path):
    """The user's data set (VinDr layout: train.csv, train/*.dicom) is never written into."""
    user = tmp_path / "vindr"
    (user / "train").mkdir(parents=True)
    (user / "train.csv").write_text("image_id,class_name\nabc,No finding\n")
    (user / "train" / "abc.dicom").write_bytes(b"\x01\x02user data")
    before = {p: p.read_bytes() for p in user.rglob("*") if p.is_file()}
    for overwrite in (False, True):
        with pytest.raises(ValueError, match=r"refusing to generate synthetic data into .*vindr.*train, train\.csv"):
            generate_shortcut_cxr(user, overwrite=overwrite, **dict(SMALL, image_size=32))
    assert {p: p.read_bytes() for p in user.rglob("*") if p.is_file()} == before, "nothing written or removed"
    # a folder of the user's with a manifest.json of its own is no generator's folder either
    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").write_text('{"kind": "mine"}')
    with pytest.raises(ValueError, match="refusing to generate"):
        generate_shortcut_cxr(other, **dict(SMALL, image_size=32))


def test_generates_into_new_empty_or_own_folder(tmp_path):
    kw = dict(SMALL, image_size=32)
    empty = tmp_path / "empty"
    empty.mkdir()
    root = generate_shortcut_cxr(empty, **kw)
    assert (root / ".monai_explain_synthetic").read_text() == "shortcut_cxr\n"
    # its own folder: an interrupted generation (marker, no manifest yet) is regenerated, not refused
    (root / "manifest.json").unlink()
    generate_shortcut_cxr(root, **kw)
    assert (root / "manifest.json").is_file()
    # a set generated before the marker existed (manifest of a generator, no marker) is still its own
    (root / ".monai_explain_synthetic").unlink()
    generate_shortcut_cxr(root, overwrite=True, **dict(kw, seed=5))
    assert json.loads((root / "manifest.json").read_text())["parameters"]["seed"] == 5


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"marker_kind": "corner", "shifted_marker_prob": 0.5, "marker_prob_positive": 0.95},
        {"second_class_name": None, "second_class_id": None, "second_prevalence": 0.3,
         "second_lesion_radius": [0.12, 0.18], "second_lesion_contrast": (0.16, 0.26)},
    ],
)  # fmt: skip
def test_default_output_is_unchanged(tmp_path, extra):
    """The default call (and the defaults passed explicitly) writes the same files as before the marker kinds and
    the second finding."""
    root = generate_shortcut_cxr(tmp_path / "set", **HASHED, **extra)
    params = json.loads((root / "manifest.json").read_text())["parameters"]
    assert "marker_kind" not in params and not any(k.startswith("second_") for k in params)
    assert _tree_hash(root) == HASHED_DIGEST


@pytest.mark.parametrize("kind", ["ruler", "text"])
def test_marker_kind_boxes_in_all_tables_and_pixels(tmp_path, kind):
    root = generate_shortcut_cxr(
        tmp_path, n_train=8, n_val=0, n_test=0, n_test_shifted=4, image_size=64, marker_kind=kind,
        monochrome1_fraction=0.5, n_readers=1,
    )  # fmt: skip
    assert json.loads((root / "manifest.json").read_text())["parameters"]["marker_kind"] == kind
    images = {r["image_id"]: r for r in _rows(root / "images.csv")}
    confounders = {r["image_id"]: _box(r) for r in _rows(root / "confounder_boxes.csv")}
    truth = {r["image_id"]: _box(r) for r in _rows(root / "truth_boxes.csv") if r["object"] == "marker"}
    marked = {i for i, r in images.items() if r["marker"] == "1"}
    assert marked and set(confounders) == set(truth) == marked
    for image_id, info in images.items():
        ds = pydicom.dcmread(root / "train" / f"{image_id}.dicom")
        arr = ds.pixel_array.astype(int)
        if ds.PhotometricInterpretation == "MONOCHROME1":
            arr = 4095 - arr
        full = arr == 4095  # only the marker is drawn at full intensity
        if image_id not in marked:
            assert not full.any() and info["marker_letter"] == info["marker_x_min"] == ""
            continue
        x0, y0, x1, y1 = box = confounders[image_id]
        assert box == truth[image_id] == _box(info, "marker_")
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
        rows, cols = np.nonzero(full)
        assert [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1] == box  # tight around the marker
        assert full[y0:y1, x0:x1].mean() > 0.3
        if kind == "text":
            assert 3 <= len(info["marker_letter"]) <= 6 and (y0 <= 4 or y1 >= 60)
        else:
            assert info["marker_letter"] == "" and min(x1 - x0, y1 - y0) == 5


@pytest.mark.parametrize("shift", [[0.05, 0.95], (0.05, 0.95), "[0.05, 0.95]"])
def test_reversed_shift_exact_counts(tmp_path, shift):
    root = generate_shortcut_cxr(
        tmp_path, n_train=20, n_val=0, n_test=0, n_test_shifted=40, image_size=32, n_readers=1,
        shifted_marker_prob=shift,
    )  # fmt: skip
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["parameters"]["shifted_marker_prob"] == [0.05, 0.95]
    # test_shifted: 20 positives, round(0.05 * 20) = 1 marked; 20 negatives, round(0.95 * 20) = 19 marked
    assert manifest["counts"]["test_shifted"] == {
        "images": 40, "positive": 20, "marker_positive": 1, "marker_negative": 19, "monochrome1": 10,
    }  # fmt: skip
    assert manifest["counts"]["train"]["marker_positive"] == 10 and manifest["counts"]["train"]["marker_negative"] == 1
    shifted = [r for r in _rows(root / "images.csv") if r["split"] == "test_shifted"]
    table = {(a, b): sum(r["label"] == a and r["marker"] == b for r in shifted) for a in "01" for b in "01"}
    assert table == {("1", "1"): 1, ("1", "0"): 19, ("0", "1"): 19, ("0", "0"): 1}


def test_shift_pair_of_equal_values_draws_like_one_number(tmp_path):
    kw = {"n_train": 4, "n_val": 0, "n_test": 0, "n_test_shifted": 8, "image_size": 32}
    one = generate_shortcut_cxr(tmp_path / "one", shifted_marker_prob=0.25, **kw)
    pair = generate_shortcut_cxr(tmp_path / "pair", shifted_marker_prob=[0.25, 0.25], **kw)
    assert (one / "images.csv").read_bytes() == (pair / "images.csv").read_bytes()
    assert json.loads((pair / "manifest.json").read_text())["parameters"]["shifted_marker_prob"] == [0.25, 0.25]
    assert json.loads((one / "manifest.json").read_text())["parameters"]["shifted_marker_prob"] == 0.25


def test_correlation_strength_90_10_exact_counts(tmp_path):
    root = generate_shortcut_cxr(
        tmp_path, n_train=40, n_val=20, n_test=20, n_test_shifted=20, image_size=32, n_readers=1,
        marker_prob_positive=0.9, marker_prob_negative=0.1, marker_kind="text",
    )  # fmt: skip
    counts = json.loads((root / "manifest.json").read_text())["counts"]
    images = _rows(root / "images.csv")
    for split, n in (("train", 40), ("val", 20), ("test", 20), ("test_shifted", 20)):
        sel = [r for r in images if r["split"] == split]
        marked = (
            sum(r["label"] == "1" and r["marker"] == "1" for r in sel),
            sum(r["label"] == "0" and r["marker"] == "1" for r in sel),
        )
        expected = (n // 4, n // 4) if split == "test_shifted" else (round(0.9 * n / 2), round(0.1 * n / 2))
        assert marked == expected == (counts[split]["marker_positive"], counts[split]["marker_negative"]), split
    assert len(_rows(root / "confounder_boxes.csv")) == 18 + 2 + 9 + 1 + 9 + 1 + 5 + 5


def test_other_marker_kind_on_an_existing_set_raises_unless_overwrite(tmp_path):
    kw = dict(SMALL, image_size=32)
    root = generate_shortcut_cxr(tmp_path, **kw)
    with pytest.raises(ValueError, match="differing: marker_kind"):
        generate_shortcut_cxr(root, marker_kind="ruler", **kw)
    with pytest.raises(ValueError, match="differing: shifted_marker_prob"):
        generate_shortcut_cxr(root, shifted_marker_prob=[0.05, 0.95], **kw)
    generate_shortcut_cxr(root, marker_kind="ruler", overwrite=True, **kw)
    assert json.loads((root / "manifest.json").read_text())["parameters"]["marker_kind"] == "ruler"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"marker_kind": "rular"}, r"marker_kind must be one of \['corner', 'ruler', 'text'\], got 'rular'"),
        ({"marker_kind": None}, "marker_kind"),
        ({"marker_size": 0.0}, "marker_size must be > 0"),
        ({"marker_kind": "ruler", "marker_size": 0.5}, "marker_size 0.5 gives"),
        ({"marker_kind": "text", "marker_size": 0.5}, "marker_size 0.5 gives"),
        ({"shifted_marker_prob": 1.5}, r"shifted_marker_prob values must be in \[0, 1\]"),
        ({"shifted_marker_prob": [0.05, 1.2]}, r"shifted_marker_prob values must be in \[0, 1\]"),
        ({"shifted_marker_prob": [0.5]}, r"shifted_marker_prob must be a number or \[p_positive, p_negative\]"),
        ({"shifted_marker_prob": [0.1, 0.2, 0.3]}, "shifted_marker_prob must be"),
        ({"shifted_marker_prob": "[0.05, oops]"}, "shifted_marker_prob must be"),
        ({"shifted_marker_prob": ["0.05", "0.95"]}, "shifted_marker_prob must be"),
        ({"shifted_marker_prob": True}, "shifted_marker_prob must be"),
        ({"marker_prob_negative": 1.1}, "marker_prob_negative"),
    ],
)
def test_bad_marker_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_shortcut_cxr(tmp_path / "set", **{**SMALL, **kwargs})
    assert not (tmp_path / "set").exists(), "nothing written"


# ---- a second finding: the multi-label set ----------------------------------------------------------------------

MULTI = {"n_train": 40, "n_val": 8, "n_test": 12, "n_test_shifted": 20, "image_size": 64, "n_readers": 2}


def _round(x: float) -> int:
    return int(np.floor(x + 0.5))


@pytest.fixture(scope="module")
def multi_set(tmp_path_factory):
    return generate_shortcut_cxr(tmp_path_factory.mktemp("multi") / "set", second_class_name="Consolidation", **MULTI)


def test_second_finding_exact_counts_and_independence(multi_set):
    manifest = json.loads((multi_set / "manifest.json").read_text())
    assert {k: v for k, v in manifest["parameters"].items() if k.startswith("second_")} == {
        "second_class_name": "Consolidation", "second_class_id": 4, "second_prevalence": 0.3,
        "second_lesion_radius": [0.12, 0.18], "second_lesion_contrast": [0.16, 0.26],
    }  # fmt: skip
    images = _rows(multi_set / "images.csv")
    combos = set()
    for split in ("train", "val", "test", "test_shifted"):
        sel = [r for r in images if r["split"] == split]
        for r in sel:
            assert r["n_second_lesions"] == r["second_label"] in ("0", "1")
            combos.add((r["label"], r["second_label"]))
        # round(0.3 * m) second findings in each of the four (first label x marker) groups of m images
        for lab in "01":
            for mark in "01":
                group = [r for r in sel if r["label"] == lab and r["marker"] == mark]
                assert sum(r["second_label"] == "1" for r in group) == _round(0.3 * len(group)), (split, lab, mark)
        counts = manifest["counts"][split]
        assert counts["second_positive"] == sum(r["second_label"] == "1" for r in sel)
        assert counts["both_positive"] == sum(r["label"] == r["second_label"] == "1" for r in sel)
        assert counts["second_marker"] == sum(r["second_label"] == r["marker"] == "1" for r in sel)
        # the first finding's counts are those of a single-finding set
        n = len(sel)
        expected_marked = (5, 5) if split == "test_shifted" else (_round(0.95 * n / 2), _round(0.05 * n / 2))
        assert (counts["positive"], counts["marker_positive"], counts["marker_negative"]) == (n // 2, *expected_marked)
    # train: 19 marked / 1 unmarked positives, 1 marked / 19 unmarked negatives -> 6 + 0 + 0 + 6
    assert manifest["counts"]["train"]["second_positive"] == 12 and manifest["counts"]["train"]["both_positive"] == 6
    # test_shifted: four groups of 5 images -> round(1.5) = 2 each (round half up)
    assert manifest["counts"]["test_shifted"]["second_positive"] == 8
    assert combos == {("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")}  # both, one or none


def test_second_finding_rows_of_train_csv(multi_set):
    rows = _rows(multi_set / "train.csv")
    images = {r["image_id"]: r for r in _rows(multi_set / "images.csv")}
    truth: dict[tuple[str, str], list[list[int]]] = {}
    for r in _rows(multi_set / "truth_boxes.csv"):
        truth.setdefault((r["image_id"], r["object"]), []).append(_box(r))
    ids = {"Nodule/Mass": ("8", "label", "lesion"), "Consolidation": ("4", "second_label", "second_lesion")}
    for image_id, info in images.items():
        mine = [r for r in rows if r["image_id"] == image_id]
        assert len({r["rad_id"] for r in mine}) == 2
        names = [r["class_name"] for r in mine]
        if info["label"] == info["second_label"] == "0":  # "No finding" only for images without any finding
            assert names == [NO_FINDING, NO_FINDING] and {r["class_id"] for r in mine} == {"14"}
            continue
        assert NO_FINDING not in names
        for name, (cid, label_key, obj) in ids.items():
            of_class = [r for r in mine if r["class_name"] == name]
            assert all(r["class_id"] == cid for r in of_class)
            assert len(of_class) == (2 if info[label_key] == "1" else 0), (image_id, name)  # each reader marks it
            assert len(truth.get((image_id, obj), [])) == int(info[label_key])
        # a reader lists the first finding's box, then the second's
        for rad in {r["rad_id"] for r in mine}:
            order = [r["class_name"] for r in mine if r["rad_id"] == rad]
            assert order == sorted(order, key=["Nodule/Mass", "Consolidation"].index)
    n_second = sum(r["second_label"] == "1" for r in images.values())
    assert sum(r["object"] == "second_lesion" for r in _rows(multi_set / "truth_boxes.csv")) == n_second


def test_second_finding_data_list_is_multi_label(multi_set):
    from monai_explain.data import build_datalist

    images = {r["image_id"]: r for r in _rows(multi_set / "images.csv")}
    data = build_datalist("vindr", multi_set, "train", classes=["Nodule/Mass", "Consolidation"])
    assert len(data) == 40
    for rec in data:
        info = images[rec["id"]]
        assert rec["label"] == [float(info["label"]), float(info["second_label"])]
        assert sorted(set(np.asarray(rec["box_labels"]).tolist())) == [
            k for k, key in enumerate(("label", "second_label")) if info[key] == "1"
        ]


def test_second_finding_boxes_in_the_lesion_of_their_class(tmp_path):
    """No jitter: readers' boxes are the truth boxes of their class; the bright pixels of a (very bright here)
    nodule or opacity lie in the box of its own class."""
    root = generate_shortcut_cxr(
        tmp_path, n_train=24, n_val=0, n_test=0, n_test_shifted=0, image_size=64, seed=2, box_jitter=0.0,
        lesion_contrast=(0.9, 0.9), second_class_name="Consolidation", second_prevalence=0.5,
        second_lesion_contrast=(0.7, 0.7), marker_prob_positive=0.0, marker_prob_negative=0.0, monochrome1_fraction=0.0,
        n_readers=1,
    )  # fmt: skip
    images = {r["image_id"]: r for r in _rows(root / "images.csv")}
    truth = {(r["image_id"], r["object"]): _box(r) for r in _rows(root / "truth_boxes.csv")}
    objects = {"Nodule/Mass": "lesion", "Consolidation": "second_lesion"}
    seen = set()
    for r in _rows(root / "train.csv"):
        if r["class_name"] != NO_FINDING:
            assert [int(float(r[k])) for k in ("x_min", "y_min", "x_max", "y_max")] == truth[
                (r["image_id"], objects[r["class_name"]])
            ]
    for image_id, info in images.items():
        arr = pydicom.dcmread(root / "train" / f"{image_id}.dicom").pixel_array.astype(float)
        present = [obj for obj, key in (("lesion", "label"), ("second_lesion", "second_label")) if info[key] == "1"]
        seen.add(tuple(present))
        if len(present) != 1:
            continue
        x0, y0, x1, y1 = truth[(image_id, present[0])]
        rows, cols = np.unravel_index(np.argsort(arr.ravel())[-10:], arr.shape)
        assert ((x0 <= cols) & (cols < x1) & (y0 <= rows) & (rows < y1)).all(), (image_id, present)
        if present == ["second_lesion"]:  # a large plateau: the box is bright throughout its middle
            cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
            assert arr[cy - 1 : cy + 2, cx - 1 : cx + 2].mean() > np.median(arr) + 800
    assert seen == {(), ("lesion",), ("second_lesion",), ("lesion", "second_lesion")}


def test_second_finding_keeps_the_single_finding_draws(tmp_path):
    """Same labels, markers, ids and images as without the second finding, plus the opacity where it is drawn."""
    kw = {"n_train": 12, "n_val": 0, "n_test": 4, "n_test_shifted": 8, "image_size": 48, "seed": 4}
    one = generate_shortcut_cxr(tmp_path / "one", **kw)
    two = generate_shortcut_cxr(tmp_path / "two", second_class_name="Consolidation", second_prevalence=0.5, **kw)
    assert (one / "splits.json").read_bytes() == (two / "splits.json").read_bytes()
    assert (one / "confounder_boxes.csv").read_bytes() == (two / "confounder_boxes.csv").read_bytes()
    first = _rows(one / "images.csv")
    second = _rows(two / "images.csv")
    assert [{k: v for k, v in r.items() if not k.endswith(("second_label", "second_lesions"))} for r in second] == first
    truth = {r["image_id"]: _box(r) for r in _rows(two / "truth_boxes.csv") if r["object"] == "second_lesion"}
    without = [r["image_id"] for r in second if r["second_label"] == "0"]
    assert 0 < len(without) < len(second) and len(truth) == len(second) - len(without)
    for image_id in without:
        assert (one / "train" / f"{image_id}.dicom").read_bytes() == (two / "train" / f"{image_id}.dicom").read_bytes()
    for image_id, (x0, y0, x1, y1) in truth.items():  # the same image plus the opacity, inside its box
        a = pydicom.dcmread(one / "train" / f"{image_id}.dicom").pixel_array.astype(int)
        b = pydicom.dcmread(two / "train" / f"{image_id}.dicom").pixel_array.astype(int)
        changed = np.zeros(a.shape, dtype=bool)
        changed[y0:y1, x0:x1] = True
        assert (a[~changed] == b[~changed]).all() and (a[changed] != b[changed]).mean() > 0.3
    c1 = json.loads((one / "manifest.json").read_text())["counts"]
    c2 = json.loads((two / "manifest.json").read_text())["counts"]
    for split, counts in c1.items():
        assert {k: v for k, v in c2[split].items() if k in counts} == counts


def test_second_finding_of_another_name_and_id(tmp_path):
    root = generate_shortcut_cxr(
        tmp_path, n_train=8, n_val=0, n_test=0, n_test_shifted=0, image_size=48, n_readers=1,
        second_class_name="Opacity X", second_class_id=20, second_prevalence=1.0,
    )  # fmt: skip
    rows = [r for r in _rows(root / "train.csv") if r["class_name"] == "Opacity X"]
    assert len(rows) == 8 and {r["class_id"] for r in rows} == {"20"}


def test_other_second_finding_on_an_existing_set_raises_unless_overwrite(tmp_path):
    kw = dict(SMALL, image_size=48)
    root = generate_shortcut_cxr(tmp_path, **kw)
    with pytest.raises(ValueError, match="differing: .*second_class_name"):
        generate_shortcut_cxr(root, second_class_name="Consolidation", **kw)
    generate_shortcut_cxr(root, second_class_name="Consolidation", overwrite=True, **kw)
    assert json.loads((root / "manifest.json").read_text())["parameters"]["second_class_name"] == "Consolidation"
    with pytest.raises(ValueError, match="differing: second_prevalence"):
        generate_shortcut_cxr(root, second_class_name="Consolidation", second_prevalence=0.5, **kw)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"second_prevalence": 0.5}, "second_prevalence is set .* but second_class_name is None"),
        ({"second_class_id": 4}, "second_class_id is set"),
        ({"second_lesion_radius": (0.1, 0.2)}, "second_lesion_radius is set"),
        ({"second_class_name": ""}, "second_class_name must be a non-empty string"),
        ({"second_class_name": "Opacity X"}, "second_class_id is needed for second_class_name 'Opacity X'"),
        ({"second_class_name": "Consolidation", "second_class_id": 5}, "second_class_id 5 is not VinDr-CXR's id"),
        ({"second_class_name": "Consolidation", "second_class_id": 2.5}, "second_class_id must be an int"),
        ({"second_class_name": "Nodule/Mass"}, "must differ from class_name/class_id"),
        ({"second_class_name": "Opacity X", "second_class_id": 8}, "must differ from class_name/class_id"),
        ({"second_class_name": NO_FINDING, "second_class_id": 14}, "must differ from 'No finding'"),
        ({"second_class_name": "Consolidation", "second_prevalence": 1.2}, r"second_prevalence must be in \[0, 1\]"),
        ({"second_class_name": "Consolidation", "second_lesion_radius": (0.2, 0.1)}, "second_lesion_radius must be"),
        ({"second_class_name": "Consolidation", "second_lesion_contrast": [0.1]}, "second_lesion_contrast must be"),
    ],
)
def test_bad_second_finding_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_shortcut_cxr(tmp_path / "set", **{**SMALL, **kwargs})
    assert not (tmp_path / "set").exists(), "nothing written"
