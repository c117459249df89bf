"""SIIM-ACR Pneumothorax adapter on a train-rle.csv in the published format (``ImageId, EncodedPixels``)."""

from __future__ import annotations

import pytest

from monai_explain.data import AnnotationFormatError, MissingImageError, SIIMPneumothoraxAdapter

ID_NEG = "1.2.276.0.7230010.3.1.4.8323329.5597.1517875188.959090"
ID_POS = "1.2.276.0.7230010.3.1.4.8323329.12743.1517875241.599591"
CSV = f"ImageId, EncodedPixels\n{ID_NEG}, -1\n{ID_POS}, 175349 7 1013 12 1009 17\n{ID_POS}, 407576 2 1021 7\n"


def _dataset(tmp_path, text=CSV, ids=(ID_NEG, ID_POS)):
    (tmp_path / "train-rle.csv").write_text(text)
    for i, image_id in enumerate(ids):
        folder = tmp_path / "dicom-images-train" / f"1.2.276.0.7230010.3.1.2.{i}" / f"1.2.276.0.7230010.3.1.3.{i}"
        folder.mkdir(parents=True)
        (folder / f"{image_id}.dcm").write_bytes(b"")
    return tmp_path


def test_records_nested_layout(tmp_path):
    adapter = SIIMPneumothoraxAdapter(_dataset(tmp_path))
    neg, pos = adapter.load()
    assert neg == {
        "image": str(
            tmp_path / "dicom-images-train/1.2.276.0.7230010.3.1.2.0/1.2.276.0.7230010.3.1.3.0" / f"{ID_NEG}.dcm"
        ),
        "id": ID_NEG,
        "label": 0,
        "rle": [],
    }
    assert pos["label"] == 1 and pos["id"] == ID_POS
    assert pos["rle"] == ["175349 7 1013 12 1009 17", "407576 2 1021 7"]  # two instances, as published
    assert pos["image"].endswith(f"1.2.276.0.7230010.3.1.3.1/{ID_POS}.dcm")
    assert "boxes" not in pos
    assert adapter.stats["negatives"] == 1 and adapter.stats["rows"] == 3


def test_flat_layout_without_check(tmp_path):
    (tmp_path / "train-rle.csv").write_text(CSV)
    neg, _ = SIIMPneumothoraxAdapter(tmp_path, image_dir="png", image_ext=".png", check_files=False).load()
    assert neg["image"] == str(tmp_path / "png" / f"{ID_NEG}.png")


def test_column_name_spaces_ignored(tmp_path):
    """Column names are compared without surrounding spaces: the header with or without the published leading
    space of ' EncodedPixels' reads the same, a case difference still raises with the close match."""
    (tmp_path / "train-rle.csv").write_text(f"ImageId,EncodedPixels\n{ID_NEG},-1\n")
    (record,) = SIIMPneumothoraxAdapter(tmp_path, check_files=False).load()
    assert record["label"] == 0
    (record,) = SIIMPneumothoraxAdapter(tmp_path, rle_column="EncodedPixels", check_files=False).load()
    assert record["label"] == 0
    (tmp_path / "train-rle.csv").write_text(f"ImageId,encodedPixels\n{ID_NEG},-1\n")
    with pytest.raises(AnnotationFormatError, match=r"missing column\(s\) \[' EncodedPixels'\].*found 'encodedPixels'"):
        SIIMPneumothoraxAdapter(tmp_path, check_files=False).load()


@pytest.mark.parametrize(
    "rows,kwargs,match",
    [
        ("a, -1\na, 1 2\n", {}, r"line 3 \(data row 2\): image 'a' has both '-1'"),
        ("a, 1 2 3\n", {}, r"line 2 \(data row 1\): column ' EncodedPixels': odd number of RLE values \(3\)"),
        ("a, 1 x\n", {}, r"line 2 \(data row 1\): .*RLE must be integers"),
        ("a, 1 0\n", {}, "negative start or non-positive run length"),
        ("a,\n", {}, r"line 2 \(data row 1\): empty value in column ' EncodedPixels'"),
        # 4 x 4 image: relative runs 10 + 4 + 3 + 1 = 18 > 16
        ("a, 10 4 3 1\n", {"image_size": (4, 4)}, r"runs end at pixel 18, past a \(4, 4\) image"),
        # absolute starts: 15 + 3 - 1 = 17 > 16
        ("a, 2 3 15 3\n", {"image_size": (4, 4), "relative_rle": False}, "runs end at pixel 17"),
        ("a, 5 1 3 1\n", {"image_size": (4, 4), "relative_rle": False}, "absolute starts must be >= 1 and increasing"),
    ],
)
def test_malformed_rows(tmp_path, rows, kwargs, match):
    (tmp_path / "train-rle.csv").write_text("ImageId, EncodedPixels\n" + rows)
    with pytest.raises(AnnotationFormatError, match=match):
        SIIMPneumothoraxAdapter(tmp_path, check_files=False, **kwargs).load()


@pytest.mark.parametrize("kwargs", [{"image_size": (4, 4)}, {"image_size": (4, 4), "relative_rle": False}])
def test_rle_fitting_the_image(tmp_path, kwargs):
    # relative: 10 + 4 + 1 + 1 = 16 pixels; absolute: last run 15 + 2 - 1 = 16
    rle = "10 4 1 1" if kwargs.get("relative_rle", True) else "2 3 15 2"
    (tmp_path / "train-rle.csv").write_text(f"ImageId, EncodedPixels\na, {rle}\n")
    (record,) = SIIMPneumothoraxAdapter(tmp_path, check_files=False, **kwargs).load()
    assert record["rle"] == [rle] and record["label"] == 1


def test_missing_and_ambiguous_images(tmp_path):
    _dataset(tmp_path, ids=(ID_NEG,))
    with pytest.raises(MissingImageError, match=rf"train-rle\.csv, line 3 \(data row 2\): image '{ID_POS}' not found"):
        SIIMPneumothoraxAdapter(tmp_path).load()
    other = tmp_path / "dicom-images-train" / "copy"
    other.mkdir()
    (other / f"{ID_NEG}.dcm").write_bytes(b"")
    with pytest.raises(AnnotationFormatError, match=rf"line 2 \(data row 1\): image '{ID_NEG}' is ambiguous"):
        SIIMPneumothoraxAdapter(tmp_path, on_missing="skip").load()
