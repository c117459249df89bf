"""Shared helpers."""

from __future__ import annotations

from .checks import check_tensor, set_value_checks, value_checks, value_checks_enabled
from .saliency_ops import SaliencyNormalization, normalize_saliency, resize_saliency

__all__ = [
    "SaliencyNormalization",
    "check_tensor",
    "normalize_saliency",
    "resize_saliency",
    "set_value_checks",
    "value_checks",
    "value_checks_enabled",
]
