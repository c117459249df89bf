"""Saliency tests run single-threaded: their tensors are tiny, and on a shared 2-core box OpenMP threads that
spin-wait for each other make DenseNet passes 10-50x slower than one thread."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
