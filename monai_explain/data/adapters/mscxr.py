"""MS-CXR phrase grounding: ``dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height,split``."""

from __future__ import annotations

import numpy as np

from .base import DatasetAdapter, ImageEntry

__all__ = ["MS_CXR_CLASSES", "MSCXRAdapter"]

#: The 8 MS-CXR categories (``category_name``).
MS_CXR_CLASSES: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Lung Opacity",
    "Pleural Effusion",
    "Pneumonia",
    "Pneumothorax",
)
_BOX_COLUMNS = ("x", "y", "w", "h")


class MSCXRAdapter(DatasetAdapter):
    """Data list of MS-CXR (MIMIC-CXR images with phrase-grounding boxes), one record per ``dicom_id``.

    Each record: ``image`` (the ``path`` column, relative to ``dataset_dir / image_dir``: the MIMIC-CXR root),
    ``id`` (``dicom_id``), ``label`` (multi-hot float list over :data:`MS_CXR_CLASSES`), ``boxes`` float32
    ``(N, 4)`` ``"xyxy"`` converted from the published ``xywh`` (original pixels, x = column), ``box_labels``,
    ``box_texts`` ``(N,)`` str (the ``label_text`` phrase of each box), ``image_size`` (``[rows, columns]`` =
    ``[image_height, image_width]``) and ``split`` (the dataset's own split; select with
    :func:`split_data_list` ``by="split"``). Every MS-CXR image has a box: there are no negatives.

    All rows of one ``dicom_id`` must agree on ``path``, image size and ``split``.

    Args:
        dataset_dir: the dataset root.
        annotation_file: the CSV file, relative to ``dataset_dir``.
        image_dir: folder the ``path`` column is relative to, relative to ``dataset_dir``.
        image_ext: appended to ``path`` (empty: the path has its extension).
        check_files, on_missing, allow_outside, duplicates: see :class:`DatasetAdapter`.
    """

    name = "mscxr"
    class_names = MS_CXR_CLASSES
    source_box_mode = "xywh"
    default_annotation_file = "MS_CXR_Local_Alignment_v1.0.0.csv"

    def _read(self) -> list[ImageEntry]:
        columns = ["dicom_id", "category_name", "label_text", "path", *_BOX_COLUMNS]
        reader = self._csv_reader([*columns, "image_width", "image_height", "split"])
        index = {n: i for i, n in enumerate(self.class_names)}
        entries: dict[str, ImageEntry] = {}
        for row in reader:
            entry = self._entry(entries, row["dicom_id"], row, name=row.require("path"))
            size = [row.int("image_height"), row.int("image_width")]
            if min(size) <= 0:
                raise row.error(f"image size must be positive, got height x width {size}.")
            image = {"path": row["path"], "image_size": size, "split": row.require("split")}
            known = entry.extra.setdefault("_image", image)
            for key, value in image.items():
                if known[key] != value:
                    raise row.error(f"{key} {value!r} differs from {known[key]!r} on line {entry.line}.")
            category = row["category_name"]
            cid = index.get(category, -1)
            if cid < 0:
                raise row.error(f"unknown category_name {category!r}; known: {list(self.class_names)}.")
            box = self._read_box(row, _BOX_COLUMNS)
            if box is None:
                raise row.error("row without a box.")
            entry.add_box(box, cid, row.line, row.row)
            entry.extra.setdefault("box_texts", []).append(row["label_text"])
        return list(entries.values())

    def _record(self, entry: ImageEntry, record: dict) -> dict:
        image = entry.extra["_image"]
        record["box_texts"] = np.asarray(entry.extra["box_texts"], dtype=str)
        record["image_size"] = image["image_size"]
        record["split"] = image["split"]
        return record
