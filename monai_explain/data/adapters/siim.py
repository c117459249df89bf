"""SIIM-ACR Pneumothorax: ``train-rle.csv`` (``ImageId, EncodedPixels``, one row per instance, ``-1`` = none)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import pairwise

from .base import DatasetAdapter, ImageEntry, MissingFilePolicy
from .csv_rows import CSVRow, DuplicatePolicy

__all__ = ["SIIM_PNEUMOTHORAX_CLASSES", "SIIMPneumothoraxAdapter"]

SIIM_PNEUMOTHORAX_CLASSES: tuple[str, ...] = ("Pneumothorax",)


class SIIMPneumothoraxAdapter(DatasetAdapter):
    """Data list of SIIM-ACR Pneumothorax Segmentation, one record per ``ImageId``.

    The RLE column is spelled as published, with a leading space: ``" EncodedPixels"`` (pass
    ``rle_column="EncodedPixels"`` for re-exported files without it). Several rows of one image are several
    instances; ``-1`` means no pneumothorax (an image cannot have both).

    Each record: ``image`` (the ``<ImageId>.dcm`` file found anywhere under ``image_dir``, as the published
    ``<study>/<series>/<ImageId>.dcm`` layout nests them; ``<image_dir>/<ImageId>.dcm`` when none is found),
    ``id``, ``label`` (``int``, 1 = pneumothorax) and ``rle`` (``list[str]``, one RLE string per instance, as
    published; empty for negatives). No ``boxes`` key: the masks come from the RLE. The published RLE runs over the
    flattened image in column-major order with *relative* starts (pairs of gap from the end of the previous run,
    run length); decoding is the transforms' job.

    Each RLE string is checked: an even number of non-negative integers, run lengths > 0 and, when
    ``image_size`` is given, no run past the last pixel (with ``relative_rle=False``: absolute 1-based starts,
    increasing).

    Args:
        dataset_dir: the dataset root.
        annotation_file: the CSV file, relative to ``dataset_dir``.
        image_dir: folder searched (recursively) for the DICOM files, relative to ``dataset_dir``.
        image_ext: image file extension.
        id_column, rle_column: column names (published spelling by default).
        image_size: ``(rows, columns)`` used to check the runs, ``None`` to skip that check.
        relative_rle: the RLE convention used by the check (True: SIIM's relative starts).
        recursive: find images by name under ``image_dir`` (see :class:`DatasetAdapter`).
        check_files, on_missing, allow_outside, duplicates: see :class:`DatasetAdapter`.
    """

    name = "siim"
    class_names = SIIM_PNEUMOTHORAX_CLASSES
    binary = True
    has_boxes = False

    def __init__(
        self,
        dataset_dir: str | os.PathLike,
        annotation_file: str | os.PathLike = "train-rle.csv",
        image_dir: str | os.PathLike = "dicom-images-train",
        image_ext: str = ".dcm",
        id_column: str = "ImageId",
        rle_column: str = " EncodedPixels",
        image_size: Sequence[int] | None = (1024, 1024),
        relative_rle: bool = True,
        recursive: bool = True,
        check_files: bool = True,
        on_missing: MissingFilePolicy | str = MissingFilePolicy.ERROR,
        allow_outside: bool = False,
        duplicates: DuplicatePolicy | str = DuplicatePolicy.DROP,
    ) -> None:
        super().__init__(
            dataset_dir,
            annotation_file,
            image_dir,
            image_ext,
            check_files=check_files,
            on_missing=on_missing,
            allow_outside=allow_outside,
            duplicates=duplicates,
            recursive=recursive,
        )
        self.id_column = id_column
        self.rle_column = rle_column
        self.image_size = None if image_size is None else tuple(int(s) for s in image_size)
        self.relative_rle = relative_rle

    def _read(self) -> list[ImageEntry]:
        reader = self._csv_reader([self.id_column, self.rle_column])
        entries: dict[str, ImageEntry] = {}
        for row in reader:
            entry = self._entry(entries, row[self.id_column], row)
            rle = row.require(self.rle_column)
            runs = entry.extra.setdefault("rle", [])
            negative = entry.extra.setdefault("_negative", rle == "-1")
            if negative != (rle == "-1"):
                raise row.error(f"image {entry.image_id!r} has both '-1' (no pneumothorax) and RLE rows.")
            if rle != "-1":
                self._check_rle(rle, row)
                runs.append(rle)
                entry.classes.add(0)
        return list(entries.values())

    def _check_rle(self, rle: str, row: CSVRow) -> None:
        try:
            values = [int(v) for v in rle.split()]
        except ValueError:
            raise row.error(f"column {self.rle_column!r}: RLE must be integers separated by spaces.") from None
        if len(values) % 2:
            raise row.error(f"column {self.rle_column!r}: odd number of RLE values ({len(values)}).")
        starts, lengths = values[0::2], values[1::2]
        if min(values) < 0 or min(lengths) <= 0:
            raise row.error(f"column {self.rle_column!r}: negative start or non-positive run length.")
        if self.relative_rle:
            end = sum(values)
        else:
            if any(b <= a for a, b in pairwise(starts)) or starts[0] < 1:
                raise row.error(f"column {self.rle_column!r}: absolute starts must be >= 1 and increasing.")
            end = starts[-1] - 1 + lengths[-1]
        if self.image_size is not None and end > self.image_size[0] * self.image_size[1]:
            raise row.error(f"column {self.rle_column!r}: runs end at pixel {end}, past a {self.image_size} image.")

    def _record(self, entry: ImageEntry, record: dict) -> dict:
        record["rle"] = entry.extra["rle"]
        return record
