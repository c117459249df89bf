"""Shared fixtures of the bundle tests: one tiny synthetic shortcut set, the bundle's config paths."""

from __future__ import annotations

from pathlib import Path

import pytest

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "cxr_expl"
CONFIGS = BUNDLE / "configs"

# small enough for a CPU test, large enough that every split has positives and negatives
TINY = {
    "image_size": [64, 64],
    "batch_size": 8,
}


@pytest.fixture()
def no_tracking_env(monkeypatch):
    """Runs must use the bundle's own local store, whatever the developer's environment says."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
