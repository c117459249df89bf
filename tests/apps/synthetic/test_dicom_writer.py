from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
from monai.data import PydicomReader
from monai.transforms import LoadImage

from monai_explain.apps.synthetic import write_xray_dicom


def _image(rows=6, cols=9):
    return (np.arange(rows * cols, dtype=np.float64).reshape(rows, cols) + 1) / (rows * cols + 1)


@pytest.mark.parametrize(
    "photometric, bits, slope, intercept",
    [("MONOCHROME2", 12, 1.0, 0.0), ("MONOCHROME1", 12, 1.0, 0.0), ("MONOCHROME2", 16, 2.0, -100.0),
     ("MONOCHROME1", 14, 1.5, 10.0)],
)  # fmt: skip
def test_round_trip_pydicom(tmp_path, photometric, bits, slope, intercept):
    img = _image()
    path = write_xray_dicom(tmp_path / "a.dicom", img, photometric, bits, slope, intercept, 0.5, ["x"], "pid")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == photometric and ds.BitsStored == bits and ds.HighBit == bits - 1
    assert ds.BitsAllocated == 16 and ds.PixelRepresentation == 0 and ds.pixel_array.dtype == np.uint16
    assert (ds.Rows, ds.Columns) == (6, 9) and [float(s) for s in ds.PixelSpacing] == [0.5, 0.5]
    assert float(ds.RescaleSlope) == slope and float(ds.RescaleIntercept) == intercept
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian and ds.PatientID == "pid"
    max_value = 2**bits - 1
    stored = ds.pixel_array.astype(np.float64)
    if photometric == "MONOCHROME1":
        stored = max_value - stored
    physical = stored * slope + intercept
    np.testing.assert_allclose(physical / max_value, img, atol=slope / max_value)
    # pixel_array[r, c] is row r / column c of the input
    assert np.argmax(ds.pixel_array if photometric == "MONOCHROME2" else -ds.pixel_array.astype(int)) == 6 * 9 - 1


def test_monai_pydicom_reader_swaps_to_column_row(tmp_path):
    img = np.full((6, 9), 0.25)
    img[1, 7] = 1.0  # row 1, column 7
    path = write_xray_dicom(tmp_path / "b.dicom", img, "MONOCHROME2", uid_entropy=["b"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = LoadImage(reader=PydicomReader(), image_only=True)(str(path))
    assert tuple(loaded.shape) == (9, 6)  # (columns, rows): x -> axis 0
    assert tuple(np.unravel_index(int(np.argmax(np.asarray(loaded))), loaded.shape)) == (7, 1)
    np.testing.assert_allclose(float(loaded.max()), 4095.0)


def test_deterministic_uids(tmp_path):
    a = write_xray_dicom(tmp_path / "a.dicom", _image(), uid_entropy=["s", "1"])
    b = write_xray_dicom(tmp_path / "b.dicom", _image(), uid_entropy=["s", "1"])
    assert a.read_bytes() == b.read_bytes()
    c = write_xray_dicom(tmp_path / "c.dicom", _image(), uid_entropy=["s", "2"])
    assert pydicom.dcmread(a).SOPInstanceUID != pydicom.dcmread(c).SOPInstanceUID


@pytest.mark.parametrize(
    "image, kwargs, match",
    [
        (np.full((2, 2, 2), 0.5), {}, "must be 2D"),
        (np.full((4, 4), 1.5), {}, r"in \[0, 1\]"),
        (np.full((4, 4), 0.5), {"photometric": "RGB"}, "photometric"),
        (np.full((4, 4), 0.5), {"bits_stored": 20}, "bits_stored"),
        (np.full((4, 4), 0.5), {"rescale_slope": 0.0}, "rescale_slope"),
        (np.full((4, 4), 0.5), {"rescale_intercept": 5000.0}, "stored range"),
    ],
)
def test_bad_input(tmp_path, image, kwargs, match):
    with pytest.raises(ValueError, match=match):
        write_xray_dicom(tmp_path / "x.dicom", image, **kwargs)
