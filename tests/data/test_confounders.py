from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest

from monai_explain.apps.synthetic import generate_shortcut_cxr, generate_synthetic_ct
from monai_explain.data import AnnotationFormatError, attach_confounder_boxes, build_datalist, read_confounder_boxes


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_read_and_attach_2d(tmp_path):
    path = tmp_path / "confounder_boxes.csv"
    path.write_text("image_id,x_min,y_min,x_max,y_max\na,1,2,5,6\na,10,10,12,14\nc,0,0,3,3\n")
    boxes = read_confounder_boxes(path)
    assert sorted(boxes) == ["a", "c"] and boxes["a"].dtype == np.float32
    assert boxes["a"].tolist() == [[1, 2, 5, 6], [10, 10, 12, 14]]
    data = [{"id": "a", "boxes": np.zeros((0, 4))}, {"id": "b"}]
    out = attach_confounder_boxes(data, boxes)
    assert out[0]["confounder_boxes"].shape == (2, 4) and out[1]["confounder_boxes"].shape == (0, 4)
    assert "confounder_boxes" not in data[0], "records are copied"


def test_read_3d_and_dimension_mismatch(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("image_id,x_min,y_min,z_min,x_max,y_max,z_max\nv,1,2,3,4,5,6\n")
    boxes = read_confounder_boxes(path)
    assert boxes["v"].tolist() == [[1, 2, 3, 4, 5, 6]]
    with pytest.raises(AnnotationFormatError, match="3D confounder boxes for image 'v'"):
        attach_confounder_boxes([{"id": "v", "boxes": np.zeros((1, 4))}], boxes, source=str(path))


@pytest.mark.parametrize(
    "text,match",
    [
        ("image_id,x_min,y_min,x_max,y_max\na,5,2,1,6\n", r"row 1.*inverted confounder box"),
        ("image_id,x_min,y_min,x_max,y_max\na,1,2,5,6\nb,1,x,5,6\n", r"row 2.*'y_min'.*not a number"),
        ("image_id,x_min,y_min,x_max\na,1,2,5\n", "y_max"),
    ],
)
def test_bad_rows_are_located(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(AnnotationFormatError, match=match) as err:
        read_confounder_boxes(path)
    assert "bad.csv" in str(err.value)
    with pytest.raises(FileNotFoundError, match="nothere.csv"):
        read_confounder_boxes(tmp_path / "nothere.csv")


def test_synthetic_cxr_marker_boxes_reach_the_data_list(tmp_path):
    root = generate_shortcut_cxr(
        tmp_path / "cxr", n_train=6, n_val=4, n_test=4, n_test_shifted=8, image_size=(48, 64), seed=2
    )
    images = {r["image_id"]: r for r in _rows(root / "images.csv")}
    data = build_datalist("vindr", root, "test_shifted", classes=["Nodule/Mass"])
    assert len(data) == 8
    marked = 0
    for rec in data:
        truth = images[rec["id"]]
        if truth["marker"] == "1":
            marked += 1
            want = [[float(truth[f"marker_{c}"]) for c in ("x_min", "y_min", "x_max", "y_max")]]
            assert rec["confounder_boxes"].tolist() == want, rec["id"]
        else:
            assert rec["confounder_boxes"].shape == (0, 4), rec["id"]
    assert marked == 4, "test_shifted: half of the images carry the marker"
    # without the file, no key (and no guessing)
    (root / "confounder_boxes.csv").unlink()
    (root / "manifest.json").unlink()  # keep the generator from being consulted: build_datalist only reads
    assert "confounder_boxes" not in build_datalist("vindr", root, "test_shifted", classes=["Nodule/Mass"])[0]


def test_synthetic_ct_marker_box_is_the_bright_voxels(tmp_path):
    root = generate_synthetic_ct(
        tmp_path / "ct", n=4, shape=(32, 32, 8), seed=3, marker_prob_positive=1.0, marker_prob_negative=1.0,
        fmt="nifti",
    )  # fmt: skip
    rows = _rows(root / "confounder_boxes.csv")
    assert len(rows) == 4 and list(rows[0]) == ["image_id", "x_min", "y_min", "z_min", "x_max", "y_max", "z_max"]
    for row in rows:
        vol = np.asarray(nib.load(str(root / "subset0" / f"{row['image_id']}.nii.gz")).dataobj)
        i0, j0, k0, i1, j1, k1 = (int(row[c]) for c in ("x_min", "y_min", "z_min", "x_max", "y_max", "z_max"))
        assert np.all(vol[i0:i1, j0:j1, k0:k1] == 2000.0), row["image_id"]
        outside = vol.copy()
        outside[i0:i1, j0:j1, k0:k1] = 0
        assert outside.max() < 2000.0, "the box holds the whole marker"
