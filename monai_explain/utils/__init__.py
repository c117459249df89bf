"""Shared helpers."""

from __future__ import annotations

from .saliency_ops import SaliencyNormalization, normalize_saliency, resize_saliency

__all__ = ["SaliencyNormalization", "normalize_saliency", "resize_saliency"]
