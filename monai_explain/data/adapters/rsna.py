"""RSNA Pneumonia Detection: ``stage_2_train_labels.csv`` (``patientId,x,y,width,height,Target``)."""

from __future__ import annotations

from .base import DatasetAdapter, ImageEntry

__all__ = ["RSNA_PNEUMONIA_CLASSES", "RSNAPneumoniaAdapter"]

RSNA_PNEUMONIA_CLASSES: tuple[str, ...] = ("Lung Opacity",)
_BOX_COLUMNS = ("x", "y", "width", "height")


class RSNAPneumoniaAdapter(DatasetAdapter):
    """Data list of the RSNA Pneumonia Detection Challenge, one record per ``patientId``.

    Each record: ``image`` (``<image_dir>/<patientId>.dcm``), ``id``, ``label`` (``int``: ``Target``, 1 = lung
    opacity), ``boxes`` float32 ``(N, 4)`` ``"xyxy"`` converted from the published ``xywh`` (top-left corner,
    1024 x 1024 DICOM pixels, x = column), ``box_labels`` ``(N,)`` int64 (all 0, :data:`RSNA_PNEUMONIA_CLASSES`).
    ``Target=0`` rows have empty coordinates and give negatives with an empty ``(0, 4)`` box array.

    Raises (on :meth:`load`): :class:`AnnotationFormatError` for a ``Target`` other than 0/1, a ``Target=1`` row
    without coordinates, a ``Target=0`` row with coordinates, an image with both, or a negative width/height.

    Args:
        dataset_dir: the dataset root.
        annotation_file: the CSV file, relative to ``dataset_dir``.
        image_dir: folder of the DICOM files, relative to ``dataset_dir``.
        image_ext: image file extension.
        check_files, on_missing, allow_outside, duplicates: see :class:`DatasetAdapter`.
    """

    name = "rsna"
    class_names = RSNA_PNEUMONIA_CLASSES
    binary = True
    source_box_mode = "xywh"
    default_annotation_file = "stage_2_train_labels.csv"
    default_image_dir = "stage_2_train_images"
    default_image_ext = ".dcm"

    def _read(self) -> list[ImageEntry]:
        reader = self._csv_reader(["patientId", *_BOX_COLUMNS, "Target"])
        entries: dict[str, ImageEntry] = {}
        for row in reader:
            entry = self._entry(entries, row["patientId"], row)
            target = row.int("Target")
            if target not in (0, 1):
                raise row.error(f"Target must be 0 or 1, got {target}.")
            previous = entry.extra.setdefault("_target", target)
            if previous != target:
                raise row.error(f"patient {entry.image_id!r} has rows with Target 0 and Target 1.")
            box = self._read_box(row, _BOX_COLUMNS)
            if target == 0:
                if box is not None:
                    raise row.error(f"a Target=0 row must have empty coordinates, got {box}.")
                continue
            if box is None:
                raise row.error("a Target=1 row without coordinates.")
            entry.add_box(box, 0, row.line, row.row)
        return list(entries.values())

    def _record(self, entry: ImageEntry, record: dict) -> dict:
        return record
