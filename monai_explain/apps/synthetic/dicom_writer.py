"""Write a 2D radiograph as a single-frame 16-bit DICOM file (Digital X-Ray, for presentation)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from monai_explain.utils.extras import optional_import_extra

Dataset, _ = optional_import_extra("pydicom.dataset", "dicom", name="Dataset")
FileMetaDataset, _ = optional_import_extra("pydicom.dataset", "dicom", name="FileMetaDataset")
PYDICOM_IMPLEMENTATION_UID, _ = optional_import_extra("pydicom.uid", "dicom", name="PYDICOM_IMPLEMENTATION_UID")
ExplicitVRLittleEndian, _ = optional_import_extra("pydicom.uid", "dicom", name="ExplicitVRLittleEndian")
generate_uid, _ = optional_import_extra("pydicom.uid", "dicom", name="generate_uid")

__all__ = ["DX_FOR_PRESENTATION_SOP_CLASS", "write_xray_dicom"]

DX_FOR_PRESENTATION_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1.1"

_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2")


def write_xray_dicom(
    path: str | os.PathLike,
    image: np.ndarray,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    rescale_slope: float = 1.0,
    rescale_intercept: float = 0.0,
    pixel_spacing: float | Sequence[float] = 1.0,
    uid_entropy: Sequence[str] | None = None,
    patient_id: str = "",
) -> Path:
    """Write ``image`` (rows, columns), values in [0, 1] with bright = dense, as a DICOM file.

    The physical (rescaled) value of a pixel is ``image * (2**bits_stored - 1)``. Stored values are
    ``(physical - intercept) / slope`` for MONOCHROME2; for MONOCHROME1 the stored values are inverted
    (``max - stored``), so that a reader that applies the rescale and then inverts MONOCHROME1
    (``max - value``) recovers the MONOCHROME2 picture. Row ``r`` / column ``c`` of ``image`` are DICOM
    row ``r`` / column ``c`` (pydicom's ``pixel_array[r, c]``).

    ImagePositionPatient (0, 0, 0) and ImageOrientationPatient (1, 0, 0, 0, 1, 0) are written so that
    readers that need them (``monai.data.PydicomReader``) build a plain pixel-spacing affine.

    Args:
        path: output file (conventionally ``<image_id>.dicom`` for VinDr-CXR).
        image: float array (rows, columns) in [0, 1].
        photometric: "MONOCHROME2" (0 = black) or "MONOCHROME1" (0 = white).
        bits_stored: 8 to 16; values are stored as unsigned 16-bit.
        rescale_slope: RescaleSlope (> 0).
        rescale_intercept: RescaleIntercept.
        pixel_spacing: mm per pixel, scalar or (row spacing, column spacing).
        uid_entropy: strings from which the Study/Series/SOP Instance UIDs are derived
            deterministically (``pydicom.uid.generate_uid(entropy_srcs=...)``); None gives random UIDs.
        patient_id: PatientID value.

    Returns:
        The path written.

    Raises:
        ValueError: bad photometric, bits_stored, slope, or an image that is not 2D / outside [0, 1].
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"image must be 2D (rows, columns), got shape {img.shape} for {path}.")
    if not np.isfinite(img).all() or img.min() < 0 or img.max() > 1:
        raise ValueError(f"image values must be finite and in [0, 1] for {path}.")
    if photometric not in _PHOTOMETRIC:
        raise ValueError(f"photometric must be one of {_PHOTOMETRIC}, got {photometric!r}.")
    if not 8 <= bits_stored <= 16:
        raise ValueError(f"bits_stored must be in [8, 16], got {bits_stored}.")
    if rescale_slope <= 0:
        raise ValueError(f"rescale_slope must be > 0, got {rescale_slope}.")
    max_value = 2**bits_stored - 1
    stored = np.rint((img * max_value - rescale_intercept) / rescale_slope)
    if stored.min() < 0 or stored.max() > max_value:
        raise ValueError(
            f"rescale_slope={rescale_slope} / rescale_intercept={rescale_intercept} map the image outside the "
            f"stored range [0, {max_value}] for {path}."
        )
    if photometric == "MONOCHROME1":
        stored = max_value - stored
    stored = stored.astype(np.uint16)
    spacing = [float(pixel_spacing)] * 2 if np.isscalar(pixel_spacing) else [float(s) for s in pixel_spacing]

    def _uid(tag: str) -> str:
        return generate_uid(entropy_srcs=[*uid_entropy, tag]) if uid_entropy is not None else generate_uid()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_FOR_PRESENTATION_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = _uid("sop")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = DX_FOR_PRESENTATION_SOP_CLASS
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = _uid("study")
    ds.SeriesInstanceUID = _uid("series")
    ds.Modality = "DX"
    ds.PatientID = patient_id
    ds.PatientName = "SYNTHETIC"
    ds.ViewPosition = "PA"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.PixelSpacing = spacing
    ds.ImagerPixelSpacing = spacing
    ds.ImagePositionPatient = [0.0, 0.0, 0.0]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.RescaleSlope = f"{rescale_slope:g}"
    ds.RescaleIntercept = f"{rescale_intercept:g}"
    ds.RescaleType = "US"
    ds.WindowCenter = f"{max_value / 2:g}"
    ds.WindowWidth = f"{max_value:g}"
    ds.set_pixel_data(stored, photometric, bits_stored, generate_instance_uid=False)
    out = Path(path)
    ds.save_as(out, enforce_file_format=True)
    return out
