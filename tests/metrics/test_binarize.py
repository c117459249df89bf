from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from monai_explain.metrics.binarize import (
    binarize_saliency,
    count_true,
    kth_largest,
    otsu_bin_index,
    otsu_threshold,
    selection_weights,
    topk_counts,
)
from tests.metrics._reference import otsu_region, topk_region

S2 = torch.tensor([[[[0.1, 0.9], [0.5, 0.3]]]])


@pytest.mark.parametrize(
    "saliency, kwargs, expected",
    [
        (S2, {"method": "topk", "fraction": 0.5}, [[0, 1], [1, 0]]),
        (S2, {"method": "topk", "fraction": 0.25}, [[0, 1], [0, 0]]),
        (S2, {"method": "topk", "fraction": 1.0}, [[1, 1], [1, 1]]),
        (S2, {"method": "topk", "fraction": 0.01}, [[0, 1], [0, 0]]),  # at least one pixel
        # constant map: ties broken by the lowest row-major index
        (torch.full((1, 1, 2, 3), 0.7), {"method": "topk", "fraction": 0.5}, [[1, 1, 1], [0, 0, 0]]),
        # max-normalised [[0, .5], [1, .25]]: strictly above the threshold
        (torch.tensor([[[[0.0, 2.0], [4.0, 1.0]]]]), {"method": "threshold", "threshold": 0.5}, [[0, 0], [1, 0]]),
        (torch.tensor([[[[0.0, 2.0], [4.0, 1.0]]]]), {"method": "threshold", "threshold": 0.4}, [[0, 1], [1, 0]]),
        (torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]]), {"method": "threshold", "threshold": 0.0}, [[0, 1], [1, 0]]),
        (torch.zeros(1, 1, 2, 2), {"method": "threshold"}, [[0, 0], [0, 0]]),
        # two levels: Otsu splits them
        (torch.tensor([[[[0.2, 3.0], [3.0, 0.2]]]]), {"method": "otsu"}, [[0, 1], [1, 0]]),
        (torch.full((1, 1, 2, 2), 5.0), {"method": "otsu"}, [[0, 0], [0, 0]]),  # constant: nothing
    ],
)
def test_binarize_hand_cases(saliency, kwargs, expected):
    out = binarize_saliency(saliency, **kwargs)
    assert out.dtype == torch.bool
    assert out[0, 0].int().tolist() == expected


def test_binarize_3d_and_batch_independent():
    s = torch.arange(16, dtype=torch.float32).view(1, 1, 2, 2, 4)
    out = binarize_saliency(s, "topk", fraction=0.25)
    assert out.sum() == 4
    assert out.view(-1).nonzero().view(-1).tolist() == [12, 13, 14, 15]
    batch = torch.rand(3, 2, 5, 4, 3)
    whole = binarize_saliency(batch, "topk", fraction=0.3)
    for b in range(3):
        assert torch.equal(whole[b : b + 1], binarize_saliency(batch[b : b + 1], "topk", fraction=0.3))


def test_binarize_threshold_keeps_binary_map():
    m = (torch.rand(2, 1, 6, 6) > 0.5).float()
    assert torch.equal(binarize_saliency(m, "threshold", threshold=0.3), m.bool())


def test_binarize_topk_fraction_mask():
    s = torch.tensor([[[[0.1, 0.9], [0.5, 0.3]], [[0.1, 0.9], [0.5, 0.3]]]])
    m = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 0.0]]]])
    out = binarize_saliency(s, "topk", fraction="mask", mask=m)
    assert out[0, 0].int().tolist() == [[0, 1], [0, 0]]
    assert out[0, 1].int().tolist() == [[0, 1], [1, 1]]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", [(2, 2, 9, 7), (2, 1, 5, 4, 6)])
def test_binarize_topk_matches_numpy_argsort(seed, shape):
    rng = np.random.default_rng(seed)
    s = rng.random(shape).astype(np.float32)
    out = binarize_saliency(torch.from_numpy(s), "topk", fraction=0.2).numpy()
    for b in range(shape[0]):
        for c in range(shape[1]):
            np.testing.assert_array_equal(out[b, c], topk_region(s[b, c], 0.2))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("shape", [(3, 1, 16, 12), (2, 2, 6, 7, 5)])
