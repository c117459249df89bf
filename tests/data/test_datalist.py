from __future__ import annotations

import json

import numpy as np
import pytest

from monai_explain.data import assign_splits, build_datalist, positive_indices, select_classes

CLASSES = ("A", "B", "C")


def _records():
    return [
        {"id": "p1", "label": [1.0, 0.0, 1.0], "boxes": np.array([[0, 0, 2, 2], [1, 1, 3, 3]], np.float32),
         "box_labels": np.array([0, 2]), "box_readers": np.array(["R1", "R2"])},
        {"id": "n1", "label": [0.0, 0.0, 0.0], "boxes": np.zeros((0, 4), np.float32), "box_labels": np.zeros(0, int)},
        {"id": "p2", "label": [0.0, 1.0, 0.0], "boxes": np.array([[4, 4, 6, 6]], np.float32),
         "box_labels": np.array([1])},
    ]  # fmt: skip


def test_select_classes_remaps_labels_and_boxes():
    out = select_classes(_records(), CLASSES, ["C", "B"])
    assert [r["label"] for r in out] == [[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]
    assert out[0]["box_labels"].tolist() == [0] and out[0]["boxes"].tolist() == [[1, 1, 3, 3]]
    assert out[0]["box_readers"].tolist() == ["R2"], "readers follow their boxes"
    assert out[2]["box_labels"].tolist() == [1]
    assert _records()[0]["box_labels"].tolist() == [0, 2], "input not modified"


@pytest.mark.parametrize(
    "keep, label, match",
    [(["D"], None, "unknown class names"), (["A"], [1.0, 0.0], "label has 2 entries, expected 3")],
)
def test_select_classes_errors(keep, label, match):
    recs = _records()
    if label is not None:
        recs[1]["label"] = label
    with pytest.raises(ValueError, match=match):
        select_classes(recs, CLASSES, keep)


def test_assign_splits_from_file_field_and_ratios(tmp_path):
    recs = _records()
    split_file = tmp_path / "splits.json"
    split_file.write_text(json.dumps({"p1": "train", "n1": "test", "p2": "train"}))
    groups = assign_splits(recs, split_file=split_file)
    assert {k: [r["id"] for r in v] for k, v in groups.items()} == {"train": ["p1", "p2"], "test": ["n1"]}
    split_file.write_text(json.dumps({"p1": "train"}))
    with pytest.raises(KeyError, match="image 'n1' has no split"):
        assign_splits(recs, split_file=split_file)
    fielded = [{**r, "split": s} for r, s in zip(recs, ["a", "b", "a"])]
    assert sorted(assign_splits(fielded)) == ["a", "b"]
    many = [{"id": str(i), "label": [float(i % 2)]} for i in range(20)]
    parts = assign_splits(many, ratios=(0.5, 0.25, 0.25), seed=3)
    assert len(parts["train"]) == 10 and sum(len(v) for v in parts.values()) == 20, "every record in one part"
    assert parts == assign_splits(many, ratios=(0.5, 0.25, 0.25), seed=3), "deterministic for the seed"


def test_positive_indices_fill_with_negatives():
    assert positive_indices(_records(), 2) == [0, 2]
    assert positive_indices(_records(), 5) == [0, 2, 1]


def test_build_datalist_on_synthetic_vindr_and_binary_rsna(tiny_dataset, tmp_path):
    train = build_datalist("vindr", tiny_dataset, "train", classes=["Nodule/Mass"])
    assert len(train) == 24 and all(len(r["label"]) == 1 for r in train)
    assert sum(r["label"][0] for r in train) == 12
    assert all(len(r["boxes"]) == 0 for r in train if r["label"][0] == 0)
    assert len(build_datalist("vindr", tiny_dataset, "test_shifted", limit=3)) == 3
    with pytest.raises(ValueError, match="split 'holdout' not found"):
        build_datalist("vindr", tiny_dataset, "holdout")

    # a binary adapter (RSNA): 0/1 labels become one-entry multi-hot lists, ratio split when no split file
    (tmp_path / "stage_2_train_images").mkdir()
    rows = ["patientId,x,y,width,height,Target"]
    for i in range(10):
        rows.append(f"p{i},10,20,30,40,1" if i % 2 else f"p{i},,,,,0")
    (tmp_path / "stage_2_train_labels.csv").write_text("\n".join(rows) + "\n")
    data = build_datalist("rsna", tmp_path, "train", classes=["Lung Opacity"], adapter_kwargs={"check_files": False})
    assert all(r["label"] in ([0.0], [1.0]) for r in data) and len(data) == 8


def test_per_split_folders_conversion_from_the_bundle_docs(tmp_path):
    """The conversion of per-split folders given in bundles/cxr_expl/docs/README.md runs and gives those splits."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "bundles" / "cxr_expl" / "docs" / "README.md").read_text()
    section = readme[readme.index("**A data set shipped as per-split folders**") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    assert 'root = Path("/data/my_cxr")' in code
    layout = {
        "train": "a.png,Nodule,1,2,5,6\nb.png,,,,,\n",
        "val": "c.png,Nodule,0,0,3,3\n",
        "test": "d.png,,,,,\ne.png,Nodule,2,2,4,4\n",
    }
    for split, rows in layout.items():
        (tmp_path / split / "images").mkdir(parents=True)
        (tmp_path / split / "boxes.csv").write_text("image,finding,x_min,y_min,x_max,y_max\n" + rows)
        for line in rows.splitlines():
            (tmp_path / split / "images" / line.split(",")[0]).write_bytes(b"")
    exec(code.replace('Path("/data/my_cxr")', f"Path({str(tmp_path)!r})"), {})  # noqa: S102 (the project's own doc snippet)
    assert json.loads((tmp_path / "splits.json").read_text()) == {
        "a": "train",
        "b": "train",
        "c": "val",
        "d": "test",
        "e": "test",
    }
    kwargs = {
        "annotation_file": "boxes.csv",
        "image_column": "image",
        "class_column": "finding",
        "class_names": ["Nodule"],
        "box_columns": ["x_min", "y_min", "x_max", "y_max"],
    }
    test = build_datalist("csv", tmp_path, "test", adapter_kwargs=kwargs)
    assert [r["id"] for r in test] == ["d", "e"] and [r["label"] for r in test] == [[0.0], [1.0]]
    assert test[1]["image"] == str(tmp_path / "test" / "images" / "e.png")
    assert test[1]["boxes"].tolist() == [[2.0, 2.0, 4.0, 4.0]]
    assert [r["id"] for r in build_datalist("csv", tmp_path, "train", adapter_kwargs=kwargs)] == ["a", "b"]


@pytest.mark.parametrize(
    "text, match",
    [
        ('{"p1": "train", "n1": ', r"is not valid JSON \(Expecting value at line 1, column 23\)"),
        ('["train", "test"]', r"must hold a JSON object \{image_id: split name\}, got a list"),
        ('{"p1": "train", "n1": 3}', r"the split of image 'n1' is 3, not a split name"),
    ],
)
def test_broken_split_file_names_the_file(tmp_path, text, match):
    split_file = tmp_path / "splits.json"
    split_file.write_text(text)
    recs = [{"id": "p1", "label": [1.0]}, {"id": "n1", "label": [0.0]}]
    with pytest.raises(ValueError, match=match) as info:
        assign_splits(recs, split_file=split_file)
    assert str(split_file) in str(info.value)
