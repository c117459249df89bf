"""CXRDicomReader: MONOCHROME1 inversion after rescale, meta dict flags, and the (x, y) box <-> array axes round-trip."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from monai.transforms import LoadImaged
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from monai_explain.data import CXRDicomReader, VinDrCXRAdapter


def write_dicom(path, pixels, photometric="MONOCHROME2", slope=None, intercept=None, bits_stored=12, signed=False):
    """Write a single-frame 16-bit DICOM (rows x columns = pixels.shape) with pydicom."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = int(signed)
    if slope is not None:
        ds.RescaleSlope = slope
    if intercept is not None:
        ds.RescaleIntercept = intercept
    ds.PixelData = pixels.astype(np.int16 if signed else np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_rgb_dicom(path, rows=5, columns=4, seed=0):
    """Write an 8-bit RGB DICOM (SamplesPerPixel 3, interleaved), as some exports of radiographs are."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.random.default_rng(seed).integers(1, 255, rows * columns * 3, dtype=np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


PIXELS = np.array([[0, 100, 200], [300, 400, 4095]], dtype=np.uint16)  # rows x columns = 2 x 3

CASES = [
    # photometric, slope, intercept, range, expected (rows x columns, before the reader's swap to columns x rows)
    ("MONOCHROME2", None, None, "stored", PIXELS.astype(np.float64)),
    ("MONOCHROME2", 2.0, -10.0, "stored", PIXELS * 2.0 - 10.0),
    # 12 stored bits: 4095 - v
    ("MONOCHROME1", None, None, "stored", 4095.0 - PIXELS),
    # rescaled range [-10, 8180]: -10 + 8180 - (2 v - 10) = 8180 - 2 v
    ("MONOCHROME1", 2.0, -10.0, "stored", 8180.0 - 2.0 * PIXELS),
    # the image's own range [0, 4095] (min 0, max 4095 in PIXELS): same as stored here
    ("MONOCHROME1", None, None, "data", 4095.0 - PIXELS),
    # rescaled data range [-10, 8180] -> 8170 - (2 v - 10)
    ("MONOCHROME1", 2.0, -10.0, "data", 8170.0 - (2.0 * PIXELS - 10.0)),
]


@pytest.mark.parametrize("photometric,slope,intercept,invert_range,expected", CASES)
def test_monochrome_inversion(tmp_path, photometric, slope, intercept, invert_range, expected):
    path = write_dicom(str(tmp_path / "a.dcm"), PIXELS, photometric, slope, intercept)
    loaded = LoadImaged("image", reader=CXRDicomReader(invert_range=invert_range))({"image": path})["image"]
    assert tuple(loaded.shape) == (3, 2)  # swap_ij: (columns, rows)
    np.testing.assert_allclose(loaded.numpy(), expected.T)
    assert loaded.meta["photometric_interpretation"] == photometric
    assert loaded.meta["monochrome1_inverted"] == (photometric == "MONOCHROME1")


def test_monochrome1_integer_dtype_kept(tmp_path):
    path = write_dicom(str(tmp_path / "a.dcm"), PIXELS, "MONOCHROME1")
    reader = CXRDicomReader()
    array, _ = reader.get_data(reader.read(path))
    assert array.dtype == np.uint16
    np.testing.assert_array_equal(array, (4095 - PIXELS).T)


def test_monochrome1_signed_stored_range(tmp_path):
    pixels = np.array([[-2048, -1], [0, 2047]], dtype=np.int16)
    path = write_dicom(str(tmp_path / "s.dcm"), pixels, "MONOCHROME1", signed=True)
    reader = CXRDicomReader()
    array, _ = reader.get_data(reader.read(path))
    # signed 12 bits: [-2048, 2047] -> -1 - v
    np.testing.assert_array_equal(array, (-1 - pixels).T)


def test_no_inversion_when_disabled(tmp_path):
    path = write_dicom(str(tmp_path / "a.dcm"), PIXELS, "MONOCHROME1")
    loaded = LoadImaged("image", reader=CXRDicomReader(invert_monochrome1=False))({"image": path})["image"]
    np.testing.assert_allclose(loaded.numpy(), PIXELS.T)
    assert loaded.meta["monochrome1_inverted"] is False


def test_plain_pydicom_reader_does_not_invert(tmp_path):
    """Why the subclass exists: MONAI's reader leaves MONOCHROME1 as stored."""
    from monai.data import PydicomReader

    path = write_dicom(str(tmp_path / "a.dcm"), PIXELS, "MONOCHROME1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = LoadImaged("image", reader=PydicomReader())({"image": path})["image"]
    np.testing.assert_allclose(loaded.numpy(), PIXELS.T)


def test_missing_geometry_warning_silenced(tmp_path):
    path = write_dicom(str(tmp_path / "a.dcm"), PIXELS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reader = CXRDicomReader()
        reader.get_data(reader.read(path))
    assert not [w for w in caught if "ImageOrientationPatient" in str(w.message)]
    reader = CXRDicomReader(warn_missing_geometry=True)
    with pytest.warns(UserWarning, match="ImageOrientationPatient"):
        reader.get_data(reader.read(path))


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_vindr_box_round_trip(tmp_path, photometric):
    """A bright rectangle at columns 4..6 and rows 1..2 of a 6 x 8 DICOM, described by a VinDr row
    (x_min=4, y_min=1, x_max=7, y_max=3 = column / row pixel edges), is exactly image[4:7, 1:3] once loaded."""
    rows, cols = 6, 8
    dark, bright = (3000, 500) if photometric == "MONOCHROME1" else (500, 3000)
    pixels = np.full((rows, cols), dark, dtype=np.uint16)
    pixels[1:3, 4:7] = bright  # rows 1-2, columns 4-6
    (tmp_path / "train").mkdir()
    write_dicom(str(tmp_path / "train" / "img1.dicom"), pixels, photometric)
    (tmp_path / "train.csv").write_text(
        "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\nimg1,Nodule/Mass,8,R9,4.0,1.0,7.0,3.0\n"
    )
    (record,) = VinDrCXRAdapter(tmp_path).load()
    np.testing.assert_array_equal(record["boxes"], [[4.0, 1.0, 7.0, 3.0]])
    image = LoadImaged("image", reader=CXRDicomReader())(record)["image"].numpy()
    assert image.shape == (cols, rows)
    x1, y1, x2, y2 = record["boxes"][0].astype(int)
    inside = np.zeros_like(image, dtype=bool)
    inside[x1:x2, y1:y2] = True
    high = image.max()
    assert np.array_equal(image == high, inside)  # bright exactly inside the box, after MONOCHROME1 inversion too
    assert inside.sum() == 6


@pytest.mark.parametrize(
    "slope, intercept, match",
    [
        ("NaN", None, r"non-finite RescaleSlope 'NaN'"),
        ("inf", None, r"non-finite RescaleSlope 'inf'"),
        (None, "-inf", r"non-finite RescaleIntercept '-inf'"),
        # finite header, but every pixel (300 .. 3600) * 1e37 overflows the float32 image LoadImage stores
        ("1e37", None, r"12 pixels that are NaN, Inf or beyond the float32 range"),
    ],
)
def test_non_finite_rescale_is_refused_naming_the_file(tmp_path, slope, intercept, match):
    pixels = np.arange(1, 13, dtype=np.uint16).reshape(3, 4) * 300
    path = write_dicom(str(tmp_path / "bad_rescale.dcm"), pixels, slope=slope, intercept=intercept)
    with pytest.raises(ValueError, match=match) as info:
        LoadImaged("image", reader=CXRDicomReader())({"image": path})
    assert path in str(info.value)


def test_rgb_dicom_is_refused_naming_the_file_and_channels(tmp_path):
    path = write_rgb_dicom(str(tmp_path / "colour.dcm"))
    with pytest.raises(ValueError, match=r"colour image \(3 samples \(channels\) per pixel.*'RGB'") as info:
        LoadImaged("image", reader=CXRDicomReader(), ensure_channel_first=True)({"image": path})
    assert path in str(info.value)


def test_finite_rescale_still_loads(tmp_path):
    pixels = np.arange(1, 13, dtype=np.uint16).reshape(3, 4) * 300
    path = write_dicom(str(tmp_path / "ok.dcm"), pixels, slope="2.5", intercept="-7")
    loaded = LoadImaged("image", reader=CXRDicomReader())({"image": path})["image"]
    np.testing.assert_allclose(loaded.numpy(), (pixels * 2.5 - 7).T)
