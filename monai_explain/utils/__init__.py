"""Shared helpers."""

from __future__ import annotations

from .config import (
    as_bool,
    as_float,
    as_int,
    bundle_root,
    check_command_line_overrides,
    check_override_keys,
    config_ids,
)
from .naming import RECORD_ID_KEY, record_id_name, safe_file_name, set_record_id
from .saliency_ops import SaliencyNormalization, normalize_saliency, resize_saliency

__all__ = [
    "RECORD_ID_KEY",
    "SaliencyNormalization",
    "as_bool",
    "as_float",
    "as_int",
    "bundle_root",
    "check_command_line_overrides",
    "check_override_keys",
    "config_ids",
    "normalize_saliency",
    "record_id_name",
    "resize_saliency",
    "safe_file_name",
    "set_record_id",
]
