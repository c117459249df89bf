from __future__ import annotations

import math

import pytest
import torch

from monai_explain.metrics import ChanceLevel, compute_chance_level


@pytest.mark.parametrize(
    "mask, expected",
    [
        (torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]), [[0.25]]),
        (torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]]), [[0.75]]),
        (torch.tensor([[[[0.6, 0.4], [0.0, 1.0]]]]), [[0.5]]),  # soft mask: > 0.5
        (torch.ones(1, 2, 2, 2, 2), [[1.0, 1.0]]),  # 3D, two channels
    ],
)
def test_chance_level_hand_cases(mask, expected):
    assert compute_chance_level(mask).tolist() == expected


def test_chance_level_empty_and_broadcast():
    m = torch.zeros(2, 1, 3, 3)
    m[0, 0, 0, 0] = 1
    out = compute_chance_level(m, saliency=torch.rand(2, 3, 6, 6))
    assert out.shape == (2, 3)
    assert out[0].tolist() == pytest.approx([1 / 9] * 3)
    assert torch.isnan(out[1]).all()


def test_chance_level_metric_aggregates_non_empty():
    m = torch.zeros(3, 1, 2, 2)
    m[0, 0, 0, 0] = 1
    m[2] = 1
    metric = ChanceLevel(get_not_nans=True)
    metric(y_pred=torch.rand(3, 1, 2, 2), y=m)
    value, not_nans = metric.aggregate()
    assert value.item() == pytest.approx((0.25 + 1.0) / 2)
    assert not_nans.item() == 2


def test_chance_level_bad_input():
    with pytest.raises(ValueError, match="does not match"):
        compute_chance_level(torch.ones(2, 2, 3, 3), saliency=torch.rand(2, 3, 3, 3))
    with pytest.raises(ValueError, match="must be \\(B, C"):
        compute_chance_level(torch.ones(3, 3))
    with pytest.raises(ValueError, match="needs the annotation mask"):
        ChanceLevel()(y_pred=torch.rand(1, 1, 2, 2))
    assert math.isnan(compute_chance_level(torch.zeros(1, 1, 2, 2)).item())
