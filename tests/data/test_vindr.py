"""VinDr-CXR adapter on a train.csv in the published (Kaggle) format."""

from __future__ import annotations

import numpy as np
import pytest

from monai_explain.data import VINDR_CXR_CLASSES, AnnotationFormatError, MissingImageError, VinDrCXRAdapter

HEADER = "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"
ROWS = (
    "000434271f63a181c7f7b6f5f0f23beb,No finding,14,R1,,,,\n"
    "000434271f63a181c7f7b6f5f0f23beb,No finding,14,R2,,,,\n"
    "000434271f63a181c7f7b6f5f0f23beb,No finding,14,R3,,,,\n"
    "9a5094b2563a1ef3ff50dc5c7ff71345,Cardiomegaly,3,R10,691.0,1375.0,1653.0,1831.0\n"
    "9a5094b2563a1ef3ff50dc5c7ff71345,Aortic enlargement,0,R10,1264.0,743.0,1611.0,1019.0\n"
    "9a5094b2563a1ef3ff50dc5c7ff71345,Cardiomegaly,3,R9,692.5,1372.25,1660.0,1830.0\n"
    "9a5094b2563a1ef3ff50dc5c7ff71345,No finding,14,R8,,,,\n"
    "051132a778e61a86eb147c7c6f564dfe,Pleural thickening,11,R9,10,20,30,40\n"
)


def _dataset(tmp_path, rows=ROWS, images=True):
    (tmp_path / "train.csv").write_text(HEADER + rows)
    if images:
        (tmp_path / "train").mkdir()
        for image_id in {line.split(",")[0] for line in rows.splitlines()}:
            (tmp_path / "train" / f"{image_id}.dicom").write_bytes(b"")
    return tmp_path


def _multi_hot(*ids):
    label = [0.0] * 14
    for i in ids:
        label[i] = 1.0
    return label


def test_records(tmp_path):
    root = _dataset(tmp_path)
    adapter = VinDrCXRAdapter(root)
    data = adapter.load()
    assert adapter.class_names == VINDR_CXR_CLASSES and adapter.box_mode == "xyxy"
    assert [d["id"] for d in data] == [
        "000434271f63a181c7f7b6f5f0f23beb",
        "9a5094b2563a1ef3ff50dc5c7ff71345",
        "051132a778e61a86eb147c7c6f564dfe",
    ]
    neg, pos, third = data
    assert neg["image"] == str(root / "train" / "000434271f63a181c7f7b6f5f0f23beb.dicom")
    assert neg["label"] == _multi_hot()
    assert neg["boxes"].shape == (0, 4) and neg["boxes"].dtype == np.float32
    assert neg["box_labels"].shape == (0,) and neg["box_labels"].dtype == np.int64
    assert neg["box_readers"].shape == (0,)
    assert neg["readers"] == ["R1", "R2", "R3"]

    assert pos["label"] == _multi_hot(0, 3)
    np.testing.assert_array_equal(
        pos["boxes"],
        np.array(
            [[691.0, 1375.0, 1653.0, 1831.0], [1264.0, 743.0, 1611.0, 1019.0], [692.5, 1372.25, 1660.0, 1830.0]],
            dtype=np.float32,
        ),
    )
    assert pos["boxes"].dtype == np.float32
    assert pos["box_labels"].tolist() == [3, 0, 3] and pos["box_labels"].dtype == np.int64
    assert pos["box_readers"].tolist() == ["R10", "R10", "R9"]
    assert pos["readers"] == ["R10", "R9", "R8"]  # R8 found nothing, still a reader
    assert third["label"] == _multi_hot(11)
    assert adapter.stats == {
        "rows": 8,
        "images": 3,
        "negatives": 1,
        "boxes": 4,
        "duplicates_dropped": 0,
        "empty_lines": 0,
        "missing_skipped": 0,
    }


def test_majority_label_counts_no_finding_readers(tmp_path):
    rows = (
        "a,Cardiomegaly,3,R1,1,1,5,5\n"
        "a,Cardiomegaly,3,R2,1,1,5,5.5\n"
        "a,Atelectasis,1,R2,1,1,2,2\n"
        "a,No finding,14,R3,,,,\n"
        "b,Atelectasis,1,R1,1,1,2,2\n"
        "b,No finding,14,R2,,,,\n"
        "b,No finding,14,R3,,,,\n"
    )
    data = VinDrCXRAdapter(_dataset(tmp_path, rows), label_rule="majority").load()
    # a: Cardiomegaly by 2 of 3 readers -> positive; Atelectasis by 1 of 3 -> negative; b: 1 of 3 -> negative
    assert [d["label"] for d in data] == [_multi_hot(3), _multi_hot()]
    assert [len(d["boxes"]) for d in data] == [3, 1]  # every box kept: fusion is the transforms' job
    data_any = VinDrCXRAdapter(tmp_path, label_rule="any").load()
    assert [d["label"] for d in data_any] == [_multi_hot(1, 3), _multi_hot(1)]


