from __future__ import annotations

import pytest
import torch

from monai_explain.saliency import channel_weighted_sum, class_weights, gap_linear_matches, spatial_mean

# activation (B=1, K=2, 2x2): channel 0 = [[1, 2], [3, 4]], channel 1 = [[0, 1], [-1, 2]]
ACT = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [-1.0, 2.0]]]])


@pytest.mark.parametrize(
    "weights, expected",
    [
        (torch.tensor([[1.0, 0.0]]), [[[[1.0, 2.0], [3.0, 4.0]]]]),
        (torch.tensor([[2.0, -1.0]]), [[[[2.0, 3.0], [7.0, 6.0]]]]),
        (torch.tensor([[[0.5, 1.0]]]), [[[[0.5, 2.0], [0.5, 4.0]]]]),  # per-sample (B, M, K)
        (torch.tensor([[1.0, 1.0], [0.0, -2.0]]), [[[[1.0, 3.0], [2.0, 6.0]], [[0.0, -2.0], [2.0, -4.0]]]]),
    ],
)
def test_channel_weighted_sum_by_hand(weights, expected):
    torch.testing.assert_close(channel_weighted_sum(ACT, weights), torch.tensor(expected))


def test_channel_weighted_sum_channels_last_3d_and_bf16():
    a = torch.rand(2, 5, 3, 4, 6)
    w = torch.randn(2, 3, 5)
    ref = torch.einsum("bmk,bkxyz->bmxyz", w, a)
    torch.testing.assert_close(channel_weighted_sum(a.to(memory_format=torch.channels_last_3d), w), ref)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = channel_weighted_sum(a.bfloat16(), w)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, ref, rtol=0.02, atol=0.05)


def test_channel_weighted_sum_bad_shapes():
    with pytest.raises(ValueError, match="do not match the 2 channels"):
        channel_weighted_sum(ACT, torch.ones(1, 3))
    with pytest.raises(ValueError, match="must be \\(B, K, \\*spatial\\)"):
        channel_weighted_sum(torch.ones(2, 3), torch.ones(1, 3))


def test_class_weights_and_spatial_mean():
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    torch.testing.assert_close(class_weights(w, torch.tensor([2, 0])), torch.tensor([[[5.0, 6.0]], [[1.0, 2.0]]]))
    assert class_weights(w, None) is w
    torch.testing.assert_close(spatial_mean(ACT), torch.tensor([[2.5, 0.5]]))
    assert spatial_mean(ACT.bfloat16()).dtype == torch.float32


@pytest.mark.parametrize(
    "fc_input, expected",
    [
        (torch.tensor([[2.5, 0.5]]), True),
        (torch.tensor([[2.5, 0.5001]]), True),  # within 1e-4 of max |fc_input|
        (torch.tensor([[2.5, 0.6]]), False),
        (torch.tensor([[2.5, 0.5, 0.0]]), False),  # wrong channel count
        (torch.tensor([2.5, 0.5]), False),  # not (B, K)
    ],
)
def test_gap_linear_matches(fc_input, expected):
    assert gap_linear_matches(ACT, fc_input) is expected


def test_gap_linear_matches_low_precision_tolerance():
    assert gap_linear_matches(ACT.bfloat16(), torch.tensor([[2.5, 0.52]]).bfloat16())
    assert not gap_linear_matches(ACT, torch.tensor([[2.5, 0.52]]))
