"""VinDr-CXR: ``train.csv`` with one row per box per radiologist, "No finding" rows for normal reads."""

from __future__ import annotations

import os

import numpy as np
from monai.utils import StrEnum

from .base import DatasetAdapter, ImageEntry, MissingFilePolicy
from .csv_rows import DuplicatePolicy

__all__ = ["VINDR_CXR_CLASSES", "VINDR_NO_FINDING_ID", "LabelRule", "VinDrCXRAdapter"]

#: The 14 findings of VinDr-CXR, indexed by ``class_id`` (0-13); ``class_id`` 14 is "No finding".
VINDR_CXR_CLASSES: tuple[str, ...] = (
    "Aortic enlargement",
    "Atelectasis",
    "Calcification",
    "Cardiomegaly",
    "Consolidation",
    "ILD",
    "Infiltration",
    "Lung Opacity",
    "Nodule/Mass",
    "Other lesion",
    "Pleural effusion",
    "Pleural thickening",
    "Pneumothorax",
    "Pulmonary fibrosis",
)
VINDR_NO_FINDING_ID = 14
_NO_FINDING = "No finding"
_BOX_COLUMNS = ("x_min", "y_min", "x_max", "y_max")


class LabelRule(StrEnum):
    """How the image-level label of a class is derived from several readers' boxes.

    - ``any``: positive when at least one reader drew a box of the class.
    - ``majority``: positive when more than half of the image's readers (those who reported "No finding"
      included) drew a box of the class.
    """

    ANY = "any"
    MAJORITY = "majority"


class VinDrCXRAdapter(DatasetAdapter):
    """Data list of VinDr-CXR from ``train.csv`` (Kaggle format ``image_id,class_name,class_id,rad_id,x_min,
    y_min,x_max,y_max``; the PhysioNet export without ``class_id`` is read too: the class is then found by name).

    Each record: ``image`` (``<image_dir>/<image_id>.dicom``), ``id``, ``label`` (multi-hot float list over the
    14 findings of :data:`VINDR_CXR_CLASSES`, by ``label_rule``; all zero for a "No finding" image), ``boxes``
    float32 ``(N, 4)`` ``"xyxy"`` in original DICOM pixels (x = column, y = row), ``box_labels`` ``(N,)`` int64
    (``class_id``), ``box_readers`` ``(N,)`` str (``rad_id`` of each box; ``""`` without that column) and
    ``readers`` (``list[str]``: every radiologist who read the image, those who found nothing included, in order
    of appearance) so that a fusion transform can count votes. Every box of every reader is kept: fusion happens
    in the transforms.

    A row of class 14 ("No finding") must have empty coordinates; a finding row must have all four. ``class_name``
    and ``class_id`` must agree.

    Args:
        dataset_dir: the dataset root.
        annotation_file: the CSV file, relative to ``dataset_dir``.
        image_dir: folder of the DICOM files, relative to ``dataset_dir``.
        image_ext: image file extension.
        label_rule: a :class:`LabelRule`.
        check_files, on_missing, allow_outside, duplicates: see :class:`DatasetAdapter`.

    Example:
        .. code-block:: python

            data = VinDrCXRAdapter("/data/vindr", check_files=False).load()
            data[0]["boxes"], data[0]["box_readers"]
    """

    name = "vindr"
    class_names = VINDR_CXR_CLASSES
    source_box_mode = "xyxy"

    def __init__(
        self,
        dataset_dir: str | os.PathLike,
        annotation_file: str | os.PathLike = "train.csv",
        image_dir: str | os.PathLike = "train",
        image_ext: str = ".dicom",
        label_rule: LabelRule | str = LabelRule.ANY,
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
        )
        self.label_rule = LabelRule(label_rule)

    def _read(self) -> list[ImageEntry]:
        reader = self._csv_reader(["image_id", "class_name", *_BOX_COLUMNS], optional=["class_id", "rad_id"])
        by_name = {n: i for i, n in enumerate(VINDR_CXR_CLASSES)}
        by_name[_NO_FINDING] = VINDR_NO_FINDING_ID
        entries: dict[str, ImageEntry] = {}
        for row in reader:
            entry = self._entry(entries, row["image_id"], row)
            name = row["class_name"]
            cid_text = row.get("class_id")
            if cid_text:
                cid = row.int("class_id")
                if not 0 <= cid <= VINDR_NO_FINDING_ID:
                    raise row.error(f"unknown class_id {cid} (expected 0-{VINDR_NO_FINDING_ID}).")
                expected = _NO_FINDING if cid == VINDR_NO_FINDING_ID else VINDR_CXR_CLASSES[cid]
                if name and name != expected:
                    raise row.error(f"class_name {name!r} does not match class_id {cid} ({expected!r}).")
            else:
                cid = by_name.get(name, -1)
                if cid < 0:
                    raise row.error(f"unknown class_name {name!r}; known: {list(by_name)}.")
            reader_id = row.get("rad_id")
            entry.readers[reader_id] = None
            box = self._read_box(row, _BOX_COLUMNS)
            if cid == VINDR_NO_FINDING_ID:
                if box is not None:
                    raise row.error(f"a 'No finding' row must have empty coordinates, got {box}.")
                continue
            if box is None:
                raise row.error(f"finding {VINDR_CXR_CLASSES[cid]!r} without coordinates.")
            entry.add_box(box, cid, row.line, row.row, reader_id)
        return list(entries.values())

    def _label(self, entry: ImageEntry) -> list[float]:
        label = [0.0] * len(self.class_names)
        if self.label_rule == LabelRule.ANY:
            for c in entry.classes:
                label[c] = 1.0
            return label
        voters: dict[int, set[str]] = {}
        for c, r in zip(entry.box_labels, entry.box_readers):
            voters.setdefault(c, set()).add(r)
        for c, readers in voters.items():
            if 2 * len(readers) > len(entry.readers):
                label[c] = 1.0
        return label

    def _record(self, entry: ImageEntry, record: dict) -> dict:
        record["box_readers"] = np.asarray(entry.box_readers, dtype=str)
        record["readers"] = list(entry.readers)
        return record