def test_physionet_export_without_class_id(tmp_path):
    (tmp_path / "annotations_train.csv").write_text(
        "image_id,rad_id,class_name,x_min,y_min,x_max,y_max\nx,R1,Nodule/Mass,1,2,3,4\ny,R2,No finding,,,,\n"
    )
    data = VinDrCXRAdapter(tmp_path, "annotations_train.csv", check_files=False).load()
    assert [d["box_labels"].tolist() for d in data] == [[8], []]
    assert [d["label"] for d in data] == [_multi_hot(8), _multi_hot()]


def test_duplicate_row_dropped_and_counted(tmp_path):
    rows = "a,Cardiomegaly,3,R1,1,1,5,5\na,Cardiomegaly,3,R1,1,1,5,5\n"
    adapter = VinDrCXRAdapter(_dataset(tmp_path, rows))
    (record,) = adapter.load()
    assert record["boxes"].tolist() == [[1.0, 1.0, 5.0, 5.0]]
    assert adapter.stats["duplicates_dropped"] == 1
    with pytest.raises(AnnotationFormatError, match=r"line 3 \(data row 2\): duplicate of line 2"):
        VinDrCXRAdapter(tmp_path, duplicates="error").load()


@pytest.mark.parametrize(
    "row,match",
    [
        ("a,Cardiomegaly,3,R1,1,1,abc,5", r"train\.csv, line 3 \(data row 2\): column 'x_max': 'abc' is not a number"),
        ("a,Cardiomegaly,3,R1,1,1,5,", r"line 3 \(data row 2\): incomplete box: empty column\(s\) \['y_max'\]"),
        ("a,Cardiomegaly,3,R1,,,,", r"line 3 \(data row 2\): finding 'Cardiomegaly' without coordinates"),
        ("a,No finding,14,R1,1,1,5,5", r"line 3 \(data row 2\): a 'No finding' row must have empty coordinates"),
        ("a,Cardiomegaly,4,R1,1,1,5,5", r"class_name 'Cardiomegaly' does not match class_id 4 \('Consolidation'\)"),
        ("a,Cardiomegaly,15,R1,1,1,5,5", r"line 3 \(data row 2\): unknown class_id 15"),
        ("a,Cardiomegaly,3,R1,6,1,5,5", r"line 3 \(data row 2\): inverted box \[6\.0, 1\.0, 5\.0, 5\.0\]"),
        ("a,Cardiomegaly,3,R1,1,1,5", r"line 3 \(data row 2\): truncated row: 7 field\(s\)"),
        (",Cardiomegaly,3,R1,1,1,5,5", r"line 3 \(data row 2\): empty image id"),
    ],
)
def test_malformed_rows(tmp_path, row, match):
    _dataset(tmp_path, "a,No finding,14,R2,,,,\n" + row + "\n", images=False)
    with pytest.raises(AnnotationFormatError, match=match):
        VinDrCXRAdapter(tmp_path, check_files=False).load()


def test_unknown_class_name_without_class_id(tmp_path):
    (tmp_path / "train.csv").write_text(HEADER + "a,Pneumonia,,R1,1,1,5,5\n")
    with pytest.raises(AnnotationFormatError, match=r"line 2 \(data row 1\): unknown class_name 'Pneumonia'"):
        VinDrCXRAdapter(tmp_path, check_files=False).load()


def test_missing_image(tmp_path):
    _dataset(tmp_path)
    (tmp_path / "train" / "9a5094b2563a1ef3ff50dc5c7ff71345.dicom").unlink()
    path = tmp_path / "train" / "9a5094b2563a1ef3ff50dc5c7ff71345.dicom"
    with pytest.raises(MissingImageError, match=rf"train\.csv, line 5 \(data row 4\): .* not found: {path}"):
        VinDrCXRAdapter(tmp_path).load()
    adapter = VinDrCXRAdapter(tmp_path, on_missing="skip")
    assert [d["id"][:4] for d in adapter.load()] == ["0004", "0511"]
    assert adapter.stats["missing_skipped"] == 1


def test_image_folder_and_extension_parameters(tmp_path):
    (tmp_path / "train.csv").write_text(HEADER + "a,No finding,14,R1,,,,\n")
    (record,) = VinDrCXRAdapter(tmp_path, image_dir="png", image_ext=".png", check_files=False).load()
    assert record["image"] == str(tmp_path / "png" / "a.png")


# --- PhysioNet release: local labels (boxes) and global labels (image_labels_*.csv) ----------------------------
PHYSIONET_ANNOTATIONS = (
    "image_id,rad_id,class_name,x_min,y_min,x_max,y_max\n"
    "a,R8,Rib fracture,10,20,30,40\n"
    "a,R9,Rib fracture,11,21,31,41\n"
    "a,R10,Nodule/Mass,1,2,3,4\n"
    "b,R8,No finding,,,,\n"
    "b,R9,No finding,,,,\n"
    "b,R10,No finding,,,,\n"
)


