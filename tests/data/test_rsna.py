"""RSNA Pneumonia adapter on a stage_2_train_labels.csv in the published format."""

from __future__ import annotations

import numpy as np
import pytest

from monai_explain.data import AnnotationFormatError, RSNAPneumoniaAdapter

CSV = (
    "patientId,x,y,width,height,Target\n"
    "0004cfab-14fd-4e49-80ba-63a80b6bddd6,,,,,0\n"
    "00436515-870c-4b36-a041-de91049b9ab4,264.0,152.0,213.0,379.0,1\n"
    "00436515-870c-4b36-a041-de91049b9ab4,562.0,152.0,256.0,453.0,1\n"
    "00704310-78a8-4b38-8475-49f4573b2dbb,323.0,577.0,160.0,104.0,1\n"
)


def _dataset(tmp_path, text=CSV):
    (tmp_path / "stage_2_train_labels.csv").write_text(text)
    (tmp_path / "stage_2_train_images").mkdir(exist_ok=True)
    for line in text.splitlines()[1:]:
        (tmp_path / "stage_2_train_images" / f"{line.split(',')[0]}.dcm").write_bytes(b"")
    return tmp_path


def test_records(tmp_path):
    adapter = RSNAPneumoniaAdapter(_dataset(tmp_path))
    data = adapter.load()
    assert adapter.binary and adapter.box_mode == "xyxy"
    assert [(d["id"][:8], d["label"]) for d in data] == [("0004cfab", 0), ("00436515", 1), ("00704310", 1)]
    assert data[0]["image"] == str(tmp_path / "stage_2_train_images" / "0004cfab-14fd-4e49-80ba-63a80b6bddd6.dcm")
    assert data[0]["boxes"].shape == (0, 4) and data[0]["box_labels"].shape == (0,)
    # xywh -> xyxy: (264, 152, 264 + 213, 152 + 379), (562, 152, 818, 605)
    np.testing.assert_array_equal(data[1]["boxes"], [[264.0, 152.0, 477.0, 531.0], [562.0, 152.0, 818.0, 605.0]])
    np.testing.assert_array_equal(data[2]["boxes"], [[323.0, 577.0, 483.0, 681.0]])
    assert data[1]["box_labels"].tolist() == [0, 0] and data[1]["boxes"].dtype == np.float32
    assert set(data[0]) == {"image", "id", "label", "boxes", "box_labels"}
    assert adapter.stats["negatives"] == 1 and adapter.stats["boxes"] == 3


@pytest.mark.parametrize(
    "row,match",
    [
        ("p1,1,2,3,4,2", r"line 3 \(data row 2\): Target must be 0 or 1, got 2"),
        ("p1,1,2,3,4,0", r"line 3 \(data row 2\): a Target=0 row must have empty coordinates"),
        ("p1,,,,,1", r"line 3 \(data row 2\): a Target=1 row without coordinates"),
        ("p0,,,,,1", r"line 3 \(data row 2\): patient 'p0' has rows with Target 0 and Target 1"),
        ("p1,10,10,-3,4,1", r"line 3 \(data row 2\): inverted box \[10\.0, 10\.0, -3\.0, 4\.0\] \(mode 'xywh'\)"),
        ("p1,10,10,x,4,1", r"line 3 \(data row 2\): column 'width': 'x' is not a number"),
        ("p1,10,10,3,4", r"line 3 \(data row 2\): truncated row"),
    ],
)
def test_malformed_rows(tmp_path, row, match):
    (tmp_path / "stage_2_train_labels.csv").write_text("patientId,x,y,width,height,Target\np0,,,,,0\n" + row + "\n")
    with pytest.raises(AnnotationFormatError, match=match):
        RSNAPneumoniaAdapter(tmp_path, check_files=False).load()


def test_zero_size_box_kept(tmp_path):
    (tmp_path / "labels.csv").write_text("patientId,x,y,width,height,Target\np1,5,6,0,0,1\n")
    (record,) = RSNAPneumoniaAdapter(tmp_path, "labels.csv", check_files=False).load()
    assert record["boxes"].tolist() == [[5.0, 6.0, 5.0, 6.0]]
