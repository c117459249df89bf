"""LUNA16: ``annotations.csv`` (``seriesuid,coordX,coordY,coordZ,diameter_mm``) and ``<seriesuid>.mhd`` CT scans."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from monai.utils import StrEnum, look_up_option

from .base import DatasetAdapter, ImageEntry, MissingFilePolicy
from .csv_rows import DuplicatePolicy

__all__ = ["LUNA16_CLASSES", "LUNA16Adapter", "WorldSpace"]

LUNA16_CLASSES: tuple[str, ...] = ("nodule",)
_POINT_COLUMNS = ("coordX", "coordY", "coordZ")
_SUBSETS = tuple(f"subset{i}" for i in range(10))  # the ten folders of the LUNA16 release


class WorldSpace(StrEnum):
    """World frame of the returned points and boxes: ``LPS`` as published (ITK / MetaImage), or ``RAS`` (x and y
    negated), the frame of the affine MONAI's ``ITKReader`` returns by default (``affine_lps_to_ras=True``)."""

    LPS = "LPS"
    RAS = "RAS"


class LUNA16Adapter(DatasetAdapter):
    """Data list of LUNA16 nodules, one record per CT series.

    Each record: ``image`` (the ``<seriesuid>.mhd`` file found under one of ``image_dir``: the published
    ``subset0`` ... ``subset9`` folders), ``id`` (``seriesuid``), ``label`` (``int``, 1 = at least one nodule),
    ``points`` float32 ``(N, 3)`` nodule centres in world millimetres (``coordX, coordY, coordZ``, in ``space``),
    ``diameters_mm`` float32 ``(N,)``, ``boxes`` float32 ``(N, 6)`` in MONAI mode ``"xyzxyz"`` **in world
    millimetres** (the cube around each sphere: centre -/+ diameter / 2; map it to voxels with the image affine,
    e.g. ``monai.apps.detection.transforms.dictionary.AffineBoxToImageCoordinated``), ``box_labels`` (all 0).

    ``annotations.csv`` lists only series with nodules; with ``include_unannotated=True`` every other ``*.mhd``
    found under ``image_dir`` is added as a negative (after the annotated series, sorted by id).

    Args:
        dataset_dir: the dataset root.
        annotation_file: the CSV file, relative to ``dataset_dir``.
        image_dir: folder(s) searched recursively for ``<seriesuid>.mhd``, relative to ``dataset_dir`` (missing
            folders are ignored; without a match, the first folder is assumed).
        image_ext: image file extension.
        space: a :class:`WorldSpace` for ``points`` and ``boxes``.
        include_unannotated: add the series found on disk but absent from the file as negatives.
        check_files, on_missing, allow_outside, duplicates: see :class:`DatasetAdapter`.
    """

    name = "luna16"
    class_names = LUNA16_CLASSES
    binary = True
    source_box_mode = "cccwhd"

    def __init__(
        self,
        dataset_dir: str | os.PathLike,
        annotation_file: str | os.PathLike = "annotations.csv",
        image_dir: str | os.PathLike | Sequence[str | os.PathLike] = _SUBSETS,
        image_ext: str = ".mhd",
        space: WorldSpace | str = WorldSpace.LPS,
        include_unannotated: bool = True,
        check_files: bool = True,
        on_missing: MissingFilePolicy | str = MissingFilePolicy.ERROR,
        allow_outside: bool = False,
        duplicates: DuplicatePolicy | str = DuplicatePolicy.DROP,
    ) -> None:
        dirs = (
            [os.fspath(image_dir)] if isinstance(image_dir, (str, os.PathLike)) else [os.fspath(d) for d in image_dir]
        )
        if not dirs:
            raise ValueError("image_dir must name at least one folder.")
        super().__init__(
            dataset_dir,
            annotation_file,
            dirs[0],
            image_ext,
            check_files=check_files,
            on_missing=on_missing,
            allow_outside=allow_outside,
            duplicates=duplicates,
            recursive=True,
        )
        self.image_dirs = dirs
        self.space = look_up_option(space, WorldSpace)
        self.include_unannotated = include_unannotated

    def _index_roots(self) -> list[str]:
        return list(self.image_dirs)

    def _read(self) -> list[ImageEntry]:
        reader = self._csv_reader(["seriesuid", *_POINT_COLUMNS, "diameter_mm"])
        sign = np.array([-1.0, -1.0, 1.0]) if self.space == WorldSpace.RAS else np.ones(3)
        entries: dict[str, ImageEntry] = {}
        for row in reader:
            entry = self._entry(entries, row["seriesuid"], row)
            point = [row.float(c) * s for c, s in zip(_POINT_COLUMNS, sign)]
            diameter = row.float("diameter_mm")
            if diameter <= 0:
                raise row.error(f"diameter_mm must be positive, got {diameter}.")
            entry.add_box([*point, diameter, diameter, diameter], 0, row.line, row.row)
        if self.include_unannotated:
            index = self._image_index or {}
            found = sorted(n[: len(n) - len(self.image_ext)] for n in index)
            for uid in found:
                if uid not in entries:
                    entries[uid] = ImageEntry(uid, uid, self.annotation_file, key=f"{uid} (found on disk)")
        return list(entries.values())

    def _record(self, entry: ImageEntry, record: dict) -> dict:
        src = np.asarray(entry.boxes, dtype=np.float32).reshape(-1, 6)
        record["points"] = src[:, :3].copy()
        record["diameters_mm"] = src[:, 3].copy()
        return record