def _physionet(tmp_path):
    from monai_explain.data import VINDR_CXR_GLOBAL_LABELS, VINDR_CXR_LOCAL_LABELS

    names = [*VINDR_CXR_LOCAL_LABELS, *VINDR_CXR_GLOBAL_LABELS, "No finding"]
    header = "image_id,rad_ID," + ",".join(names) + "\n"

    def row(image, reader, *positive):
        return f"{image},{reader}," + ",".join("1" if n in positive else "0" for n in names) + "\n"

    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "annotations_train.csv").write_text(PHYSIONET_ANNOTATIONS)
    (tmp_path / "annotations" / "image_labels_train.csv").write_text(
        header
        + row("a", "R8", "Rib fracture", "COPD")
        + row("a", "R9", "Rib fracture", "COPD")
        + row("a", "R10", "Nodule/Mass", "Lung tumor")
        + row("b", "R8", "No finding")
        + row("b", "R9", "No finding")
        + row("b", "R10", "No finding")
        + row("c", "R1", "Tuberculosis")  # an image with a global label only
    )
    return names[:-1]


def test_physionet_unknown_local_label_error_names_the_options(tmp_path):
    _physionet(tmp_path)
    with pytest.raises(
        AnnotationFormatError, match=r"line 2 \(data row 1\): unknown class_name 'Rib fracture'.*physionet"
    ):
        VinDrCXRAdapter(tmp_path, "annotations/annotations_train.csv", check_files=False).load()


def test_physionet_unknown_class_skip_and_keep(tmp_path, caplog):
    _physionet(tmp_path)
    skip = VinDrCXRAdapter(tmp_path, "annotations/annotations_train.csv", check_files=False, unknown_class="skip")
    with caplog.at_level("WARNING"):
        data = skip.load()
    assert [d["box_labels"].tolist() for d in data] == [[8], []]
    assert data[0]["readers"] == ["R8", "R9", "R10"]  # readers of skipped rows still read the image
    assert skip.stats["unknown_class_skipped"] == 2 and skip.stats["unknown_classes"] == 1
    assert "skipped 2 row(s)/column(s)" in caplog.text and "'Rib fracture': 2" in caplog.text
    keep = VinDrCXRAdapter(tmp_path, "annotations/annotations_train.csv", check_files=False, unknown_class="keep")
    data = keep.load()
    assert keep.class_names == (*VINDR_CXR_CLASSES, "Rib fracture")
    assert data[0]["box_labels"].tolist() == [14, 14, 8] and len(data[0]["label"]) == 15
    assert data[0]["label"][14] == 1.0 and data[0]["label"][8] == 1.0
    assert keep.stats["unknown_class_kept"] == 2
    print("skip stats:", skip.stats, "| keep classes:", len(keep.class_names))


def test_physionet_local_and_global_labels(tmp_path):
    from monai_explain.data import VINDR_CXR_GLOBAL_LABELS, VINDR_CXR_LOCAL_LABELS

    classes = _physionet(tmp_path)
    (tmp_path / "train").mkdir()
    for image in "abc":
        (tmp_path / "train" / f"{image}.dicom").write_bytes(b"")
    adapter = VinDrCXRAdapter.physionet(tmp_path, split="train")
    data = adapter.load()
    assert adapter.class_names == VINDR_CXR_LOCAL_LABELS + VINDR_CXR_GLOBAL_LABELS == tuple(classes)
    assert [d["id"] for d in data] == ["a", "b", "c"]
    a, b, c = data
    rib, nodule = classes.index("Rib fracture"), classes.index("Nodule/Mass")
    copd, tumor, tb = classes.index("COPD"), classes.index("Lung tumor"), classes.index("Tuberculosis")
    assert a["image"] == str(tmp_path / "train" / "a.dicom")
    assert a["box_labels"].tolist() == [rib, rib, nodule] and a["box_readers"].tolist() == ["R8", "R9", "R10"]
    assert [i for i, v in enumerate(a["label"]) if v] == sorted([rib, nodule, copd, tumor])
    assert not any(b["label"]) and b["boxes"].shape == (0, 4)
    assert [i for i, v in enumerate(c["label"]) if v] == [tb] and c["boxes"].shape == (0, 4)
    majority = VinDrCXRAdapter.physionet(tmp_path, label_rule="majority", check_files=False).load()
    # 2 of 3 readers: rib fracture and COPD; 1 of 3: nodule and lung tumour are not majority labels
    assert [i for i, v in enumerate(majority[0]["label"]) if v] == sorted([rib, copd])


def test_physionet_unknown_global_label_column(tmp_path):
    _physionet(tmp_path)
    from monai_explain.data import VINDR_CXR_LOCAL_LABELS

    kwargs = {"class_names": VINDR_CXR_LOCAL_LABELS, "check_files": False}
    with pytest.raises(AnnotationFormatError, match=r"image_labels_train\.csv, line 2.*unknown class_name 'COPD'"):
        VinDrCXRAdapter.physionet(tmp_path, **kwargs).load()
    adapter = VinDrCXRAdapter.physionet(tmp_path, unknown_class="skip", **kwargs)
    data = adapter.load()
    assert adapter.stats["unknown_class_skipped"] == 5 and len(data[0]["label"]) == 22
    assert not any(data[2]["label"])  # image c had only a global label
