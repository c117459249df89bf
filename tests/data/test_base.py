"""Shared adapter behaviour: image paths stay inside dataset_dir, missing files, logging of what is skipped."""

from __future__ import annotations

import logging

import pytest

from monai_explain.data import (
    GenericCSVAdapter,
    MissingImageError,
    PathEscapeError,
    RSNAPneumoniaAdapter,
    VinDrCXRAdapter,
    check_relative_path,
)
from monai_explain.data.adapters.errors import format_location


@pytest.mark.parametrize(
    "value,reason",
    [
        ("a/b.png", None),
        ("a..b.png", None),
        ("files/p10/x.jpg", None),
        ("", "empty"),
        ("../x.png", "'..'"),
        ("a/../../x.png", "'..'"),
        ("a\\..\\x.png", "'..'"),
        ("..", "'..'"),
        ("/abs/x.png", "absolute"),
        ("\\\\server\\share\\x.png", "absolute"),
        ("C:\\x.png", "absolute"),
        ("C:x.png", "absolute"),
        ("a\x00b", "NUL"),
    ],
)
def test_check_relative_path(value, reason):
    result = check_relative_path(value)
    assert (result is None) if reason is None else (reason in result)


@pytest.mark.parametrize(
    "file,line,row,key,expected",
    [
        ("a.csv", 3, 2, None, "a.csv, line 3 (data row 2)"),
        ("a.csv", None, 2, None, "a.csv, data row 2"),
        ("g.json", None, None, "p1/Edema", "g.json, key p1/Edema"),
        ("a.csv", None, None, None, "a.csv"),
    ],
)
def test_format_location(file, line, row, key, expected):
    assert format_location(file, line, row, key) == expected


def _rsna(tmp_path, patient):
    (tmp_path / "stage_2_train_labels.csv").write_text(
        f"patientId,x,y,width,height,Target\nok,,,,,0\n{patient},,,,,0\n"
    )


@pytest.mark.parametrize("patient", ["../../etc/passwd", "sub/../../x"])
def test_id_escaping_dataset_dir(tmp_path, patient):
    _rsna(tmp_path, patient)
    with pytest.raises(
        PathEscapeError, match=r"stage_2_train_labels\.csv, line 3 \(data row 2\): image path .* '\.\.'"
    ):
        RSNAPneumoniaAdapter(tmp_path, check_files=False).load()


def test_allow_outside(tmp_path):
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(b"")
    root = tmp_path / "root"
    root.mkdir()
    (root / "list.csv").write_text(
        f"image,id,x_min,y_min,x_max,y_max\n{outside},e1,1,2,3,4\n../elsewhere.png,e2,1,2,3,4\n"
    )
    with pytest.raises(PathEscapeError, match=r"list\.csv, line 2 \(data row 1\): absolute image path"):
        GenericCSVAdapter(root, "list.csv", id_column="id").load()
    data = GenericCSVAdapter(root, "list.csv", id_column="id", allow_outside=True).load()
    assert [d["image"] for d in data] == [str(outside), str(outside)]


def test_missing_file_skip_is_counted_and_logged(tmp_path, caplog):
    (tmp_path / "stage_2_train_labels.csv").write_text("patientId,x,y,width,height,Target\na,,,,,0\nb,,,,,0\n")
    (tmp_path / "stage_2_train_images").mkdir()
    (tmp_path / "stage_2_train_images" / "b.dcm").write_bytes(b"")
    missing = tmp_path / "stage_2_train_images" / "a.dcm"
    with pytest.raises(MissingImageError, match=rf"line 2 \(data row 1\): image 'a' not found: {missing}"):
        RSNAPneumoniaAdapter(tmp_path).load()
    with caplog.at_level(logging.INFO):
        adapter = RSNAPneumoniaAdapter(tmp_path, on_missing="skip")
        data = adapter.load()
    assert [d["id"] for d in data] == ["b"]
    assert adapter.stats["missing_skipped"] == 1 and adapter.stats["images"] == 1
    assert f"skipped 1 image(s) missing on disk (on_missing='skip'): {missing}" in caplog.text
    assert "'missing_skipped': 1" in caplog.text


def test_annotation_file_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="annotation file .*stage_2_train_labels.csv not found"):
        RSNAPneumoniaAdapter(tmp_path).load()


def test_bad_policies(tmp_path):
    with pytest.raises(ValueError):
        RSNAPneumoniaAdapter(tmp_path, on_missing="ignore")
    with pytest.raises(ValueError):
        RSNAPneumoniaAdapter(tmp_path, duplicates="merge")


def _vindr_layout(root, link_target=None, folder_link_target=None):
    """``root/train.csv`` with images a and b; b is a link to ``link_target`` when given."""
    images = root / "train"
    root.mkdir(parents=True, exist_ok=True)
    if folder_link_target is not None:
        folder_link_target.mkdir(parents=True, exist_ok=True)
        images.symlink_to(folder_link_target, target_is_directory=True)
    else:
        images.mkdir(parents=True)
    (images / "a.dicom").write_bytes(b"a")
    if link_target is not None:
        (images / "b.dicom").symlink_to(link_target)
    else:
        (images / "b.dicom").write_bytes(b"b")
    (root / "train.csv").write_text(
        "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\na,No finding,14,R1,,,,\nb,No finding,14,R1,,,,\n"
    )


def test_symlink_leaving_the_dataset_folder_is_refused(tmp_path):
    """Before: an image folder entry linking to a file outside dataset_dir was read without complaint."""
    outside = tmp_path / "elsewhere" / "secret.dicom"
    outside.parent.mkdir()
    outside.write_bytes(b"not an image of this dataset")
    root = tmp_path / "ds"
    _vindr_layout(root, link_target=outside)
    with pytest.raises(
        PathEscapeError,
        match=r"train\.csv, line 3 \(data row 2\): image 'b' at .*b\.dicom resolves "
        r"\(through symbolic links\) to .*elsewhere/secret\.dicom, outside the dataset folder",
    ):
        VinDrCXRAdapter(root).load()
    assert len(VinDrCXRAdapter(root, allow_outside=True).load()) == 2


def test_symlinks_inside_the_dataset_and_a_linked_image_folder_are_accepted(tmp_path):
    root = tmp_path / "ds"
    _vindr_layout(root, link_target=root / "train" / "a.dicom")  # a link to another image of the dataset
    assert [r["id"] for r in VinDrCXRAdapter(root).load()] == ["a", "b"]
    other = tmp_path / "other"
    _vindr_layout(other, folder_link_target=tmp_path / "big_disk" / "train")  # the image folder lives elsewhere
    assert [r["id"] for r in VinDrCXRAdapter(other).load()] == ["a", "b"]
