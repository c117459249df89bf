"""Shared helpers: optional extras, input-size and value checks, saliency normalisation and resizing."""

from __future__ import annotations

from .checks import check_tensor, set_value_checks, value_checks, value_checks_enabled
from .extras import EXTRAS, optional_import_extra
from .input_size import check_input_size, smallest_input_size
from .saliency_ops import SaliencyNormalization, normalize_saliency, resize_saliency

__all__ = [
    "EXTRAS",
    "SaliencyNormalization",
    "check_input_size",
    "check_tensor",
    "normalize_saliency",
    "optional_import_extra",
    "resize_saliency",
    "set_value_checks",
    "smallest_input_size",
    "value_checks",
    "value_checks_enabled",
]
