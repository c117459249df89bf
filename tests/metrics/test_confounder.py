from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from monai_explain.metrics import ConfounderReliance, compute_confounder_reliance, fill_region, region_mask


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


class SumNet(nn.Module):
    """logit = sum of all pixels + bias (one class); with ``two``: logits (sum + bias, -(sum + bias))."""

    def __init__(self, bias: float, two: bool = False) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor(float(bias)))
        self.two = two

    def forward(self, x):
        s = x.flatten(1).sum(1, keepdim=True) + self.bias
        return torch.cat([s, -s], dim=1) if self.two else s


def _images_2d():
    """A: 0.25 with a 2x2 block of 1.0 at [0:2, 0:2] (sum 7); B: no region; C: flat 0.5 (sum 8), region [2:4, 2:4]."""
    a = torch.full((1, 4, 4), 0.25)
    a[:, :2, :2] = 1.0
    b = torch.linspace(0.1, 0.9, 16).reshape(1, 4, 4)
    c = torch.full((1, 4, 4), 0.5)
    boxes = [np.array([[0, 0, 2, 2]]), np.zeros((0, 4)), np.array([[2, 2, 4, 4]])]
    return torch.stack([a, b, c]), boxes


# Hand computation with logit = sum - 5 (threshold 0.5):
#   A: p0 = sigmoid(2).  mean fill: mean 7/16, sum 3 + 4 * 7/16 = 4.75 -> sigmoid(-0.25)
#                        local fill (margin 1): band [0:3, 0:3] minus the block = five 0.25 pixels -> sum 4 -> sigmoid(-1)
#                        constant 0: sum 3 -> sigmoid(-2); every one crosses 0.5: flipped
#   C: p0 = sigmoid(3).  mean / local fill: 0.5 again -> change 0; constant 0: sum 6 -> sigmoid(1), not flipped
A0, C0 = _sigmoid(2), _sigmoid(3)
CASES_2D = [
    ("mean", {}, [abs(_sigmoid(-0.25) - A0), 0.0], [1.0, 0.0]),
    ("local", {"margin": 1}, [abs(_sigmoid(-1) - A0), 0.0], [1.0, 0.0]),
    ("constant", {"value": 0.0}, [abs(_sigmoid(-2) - A0), abs(_sigmoid(1) - C0)], [1.0, 0.0]),
]


@pytest.mark.parametrize("fill,kwargs,change,flipped", CASES_2D, ids=[c[0] for c in CASES_2D])
def test_hand_computed_2d(fill, kwargs, change, flipped):
    images, boxes = _images_2d()
    net = SumNet(-5.0)
    got_c, got_f = compute_confounder_reliance(net, images, boxes, fill=fill, **kwargs)
    assert got_c.shape == (3, 1)
    assert torch.isnan(got_c[1]).all() and torch.isnan(got_f[1]).all(), "no region: NaN"
    assert got_c[[0, 2], 0].tolist() == pytest.approx(change, abs=1e-6)
    assert got_f[[0, 2], 0].tolist() == flipped
    # the same region as a mask (two channels: merged) gives the same values
    mask = torch.zeros(3, 2, 4, 4)
    mask[0, 1, :2, :2] = 1.0
    mask[2, 0, 2:, 2:] = 0.7
    by_mask = compute_confounder_reliance(net, images, mask, fill=fill, **kwargs)
    assert torch.allclose(by_mask[0], got_c, equal_nan=True) and torch.allclose(by_mask[1], got_f, equal_nan=True)
    assert net.training, "the network's mode is restored"


def test_hand_computed_3d_and_threshold_forms():
    # 3x3x3 zeros with one voxel of 2 at [0, 0, 0]; logit = sum - 1: p0 = sigmoid(1)
    vol = torch.zeros(1, 1, 3, 3, 3)
    vol[0, 0, 0, 0, 0] = 2.0
    boxes = [np.array([[0, 0, 0, 1, 1, 1]])]
    net = SumNet(-1.0)
    c_mean, f_mean = compute_confounder_reliance(net, vol, boxes, fill="mean")  # mean 2/27 -> sum 2/27
    assert float(c_mean) == pytest.approx(abs(_sigmoid(2 / 27 - 1) - _sigmoid(1)), abs=1e-6)
    assert float(f_mean) == 1.0
    c_loc, _ = compute_confounder_reliance(net, vol, boxes, fill="local", margin=1)  # band of zeros -> sum 0
    assert float(c_loc) == pytest.approx(_sigmoid(1) - _sigmoid(-1), abs=1e-6)
    # a threshold below both probabilities: no flip; per class, and read from a handler-like object
    _, f_low = compute_confounder_reliance(net, vol, boxes, threshold=0.2, fill="local", margin=1)
    assert float(f_low) == 0.0
    two = SumNet(-1.0, two=True)  # class 1 = -logit: p 0.27 -> 0.73 under the local fill
    c2, f2 = compute_confounder_reliance(
        two, vol, boxes, threshold=SimpleNamespace(threshold=torch.tensor([0.2, 0.8])), fill="local", margin=1
    )
    assert c2[0].tolist() == pytest.approx([_sigmoid(1) - _sigmoid(-1)] * 2, abs=1e-6)
    assert f2[0].tolist() == [0.0, 0.0], "0.73 -> 0.27 stays above 0.2; 0.27 -> 0.73 stays below 0.8"


def test_fill_region_local_falls_back_to_image_mean():
    images = torch.arange(4.0).reshape(1, 1, 2, 2)
    mask = torch.ones(1, 1, 2, 2, dtype=torch.bool)  # no band left around a full-image region
    assert fill_region(images, mask, "local", margin=2).flatten().tolist() == [1.5] * 4


def test_cumulative_metric_aggregates_over_calls():
    images, boxes = _images_2d()
    net = SumNet(-5.0)
    metric = ConfounderReliance(net, fill="mean", get_not_nans=True)
    metric(y_pred=images[:2], y=boxes[:2])
    metric(y_pred=list(images[2:]), y=[region_mask([boxes[2]], images[2:])[0]])  # decollated items
    (change, n1), (flip_rate, n2) = metric.aggregate()
    assert float(change) == pytest.approx(abs(_sigmoid(-0.25) - A0) / 2, abs=1e-6)
    assert float(flip_rate) == 0.5 and float(n1) == 2 and float(n2) == 2
    metric.reset()
    with pytest.raises(ValueError, match="nothing to aggregate"):
        metric.aggregate()


@pytest.mark.parametrize(
    "kwargs,region,match",
    [
        ({}, torch.zeros(3, 1, 5, 4), "does not match images"),
        ({}, [np.zeros((0, 4))], "3 images"),
        ({"fill": "blur"}, None, "blur"),
        ({"fill": "local", "margin": 0}, None, "margin"),
        ({"activation": "tanh"}, None, "activation"),
        ({"threshold": [0.1, 0.2, 0.3]}, None, "3 values for 1 classes"),
    ],
)
def test_bad_input(kwargs, region, match):
    images, boxes = _images_2d()
    with pytest.raises(ValueError, match=match):
        compute_confounder_reliance(SumNet(-5.0), images, boxes if region is None else region, **kwargs)
