"""``CXRDicomReader``: MONAI's ``PydicomReader`` that also shows MONOCHROME1 radiographs the MONOCHROME2 way.

``monai.data.PydicomReader`` applies ``RescaleSlope`` / ``RescaleIntercept`` but leaves MONOCHROME1 images (lowest
value displayed white, frequent in VinDr-CXR and other CR/DX exports) as stored, so bones come out dark in some
images and bright in others. This reader inverts them after rescaling, so that high values are bright for every
image, and records what it did in the meta dict.

Geometry is MONAI's: with the default ``swap_ij=True`` the loaded array is ``(columns, rows)``, so a dataset box
``(x, y)`` = (column, row) indexes ``(axis 0, axis 1)`` of the image, which is also MONAI's box convention.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from monai.data import PydicomReader
from monai.utils import StrEnum

__all__ = ["CXRDicomReader", "Monochrome1Range"]

_PHOTOMETRIC_TAG = "00280004"


class Monochrome1Range(StrEnum):
    """The range a MONOCHROME1 image is mirrored in: ``value -> low + high - value``.

    - ``stored``: the range the stored bits can hold (``BitsStored``, ``PixelRepresentation``), rescaled like the
      pixels: independent of the image content, so identical raw pixels give identical outputs (default).
    - ``data``: the image's own minimum and maximum (keeps the image range exactly).
    """

    STORED = "stored"
    DATA = "data"


class CXRDicomReader(PydicomReader):
    """A ``PydicomReader`` that inverts MONOCHROME1 images (after rescale slope / intercept).

    The inverted value is ``low + high - value`` with ``(low, high)`` from ``invert_range``; integer arrays (no
    rescaling) keep their dtype, rescaled ones are float32 as in ``PydicomReader``. The meta dict gains
    ``"photometric_interpretation"`` (as stored) and ``"monochrome1_inverted"`` (bool). A file whose pixel data is
    missing, truncated or in an unsupported transfer syntax raises ``ValueError`` / ``NotImplementedError`` naming
    the file; so does a colour image (``SamplesPerPixel`` > 1, ``RGB`` / ``YBR_*``), a non-finite ``RescaleSlope`` /
    ``RescaleIntercept`` and an image with NaN / Inf pixels after rescaling (checked before anything trains on it).

    Args:
        invert_monochrome1: invert MONOCHROME1 images.
        invert_range: a :class:`Monochrome1Range`.
        warn_missing_geometry: keep ``PydicomReader``'s warning about missing ImageOrientationPatient /
            ImagePositionPatient; projection radiographs rarely have them, so it is silenced by default (the
            affine is then the identity, as in ``PydicomReader``).
        kwargs: ``PydicomReader`` arguments (``swap_ij``, ``affine_lps_to_ras``, ``prune_metadata``, ...).

    Example:
        .. code-block:: python

            from monai.transforms import LoadImaged
            load = LoadImaged("image", reader=CXRDicomReader(), ensure_channel_first=True)
    """

    def __init__(
        self,
        invert_monochrome1: bool = True,
        invert_range: Monochrome1Range | str = Monochrome1Range.STORED,
        warn_missing_geometry: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.invert_monochrome1 = invert_monochrome1
        self.invert_range = Monochrome1Range(invert_range)
        self.warn_missing_geometry = warn_missing_geometry

    @staticmethod
    def _photometric(img: Any) -> str:
        return str(getattr(img, "PhotometricInterpretation", "")).strip().upper()

    def _inverts(self, img: Any) -> bool:
        return self.invert_monochrome1 and self._photometric(img) == "MONOCHROME1"

    @staticmethod
    def _check_header(img: Any, filename: Any) -> None:
        """Refuse colour images and non-finite rescale values before decoding, naming the file."""
        samples = int(getattr(img, "SamplesPerPixel", 1) or 1)
        photometric = CXRDicomReader._photometric(img)
        if samples != 1 or photometric.startswith(("RGB", "YBR", "PALETTE", "HSV", "ARGB", "CMYK")):
            raise ValueError(
                f"DICOM file {filename} is a colour image ({samples} samples (channels) per pixel, "
                f"PhotometricInterpretation {photometric!r}); this reader expects a grayscale radiograph "
                "(SamplesPerPixel 1, MONOCHROME1 or MONOCHROME2): convert it to grayscale first."
            )
        for tag in ("RescaleSlope", "RescaleIntercept"):
            if hasattr(img, tag):
                raw = getattr(img, tag)
                try:
                    value = float(raw)
                except (TypeError, ValueError):
                    value = float("nan")
                if not np.isfinite(value):
                    raise ValueError(
                        f"DICOM file {filename} has a non-finite {tag} {raw!r}: its pixels would be NaN / Inf."
                    )

    def _get_array_data(self, img: Any, filename: Any) -> Any:
        self._check_header(img, filename)
        try:
            data = super()._get_array_data(img, filename)
        except (ValueError, NotImplementedError) as e:
            # pydicom's decoding errors (truncated pixel data, unsupported transfer syntax) do not name the file
            if str(filename) in str(e):
                raise
            cls = NotImplementedError if isinstance(e, NotImplementedError) else ValueError
            raise cls(f"cannot decode the pixel data of DICOM file {filename}: {e}") from e
        if np.issubdtype(data.dtype, np.floating):
            # LoadImage stores float32: a float64 value beyond its range would become Inf there
            bad = ~(np.abs(data) <= np.finfo(np.float32).max)
            if bad.any():
                slope, intercept = getattr(img, "RescaleSlope", 1), getattr(img, "RescaleIntercept", 0)
                raise ValueError(
                    f"DICOM file {filename} has {int(bad.sum())} pixels that are NaN, Inf or beyond the float32 range "
                    f"after rescaling (RescaleSlope {slope}, RescaleIntercept {intercept})."
                )
        if not self._inverts(img):
            return data
        if self.invert_range == Monochrome1Range.DATA:
            low, high = data.min(), data.max()
        else:
            bits = int(getattr(img, "BitsStored", getattr(img, "BitsAllocated", 16)))
            signed = int(getattr(img, "PixelRepresentation", 0)) == 1
            low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
            slope = float(getattr(img, "RescaleSlope", 1.0))
            intercept = float(getattr(img, "RescaleIntercept", 0.0))
            low, high = low * slope + intercept, high * slope + intercept
        if np.issubdtype(data.dtype, np.integer):
            # low + high - value stays inside [low, high]: compute wide, store in the original dtype
            return (int(low) + int(high) - data.astype(np.int64)).astype(data.dtype)
        return (float(low) + float(high) - data).astype(data.dtype)

    def _get_meta_dict(self, img: Any) -> dict:
        metadata = super()._get_meta_dict(img)
        metadata["photometric_interpretation"] = self._photometric(img)
        metadata["monochrome1_inverted"] = self._inverts(img)
        return metadata

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        """``PydicomReader.get_data``, without the missing-geometry warning unless ``warn_missing_geometry``."""
        if self.warn_missing_geometry:
            return super().get_data(img)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="PydicomReader: ImageOrientationPatient")
            return super().get_data(img)
