"""NIH ChestX-ray14 box adapter on a BBox_List_2017.csv with the published header ``Bbox [x,y,w,h],,,``."""

from __future__ import annotations

import numpy as np
import pytest

from monai_explain.data import NIH_CHESTXRAY14_BOX_CLASSES, AnnotationFormatError, NIHChestXray14Adapter

HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
ROWS = (
    "00013118_008.png,Atelectasis,225.084745762712,547.019216763771,86.7796610169491,79.1864406779661,,,\n"
    "00014716_007.png,Infiltrate,686.101694915254,131.543461864407,185.491525423729,313.491525423729\n"
    "00013118_008.png,Effusion,10.5,20.25,4.25,8.0,,,\n"
)


def test_published_header_and_records(tmp_path):
    (tmp_path / "BBox_List_2017.csv").write_text(HEADER + ROWS)
    (tmp_path / "images").mkdir()
    for name in ("00013118_008.png", "00014716_007.png"):
        (tmp_path / "images" / name).write_bytes(b"")
    adapter = NIHChestXray14Adapter(tmp_path)
    data = adapter.load()
    assert [d["id"] for d in data] == ["00013118_008.png", "00014716_007.png"]
    assert data[0]["image"] == str(tmp_path / "images" / "00013118_008.png")
    # Atelectasis = 0, Effusion = 2, Infiltrate = 3
    assert data[0]["label"] == [1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert data[1]["label"] == [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert data[0]["box_labels"].tolist() == [0, 2]
    expected = np.array(
        [
            [
                225.084745762712,
                547.019216763771,
                225.084745762712 + 86.7796610169491,
                547.019216763771 + 79.1864406779661,
            ],
            [10.5, 20.25, 14.75, 28.25],
        ],
        dtype=np.float32,
    )
    np.testing.assert_allclose(data[0]["boxes"], expected, rtol=0, atol=1e-4)
    assert data[0]["boxes"].dtype == np.float32
    assert len(NIH_CHESTXRAY14_BOX_CLASSES) == 8


def test_data_entry_spelling_alias(tmp_path):
    (tmp_path / "BBox_List_2017.csv").write_text(HEADER + "a.png,Infiltration,1,2,3,4,,,\n")
    (record,) = NIHChestXray14Adapter(tmp_path, check_files=False).load()
    assert record["box_labels"].tolist() == [3]


@pytest.mark.parametrize(
    "text,match",
    [
        # pandas-style renamed header is not the published one
        ("Image Index,Finding Label,Bbox [x,y,w,h]\na.png,Mass,1,2,3,4\n", None),
        (
            "Image Index,Finding Label,x,y,w,h\na.png,Mass,1,2,3,4\n",
            r"line 1: missing column\(s\) \['Bbox \[x', 'h\]'\]",
        ),
        (HEADER + "a.png,Fracture,1,2,3,4,,,\n", r"line 2 \(data row 1\): unknown Finding Label 'Fracture'"),
        (
            HEADER + "a.png,Mass,1,2,3\n",
            r"line 2 \(data row 1\): truncated row: 5 field\(s\) where the header has 9; missing \['h\]'\]",
        ),
        (HEADER + "a.png,Mass,,,,,,,\n", r"line 2 \(data row 1\): row without a box"),
        (HEADER + "a.png,Mass,1,2,3,4,,,,x\n", r"line 2 \(data row 1\): row has 10 fields where the header has 9"),
    ],
)
def test_header_and_rows(tmp_path, text, match):
    (tmp_path / "BBox_List_2017.csv").write_text(text)
    adapter = NIHChestXray14Adapter(tmp_path, check_files=False)
    if match is None:  # the header without the trailing commas is still the published column names
        assert adapter.load()[0]["boxes"].tolist() == [[1.0, 2.0, 4.0, 6.0]]
        return
    with pytest.raises(AnnotationFormatError, match=match):
        adapter.load()


def test_header_with_spaces_after_commas(tmp_path):
    (tmp_path / "BBox_List_2017.csv").write_text("Image Index, Finding Label, Bbox [x, y, w, h], , , \n" + ROWS)
    data = NIHChestXray14Adapter(tmp_path, check_files=False).load()
    assert [d["box_labels"].tolist() for d in data] == [[0, 2], [3]]
    np.testing.assert_allclose(data[0]["boxes"][1], [10.5, 20.25, 14.75, 28.25])


def test_xywh_header_points_to_generic_csv_adapter_which_reads_it(tmp_path):
    from monai_explain.data import GenericCSVAdapter

    (tmp_path / "BBox_List_2017.csv").write_text("Image Index,Finding Label,x,y,w,h\n" + ROWS.replace(",,,", ""))
    with pytest.raises(AnnotationFormatError, match=r"missing column.*GenericCSVAdapter\(dataset_dir") as err:
        NIHChestXray14Adapter(tmp_path, check_files=False).load()
    print(err.value)
    # the call the message gives, as written there
    adapter = GenericCSVAdapter(
        tmp_path,
        "BBox_List_2017.csv",
        image_column="Image Index",
        class_column="Finding Label",
        class_names=NIH_CHESTXRAY14_BOX_CLASSES,
        box_columns=("x", "y", "w", "h"),
        box_mode="xywh",
        image_dir="images",
        check_files=False,
    )
    expected = NIHChestXray14Adapter  # same records as the published header gives
    (tmp_path / "published.csv").write_text(HEADER + ROWS)
    reference = expected(tmp_path, "published.csv", check_files=False).load()
    data = adapter.load()
    assert [d["image"] for d in data] == [d["image"] for d in reference]
    assert [d["label"] for d in data] == [d["label"] for d in reference]
    for got, ref in zip(data, reference):
        np.testing.assert_allclose(got["boxes"], ref["boxes"], rtol=1e-6)
