from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from monai_explain.metrics.utils import (
    alignment_counts,
    prepare_saliency_and_mask,
    row_blocks,
    safe_ratio,
)


def test_prepare_resamples_saliency_never_the_mask():
    s = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    m = torch.zeros(1, 1, 4, 4)
    m[..., :2, :2] = 1
    s2, a = prepare_saliency_and_mask(s, m)
    assert s2.shape == (1, 1, 4, 4) and a.shape == (1, 1, 4, 4)
    # bilinear, align_corners=False: rows/columns weights [1, .75, .25, 0]
    profile = torch.tensor([1.0, 0.75, 0.25, 0.0])
    torch.testing.assert_close(s2[0, 0], profile[:, None] * profile[None, :])
    assert torch.equal(a[0, 0], m[0, 0].bool())


@pytest.mark.parametrize(
    "s_shape, m_shape, out_shape",
    [
        ((2, 3, 4, 4), (2, 1, 4, 4), (2, 3, 4, 4)),  # one merged mask, one map per class
        ((2, 1, 4, 4), (2, 3, 4, 4), (2, 3, 4, 4)),  # one map, one mask per finding
        ((2, 3, 4, 4, 2), (2, 3, 4, 4, 2), (2, 3, 4, 4, 2)),
    ],
)
def test_prepare_broadcasts_channels(s_shape, m_shape, out_shape):
    s, a = prepare_saliency_and_mask(torch.rand(s_shape), torch.rand(m_shape))
    assert s.shape == out_shape and a.shape == out_shape and a.dtype == torch.bool


def test_prepare_unwraps_metatensor_and_thresholds_soft_masks():
    s = MetaTensor(torch.rand(1, 1, 2, 2))
    m = MetaTensor(torch.tensor([[[[0.2, 0.5], [0.6, 1.0]]]]))
    s2, a = prepare_saliency_and_mask(s, m)
    assert not isinstance(s2, MetaTensor) and not isinstance(a, MetaTensor)
    assert a[0, 0].int().tolist() == [[0, 0], [1, 1]]
    _, a_low = prepare_saliency_and_mask(s, m, mask_threshold=0.1)
    assert int(a_low.sum()) == 4


@pytest.mark.parametrize(
    "s_shape, m_shape, match",
    [
        ((2, 2, 4, 4), (2, 3, 4, 4), "channel counts differ"),
        ((2, 1, 4, 4), (3, 1, 4, 4), "batch sizes differ"),
        ((2, 1, 4, 4), (2, 1, 4, 4, 4), "numbers of spatial dimensions"),
        ((4, 4), (4, 4), "must be \\(B, C, \\*spatial\\)"),
    ],
)
def test_prepare_bad_shapes(s_shape, m_shape, match):
    with pytest.raises(ValueError, match=match):
        prepare_saliency_and_mask(torch.rand(s_shape), torch.rand(m_shape))


def test_prepare_missing_mask():
    with pytest.raises(ValueError, match="y \\(mask\\) is required"):
        prepare_saliency_and_mask(torch.rand(1, 1, 2, 2), None)


def test_row_blocks():
    cpu = torch.device("cpu")
    blocks = row_blocks(10, 2**20, cpu)
    assert [(b.start, b.stop) for b in blocks] == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    assert row_blocks(3, 4, cpu) == [slice(0, 3)]
    assert row_blocks(10, 2**22, cpu)[1] == slice(1, 2)  # at least one row per block
    assert row_blocks(10, 2**20, torch.device("meta")) == [slice(0, 10)]


def test_alignment_counts_hand_case():
    s = torch.tensor([[[[0.9, 0.1], [0.2, 0.8]]], [[[0.1, 0.2], [0.3, 0.4]]]])
    a = torch.tensor([[[[1, 1], [0, 0]]], [[[0, 0], [0, 0]]]]).bool()
    c = alignment_counts(s, a, fraction=0.5, mass=True)
    assert c.pixels == 4
    assert c.intersection.tolist() == [[1.0], [0.0]]
    assert c.selected.tolist() == [[2.0], [2.0]]
    assert c.annotated.tolist() == [[2.0], [0.0]]
    assert c.mass_inside[:, 0].tolist() == pytest.approx([1.0, 0.0])
    assert c.mass_total[:, 0].tolist() == pytest.approx([2.0, 1.0])


def test_alignment_counts_blockwise_equals_whole(monkeypatch):
    s = torch.rand(5, 2, 8, 8)
    a = torch.rand(5, 2, 8, 8) > 0.6
    whole = alignment_counts(s, a, mass=True)
    monkeypatch.setattr("monai_explain.metrics.utils.CPU_BLOCK_ELEMENTS", 64 * 3)
    blocked = alignment_counts(s, a, mass=True)
    for x, y in zip(whole, blocked):
        if isinstance(x, torch.Tensor):
            torch.testing.assert_close(x, y)


def test_safe_ratio():
    num = torch.tensor([1.0, 2.0, 0.0])
    den = torch.tensor([2.0, 0.0, 0.0])
    empty = torch.tensor([False, False, True])
    out = safe_ratio(num, den, empty)
    assert out.dtype == torch.float32
    assert out[:2].tolist() == [0.5, 0.0] and torch.isnan(out[2])


# ---------------------------------------------------------------------------------- cheap checks, fast reductions
def test_all_finite_uses_the_exact_test_only_when_the_sum_is_not_finite():
    from monai_explain.metrics.utils import all_finite

    big = torch.full((2, 1, 4, 4), 3e38)  # finite, but its float32 sum overflows
    assert all_finite(big)
    for bad in (float("nan"), float("inf"), -float("inf")):
        x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
        x[1, 0, 2, 3] = bad
        assert not all_finite(x)
    assert all_finite(torch.arange(5))  # integers are finite


def test_mass_precision_of_huge_finite_maps_is_exact():
    """float32 sums overflow here; the rows are summed again in float64."""
    from monai_explain.metrics import compute_saliency_precision

    s = torch.full((2, 1, 8, 8), 3e38)
    s[1] = 1.0
    m = torch.zeros(2, 1, 8, 8)
    m[:, :, :4] = 1.0
    torch.testing.assert_close(compute_saliency_precision(s, m, mode="mass"), torch.full((2, 1), 0.5))


def test_mask_with_nan_still_raises_and_with_infinities_does_not():
    from monai_explain.metrics import compute_saliency_coverage

    s = torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    m = torch.zeros(1, 1, 4, 4)
    m[0, 0, 0, 0] = float("inf")
    m[0, 0, 1, 1] = -float("inf")  # the sum is NaN, the exact test finds no NaN
    assert compute_saliency_coverage(s, m).shape == (1, 1)
    m[0, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        compute_saliency_coverage(s, m)


def test_kth_largest_per_row_k_matches_sort():
    from monai_explain.metrics.binarize import kth_largest

    rows = torch.rand(7, 50, generator=torch.Generator().manual_seed(2))
    k = torch.tensor([1, 50, 3, 3, 17, 9, 25])
    expected = torch.sort(rows, dim=1, descending=True).values.gather(1, (k - 1)[:, None])[:, 0]
    assert torch.equal(kth_largest(rows, k), expected)
