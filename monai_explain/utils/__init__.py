"""Shared helpers."""

from __future__ import annotations

from .config import as_bool, as_float, as_int, check_command_line_overrides, check_override_keys, config_ids
from .saliency_ops import SaliencyNormalization, normalize_saliency, resize_saliency

__all__ = [
    "SaliencyNormalization",
    "as_bool",
    "as_float",
    "as_int",
    "check_command_line_overrides",
    "check_override_keys",
    "config_ids",
    "normalize_saliency",
    "resize_saliency",
]
