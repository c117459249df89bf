"""Embedded default data: synthetic data sets generated on first run, written in public formats.

- :func:`generate_shortcut_cxr` - 2D chest X-rays with subtle lesions and a spurious marker (the
  "shortcut": a corner laterality tag, an edge ruler or a text tag, see :class:`MarkerKind`), in VinDr-CXR's format (DICOM + ``train.csv``), with ``train`` / ``val`` / ``test``
  / ``test_shifted`` splits.
- :func:`generate_synthetic_ct` - 3D chest CT volumes with spherical nodules, LUNA16 format
  (MetaImage and/or NIfTI + ``annotations.csv`` in LPS world millimetres).
"""

from __future__ import annotations

from monai_explain.apps.synthetic.ct import (
    CT_FORMATS,
    LUNA16_COLUMNS,
    LUNA16_UID_PREFIX,
    SYNTHETIC_CT_VERSION,
    generate_synthetic_ct,
    lps_to_ras_affine,
)
from monai_explain.apps.synthetic.ct_phantom import ChestCTPhantom, draw_chest_ct
from monai_explain.apps.synthetic.cxr import (
    NO_FINDING,
    NO_FINDING_CLASS_ID,
    SHORTCUT_CXR_SPLITS,
    SHORTCUT_CXR_VERSION,
    VINDR_COLUMNS,
    exact_assignment,
    generate_shortcut_cxr,
    jitter_box,
    load_splits,
)
from monai_explain.apps.synthetic.cxr_phantom import (
    ChestPhantom,
    MarkerKind,
    draw_chest_xray,
    draw_corner_marker,
    draw_marker,
    draw_ruler_marker,
    draw_text_marker,
)
from monai_explain.apps.synthetic.dicom_writer import DX_FOR_PRESENTATION_SOP_CLASS, write_xray_dicom
from monai_explain.apps.synthetic.manifest import MANIFEST_NAME, is_generated, normalize_parameters, write_manifest
from monai_explain.apps.synthetic.metaimage import METAIMAGE_TYPES, metaimage_affine, read_metaimage, write_metaimage

__all__ = [
    "CT_FORMATS",
    "DX_FOR_PRESENTATION_SOP_CLASS",
    "LUNA16_COLUMNS",
    "LUNA16_UID_PREFIX",
    "MANIFEST_NAME",
    "METAIMAGE_TYPES",
    "NO_FINDING",
    "NO_FINDING_CLASS_ID",
    "SHORTCUT_CXR_SPLITS",
    "SHORTCUT_CXR_VERSION",
    "SYNTHETIC_CT_VERSION",
    "VINDR_COLUMNS",
    "ChestCTPhantom",
    "ChestPhantom",
    "MarkerKind",
    "draw_chest_ct",
    "draw_chest_xray",
    "draw_corner_marker",
    "draw_marker",
    "draw_ruler_marker",
    "draw_text_marker",
    "exact_assignment",
    "generate_shortcut_cxr",
    "generate_synthetic_ct",
    "is_generated",
    "jitter_box",
    "load_splits",
    "lps_to_ras_affine",
    "metaimage_affine",
    "normalize_parameters",
    "read_metaimage",
    "write_manifest",
    "write_metaimage",
    "write_xray_dicom",
]
