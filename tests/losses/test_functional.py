"""Functional core: per-entry terms, validity, reduction helper and the logged count of excluded entries."""

from __future__ import annotations

import logging

import pytest
import torch

from monai_explain.losses import explanation_loss, explanation_loss_terms, reduce_explanation_loss

S = [[[[1.0, 2.0], [3.0, 4.0]], [[4.0, 3.0], [2.0, 1.0]]]]  # (1, 2, 2, 2): energy 0.4 and 0.6 with M
M = [[[[0.0, 1.0], [0.0, 1.0]]]]


def test_terms_and_valid():
    saliency = torch.tensor(S + S)
    mask = torch.tensor(M + [[[[0.0, 0.0], [0.0, 0.0]]]])
    terms, valid = explanation_loss_terms(saliency, mask, design="energy")
    assert terms.shape == valid.shape == (2, 2) and valid.dtype == torch.bool
    assert valid.tolist() == [[True, True], [False, False]]
    assert terms.flatten().tolist() == pytest.approx([0.4, 0.6, 0.0, 0.0], abs=1e-6)


@pytest.mark.parametrize(
    "reduction, weight, expected",
    [
        ("mean", None, (0.4 + 0.6 + 0.2) / 3),
        ("sum", None, 0.4 + 0.6 + 0.2),
        ("mean", [2.0, 1.0], (2 * 0.4 + 2 * 0.6 + 0.2) / 5),
        ("sum", [2.0, 1.0], 2 * 0.4 + 2 * 0.6 + 0.2),
    ],
)
def test_reduce(reduction, weight, expected):
    terms = torch.tensor([[0.4, 0.6], [0.2, 0.0]])
    valid = torch.tensor([[True, True], [True, False]])
    got = reduce_explanation_loss(terms, valid, weight=weight, reduction=reduction)
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_reduce_none_keeps_broadcastable_shape():
    terms = torch.tensor([[0.4, 0.6], [0.2, 0.7]])
    valid = torch.tensor([[True, True], [True, False]])
    got = reduce_explanation_loss(terms, valid, weight=torch.tensor([1.0, 2.0]), reduction="none", spatial_dims=3)
    assert got.shape == (2, 2, 1, 1, 1)
    assert got.flatten().tolist() == pytest.approx([0.4, 0.6, 0.4, 0.0], abs=1e-6)


def test_excluded_entries_are_logged(caplog):
    mask = torch.tensor(M + [[[[0.0, 0.0], [0.0, 0.0]]]])
    with caplog.at_level(logging.DEBUG, logger="monai_explain.losses.functional"):
        explanation_loss(torch.tensor(S + S), mask, design="dice")
    assert "2 of 4 entries have an empty mask" in caplog.text


def test_functional_reduction_checked_first():
    with pytest.raises(ValueError, match="reduction"):
        explanation_loss(torch.tensor(S), torch.tensor(M), reduction="mean_batch")
