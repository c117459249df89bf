"""VinDr-CXR: ``train.csv`` with one row per box per radiologist, "No finding" rows for normal reads.

Two published layouts are read:

- Kaggle (``train.csv``: ``image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max``), the 14 findings of
  :data:`VINDR_CXR_CLASSES`;
- PhysioNet (``annotations/annotations_{train,test}.csv``: ``image_id,rad_id,class_name,x_min,...`` with the 22
  *local* labels of :data:`VINDR_CXR_LOCAL_LABELS`, e.g. "Rib fracture", and
  ``annotations/image_labels_{train,test}.csv``: ``image_id,rad_ID,<one 0/1 column per label>`` with the
  image-level labels, among them the 5 *global* labels of :data:`VINDR_CXR_GLOBAL_LABELS`, e.g. "COPD").
  :meth:`VinDrCXRAdapter.physionet` sets that layout up.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
from monai.utils import StrEnum, look_up_option

from .base import DatasetAdapter, ImageEntry, MissingFilePolicy
from .csv_rows import CSVAnnotationReader, DuplicatePolicy

__all__ = [
    "VINDR_CXR_CLASSES",
    "VINDR_CXR_GLOBAL_LABELS",
    "VINDR_CXR_LOCAL_LABELS",
    "VINDR_NO_FINDING_ID",
    "LabelRule",
    "UnknownClassPolicy",
    "VinDrCXRAdapter",
]

logger = logging.getLogger(__name__)

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
#: The 22 local labels (drawn as boxes) of the PhysioNet release of VinDr-CXR, as spelled in its files.
VINDR_CXR_LOCAL_LABELS: tuple[str, ...] = (
    "Aortic enlargement",
    "Atelectasis",
    "Cardiomegaly",
    "Calcification",
    "Clavicle fracture",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Enlarged PA",
    "ILD",
    "Infiltration",
    "Lung cavity",
    "Lung cyst",
    "Lung Opacity",
    "Mediastinal shift",
    "Nodule/Mass",
    "Pulmonary fibrosis",
    "Pneumothorax",
    "Pleural effusion",
    "Pleural thickening",
    "Rib fracture",
    "Other lesion",
)
#: The 5 global (image-level, never boxed) labels of the PhysioNet release ("No finding" is not a class).
VINDR_CXR_GLOBAL_LABELS: tuple[str, ...] = ("COPD", "Lung tumor", "Pneumonia", "Tuberculosis", "Other diseases")
_NO_FINDING = "No finding"
_BOX_COLUMNS = ("x_min", "y_min", "x_max", "y_max")
#: spellings of the reader column in the PhysioNet image-label files
_LABEL_READER_COLUMNS = ("rad_ID", "rad_id")


class UnknownClassPolicy(StrEnum):
    """What to do with a class name that is not in the adapter's ``class_names``.

    - ``error``: raise, naming the file, the line and the known classes (default).
    - ``skip``: leave the box (or the image-label column) out; the count per class is in ``adapter.stats``
      (``unknown_class_skipped``: rows and label columns; ``unknown_classes``: distinct names) and logged as a
      warning. The reader still counts as a reader of the image.
    - ``keep``: append the class to ``class_names`` (in order of first appearance) and keep it; counted in
      ``adapter.stats`` (``unknown_class_kept``) and logged.
    """

    ERROR = "error"
    SKIP = "skip"
    KEEP = "keep"


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

    Classes: ``label`` and ``box_labels`` refer to ``class_names`` (default the 14 Kaggle findings). A class name
    not in it (e.g. the PhysioNet local label "Rib fracture") follows ``unknown_class``. With ``image_labels_file``
    (PhysioNet ``image_labels_*.csv``), every class of ``class_names`` that is a column of that file takes its
    image-level label from it (by ``label_rule`` over the readers listed there, ``rad_ID``); the other classes
    keep the label derived from the boxes. Images listed only in the label file become records without boxes.

    Args:
        dataset_dir: the dataset root.
        annotation_file: the CSV file, relative to ``dataset_dir``.
        image_dir: folder of the DICOM files, relative to ``dataset_dir``.
        image_ext: image file extension.
        label_rule: a :class:`LabelRule`.
        class_names: the classes of ``label`` / ``box_labels``; default :data:`VINDR_CXR_CLASSES`. For the
            PhysioNet export pass :data:`VINDR_CXR_LOCAL_LABELS` (+ :data:`VINDR_CXR_GLOBAL_LABELS`), or use
            :meth:`physionet`.
        unknown_class: ``"error"``, ``"skip"`` or ``"keep"``; see :class:`UnknownClassPolicy`.
        image_labels_file: PhysioNet image-level label file (relative to ``dataset_dir``), or ``None``.
        check_files, on_missing, allow_outside, duplicates: see :class:`DatasetAdapter`.

    Example:
        .. code-block:: python

            data = VinDrCXRAdapter("/data/vindr", check_files=False).load()
            data[0]["boxes"], data[0]["box_readers"]
            physionet = VinDrCXRAdapter.physionet("/data/vindr-cxr/1.0.0", split="train", unknown_class="skip")
    """

    name = "vindr"
    class_names = VINDR_CXR_CLASSES
    _label_columns: set[int]  # the classes of the image label file (empty without one)
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
        class_names: Sequence[str] | None = None,
        unknown_class: UnknownClassPolicy | str = UnknownClassPolicy.ERROR,
        image_labels_file: str | os.PathLike | None = None,
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
        self.label_rule = look_up_option(label_rule, LabelRule)
        names = VINDR_CXR_CLASSES if class_names is None else tuple(str(c) for c in class_names)
        if not names or len(set(names)) != len(names) or _NO_FINDING in names:
            raise ValueError(f"class_names must be non-empty, unique and without {_NO_FINDING!r}, got {names}.")
        self.class_names = names
        self.unknown_class = look_up_option(unknown_class, UnknownClassPolicy)
        self.image_labels_file = (
            None if image_labels_file is None else os.path.join(self.dataset_dir, os.fspath(image_labels_file))
        )
        self._unknown: dict[str, int] = {}

    @classmethod
    def physionet(cls, dataset_dir: str | os.PathLike, split: str = "train", **kwargs) -> VinDrCXRAdapter:
        """The adapter for the PhysioNet release (``annotations/annotations_<split>.csv``,
        ``annotations/image_labels_<split>.csv``, DICOMs in ``<split>/``), with the 22 local and 5 global labels
        as classes (``VINDR_CXR_LOCAL_LABELS + VINDR_CXR_GLOBAL_LABELS``). ``kwargs`` override any argument."""
        options = {
            "annotation_file": os.path.join("annotations", f"annotations_{split}.csv"),
            "image_labels_file": os.path.join("annotations", f"image_labels_{split}.csv"),
            "image_dir": split,
            "class_names": VINDR_CXR_LOCAL_LABELS + VINDR_CXR_GLOBAL_LABELS,
            **kwargs,
        }
        return cls(dataset_dir, **options)

    def _class_index(self, name: str, row) -> int | None:
        """Index of ``name`` in ``class_names`` under the ``unknown_class`` policy (``None``: skipped)."""
        if name in self._index:
            if name in self._unknown:  # a kept class: count its rows too
                self._unknown[name] += 1
            return self._index[name]
        if self.unknown_class == UnknownClassPolicy.ERROR:
            raise row.error(
                f"unknown class_name {name!r}; known: {[*self.class_names, _NO_FINDING]}. Pass class_names=... "
                "(e.g. VINDR_CXR_LOCAL_LABELS for the PhysioNet export, or VinDrCXRAdapter.physionet(...)) or "
                "unknown_class='skip' / 'keep'."
            )
        self._unknown[name] = self._unknown.get(name, 0) + 1
        if self.unknown_class == UnknownClassPolicy.SKIP:
            return None
        self.class_names = (*self.class_names, name)
        self._index[name] = len(self.class_names) - 1
        logger.info("%s: kept the unknown class %r as class %d.", self.annotation_file, name, self._index[name])
        return self._index[name]

    def _read(self) -> list[ImageEntry]:
        reader = self._csv_reader(["image_id", "class_name", *_BOX_COLUMNS], optional=["class_id", "rad_id"])
        self._index = {n: i for i, n in enumerate(self.class_names)}
        self._unknown = {}
        entries: dict[str, ImageEntry] = {}
        for row in reader:
            entry = self._entry(entries, row["image_id"], row)
            name = row["class_name"]
            cid_text = row.get("class_id")
            if cid_text:
                kid = row.int("class_id")
                if not 0 <= kid <= VINDR_NO_FINDING_ID:
                    raise row.error(f"unknown class_id {kid} (expected 0-{VINDR_NO_FINDING_ID}).")
                expected = _NO_FINDING if kid == VINDR_NO_FINDING_ID else VINDR_CXR_CLASSES[kid]
                if name and name != expected:
                    raise row.error(f"class_name {name!r} does not match class_id {kid} ({expected!r}).")
                name = expected
            reader_id = row.get("rad_id")
            entry.readers[reader_id] = None
            box = self._read_box(row, _BOX_COLUMNS)
            if name == _NO_FINDING:
                if box is not None:
                    raise row.error(f"a 'No finding' row must have empty coordinates, got {box}.")
                continue
            cid = self._class_index(name, row)
            if cid is None:
                continue
            if box is None:
                raise row.error(f"finding {name!r} without coordinates.")
            entry.add_box(box, cid, row.line, row.row, reader_id)
        if self.image_labels_file is not None:
            self._read_image_labels(entries, self.image_labels_file)
        if self._unknown:
            verb = "skipped" if self.unknown_class == UnknownClassPolicy.SKIP else "kept"
            logger.warning(
                "%s: %s %d row(s)/column(s) of classes not in class_names (unknown_class=%r): %s",
                self.annotation_file,
                verb,
                sum(self._unknown.values()),
                self.unknown_class.value,
                self._unknown,
            )
        return list(entries.values())

    def _read_image_labels(self, entries: dict[str, ImageEntry], labels_file: str) -> None:
        """Read the PhysioNet image-level labels: per image, the readers who marked each class."""
        if not os.path.isfile(labels_file):
            raise FileNotFoundError(f"{type(self).__name__}: image label file {labels_file} not found.")
        labels = CSVAnnotationReader(
            labels_file, ["image_id"], optional_columns=_LABEL_READER_COLUMNS, duplicates=self.duplicates
        )
        columns: list[tuple[str, int]] | None = None
        only_in_labels = 0
        for row in labels:
            if columns is None:
                columns = []
                for name in labels.columns:
                    if name in ("image_id", *_LABEL_READER_COLUMNS, _NO_FINDING):
                        continue
                    cid = self._class_index(name, row)
                    if cid is not None:
                        columns.append((name, cid))
            image_id = row.require("image_id")
            if image_id not in entries:
                only_in_labels += 1
            entry = self._entry(entries, image_id, row)
            reader_id = next((row.get(c) for c in _LABEL_READER_COLUMNS if labels.has(c)), "")
            votes = entry.extra.setdefault("image_label_votes", {})
            readers = entry.extra.setdefault("image_label_readers", {})
            readers[reader_id] = None
            for name, cid in columns:
                value = row.float(name)
                if value not in (0.0, 1.0):
                    raise row.error(f"column {name!r}: image labels must be 0 or 1, got {row[name]!r}.")
                votes.setdefault(cid, set())
                if value == 1.0:
                    votes[cid].add(reader_id)
        self._label_columns = {cid for _, cid in columns or []}
        if only_in_labels:
            logger.info(
                "%s: %d image(s) appear only in the image label file (records without boxes).",
                labels_file,
                only_in_labels,
            )

    def _load_records(self) -> list[dict]:
        self._label_columns = set()
        records = super()._load_records()
        if self.unknown_class != UnknownClassPolicy.ERROR:
            key = f"unknown_class_{'skipped' if self.unknown_class == UnknownClassPolicy.SKIP else 'kept'}"
            self.stats[key] = sum(self._unknown.values())
            self.stats["unknown_classes"] = len(self._unknown)
        return records

    def _label(self, entry: ImageEntry) -> list[float]:
        label = [0.0] * len(self.class_names)
        if self.label_rule == LabelRule.ANY:
            for c in entry.classes:
                label[c] = 1.0
        else:
            voters: dict[int, set[str]] = {}
            for c, r in zip(entry.box_labels, entry.box_readers):
                voters.setdefault(c, set()).add(r)
            for c, readers in voters.items():
                if 2 * len(readers) > len(entry.readers):
                    label[c] = 1.0
        votes = entry.extra.get("image_label_votes")
        if votes is not None:  # the image-level label file decides the classes it lists
            n_readers = len(entry.extra["image_label_readers"])
            for c in self._label_columns:
                marked = len(votes.get(c, ()))
                positive = marked > 0 if self.label_rule == LabelRule.ANY else 2 * marked > n_readers
                label[c] = 1.0 if positive else 0.0
        return label

    def _record(self, entry: ImageEntry, record: dict) -> dict:
        record["box_readers"] = np.asarray(entry.box_readers, dtype=str)
        record["readers"] = list(entry.readers)
        return record