def test_otsu_matches_brute_force_numpy(seed, shape):
    rng = np.random.default_rng(seed)
    # a bimodal map (background noise and a bright blob) plus a plain uniform map
    s = rng.random(shape).astype(np.float32)
    s[0, 0, : shape[2] // 2] += 2.0
    out = binarize_saliency(torch.from_numpy(s), "otsu").numpy()
    for b in range(shape[0]):
        for c in range(shape[1]):
            np.testing.assert_array_equal(out[b, c], otsu_region(s[b, c]))


def test_otsu_threshold_values():
    two_level = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
    # every split between the two occupied bins is equally good: the first (after bin 0) is kept
    assert otsu_threshold(two_level).tolist() == [[1 / 255]]  # levels 0 and 255 of the 8-bit image
    assert otsu_threshold(torch.full((1, 1, 3, 3), 2.0)).tolist() == [[256 / 255]]  # above 1: nothing selected
    hist = torch.tensor([[0, 5, 0, 0, 5, 0], [0, 0, 7, 0, 0, 0]])
    assert otsu_bin_index(hist).tolist() == [1, 5]


def test_kth_largest_numpy_and_torch_paths_agree():
    rows = torch.randint(0, 50, (4, 30))
    k = torch.tensor([1, 5, 30, 12])
    torch_path = kth_largest(rows, k)  # integer rows take the torch path
    numpy_path = kth_largest(rows.double(), k)
    expected = [sorted(r, reverse=True)[kk - 1] for r, kk in zip(rows.tolist(), k.tolist())]
    assert torch_path.tolist() == expected
    assert numpy_path.tolist() == expected
    same_k = torch.full((4,), 3)
    assert kth_largest(rows, same_k).tolist() == kth_largest(rows.double(), same_k).tolist()


@pytest.mark.parametrize(
    "rows, k, inside, expected_selected, expected_inside",
    [
        # no ties: the top 2 are 0.9 (inside) and 0.5 (outside)
        ([[0.1, 0.9, 0.5, 0.3]], [2], [[0, 1, 0, 1]], [2.0], [1.0]),
        # constant row, k=2 of 4, inside holds 1 pixel: expected 2 * 1/4
        ([[1.0, 1.0, 1.0, 1.0]], [2], [[1, 0, 0, 0]], [2.0], [0.5]),
        # one pixel above, three tied for the remaining 1 slot; 2 tied pixels inside -> 1 + 2/3
        ([[0.9, 0.4, 0.4, 0.4]], [2], [[1, 1, 1, 0]], [2.0], [1 + 2 / 3]),
        # k = 0 selects nothing
        ([[0.9, 0.4, 0.4, 0.4]], [0], [[1, 1, 1, 0]], [0.0], [0.0]),
    ],
)
def test_topk_counts_share_ties(rows, k, inside, expected_selected, expected_inside):
    sel, ins = topk_counts(torch.tensor(rows), torch.tensor(k), torch.tensor(inside).bool())
    assert sel.tolist() == pytest.approx(expected_selected)
    assert ins.tolist() == pytest.approx(expected_inside)
    sel_int, ins_int = topk_counts(torch.tensor(rows), k[0], torch.tensor(inside).bool())  # one int k
    assert sel_int.tolist() == pytest.approx(expected_selected)
    assert ins_int.tolist() == pytest.approx(expected_inside)
    weights = selection_weights(torch.tensor(rows), "topk", fraction=k[0] / 4 if k[0] else 0.25)
    if k[0]:
        assert float((weights * torch.tensor(inside)).sum()) == pytest.approx(expected_inside[0])


def test_count_true():
    x = torch.tensor([[True, False, True], [False, False, False]])
    assert count_true(x).tolist() == [2.0, 0.0]
    assert count_true(x, dim=0, keepdim=True).tolist() == [[1.0, 0.0, 1.0]]


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=6, max_size=40),
    st.floats(0.05, 1.0),
)
def test_topk_selects_exactly_k_highest(values, fraction):
    s = torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1)
    out = binarize_saliency(s, "topk", fraction=fraction)[0, 0, 0]
    n = len(values)
    k = min(n, max(1, round(fraction * n)))
    assert int(out.sum()) == k
    if k < n:
        assert s[0, 0, 0][out].min() >= s[0, 0, 0][~out].max()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"method": "median"}, ValueError, "median"),
        ({"fraction": 0.0}, ValueError, "fraction must be in"),
        ({"fraction": 1.5}, ValueError, "fraction must be in"),
        ({"fraction": "half"}, ValueError, "fraction must be a float"),
        ({"fraction": "mask"}, ValueError, "needs the annotation mask"),
        ({"method": "otsu", "num_bins": 1}, ValueError, "num_bins must be"),
        ({"fraction": "mask", "mask": torch.ones(1, 1, 3, 3)}, ValueError, "does not match"),
    ],
)
def test_binarize_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        binarize_saliency(torch.rand(1, 1, 2, 2), **kwargs)


def test_binarize_bad_shape():
    with pytest.raises(ValueError, match="must be \\(B, C, \\*spatial\\)"):
        binarize_saliency(torch.rand(4, 4))
    with pytest.raises(TypeError, match="torch.Tensor"):
        binarize_saliency(np.zeros((1, 1, 2, 2)))
