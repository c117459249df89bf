"""Parity with Quantus' localisation metrics, written out in NumPy per sample on random 2D and 3D inputs.

- RelevanceMassAccuracy = sum(a * s) / sum(a)  -> our mass precision.
- RelevanceRankAccuracy = |top-|s| pixels of a, inside s| / |s|  -> our precision and coverage with fraction="mask".
- top-k at a fixed fraction -> our binary precision and coverage.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from monai_explain.metrics import compute_saliency_coverage, compute_saliency_precision
from tests.metrics._reference import (
    coverage,
    precision,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    topk_region,
)

SHAPES = [(4, 1, 16, 12), (3, 2, 9, 11), (2, 1, 6, 7, 5), (2, 3, 4, 5, 6)]


def _random_case(shape, seed):
    rng = np.random.default_rng(seed)
    a = rng.random(shape).astype(np.float32)
    s = np.zeros(shape, dtype=np.float32)
    for idx in np.ndindex(*shape[:2]):
        # a random box per map, plus random scattered pixels
        lo = [rng.integers(0, d - 1) for d in shape[2:]]
        hi = [rng.integers(low + 1, d + 1) for low, d in zip(lo, shape[2:])]
        s[idx][tuple(slice(low, high) for low, high in zip(lo, hi))] = 1.0
        s[idx] = np.maximum(s[idx], rng.random(shape[2:]) > 0.9)
    s[0, 0] = 0.0  # one empty annotation
    return a, s


def _per_map(fn, a, s):
    out = np.empty(a.shape[:2])
    for idx in np.ndindex(*a.shape[:2]):
        out[idx] = fn(a[idx], s[idx])
    return out


def _check(ours: torch.Tensor, ref: np.ndarray):
    ours = ours.numpy()
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    np.testing.assert_allclose(ours[~np.isnan(ref)], ref[~np.isnan(ref)], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", SHAPES)
def test_mass_precision_equals_relevance_mass_accuracy(shape, seed):
    a, s = _random_case(shape, seed)
    ours = compute_saliency_precision(torch.from_numpy(a), torch.from_numpy(s), mode="mass")
    _check(ours, _per_map(relevance_mass_accuracy, a, s))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", SHAPES)
def test_mask_matched_topk_equals_relevance_rank_accuracy(shape, seed):
    a, s = _random_case(shape, seed)
    ref = _per_map(relevance_rank_accuracy, a, s)
    at, st = torch.from_numpy(a), torch.from_numpy(s)
    _check(compute_saliency_precision(at, st, fraction="mask"), ref)
    _check(compute_saliency_coverage(at, st, fraction="mask"), ref)


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.3])
@pytest.mark.parametrize("shape", SHAPES)
def test_topk_precision_and_coverage_equal_numpy(shape, fraction):
    a, s = _random_case(shape, seed=7)
    at, st = torch.from_numpy(a), torch.from_numpy(s)
    _check(
        compute_saliency_precision(at, st, fraction=fraction),
        _per_map(lambda x, m: precision(topk_region(x, fraction), m), a, s),
    )
    _check(
        compute_saliency_coverage(at, st, fraction=fraction),
        _per_map(lambda x, m: coverage(topk_region(x, fraction), m), a, s),
    )


def test_reference_formulas_on_a_hand_case():
    a = np.array([[0.5, 0.3], [0.2, 0.0]])
    s = np.array([[1, 0], [1, 0]])
    assert relevance_mass_accuracy(a, s) == pytest.approx(0.7)
    assert relevance_rank_accuracy(a, s) == pytest.approx(0.5)  # top 2 = 0.5 (in), 0.3 (out)
    assert math.isnan(relevance_mass_accuracy(a, np.zeros_like(s)))
