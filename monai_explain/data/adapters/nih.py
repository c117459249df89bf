"""NIH ChestX-ray14 boxes: ``BBox_List_2017.csv`` with the header ``Image Index,Finding Label,Bbox [x,y,w,h],,,``."""

from __future__ import annotations

from .base import DatasetAdapter, ImageEntry

__all__ = ["NIH_CHESTXRAY14_BOX_CLASSES", "NIHChestXray14Adapter"]

#: The 8 findings with boxes in ``BBox_List_2017.csv``, spelled as in that file.
NIH_CHESTXRAY14_BOX_CLASSES: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltrate",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
)
#: Spellings of ``Data_Entry_2017.csv`` accepted for the same class.
_ALIASES = {"Infiltration": "Infiltrate"}
#: The published header splits ``Bbox [x,y,w,h]`` on its commas: the box sits in these four columns.
_BOX_COLUMNS = ("Bbox [x", "y", "w", "h]")


class NIHChestXray14Adapter(DatasetAdapter):
    """Data list of the NIH ChestX-ray14 box subset (984 boxes on 880 images, 8 findings).

    The header is read as published, ``Image Index,Finding Label,Bbox [x,y,w,h],,,``: the box fills the
    columns named ``Bbox [x``, ``y``, ``w``, ``h]`` and the three trailing unnamed columns are ignored (rows may
    have or omit them). Spaces around the names are ignored (``Image Index, Finding Label, Bbox [x, y, w, h]``).
    A re-export with plain ``x,y,w,h`` columns is read by :class:`GenericCSVAdapter` (the error says how).

    Each record: ``image`` (``<image_dir>/<Image Index>``, the index already ends with ``.png``), ``id``,
    ``label`` (multi-hot float list over :data:`NIH_CHESTXRAY14_BOX_CLASSES`), ``boxes`` float32 ``(N, 4)``
    ``"xyxy"`` converted from the published ``xywh`` (1024 x 1024 PNG pixels, x = column), ``box_labels``.
    The file lists only images with a box: there are no negatives (combine with ``Data_Entry_2017.csv`` through
    :class:`GenericCSVAdapter` to add some). ``Infiltration`` is accepted for ``Infiltrate``.

    Args:
        dataset_dir: the dataset root.
        annotation_file: the CSV file, relative to ``dataset_dir``.
        image_dir: folder of the PNG files, relative to ``dataset_dir``.
        image_ext: appended to ``Image Index`` (empty: the index has the extension).
        check_files, on_missing, allow_outside, duplicates: see :class:`DatasetAdapter`.
    """

    name = "nih"
    class_names = NIH_CHESTXRAY14_BOX_CLASSES
    source_box_mode = "xywh"
    default_annotation_file = "BBox_List_2017.csv"
    default_image_dir = "images"

    def _header_hint(self, header: list[str]) -> str:
        """Point a header with plain ``x,y,w,h`` columns (a common re-export) to :class:`GenericCSVAdapter`."""
        if {"x", "y", "w", "h"} <= set(header):
            image = "Image Index" if "Image Index" in header else "<image column>"
            finding = "Finding Label" if "Finding Label" in header else "<finding column>"
            return (
                "This header has plain x, y, w, h columns, a re-export of BBox_List_2017.csv that this adapter does "
                "not read; GenericCSVAdapter reads it: GenericCSVAdapter(dataset_dir, annotation_file, "
                f"image_column={image!r}, class_column={finding!r}, class_names=NIH_CHESTXRAY14_BOX_CLASSES, "
                "box_columns=('x', 'y', 'w', 'h'), box_mode='xywh', image_dir='images')."
            )
        return ""

    def _read(self) -> list[ImageEntry]:
        reader = self._csv_reader(["Image Index", "Finding Label", *_BOX_COLUMNS])
        index = {n: i for i, n in enumerate(self.class_names)}
        entries: dict[str, ImageEntry] = {}
        for row in reader:
            entry = self._entry(entries, row["Image Index"], row)
            finding = row["Finding Label"]
            cid = index.get(_ALIASES.get(finding, finding), -1)
            if cid < 0:
                raise row.error(f"unknown Finding Label {finding!r}; known: {list(self.class_names)}.")
            box = self._read_box(row, _BOX_COLUMNS)
            if box is None:
                raise row.error("row without a box.")
            entry.add_box(box, cid, row.line, row.row)
        return list(entries.values())
