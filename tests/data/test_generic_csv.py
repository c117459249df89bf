"""GenericCSVAdapter: configurable columns, box modes (2D and 3D), image-level classes, readers, splits."""

from __future__ import annotations

import numpy as np
import pytest

from monai_explain.data import AnnotationFormatError, GenericCSVAdapter


def _csv(tmp_path, text, name="boxes.csv"):
    (tmp_path / name).write_text(text)
    return name


def test_boxes_xywh_with_classes_readers_and_negatives(tmp_path):
    name = _csv(
        tmp_path,
        "file,finding,left,top,width,height,reader,fold\n"
        "img/a.png,nodule,10,20,5,6,r1,train\n"
        "img/a.png,effusion,0,0,100,50,r2,train\n"
        "img/b.png,normal,,,,,r1,val\n"
        "img/c.png,,,,,,r3,val\n",
    )
    adapter = GenericCSVAdapter(
        tmp_path,
        name,
        image_column="file",
        class_column="finding",
        box_columns=("left", "top", "width", "height"),
        box_mode="xywh",
        reader_column="reader",
        split_column="fold",
        negative_class="normal",
        check_files=False,
    )
    a, b, c = adapter.load()
    assert adapter.class_names == ("effusion", "nodule")  # sorted set found in the file
    assert a["id"] == "a" and a["image"] == str(tmp_path / "img" / "a.png")
    np.testing.assert_array_equal(a["boxes"], [[10.0, 20.0, 15.0, 26.0], [0.0, 0.0, 100.0, 50.0]])
    assert a["box_labels"].tolist() == [1, 0] and a["label"] == [1.0, 1.0]
    assert a["box_readers"].tolist() == ["r1", "r2"] and a["readers"] == ["r1", "r2"] and a["split"] == "train"
    assert b["label"] == [0.0, 0.0] and b["boxes"].shape == (0, 4) and b["readers"] == ["r1"]
    assert c["label"] == [0.0, 0.0] and c["split"] == "val"
    assert adapter.stats["negatives"] == 2


def test_image_level_multi_label_binary_and_given_classes(tmp_path):
    # NIH Data_Entry style: several findings in one cell, no boxes
    name = _csv(
        tmp_path,
        "Image Index,Finding Labels,Patient ID\n"
        "00000001_000.png,Cardiomegaly|Effusion,1\n"
        "00000002_000.png,No Finding,2\n",
    )
    kwargs = {
        "image_column": "Image Index",
        "class_column": "Finding Labels",
        "box_columns": None,
        "class_separator": "|",
        "negative_class": "No Finding",
        "image_dir": "images",
        "check_files": False,
    }
    first, second = GenericCSVAdapter(tmp_path, name, class_names=["Effusion", "Mass", "Cardiomegaly"], **kwargs).load()
    assert first["id"] == "00000001_000" and first["label"] == [1.0, 0.0, 1.0]
    assert first["boxes"].shape == (0, 4) and second["label"] == [0.0, 0.0, 0.0]
    assert first["image"] == str(tmp_path / "images" / "00000001_000.png")
    first, second = GenericCSVAdapter(tmp_path, name, binary=True, **kwargs).load()
    assert (first["label"], second["label"]) == (1, 0)
    with pytest.raises(AnnotationFormatError, match=r"line 2 \(data row 1\): unknown class 'Effusion'"):
        GenericCSVAdapter(tmp_path, name, class_names=["Cardiomegaly"], **kwargs).load()


def test_single_class_3d_boxes(tmp_path):
    name = _csv(tmp_path, "image,id,cx,cy,cz,w,h,d\nct1.nii.gz,case1,10,20,30,4,6,8\nct2.nii.gz,case2,,,,,,\n")
    adapter = GenericCSVAdapter(
        tmp_path,
        name,
        id_column="id",
        box_columns=("cx", "cy", "cz", "w", "h", "d"),
        box_mode="cccwhd",
        check_files=False,
    )
    first, second = adapter.load()
    assert adapter.box_mode == "xyzxyz" and adapter.class_names == ("finding",)
    np.testing.assert_array_equal(first["boxes"], [[8.0, 17.0, 26.0, 12.0, 23.0, 34.0]])
    assert first["id"] == "case1" and first["label"] == [1.0]
    assert second["boxes"].shape == (0, 6) and second["label"] == [0.0]


@pytest.mark.parametrize(
    "text,match",
    [
        (
            "image,cls,x1,y1,x2,y2\na.png,n,1,2,3,4\nb.png,n|m,1,2,3,4\n",
            r"line 3 \(data row 2\): a box needs exactly one class, got \['n', 'm'\]",
        ),
        ("image,cls,x1,y1,x2,y2\na.png,,1,2,3,4\n", r"line 2 \(data row 1\): a box needs exactly one class, got none"),
        ("image,cls,x1,y1,x2,y2\na.png,n,3,2,1,4\n", r"line 2 \(data row 1\): inverted box"),
        (
            "image,cls,x1,y1,x2,y2,id\na.png,n,1,2,3,4,k\nb.png,n,1,2,3,4,k\n",
            r"line 3 \(data row 2\): image id 'k' refers to 'b\.png' here and to 'a\.png' before",
        ),
    ],
)
def test_malformed(tmp_path, text, match):
    name = _csv(tmp_path, text)
    id_column = "id" if ",id\n" in text.splitlines(True)[0] else None
    adapter = GenericCSVAdapter(
        tmp_path,
        name,
        class_column="cls",
        class_separator="|",
        box_columns=("x1", "y1", "x2", "y2"),
        id_column=id_column,
        check_files=False,
    )
    with pytest.raises(AnnotationFormatError, match=match):
        adapter.load()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"box_columns": ("a", "b", "c", "d"), "box_mode": "xyzxyz"}, "needs 6 box_columns"),
        ({"box_mode": "xyz"}, "Unsupported box mode: xyz"),
        ({"class_names": ["a", "a"]}, "duplicates"),
    ],
)
def test_bad_configuration(tmp_path, kwargs, match):
    with pytest.raises((ValueError, KeyError), match=match):
        GenericCSVAdapter(tmp_path, "x.csv", **kwargs)
