"""Shared helpers."""

from __future__ import annotations

from .input_size import check_input_size, smallest_input_size
from .saliency_ops import SaliencyNormalization, normalize_saliency, resize_saliency

__all__ = [
    "SaliencyNormalization",
    "check_input_size",
    "normalize_saliency",
    "resize_saliency",
    "smallest_input_size",
]
