"""monai_explain.data: dataset adapters returning MONAI data lists, a DICOM reader for radiographs, splits.

Adapters (:mod:`monai_explain.data.adapters`) read the published annotation files of VinDr-CXR, RSNA Pneumonia,
NIH ChestX-ray14 boxes, SIIM-ACR Pneumothorax, CheXlocalize, MS-CXR and LUNA16, or any CSV file, and return one
dict per image (``image``, ``id``, ``label``, ``boxes`` / ``rle`` / ``polygons`` / ``points`` ...).
"""

from __future__ import annotations

from . import synthetic
from .adapters import (
    ADAPTERS,
    CHEXLOCALIZE_CLASSES,
    LUNA16_CLASSES,
    MS_CXR_CLASSES,
    NIH_CHESTXRAY14_BOX_CLASSES,
    RSNA_PNEUMONIA_CLASSES,
    SIIM_PNEUMOTHORAX_CLASSES,
    VINDR_CXR_CLASSES,
    VINDR_NO_FINDING_ID,
    AnnotationFormatError,
    CheXlocalizeAdapter,
    CheXlocalizeFormat,
    CSVAnnotationReader,
    CSVRow,
    DatasetAdapter,
    DuplicatePolicy,
    GenericCSVAdapter,
    LabelRule,
    LUNA16Adapter,
    MissingFilePolicy,
    MissingImageError,
    MSCXRAdapter,
    NIHChestXray14Adapter,
    PathEscapeError,
    RSNAPneumoniaAdapter,
    SIIMPneumothoraxAdapter,
    VinDrCXRAdapter,
    WorldSpace,
    check_relative_path,
    decode_coco_rle_counts,
    get_adapter,
)
from .confounders import CONFOUNDER_FILE, attach_confounder_boxes, read_confounder_boxes
from .datalist import assign_splits, build_datalist, positive_indices, select_classes
from .dicom import CXRDicomReader, Monochrome1Range
from .split import split_data_list

__all__ = [
    "ADAPTERS",
    "CHEXLOCALIZE_CLASSES",
    "CONFOUNDER_FILE",
    "LUNA16_CLASSES",
    "MS_CXR_CLASSES",
    "NIH_CHESTXRAY14_BOX_CLASSES",
    "RSNA_PNEUMONIA_CLASSES",
    "SIIM_PNEUMOTHORAX_CLASSES",
    "VINDR_CXR_CLASSES",
    "VINDR_NO_FINDING_ID",
    "AnnotationFormatError",
    "CSVAnnotationReader",
    "CSVRow",
    "CXRDicomReader",
    "CheXlocalizeAdapter",
    "CheXlocalizeFormat",
    "DatasetAdapter",
    "DuplicatePolicy",
    "GenericCSVAdapter",
    "LUNA16Adapter",
    "LabelRule",
    "MSCXRAdapter",
    "MissingFilePolicy",
    "MissingImageError",
    "Monochrome1Range",
    "NIHChestXray14Adapter",
    "PathEscapeError",
    "RSNAPneumoniaAdapter",
    "SIIMPneumothoraxAdapter",
    "VinDrCXRAdapter",
    "WorldSpace",
    "assign_splits",
    "attach_confounder_boxes",
    "build_datalist",
    "check_relative_path",
    "decode_coco_rle_counts",
    "get_adapter",
    "positive_indices",
    "read_confounder_boxes",
    "select_classes",
    "split_data_list",
    "synthetic",
]
