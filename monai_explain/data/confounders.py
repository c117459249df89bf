"""Confounder regions in data lists: the ``"confounder_boxes"`` key, read from a ``confounder_boxes.csv`` file.

A confounder region is any region a user suspects of carrying a shortcut (a laterality marker, a text tag, a
tube). The confounder-reliance metric (:mod:`monai_explain.metrics.confounder`) fills it and measures how much the
prediction moves. The regions travel in the data list like the annotation boxes:

- file ``<dataset_dir>/confounder_boxes.csv`` (the synthetic generators write it; users can write their own),
  one row per box: ``image_id,x_min,y_min,x_max,y_max`` (2D: x = column, y = row, in the pixels of the stored
  image, as the dataset's own boxes; half-open pixel edges) or ``image_id,x_min,y_min,z_min,x_max,y_max,z_max``
  (3D: voxel indices ``i, j, k`` of the stored volume array). Several rows of one image are several boxes.
- data list key ``"confounder_boxes"``: float32 ``(N, 4)`` ``xyxy`` or ``(N, 6)`` ``xyzxyz``; images without a row
  get an empty ``(0, 4)`` / ``(0, 6)`` array (no region: the metric gives NaN for them).

In a bundle, :class:`monai_explain.transforms.BoxesToMaskd` (``keys="confounder_boxes"``, ``label_key=None``)
turns them into a ``"confounder_mask"`` in the image's grid, which then follows the image through the spatial
transforms.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .adapters.csv_rows import CSVAnnotationReader
from .adapters.errors import AnnotationFormatError

__all__ = [
    "CONFOUNDER_COLUMNS_2D",
    "CONFOUNDER_COLUMNS_3D",
    "CONFOUNDER_FILE",
    "attach_confounder_boxes",
    "default_confounder_file",
    "read_confounder_boxes",
]

logger = logging.getLogger(__name__)

#: The default file name, looked for in the dataset folder.
CONFOUNDER_FILE = "confounder_boxes.csv"
CONFOUNDER_COLUMNS_2D = ("image_id", "x_min", "y_min", "x_max", "y_max")
CONFOUNDER_COLUMNS_3D = ("image_id", "x_min", "y_min", "z_min", "x_max", "y_max", "z_max")


def read_confounder_boxes(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a confounder-box CSV file: ``{image_id: float32 (N, 4) or (N, 6)}``.

    The header decides the dimension: with ``z_min`` / ``z_max`` the boxes are 3D.

    Raises:
        FileNotFoundError: no such file.
        AnnotationFormatError: a missing column, a non-numeric value or an inverted box (file and row named).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"confounder box file {path} not found.")
    with open(path, encoding="utf-8-sig") as f:
        header = f.readline()
    columns = CONFOUNDER_COLUMNS_3D if "z_min" in header else CONFOUNDER_COLUMNS_2D
    coords = columns[1:]
    half = len(coords) // 2
    boxes: dict[str, list[list[float]]] = {}
    for row in CSVAnnotationReader(path, columns):
        box = [row.float(c) for c in coords]
        if any(box[i + half] < box[i] for i in range(half)):
            raise row.error(f"inverted confounder box {box} (a maximum is below its minimum).")
        boxes.setdefault(row.require("image_id"), []).append(box)
    return {k: np.asarray(v, dtype=np.float32).reshape(-1, len(coords)) for k, v in boxes.items()}


def attach_confounder_boxes(
    data: Sequence[dict], boxes: dict[str, np.ndarray], source: str = "confounder boxes"
) -> list[dict]:
    """Copies of the records with ``"confounder_boxes"`` set from ``boxes`` (by ``"id"``; empty when absent).

    Ids of ``boxes`` that are not in ``data`` are counted and logged (they may belong to other splits).

    Raises:
        AnnotationFormatError: the boxes' dimension differs from the records' ``"boxes"``.
    """
    width = next((b.shape[1] for b in boxes.values()), 4)
    out = []
    for rec in data:
        own = rec.get("boxes")
        if own is not None and np.asarray(own).ndim == 2 and np.asarray(own).shape[1] not in (0, width) and boxes:
            raise AnnotationFormatError(
                f"{width // 2}D confounder boxes for image {rec.get('id')!r}, whose own boxes are "
                f"{np.asarray(own).shape[1] // 2}D.",
                source,
            )
        out.append({**rec, "confounder_boxes": boxes.get(str(rec.get("id")), np.zeros((0, width), dtype=np.float32))})
    unmatched = len(set(boxes) - {str(r.get("id")) for r in data})
    with_region = sum(1 for r in out if len(r["confounder_boxes"]))
    logger.info(f"{source}: confounder region on {with_region} of {len(out)} images ({unmatched} ids of the file "
                "not in this list).")  # fmt: skip
    return out


def default_confounder_file(dataset_dir: str | os.PathLike) -> Path | None:
    """``<dataset_dir>/confounder_boxes.csv`` when it exists, else None."""
    path = Path(dataset_dir) / CONFOUNDER_FILE
    return path if path.is_file() else None
