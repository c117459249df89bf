"""Every dataset adapter on bad files: errors name the annotation file and the row (or key), nothing is dropped silently.

Complements the per-adapter tests (which already cover, for some adapters, a truncated row, a missing image, a
path escaping ``dataset_dir`` and a duplicate row) by running the same checks through every CSV adapter, plus
the DICOM reader on files without (or with truncated) pixel data:

- a file cut short: in the middle of the last row, inside a quoted field, inside the header, or empty;
- unknown extra columns (ignored: the records do not change) and a required column misspelt (the error lists the
  header found);
- duplicate rows (dropped and counted by default, an error naming both lines with ``duplicates="error"``);
- a missing image file (``MissingImageError`` naming file, row and path; ``on_missing="skip"`` counts it);
- an image id or path column escaping ``dataset_dir`` (``..`` or absolute): ``PathEscapeError`` unless
  ``allow_outside=True``, for every adapter path column not already tested elsewhere.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from monai.transforms import LoadImage, LoadImaged
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from monai_explain.data import (
    AnnotationFormatError,
    CheXlocalizeAdapter,
    CXRDicomReader,
    GenericCSVAdapter,
    LUNA16Adapter,
    MissingImageError,
    MSCXRAdapter,
    NIHChestXray14Adapter,
    PathEscapeError,
    RSNAPneumoniaAdapter,
    SIIMPneumothoraxAdapter,
    VinDrCXRAdapter,
)


@dataclass
class Spec:
    """How to write a minimal valid dataset for one CSV adapter."""

    adapter: Callable[..., Any]
    csv: str
    header: str
    row: Callable[[str], str]  # image id -> one data row
    image: Callable[[str], str]  # image id -> image path relative to dataset_dir
    ids: tuple[str, str] = ("a1", "b2")
    kwargs: dict = field(default_factory=dict)

    def write(self, root, rows: list[str] | None = None, text: str | None = None, images=None) -> None:
        (root / self.csv).write_text(text if text is not None else self.header + "\n" + "\n".join(rows) + "\n")
        for image_id in self.ids if images is None else images:
            path = root / self.image(image_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")

    def load(self, root, **kwargs):
        adapter = self.adapter(root, self.csv, **{**self.kwargs, **kwargs})
        return adapter, adapter.load()


SPECS = {
    "vindr": Spec(
        VinDrCXRAdapter,
        "train.csv",
        "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max",
        lambda i: f"{i},Cardiomegaly,3,R1,1,2,3,4",
        lambda i: f"train/{i}.dicom",
    ),
    "rsna": Spec(
        RSNAPneumoniaAdapter,
        "stage_2_train_labels.csv",
        "patientId,x,y,width,height,Target",
        lambda i: f"{i},1,2,3,4,1",
        lambda i: f"stage_2_train_images/{i}.dcm",
    ),
    "nih": Spec(
        NIHChestXray14Adapter,
        "BBox_List_2017.csv",
        "Image Index,Finding Label,Bbox [x,y,w,h],,,",
        lambda i: f"{i},Atelectasis,1,2,3,4,,,",
        lambda i: f"images/{i}",
        ids=("a1.png", "b2.png"),
    ),
    "siim": Spec(
        SIIMPneumothoraxAdapter,
        "train-rle.csv",
        "ImageId, EncodedPixels",
        lambda i: f"{i}, 1 2",
        lambda i: f"dicom-images-train/study/series/{i}.dcm",
    ),
    "mscxr": Spec(
        MSCXRAdapter,
        "MS_CXR_Local_Alignment_v1.0.0.csv",
        "dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height,split",
        lambda i: f"{i},Pneumonia,some text,files/{i}.jpg,1,2,3,4,10,10,train",
        lambda i: f"files/{i}.jpg",
    ),
    "luna16": Spec(
        LUNA16Adapter,
        "annotations.csv",
        "seriesuid,coordX,coordY,coordZ,diameter_mm",
        lambda i: f"{i},1.5,-2.5,3.0,4.0",
        lambda i: f"subset0/{i}.mhd",
        ids=("1.2.3", "1.2.4"),
    ),
    "csv": Spec(
        GenericCSVAdapter,
        "list.csv",
        "image,x_min,y_min,x_max,y_max",
        lambda i: f"{i}.png,1,2,3,4",
        lambda i: f"{i}.png",
    ),
}


def _loc(spec: Spec, line: int, row: int | None = None) -> str:
    where = rf"{re.escape(spec.csv)}, line {line}"
    return where + (rf" \(data row {row}\)" if row is not None else "")


def _records_summary(records: list[dict]) -> list[tuple]:
    return [
        (r["id"], r["image"], np.asarray(r["label"]).tolist(), np.asarray(r.get("boxes", [])).tolist()) for r in records
    ]


@pytest.mark.parametrize("name", list(SPECS))
def test_baseline_loads(tmp_path, name):
    """The table itself is right: two valid rows give two records."""
    spec = SPECS[name]
    spec.write(tmp_path, [spec.row(i) for i in spec.ids])
    adapter, records = spec.load(tmp_path)
    assert [r["id"] for r in records] == list(spec.ids)
    assert adapter.stats["rows"] == 2 and adapter.stats["duplicates_dropped"] == 0


# ----------------------------------------------------------------------------------------- truncated files
@pytest.mark.parametrize("name", ["siim", "mscxr", "csv"])  # vindr, rsna, nih, luna16: in their own test files
def test_file_cut_in_the_middle_of_a_row(tmp_path, name):
    spec = SPECS[name]
    last = spec.row(spec.ids[1])
    cut = last[: last.index(",") + 1].rstrip(",").rstrip()  # only the first field survived
    spec.write(tmp_path, text=spec.header + "\n" + spec.row(spec.ids[0]) + "\n" + cut)
    with pytest.raises(
        AnnotationFormatError, match=_loc(spec, 3, 2) + r": truncated row: 1 field\(s\) where the header"
    ):
        spec.load(tmp_path)


@pytest.mark.parametrize("name", list(SPECS))
def test_file_cut_inside_a_quoted_field(tmp_path, name):
    spec = SPECS[name]
    first = spec.row(spec.ids[0])
    spec.write(tmp_path, text=spec.header + "\n" + first + '\n"' + spec.ids[1] + ",unterminated")
    with pytest.raises(AnnotationFormatError, match=_loc(spec, 3) + r": malformed CSV \(unexpected end of data\)"):
        spec.load(tmp_path)


@pytest.mark.parametrize("name", list(SPECS))
def test_file_cut_inside_the_header(tmp_path, name):
    spec = SPECS[name]
    spec.write(tmp_path, text=spec.header[: len(spec.header) // 2])
    with pytest.raises(AnnotationFormatError, match=_loc(spec, 1) + r": missing column\(s\) \[.*\] in the header"):
        spec.load(tmp_path)


@pytest.mark.parametrize("name", list(SPECS))
def test_empty_file(tmp_path, name):
    spec = SPECS[name]
    spec.write(tmp_path, text="")
    with pytest.raises(AnnotationFormatError, match=re.escape(spec.csv) + ": empty file: no header line"):
        spec.load(tmp_path)


# ------------------------------------------------------------------------------------------------- columns
@pytest.mark.parametrize("name", list(SPECS))
def test_unknown_columns_are_ignored(tmp_path, name):
    spec = SPECS[name]
    spec.write(tmp_path, [spec.row(i) for i in spec.ids])
    _, expected = spec.load(tmp_path)
    # an unknown column inserted first (shifting every index) and another one appended after the last named column
    header = "site," + spec.header
    rows = [f"x{k}," + spec.row(i) for k, i in enumerate(spec.ids)]
    if not header.endswith(","):
        header, rows = header + ",scanner", [r + ",GE" for r in rows]
    spec.write(tmp_path, text=header + "\n" + "\n".join(rows) + "\n")
    _, records = spec.load(tmp_path)
    assert _records_summary(records) == _records_summary(expected)


@pytest.mark.parametrize("name", list(SPECS))
def test_required_column_misspelt(tmp_path, name):
    spec = SPECS[name]
    first = spec.header.split(",")[0]
    spec.write(tmp_path, text=spec.header.replace(first, first.upper() + "_", 1) + "\n" + spec.row(spec.ids[0]) + "\n")
    with pytest.raises(
        AnnotationFormatError,
        match=_loc(spec, 1)
        + rf": missing column\(s\) \[{re.escape(repr(first))}.*\] in the header \[.*{first.upper()}_",
    ):
        spec.load(tmp_path)


# ------------------------------------------------------------------------------------------------ duplicates
@pytest.mark.parametrize("name", [n for n in SPECS if n != "vindr"])  # VinDr: test_vindr.py
def test_duplicate_rows(tmp_path, name, caplog):
    spec = SPECS[name]
    rows = [spec.row(spec.ids[0]), spec.row(spec.ids[0]), spec.row(spec.ids[1])]
    spec.write(tmp_path, rows)
    with caplog.at_level(logging.WARNING):
        adapter, records = spec.load(tmp_path)
    assert [r["id"] for r in records] == list(spec.ids)
    assert adapter.stats["duplicates_dropped"] == 1 and adapter.stats["rows"] == 2
    assert "dropped 1 duplicate row(s) at line(s) 3" in caplog.text
    with pytest.raises(AnnotationFormatError, match=_loc(spec, 3, 2) + ": duplicate of line 2"):
        spec.load(tmp_path, duplicates="error")
    _, kept = spec.load(tmp_path, duplicates="keep")
    assert sum(len(r.get("boxes", r.get("rle", []))) for r in kept) >= sum(
        len(r.get("boxes", r.get("rle", []))) for r in records
    )


# ------------------------------------------------------------------------------------------- missing images
@pytest.mark.parametrize("name", ["nih", "mscxr", "luna16", "csv"])  # vindr, rsna, siim: in their own test files
def test_missing_image(tmp_path, name, caplog):
    spec = SPECS[name]
    spec.write(tmp_path, [spec.row(i) for i in spec.ids], images=spec.ids[:1])
    missing = spec.ids[1]
    with pytest.raises(MissingImageError, match=_loc(spec, 3, 2) + rf": image '{re.escape(missing)}' not found: .*"):
        spec.load(tmp_path)
    with caplog.at_level(logging.WARNING):
        adapter, records = spec.load(tmp_path, on_missing="skip")
    assert [r["id"] for r in records] == [spec.ids[0]]
    assert adapter.stats["missing_skipped"] == 1
    assert "skipped 1 image(s) missing on disk" in caplog.text


# ------------------------------------------------------------------------------------------ paths escaping
ESCAPES = [
    # (adapter, id or path text written in the file): columns not covered by test_base.py / test_mscxr.py
    ("vindr", "../../etc/passwd"),
    ("vindr", "/etc/passwd"),
    ("nih", "../outside.png"),
    ("nih", "C:\\outside.png"),
    ("siim", "../../outside"),
    ("luna16", "../subset0/../../x"),
    ("luna16", "/abs/1.2.5"),
    ("csv", "../outside"),
    ("csv", "sub/../../outside"),
]


@pytest.mark.parametrize("name,value", ESCAPES)
def test_image_path_escaping_dataset_dir(tmp_path, name, value):
    spec = SPECS[name]
    root = tmp_path / "root"
    root.mkdir()
    spec.write(root, [spec.row(spec.ids[0]), spec.row(value)], images=spec.ids[:1])
    reason = r"(absolute image path .* is not allowed|image path .* contains '\.\.')"
    with pytest.raises(PathEscapeError, match=_loc(spec, 3, 2) + ": " + reason):
        spec.load(root)
    # allowed on request; the path is then used as written (and reported missing when it does not exist)
    _, records = spec.load(root, allow_outside=True, check_files=False)
    assert len(records) == 2


@pytest.mark.parametrize("key", ["../../etc/passwd", "patient1_study1_view1_frontal/../../x", "/abs"])
def test_chexlocalize_ids_cannot_name_a_path(tmp_path, key):
    """CheXlocalize builds the image path from the cxr_id, which must match patient<N>_study<N>_view<N>_<view>."""
    (tmp_path / "gt.json").write_text(json.dumps({key: {"img_size": [4, 4]}}))
    with pytest.raises(AnnotationFormatError, match=rf"gt\.json, key {re.escape(key)}: cxr_id is not of the form"):
        CheXlocalizeAdapter(tmp_path, "gt.json", check_files=False).load()


# ------------------------------------------------------------------------------------- DICOM without pixels
def _dicom(path, pixels: np.ndarray | None) -> str:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PhotometricInterpretation, ds.SamplesPerPixel = "DX", "MONOCHROME1", 1
    ds.Rows, ds.Columns = 8, 6
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if pixels is not None:
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return str(path)


@pytest.mark.parametrize("form", ["array", "dict"])
def test_dicom_without_pixel_data_names_the_file(tmp_path, form):
    path = _dicom(tmp_path / "no_pixels.dcm", None)
    with pytest.raises(ValueError, match=rf"{re.escape(path)} does not have pixel_array"):
        if form == "array":
            LoadImage(reader=CXRDicomReader(), image_only=True)(path)
        else:
            LoadImaged("image", reader=CXRDicomReader())({"image": path})


def test_dicom_with_truncated_pixel_data_names_the_file(tmp_path):
    path = _dicom(tmp_path / "full.dcm", np.arange(48).reshape(8, 6))
    data = (tmp_path / "full.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:-20])  # the end of the pixel data is lost (an interrupted copy)
    assert LoadImage(reader=CXRDicomReader(), image_only=True)(path).shape == (6, 8)
    with pytest.raises(ValueError, match=rf"cannot decode the pixel data of DICOM file {re.escape(str(cut))}: .*less"):
        LoadImage(reader=CXRDicomReader(), image_only=True)(str(cut))
