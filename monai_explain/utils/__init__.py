"""Shared helpers: optional extras, input-size checks, saliency normalisation and resizing."""

from __future__ import annotations

from .extras import EXTRAS, optional_import_extra
from .input_size import check_input_size, smallest_input_size
from .saliency_ops import SaliencyNormalization, normalize_saliency, resize_saliency

__all__ = [
    "EXTRAS",
    "SaliencyNormalization",
    "check_input_size",
    "normalize_saliency",
    "optional_import_extra",
    "resize_saliency",
    "smallest_input_size",
]
