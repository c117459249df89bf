"""Shared test set-up: every test is seeded, runs on CPU with a small thread pool, and never needs a display."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """The synthetic set generated once per session, shared by the bundle tests (read-only for them)."""
    from monai_explain.apps.synthetic import generate_shortcut_cxr

    root = tmp_path_factory.mktemp("shortcut_cxr")
    return generate_shortcut_cxr(root, n_train=24, n_val=8, n_test=8, n_test_shifted=8, image_size=64, seed=0)
