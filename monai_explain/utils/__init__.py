"""Shared helpers: optional extras, input-size and value checks, bundle config values, saliency normalisation."""

from __future__ import annotations

from .checks import check_tensor, set_value_checks, value_checks, value_checks_enabled
from .config import (
    as_bool,
    as_float,
    as_int,
    bundle_root,
    check_command_line_overrides,
    check_override_keys,
    config_ids,
)
from .extras import EXTRAS, optional_import_extra
from .input_size import check_input_size, smallest_input_size
from .naming import RECORD_ID_KEY, record_id_name, safe_file_name, set_record_id
from .saliency_ops import SaliencyNormalization, normalize_saliency, resize_saliency

__all__ = [
    "EXTRAS",
    "RECORD_ID_KEY",
    "SaliencyNormalization",
    "as_bool",
    "as_float",
    "as_int",
    "bundle_root",
    "check_command_line_overrides",
    "check_input_size",
    "check_override_keys",
    "check_tensor",
    "config_ids",
    "normalize_saliency",
    "optional_import_extra",
    "record_id_name",
    "resize_saliency",
    "safe_file_name",
    "set_record_id",
    "set_value_checks",
    "smallest_input_size",
    "value_checks",
    "value_checks_enabled",
]
