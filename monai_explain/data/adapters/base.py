"""The machinery every dataset adapter shares: image path resolution, file checks, box conversion, records.

An adapter reads one published annotation file and returns a MONAI data list: one ``dict`` per image,
in the order in which the images first appear in the file. Common keys:

- ``"image"``: absolute path of the image file (``dataset_dir / image_dir / <name><image_ext>``);
- ``"id"``: the dataset's image id;
- ``"label"``: multi-hot ``list[float]`` over the adapter's ``class_names``, or an ``int`` (0/1) for the binary
  datasets (RSNA, SIIM, LUNA16); every adapter documents which;
- ``"boxes"``: ``np.ndarray`` float32 ``(N, 4)`` in MONAI box mode ``"xyxy"`` (2D) or ``(N, 6)`` ``"xyzxyz"``
  (3D) in the dataset's original coordinates, x = image column and y = image row as published (a negative
  image has an empty ``(0, 4)`` array); ``"box_labels"``: ``(N,)`` int64 indices into ``class_names``.

Conventions (see :mod:`monai_explain.data.adapters.errors` for how rows are numbered):

- paths read from an annotation file must stay inside ``dataset_dir``: absolute paths and ``..`` components raise
  :class:`PathEscapeError` unless ``allow_outside=True``; so does an image whose path, with symbolic links
  resolved, leaves ``dataset_dir`` and the image folder (a link planted in the image folder);
- ``check_files=True`` checks that every image exists; a missing one raises :class:`MissingImageError` naming
  the annotation file, the first row of that image and the path (``on_missing="error"``), or is skipped, counted
  and logged (``on_missing="skip"``);
- boxes are kept as published (coordinates outside the image are not clipped: that is the mask transform's
  job); a box whose maximum is below its minimum (negative width) raises; a zero-size box is kept;
- after :meth:`DatasetAdapter.load`, ``adapter.stats`` holds the counts (rows, images, negatives, boxes,
  duplicates dropped, empty lines, missing images skipped), also logged at INFO level.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import re
from collections.abc import Sequence
from typing import Any, ClassVar, cast

import numpy as np
from monai.data.box_utils import CenterSizeMode, CornerSizeMode, convert_box_mode, get_boxmode
from monai.utils import StrEnum, look_up_option

from .csv_rows import CSVAnnotationReader, CSVRow, DuplicatePolicy
from .errors import AnnotationFormatError, MissingImageError, PathEscapeError

__all__ = ["DatasetAdapter", "ImageEntry", "MissingFilePolicy", "check_relative_path"]

logger = logging.getLogger(__name__)

_SEPARATORS = re.compile(r"[\\/]")


class MissingFilePolicy(StrEnum):
    """What :class:`DatasetAdapter` does with an image file that does not exist (``check_files=True``).

    - ``error``: raise :class:`MissingImageError` naming the annotation file, row and path (default).
    - ``skip``: leave the image out of the data list; the count and first paths are logged as a warning.
    """

    ERROR = "error"
    SKIP = "skip"


def check_relative_path(value: str) -> str | None:
    """Say why ``value`` (a path read from an annotation file) could leave the dataset folder, or ``None``.

    Rejected: empty values, NUL characters, absolute paths (POSIX ``/x``, Windows ``C:\\x`` or ``\\\\server``) and
    any ``..`` component (with ``/`` or ``\\`` separators), even one that would normalise back inside.

    Args:
        value: the path text.

    Returns:
        ``None`` if the path is acceptable, else the reason.
    """
    if not value:
        return "empty image path."
    if "\x00" in value:
        return f"image path {value!r} contains a NUL character."
    # POSIX root, Windows root / UNC share (backslash), or a Windows drive letter ("C:\\x", "C:x")
    if os.path.isabs(value) or value.startswith(("/", "\\")) or (len(value) > 1 and value[1] == ":"):
        return f"absolute image path {value!r} is not allowed (pass allow_outside=True to accept it)."
    if ".." in _SEPARATORS.split(value):
        return f"image path {value!r} contains '..' (pass allow_outside=True to accept it)."
    return None


class ImageEntry:
    """What an adapter gathers about one image while reading its annotation file.

    Args:
        image_id: the dataset's image id.
        name: the path text of the image relative to ``dataset_dir / image_dir``, without ``image_ext``
            (the id itself, or a path read from the file).
        file, line, row, key: where the image first appears (for error messages).

    Attributes:
        boxes: boxes in the adapter's source box mode; ``box_labels``, ``box_readers``: one per box;
        box_lines: ``(line, row)`` of each box; ``readers``: every reader who read the image (also those who
        found nothing); ``classes``: class indices positive at image level; ``extra``: adapter specific values.
    """

    __slots__ = (
        "box_labels",
        "box_lines",
        "box_readers",
        "boxes",
        "classes",
        "extra",
        "file",
        "image_id",
        "key",
        "line",
        "name",
        "readers",
        "row",
    )

    def __init__(
        self,
        image_id: str,
        name: str,
        file: str,
        line: int | None = None,
        row: int | None = None,
        key: str | None = None,
    ) -> None:
        self.image_id = image_id
        self.name = name
        self.file, self.line, self.row, self.key = file, line, row, key
        self.boxes: list[list[float]] = []
        self.box_labels: list[int] = []
        self.box_readers: list[str] = []
        self.box_lines: list[tuple[int | None, int | None]] = []
        self.readers: dict[str, None] = {}  # ordered set
        self.classes: set[int] = set()
        self.extra: dict[str, Any] = {}

    def add_box(self, box: list[float], label: int, line: int | None, row: int | None, reader: str = "") -> None:
        """Append one box with its class index, location and reader, and mark the class positive."""
        self.boxes.append(box)
        self.box_labels.append(label)
        self.box_readers.append(reader)
        self.box_lines.append((line, row))
        self.classes.add(label)

    def error(self, message: str, cls: type[AnnotationFormatError] = AnnotationFormatError) -> AnnotationFormatError:
        """Build an error located at the first appearance of the image."""
        return cls(message, self.file, line=self.line, row=self.row, key=self.key)


class DatasetAdapter:
    """Base class of the dataset adapters: reads one annotation file, returns a MONAI data list.

    Subclasses set the class attributes, read their file in :meth:`_read` (CSV adapters through
    :meth:`_csv_reader` and :meth:`_entry`) and may add keys in :meth:`_record`.

    Args:
        dataset_dir: root folder of the dataset; relative ``annotation_file`` and image paths start here.
        annotation_file: the annotation file (relative to ``dataset_dir`` or absolute).
        image_dir: folder of the images, relative to ``dataset_dir``.
        image_ext: extension appended to the image name read from the file (``""`` when the file has it).
        check_files: check that every image file exists.
        on_missing: a :class:`MissingFilePolicy`, used when ``check_files`` finds a missing image.
        allow_outside: accept absolute and ``..`` image paths from the annotation file.
        duplicates: a :class:`DuplicatePolicy` for identical rows of a CSV file.
        recursive: find images by file name anywhere under ``image_dir`` (for nested published layouts such as
            SIIM's ``<study>/<series>/<id>.dcm`` or LUNA16's ``subset0..9``); a name found twice raises.
            When no file is found there, the flat path ``image_dir / <name><image_ext>`` is used
            (and reported missing when ``check_files``).

    Attributes:
        name: the :func:`get_adapter` name. class_names: the classes ``"label"`` and ``"box_labels"`` refer to.
        binary: ``"label"`` is an ``int`` 0/1 (True) or a multi-hot float list (False).
        source_box_mode: the published box mode. box_mode: the mode of the returned boxes.
        stats: counts of the last :meth:`load`.
    """

    name: ClassVar[str] = ""
    class_names: tuple[str, ...] = ()
    binary: ClassVar[bool] = False
    source_box_mode: str = "xyxy"
    has_boxes: ClassVar[bool] = True
    #: the dataset's published file names, used when the constructor is not given others
    default_annotation_file: ClassVar[str] = ""
    default_image_dir: ClassVar[str] = ""
    default_image_ext: ClassVar[str] = ""

    def __init__(
        self,
        dataset_dir: str | os.PathLike,
        annotation_file: str | os.PathLike | None = None,
        image_dir: str | os.PathLike | None = None,
        image_ext: str | None = None,
        check_files: bool = True,
        on_missing: MissingFilePolicy | str = MissingFilePolicy.ERROR,
        allow_outside: bool = False,
        duplicates: DuplicatePolicy | str = DuplicatePolicy.DROP,
        recursive: bool = False,
    ) -> None:
        annotation_file = self.default_annotation_file if annotation_file is None else annotation_file
        if not os.fspath(annotation_file):
            raise ValueError(f"{type(self).__name__}: annotation_file is required.")
        self.dataset_dir = os.path.abspath(os.fspath(dataset_dir))
        self.annotation_file = os.path.join(self.dataset_dir, os.fspath(annotation_file))
        self.image_dir = os.fspath(self.default_image_dir if image_dir is None else image_dir)
        self.image_ext = self.default_image_ext if image_ext is None else image_ext
        self.check_files = bool(check_files)
        self.on_missing = look_up_option(on_missing, MissingFilePolicy)
        self.allow_outside = bool(allow_outside)
        self.duplicates = look_up_option(duplicates, DuplicatePolicy)
        self.recursive = bool(recursive)
        self.stats: dict[str, int] = {}
        self._num_rows = 0
        self._reader: CSVAnnotationReader | None = None
        self._image_index: dict[str, list[str]] | None = None

    @property
    def spatial_dims(self) -> int:
        """2 or 3, from the source box mode."""
        return len(self.source_box_mode) // 2 if len(self.source_box_mode) in (4, 6) else 2

    @property
    def box_mode(self) -> str:
        """Mode of the returned boxes: ``"xyxy"`` (2D) or ``"xyzxyz"`` (3D)."""
        return "xyxy" if self.spatial_dims == 2 else "xyzxyz"

    def __call__(self) -> list[dict]:
        """Same as :meth:`load`."""
        return self.load()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dataset_dir={self.dataset_dir!r}, annotation_file={self.annotation_file!r})"

    # -- to implement -------------------------------------------------------------------------------------------
    def _read(self) -> list[ImageEntry]:
        """Read the annotation file into image entries (in order of first appearance)."""
        raise NotImplementedError

    def _label(self, entry: ImageEntry) -> int | list[float]:
        """Image-level label of an entry: ``int`` for binary adapters, multi-hot list otherwise."""
        if self.binary:
            return int(bool(entry.classes))
        label = [0.0] * len(self.class_names)
        for c in entry.classes:
            label[c] = 1.0
        return label

    def _record(self, entry: ImageEntry, record: dict) -> dict:
        """Add adapter-specific keys to ``record`` (called once per image)."""
        record.update(entry.extra)
        return record

    # -- shared helpers for subclasses ---------------------------------------------------------------------------
    def _csv_reader(self, required: Sequence[str], optional: Sequence[str] = ()) -> CSVAnnotationReader:
        """The shared CSV reader over ``annotation_file`` with this adapter's duplicate policy."""
        self._reader = CSVAnnotationReader(
            self.annotation_file, required, optional, duplicates=self.duplicates, missing_hint=self._header_hint
        )
        return self._reader

    def _header_hint(self, header: list[str]) -> str:
        """Extra text for a header that lacks required columns (e.g. which adapter reads that variant)."""
        return ""

    @staticmethod
    def _entry(entries: dict[str, ImageEntry], image_id: str, row: CSVRow, name: str | None = None) -> ImageEntry:
        """Get or create the entry of ``image_id`` (first appearance = ``row``)."""
        entry = entries.get(image_id)
        if entry is None:
            if not image_id:
                raise row.error("empty image id.")
            entry = ImageEntry(image_id, image_id if name is None else name, row.path, row.line, row.row)
            entries[image_id] = entry
        return entry

    @staticmethod
    def _read_box(row: CSVRow, columns: Sequence[str]) -> list[float] | None:
        """Read the box in ``columns``: ``None`` when every cell is empty, the floats when all are numbers.

        Raises:
            AnnotationFormatError: some cells empty and others not, or a non-numeric / non-finite value.
        """
        cells = [row[c] for c in columns]
        if not any(cells):
            return None
        if not all(cells):
            empty = [c for c, v in zip(columns, cells) if not v]
            raise row.error(f"incomplete box: empty column(s) {empty}.")
        try:  # fast path; on any doubt, CSVRow.float finds the culprit and raises the located error
            values = [float(v) for v in cells]
            if all(map(math.isfinite, values)):
                return values
        except ValueError:
            pass
        return [row.float(c) for c in columns]

    # -- the common pipeline -------------------------------------------------------------------------------------
    def load(self) -> list[dict]:
        """Read the annotation file and return the data list (one dict per image, see the module docstring).

        Returns:
            the MONAI data list.

        Raises:
            AnnotationFormatError: a malformed record (file and row named).
            PathEscapeError: an image path leaving ``dataset_dir`` (``allow_outside=False``).
            MissingImageError: a missing image with ``check_files=True`` and ``on_missing="error"``.
            FileNotFoundError: the annotation file does not exist.
        """
        if not os.path.isfile(self.annotation_file):
            raise FileNotFoundError(f"{type(self).__name__}: annotation file {self.annotation_file} not found.")
        self._reader = None
        self._resolved_dirs: dict[str | None, Any] = {}  # folder -> its real path, for the symbolic link check
        self._image_index = self._index_images() if self.recursive else None
        gc_was_enabled = gc.isenabled()
        gc.disable()  # bulk creation of small objects: avoid repeated collections that find nothing to free
        try:
            records = self._load_records()
        finally:
            if gc_was_enabled:
                gc.enable()
        return records

    def _load_records(self) -> list[dict]:
        entries = self._read()
        boxes = self._convert_boxes(entries)
        index = self._image_index
        records: list[dict] = []
        missing: list[str] = []
        for entry, entry_boxes in zip(entries, boxes):
            path = self._image_path(entry, index)
            if self.check_files and not os.path.isfile(path):
                if self.on_missing == MissingFilePolicy.ERROR:
                    raise entry.error(f"image {entry.image_id!r} not found: {path}", MissingImageError)
                missing.append(path)
                continue
            record: dict[str, Any] = {"image": path, "id": entry.image_id, "label": self._label(entry)}
            if self.has_boxes:
                record["boxes"] = entry_boxes
                record["box_labels"] = np.asarray(entry.box_labels, dtype=np.int64)
            records.append(self._record(entry, record))
        reader = self._reader
        self.stats = {
            "rows": reader.num_rows if reader is not None else self._num_rows,
            "images": len(records),
            "negatives": sum(1 for r in records if not np.any(r["label"])),
            "boxes": sum(len(r["boxes"]) for r in records) if self.has_boxes else 0,
            "duplicates_dropped": len(reader.duplicate_lines) if reader is not None else 0,
            "empty_lines": len(reader.blank_lines) if reader is not None else 0,
            "missing_skipped": len(missing),
        }
        if missing:
            logger.warning(
                "%s: skipped %d image(s) missing on disk (on_missing='skip'): %s%s",
                type(self).__name__,
                len(missing),
                ", ".join(missing[:5]),
                ", ..." if len(missing) > 5 else "",
            )
        logger.info("%s(%s): %s", type(self).__name__, self.annotation_file, self.stats)
        return records

    def _convert_boxes(self, entries: list[ImageEntry]) -> list[np.ndarray]:
        """Convert every entry's boxes to the standard mode in one call; check that none is inverted."""
        width = 2 * self.spatial_dims
        counts = [len(e.boxes) for e in entries]
        flat = [b for e in entries for b in e.boxes]
        src = np.asarray(flat, dtype=np.float64).reshape(-1, width)
        # an ndarray in, an ndarray out (MONAI types the result as ndarray | Tensor)
        std = (
            cast(np.ndarray, convert_box_mode(src, src_mode=self.source_box_mode, dst_mode=self.box_mode))
            if len(src)
            else src
        )
        half = width // 2
        if isinstance(get_boxmode(self.source_box_mode), (CornerSizeMode, CenterSizeMode)):
            # MONAI clamps negative sizes to 0 while converting: check them in the source mode
            bad = np.flatnonzero(np.any(src[:, half:] < 0, axis=1))
        else:
            bad = np.flatnonzero(np.any(std[:, half:] < std[:, :half], axis=1))
        if bad.size:
            owners = np.repeat(np.arange(len(entries)), counts)
            locations = [loc for e in entries for loc in e.box_lines]
            first = min(bad, key=lambda i: (locations[i][0] or 0, i))
            owner = entries[owners[first]]
            line, row = locations[first]
            raise AnnotationFormatError(
                f"inverted box {src[first].tolist()} (mode {self.source_box_mode!r}) of image {owner.image_id!r}: "
                "a size is negative or a maximum is below its minimum.",
                owner.file,
                line=line,
                row=row,
                key=owner.key,
            )
        std = std.astype(np.float32)
        out = []
        start = 0
        for n in counts:
            out.append(std[start : start + n] if n else np.zeros((0, width), dtype=np.float32))
            start += n
        return out

    def _index_roots(self) -> list[str]:
        """Folders (relative to ``dataset_dir``) searched in recursive mode."""
        return [self.image_dir]

    def _index_images(self) -> dict[str, list[str]]:
        """File name -> paths of every ``*image_ext`` file under the :meth:`_index_roots` (recursive mode)."""
        index: dict[str, list[str]] = {}
        for root in self._index_roots():
            for folder, _, files in os.walk(os.path.join(self.dataset_dir, root)):
                for f in files:
                    if f.endswith(self.image_ext):
                        index.setdefault(f, []).append(os.path.join(folder, f))
        return index

    def _image_path(self, entry: ImageEntry, index: dict[str, list[str]] | None) -> str:
        """Absolute image path of an entry (path-escape check, then the recursive index or the flat layout)."""
        reason = check_relative_path(entry.name)
        if reason is not None:
            if not self.allow_outside:
                raise entry.error(reason, PathEscapeError)
            if os.path.isabs(entry.name):
                return os.path.abspath(entry.name + self.image_ext)
        path = None
        if index is not None:
            found = index.get(os.path.basename(entry.name) + self.image_ext)
            if found:
                if len(found) > 1:
                    raise entry.error(f"image {entry.image_id!r} is ambiguous, found at {sorted(found)}.")
                path = os.path.abspath(found[0])
        if path is None:
            path = os.path.abspath(os.path.join(self.dataset_dir, self.image_dir, entry.name + self.image_ext))
        if not self.allow_outside:
            self._check_resolved_inside(entry, path)
        return path

    def _check_resolved_inside(self, entry: ImageEntry, path: str) -> None:
        """Raise :class:`PathEscapeError` when symbolic links take ``path`` outside the dataset folder.

        The allowed roots are ``dataset_dir`` and the image folders (:meth:`_index_roots`), each with its own links
        resolved: an image folder that is itself a link to another disk is accepted, a link inside it that points
        elsewhere is not. Folders are resolved once (cached); each file costs one ``lstat``.
        """
        cache = self.__dict__.setdefault("_resolved_dirs", {})  # set by load(); also usable without it
        roots = cache.get(None)
        if roots is None:
            folders = [self.dataset_dir] + [os.path.join(self.dataset_dir, r) for r in self._index_roots()]
            roots = cache[None] = tuple(dict.fromkeys(os.path.realpath(f) for f in folders))
        folder, name = os.path.split(path)
        real_folder = cache.get(folder)
        if real_folder is None:
            real_folder = cache[folder] = os.path.realpath(folder)
        target = os.path.join(real_folder, name)
        if os.path.islink(target):
            target = os.path.realpath(target)
        if not any(target == r or target.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
            raise entry.error(
                f"image {entry.image_id!r} at {path} resolves (through symbolic links) to {target}, outside the "
                f"dataset folder {self.dataset_dir} (pass allow_outside=True to accept it).",
                PathEscapeError,
            )
