"""CheXlocalize: ``gt_annotations_*.json`` (polygons) and ``gt_segmentations_*.json`` (COCO RLE masks)."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from typing import Any

from monai.utils import StrEnum, look_up_option

from ...transforms.rle_codec import coco_counts_from_string
from .base import DatasetAdapter, ImageEntry, MissingFilePolicy
from .errors import AnnotationFormatError

__all__ = ["CHEXLOCALIZE_CLASSES", "CheXlocalizeAdapter", "CheXlocalizeFormat", "decode_coco_rle_counts"]

#: The 10 CheXlocalize pathologies, spelled as the JSON keys.
CHEXLOCALIZE_CLASSES: tuple[str, ...] = (
    "Airspace Opacity",
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Lung Lesion",
    "Pleural Effusion",
    "Pneumothorax",
    "Support Devices",
)
_CXR_ID = re.compile(r"^(patient\d+)_(study\d+)_(view\d+_[A-Za-z]+)$")


class CheXlocalizeFormat(StrEnum):
    """The two CheXlocalize ground-truth files: ``polygons`` (gt_annotations) or ``segmentations`` (gt_segmentations);
    ``auto`` tells them apart by content."""

    AUTO = "auto"
    POLYGONS = "polygons"
    SEGMENTATIONS = "segmentations"


def decode_coco_rle_counts(counts: str | Sequence[int]) -> list[int]:
    """Decode the run lengths of a COCO RLE (the compressed string form of pycocotools, or a plain list).

    Runs alternate background / foreground starting with background, over the column-major flattened mask.

    Args:
        counts: the ``"counts"`` value of a COCO RLE.

    Returns:
        the run lengths.

    Raises:
        ValueError: a character outside the encoding's alphabet, a truncated value, or a negative run.

    Example:
        >>> decode_coco_rle_counts("52203")
        [5, 2, 2, 2, 5]
    """
    # one COCO codec in the package: the mask transforms' (monai_explain.transforms.rle_codec)
    runs = [int(c) for c in counts] if not isinstance(counts, str) else coco_counts_from_string(counts)
    if any(r < 0 for r in runs):
        raise ValueError("negative run length in a COCO RLE.")
    return runs


class CheXlocalizeAdapter(DatasetAdapter):
    """Data list of CheXlocalize (CheXpert validation / test images with radiologists' segmentations).

    Reads either file, ``format="auto"`` telling them apart:

    - polygons, ``gt_annotations_*.json``: ``{cxr_id: {"img_size": [h, w], "<Pathology>": [[[x, y], ...], ...]}}``;
      records get ``polygons``: ``{pathology: [[[x, y], ...], ...]}`` (float pairs, x = column, y = row, original
      pixels), only the pathologies with at least one polygon;
    - segmentations, ``gt_segmentations_*.json``: ``{cxr_id: {"<Pathology>": {"size": [h, w], "counts": "<COCO
      RLE>"}}}``; records get ``coco_rle``: ``{pathology: {"size": [h, w], "counts": ...}}`` as published, only
      the pathologies whose mask is not empty (the file stores all-zero masks for negatives).

    Each record also has ``image`` (``<image_dir>/patientX/studyY/viewZ_<view>.jpg`` from the ``cxr_id``
    ``patientX_studyY_viewZ_<view>``), ``id`` (the ``cxr_id``), ``label`` (multi-hot float list over
    :data:`CHEXLOCALIZE_CLASSES`: 1 where the pathology has a polygon / a non-empty mask) and ``image_size``
    (``[rows, columns]`` as published). No ``boxes`` key. Errors name the file and the key path
    (``cxr_id/pathology[/polygon index]``).

    Args:
        dataset_dir: the dataset root.
        annotation_file: the JSON file, relative to ``dataset_dir``.
        image_dir: folder of the CheXpert split the ids refer to, relative to ``dataset_dir``.
        image_ext: image file extension.
        format: a :class:`CheXlocalizeFormat`.
        check_files, on_missing, allow_outside: see :class:`DatasetAdapter`.
    """

    name = "chexlocalize"
    class_names = CHEXLOCALIZE_CLASSES
    has_boxes = False

    def __init__(
        self,
        dataset_dir: str | os.PathLike,
        annotation_file: str | os.PathLike = "gt_annotations_val.json",
        image_dir: str | os.PathLike = "valid",
        image_ext: str = ".jpg",
        format: CheXlocalizeFormat | str = CheXlocalizeFormat.AUTO,
        check_files: bool = True,
        on_missing: MissingFilePolicy | str = MissingFilePolicy.ERROR,
        allow_outside: bool = False,
    ) -> None:
        super().__init__(
            dataset_dir,
            annotation_file,
            image_dir,
            image_ext,
            check_files=check_files,
            on_missing=on_missing,
            allow_outside=allow_outside,
        )
        self.format = look_up_option(format, CheXlocalizeFormat)

    def _no_duplicate_keys(self, pairs: list[tuple[str, Any]]) -> dict:
        """``json.load`` hook: a repeated key would silently replace the first value; raise instead."""
        out: dict = {}
        for key, value in pairs:
            if key in out:
                raise self._fail("the key appears twice in the same object.", key)
            out[key] = value
        return out

    def _fail(self, message: str, key: str) -> AnnotationFormatError:
        return AnnotationFormatError(message, self.annotation_file, key=key)

    def _read(self) -> list[ImageEntry]:
        try:
            with open(self.annotation_file, encoding="utf-8") as f:
                content = json.load(f, object_pairs_hook=self._no_duplicate_keys)
        except json.JSONDecodeError as e:
            raise AnnotationFormatError(
                f"invalid JSON ({e.msg}, column {e.colno}).", self.annotation_file, e.lineno
            ) from e
        if not isinstance(content, dict):
            raise self._fail(f"expected an object {{cxr_id: ...}} at the top, got {type(content).__name__}.", "/")
        fmt = self.format if self.format != CheXlocalizeFormat.AUTO else self._detect(content)
        entries = []
        self._num_rows = len(content)
        for cxr_id, item in content.items():
            if not isinstance(item, dict):
                raise self._fail(f"expected an object, got {type(item).__name__}.", cxr_id)
            match = _CXR_ID.match(cxr_id)
            if match is None:
                raise self._fail("cxr_id is not of the form patient<N>_study<N>_view<N>_<view>.", cxr_id)
            entry = ImageEntry(cxr_id, "/".join(match.groups()), self.annotation_file, key=cxr_id)
            if fmt == CheXlocalizeFormat.POLYGONS:
                self._read_polygons(entry, item)
            else:
                self._read_segmentations(entry, item)
            entries.append(entry)
        return entries

    @staticmethod
    def _detect(content: dict) -> CheXlocalizeFormat:
        for item in content.values():
            if isinstance(item, dict):
                for key, value in item.items():
                    if key == "img_size" or isinstance(value, list):
                        return CheXlocalizeFormat.POLYGONS
                    if isinstance(value, dict):
                        return CheXlocalizeFormat.SEGMENTATIONS
        return CheXlocalizeFormat.POLYGONS

    def _size(self, value: Any, key: str) -> list[int]:
        ok = isinstance(value, list) and len(value) == 2
        ok = ok and all(isinstance(v, (int, float)) and v == int(v) and v > 0 for v in value)
        if not ok:
            raise self._fail(f"image size must be [rows, columns] positive integers, got {value!r}.", key)
        return [int(v) for v in value]

    def _class_index(self, name: str, key: str) -> int:
        if name not in self.class_names:
            raise self._fail(f"unknown pathology {name!r}; known: {list(self.class_names)}.", key)
        return self.class_names.index(name)

    def _read_polygons(self, entry: ImageEntry, item: dict) -> None:
        cxr_id = entry.image_id
        if "img_size" not in item:
            raise self._fail("missing 'img_size'.", cxr_id)
        entry.extra["image_size"] = self._size(item["img_size"], f"{cxr_id}/img_size")
        polygons: dict[str, list] = {}
        for name, value in item.items():
            if name == "img_size":
                continue
            key = f"{cxr_id}/{name}"
            cid = self._class_index(name, key)
            if not isinstance(value, list):
                raise self._fail(f"expected a list of polygons, got {type(value).__name__}.", key)
            checked = [self._polygon(p, f"{key}/{i}") for i, p in enumerate(value)]
            if checked:
                polygons[name] = checked
                entry.classes.add(cid)
        entry.extra["polygons"] = polygons

    def _polygon(self, polygon: Any, key: str) -> list[list[float]]:
        if not isinstance(polygon, list) or len(polygon) < 3:
            raise self._fail("a polygon must be a list of at least 3 [x, y] points.", key)
        points = []
        for point in polygon:
            ok = isinstance(point, (list, tuple)) and len(point) == 2
            ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in point)
            if not ok:
                raise self._fail(f"invalid point {point!r}: expected [x, y] finite numbers.", key)
            points.append([float(point[0]), float(point[1])])
        return points

    def _read_segmentations(self, entry: ImageEntry, item: dict) -> None:
        cxr_id = entry.image_id
        masks: dict[str, dict] = {}
        size = None
        for name, value in item.items():
            key = f"{cxr_id}/{name}"
            cid = self._class_index(name, key)
            if not isinstance(value, dict) or "size" not in value or "counts" not in value:
                raise self._fail("expected {'size': [h, w], 'counts': ...}.", key)
            this_size = self._size(value["size"], f"{key}/size")
            if size is not None and this_size != size:
                raise self._fail(f"size {this_size} differs from {size} of the other pathologies.", key)
            size = this_size
            try:
                runs = decode_coco_rle_counts(value["counts"])
            except (ValueError, TypeError) as e:
                raise self._fail(f"invalid counts ({e}).", key) from e
            if sum(runs) != size[0] * size[1]:
                raise self._fail(f"runs cover {sum(runs)} pixels, the size {size} has {size[0] * size[1]}.", key)
            if any(runs[1::2]):
                masks[name] = {"size": this_size, "counts": value["counts"]}
                entry.classes.add(cid)
        if size is not None:
            entry.extra["image_size"] = size
        entry.extra["coco_rle"] = masks
