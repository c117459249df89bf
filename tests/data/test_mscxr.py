"""MS-CXR adapter on a CSV in the published format (path column, xywh, image size, split)."""

from __future__ import annotations

import numpy as np
import pytest

from monai_explain.data import AnnotationFormatError, MSCXRAdapter, PathEscapeError

HEADER = "dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height,split\n"
P1 = "files/p15/p15003878/s52123616/02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.jpg"
P2 = "files/p10/p10000032/s50414267/174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962.jpg"
ROWS = (
    f"02aa804e-bde0afdd-112c0b34-7bc16630-4e384014,Pneumonia,left lower lobe pneumonia,{P1},"
    "343,602,183,143,2539,3050,train\n"
    f'02aa804e-bde0afdd-112c0b34-7bc16630-4e384014,Cardiomegaly,"enlarged heart, stable",{P1},'
    "800,1400,900,600,2539,3050,train\n"
    f"174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962,Pleural Effusion,small right effusion,{P2},"
    "100.5,200.25,50,60,3056,2544,test\n"
)


def test_records(tmp_path):
    (tmp_path / "MS_CXR_Local_Alignment_v1.0.0.csv").write_text(HEADER + ROWS)
    for path in (P1, P2):
        (tmp_path / path).parent.mkdir(parents=True)
        (tmp_path / path).write_bytes(b"")
    first, second = MSCXRAdapter(tmp_path).load()
    assert first["image"] == str(tmp_path / P1) and first["id"] == "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014"
    # Cardiomegaly = 1, Pneumonia = 6
    assert first["label"] == [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    np.testing.assert_array_equal(first["boxes"], [[343.0, 602.0, 526.0, 745.0], [800.0, 1400.0, 1700.0, 2000.0]])
    assert first["box_labels"].tolist() == [6, 1]
    assert first["box_texts"].tolist() == ["left lower lobe pneumonia", "enlarged heart, stable"]
    assert first["image_size"] == [3050, 2539] and first["split"] == "train"
    np.testing.assert_array_equal(second["boxes"], [[100.5, 200.25, 150.5, 260.25]])
    assert second["label"] == [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    assert second["split"] == "test" and second["image_size"] == [2544, 3056]


@pytest.mark.parametrize(
    "row,match",
    [
        (
            "a,Pneumonia,t,x.jpg,1,2,3,4,10,10,val",
            r"line 3 \(data row 2\): path 'x\.jpg' differs from 'a\.jpg' on line 2",
        ),
        ("a,Pneumonia,t,a.jpg,1,2,3,4,10,10,test", r"line 3 \(data row 2\): split 'test' differs from 'val'"),
        (
            "a,Pneumonia,t,a.jpg,1,2,3,4,10,12,val",
            r"line 3 \(data row 2\): image_size \[12, 10\] differs from \[10, 10\]",
        ),
        ("a,Fracture,t,a.jpg,1,2,3,4,10,10,val", r"line 3 \(data row 2\): unknown category_name 'Fracture'"),
        ("a,Pneumonia,t,a.jpg,1,2,3,4,10,0,val", r"line 3 \(data row 2\): image size must be positive"),
        ("a,Pneumonia,t,a.jpg,1,2,3,4,10,10,", r"line 3 \(data row 2\): empty value in column 'split'"),
    ],
)
def test_malformed_rows(tmp_path, row, match):
    (tmp_path / "ms.csv").write_text(HEADER + "a,Edema,t,a.jpg,1,2,3,4,10,10,val\n" + row + "\n")
    with pytest.raises(AnnotationFormatError, match=match):
        MSCXRAdapter(tmp_path, "ms.csv", check_files=False).load()


@pytest.mark.parametrize("path", ["../outside.jpg", "files/../../outside.jpg", "/etc/passwd", "C:\\x.jpg"])
def test_path_escape(tmp_path, path):
    (tmp_path / "ms.csv").write_text(HEADER + f"a,Edema,t,{path},1,2,3,4,10,10,val\n")
    with pytest.raises(PathEscapeError, match=r"ms\.csv, line 2 \(data row 1\): .*(absolute|'\.\.')"):
        MSCXRAdapter(tmp_path, "ms.csv", check_files=False).load()
