"""Shared helpers."""

from __future__ import annotations

from .extras import EXTRAS, optional_import_extra
from .saliency_ops import SaliencyNormalization, normalize_saliency, resize_saliency

__all__ = ["EXTRAS", "SaliencyNormalization", "normalize_saliency", "optional_import_extra", "resize_saliency"]
