"""A CSV adapter for any "one row per box (or per image)" table, with configurable column names and box mode."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from monai.data.box_utils import get_boxmode

from .base import DatasetAdapter, ImageEntry, MissingFilePolicy
from .csv_rows import CSVRow, DuplicatePolicy

__all__ = ["GenericCSVAdapter"]


class GenericCSVAdapter(DatasetAdapter):
    """Data list from a CSV file with one row per box, or per image-level finding, or per negative image.

    What a row means:

    - a class (``class_column``) and a box (all ``box_columns`` filled): one box of that class;
    - a class and no box (box cells empty, or no ``box_columns``): the class is positive at image level;
      ``class_separator`` (e.g. ``"|"`` for NIH's ``Data_Entry_2017.csv``) splits several classes in one cell;
    - an empty class or ``negative_class`` (e.g. ``"No finding"``) and no box: the image is read, nothing found
      (a negative unless other rows give it findings);
    - without ``class_column``, every box has class 0 of ``class_names`` (default ``("finding",)``).

    Each record: ``image`` (``<image_dir>/<image cell><image_ext>``), ``id`` (``id_column``, default the file
    name of the image cell without its extension), ``label`` (multi-hot float list over ``class_names``, or ``int``
    0/1 with ``binary=True``), ``boxes`` float32 ``(N, 4)`` ``"xyxy"`` (or ``(N, 6)`` ``"xyzxyz"`` for a 3D
    ``box_mode``) converted from ``box_mode``, ``box_labels``; with ``reader_column``: ``box_readers`` ``(N,)`` str
    and ``readers`` (every reader of the image); with ``split_column``: ``split`` (must agree across an image's
    rows).

    Args:
        dataset_dir: the dataset root.
        annotation_file: the CSV file, relative to ``dataset_dir``.
        image_column: column holding the image path or name (relative to ``dataset_dir / image_dir``).
        id_column: column holding the image id (default: derived from ``image_column``).
        class_column: column holding the class name(s); ``None`` for single-class files.
        class_names: the classes, in label order; ``None`` with a ``class_column``: the sorted set of classes found.
            A class outside a given list raises.
        box_columns: 4 (2D) or 6 (3D) column names in ``box_mode`` order; ``None`` for image-level files.
        box_mode: a MONAI box mode (``"xyxy"``, ``"xywh"``, ``"ccwh"``, ``"xyzxyz"``, ``"xyzwhd"``, ``"cccwhd"``...).
        reader_column, split_column: optional column names.
        negative_class: class value meaning "nothing found" (besides the empty cell).
        class_separator: splits several image-level classes in one cell.
        binary: return ``label`` as an ``int`` (1 = any class positive).
        image_dir, image_ext: where the images are and the extension appended to the image cell.
        check_files, on_missing, allow_outside, duplicates: see :class:`DatasetAdapter`.

    Raises:
        ValueError: (at construction) inconsistent ``box_columns`` / ``box_mode``.

    Example:
        .. code-block:: python

            adapter = GenericCSVAdapter(
                "/data/cxr", "boxes.csv", image_column="file", class_column="finding",
                box_columns=("left", "top", "width", "height"), box_mode="xywh", negative_class="normal",
            )
            data = adapter.load()
    """

    name = "csv"

    def __init__(
        self,
        dataset_dir: str | os.PathLike,
        annotation_file: str | os.PathLike,
        image_column: str = "image",
        id_column: str | None = None,
        class_column: str | None = None,
        class_names: Sequence[str] | None = None,
        box_columns: Sequence[str] | None = ("x_min", "y_min", "x_max", "y_max"),
        box_mode: str = "xyxy",
        reader_column: str | None = None,
        split_column: str | None = None,
        negative_class: str | None = None,
        class_separator: str | None = None,
        binary: bool = False,
        image_dir: str | os.PathLike = "",
        image_ext: str = "",
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
        get_boxmode(box_mode)  # raises for an unknown mode
        self.source_box_mode = str(box_mode)
        self.box_columns = None if box_columns is None else tuple(box_columns)
        if self.box_columns is not None and len(self.box_columns) != len(self.source_box_mode):
            raise ValueError(
                f"box_mode {box_mode!r} needs {len(self.source_box_mode)} box_columns, got {self.box_columns}."
            )
        self.image_column = image_column
        self.id_column = id_column
        self.class_column = class_column
        self.given_class_names = None if class_names is None else tuple(class_names)
        if self.given_class_names is not None and len(set(self.given_class_names)) != len(self.given_class_names):
            raise ValueError(f"class_names has duplicates: {self.given_class_names}.")
        self.class_names = self.given_class_names or (("finding",) if class_column is None else ())
        self.reader_column = reader_column
        self.split_column = split_column
        self.negative_class = negative_class
        self.class_separator = class_separator
        self.binary = binary  # type: ignore[misc]

    def _classes_of(self, row: CSVRow) -> list[str]:
        if self.class_column is None:
            return []
        text = row[self.class_column]
        parts = text.split(self.class_separator) if self.class_separator else [text]
        return [p.strip() for p in parts if p.strip() and p.strip() != self.negative_class]

    def _read(self) -> list[ImageEntry]:
        optional = [c for c in (self.id_column, self.class_column, self.reader_column, self.split_column) if c]
        required = [self.image_column, *optional, *(self.box_columns or ())]
        rows = list(self._csv_reader(required))
        if self.class_column is not None and self.given_class_names is None:
            self.class_names = tuple(sorted({c for row in rows for c in self._classes_of(row)}))
        index = {n: i for i, n in enumerate(self.class_names)}
        entries: dict[str, ImageEntry] = {}
        for row in rows:
            image = row.require(self.image_column)
            image_id = row.require(self.id_column) if self.id_column else os.path.splitext(os.path.basename(image))[0]
            entry = self._entry(entries, image_id, row, name=image)
            if entry.name != image:
                raise row.error(f"image id {image_id!r} refers to {image!r} here and to {entry.name!r} before.")
            if self.split_column is not None:
                split = row.require(self.split_column)
                if entry.extra.setdefault("split", split) != split:
                    raise row.error(f"split {split!r} differs from {entry.extra['split']!r} on line {entry.line}.")
            reader_id = row[self.reader_column] if self.reader_column else ""
            entry.readers[reader_id] = None
            classes = self._classes_of(row)
            for name in classes:
                if name not in index:
                    raise row.error(f"unknown class {name!r}; known: {list(self.class_names)}.")
            box = self._read_box(row, self.box_columns) if self.box_columns else None
            if box is None:
                entry.classes.update(index[c] for c in classes)
                continue
            if self.class_column is None:
                cid = 0
            elif len(classes) == 1:
                cid = index[classes[0]]
            else:
                raise row.error(f"a box needs exactly one class, got {classes or 'none'}.")
            entry.add_box(box, cid, row.line, row.row, reader_id)
        return list(entries.values())

    def _record(self, entry: ImageEntry, record: dict) -> dict:
        if self.reader_column is not None:
            record["box_readers"] = np.asarray(entry.box_readers, dtype=str)
            record["readers"] = list(entry.readers)
        if self.split_column is not None:
            record["split"] = entry.extra["split"]
        return record
