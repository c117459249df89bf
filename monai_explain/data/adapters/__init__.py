"""Dataset adapters: read published annotation files, return MONAI data lists (one dict per image)."""

from __future__ import annotations

from .base import DatasetAdapter, ImageEntry, MissingFilePolicy, check_relative_path
from .chexlocalize import CHEXLOCALIZE_CLASSES, CheXlocalizeAdapter, CheXlocalizeFormat, decode_coco_rle_counts
from .csv_rows import CSVAnnotationReader, CSVRow, DuplicatePolicy
from .errors import AnnotationFormatError, MissingImageError, PathEscapeError, format_location
from .factory import ADAPTERS, get_adapter
from .generic_csv import GenericCSVAdapter
from .luna16 import LUNA16_CLASSES, LUNA16Adapter, WorldSpace
from .mscxr import MS_CXR_CLASSES, MSCXRAdapter
from .nih import NIH_CHESTXRAY14_BOX_CLASSES, NIHChestXray14Adapter
from .rsna import RSNA_PNEUMONIA_CLASSES, RSNAPneumoniaAdapter
from .siim import SIIM_PNEUMOTHORAX_CLASSES, SIIMPneumothoraxAdapter
from .vindr import (
    VINDR_CXR_CLASSES,
    VINDR_CXR_GLOBAL_LABELS,
    VINDR_CXR_LOCAL_LABELS,
    VINDR_NO_FINDING_ID,
    LabelRule,
    UnknownClassPolicy,
    VinDrCXRAdapter,
)

__all__ = [
    "ADAPTERS",
    "CHEXLOCALIZE_CLASSES",
    "LUNA16_CLASSES",
    "MS_CXR_CLASSES",
    "NIH_CHESTXRAY14_BOX_CLASSES",
    "RSNA_PNEUMONIA_CLASSES",
    "SIIM_PNEUMOTHORAX_CLASSES",
    "VINDR_CXR_CLASSES",
    "VINDR_CXR_GLOBAL_LABELS",
    "VINDR_CXR_LOCAL_LABELS",
    "VINDR_NO_FINDING_ID",
    "AnnotationFormatError",
    "CSVAnnotationReader",
    "CSVRow",
    "CheXlocalizeAdapter",
    "CheXlocalizeFormat",
    "DatasetAdapter",
    "DuplicatePolicy",
    "GenericCSVAdapter",
    "ImageEntry",
    "LUNA16Adapter",
    "LabelRule",
    "MSCXRAdapter",
    "MissingFilePolicy",
    "MissingImageError",
    "NIHChestXray14Adapter",
    "PathEscapeError",
    "RSNAPneumoniaAdapter",
    "SIIMPneumothoraxAdapter",
    "UnknownClassPolicy",
    "VinDrCXRAdapter",
    "WorldSpace",
    "check_relative_path",
    "decode_coco_rle_counts",
    "format_location",
    "get_adapter",
]
