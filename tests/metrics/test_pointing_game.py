from __future__ import annotations

import math

import pytest
import torch

from monai_explain.metrics import PointingGame, compute_pointing_game

MASK = torch.tensor([[[[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]])


@pytest.mark.parametrize(
    "saliency, kwargs, expected",
    [
        ([[0.1, 0.9, 0.0], [0.2, 0.3, 0.0], [0.0, 0.0, 0.0]], {}, 1.0),  # max on the annotated pixel
        ([[0.1, 0.2, 0.0], [0.9, 0.3, 0.0], [0.0, 0.0, 0.0]], {}, 0.0),  # max elsewhere
        ([[0.1, 0.2, 0.0], [0.9, 0.3, 0.0], [0.0, 0.0, 0.0]], {"tolerance": 1}, 1.0),  # one pixel away
        ([[0.1, 0.2, 0.0], [0.0, 0.3, 0.0], [0.0, 0.0, 0.9]], {"tolerance": 1}, 0.0),  # two pixels away
        ([[0.5] * 3] * 3, {}, 1 / 9),  # constant: the share of tied maxima inside = |A| / N
        ([[0.9, 0.9, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], {}, 0.5),  # two tied maxima, one inside
    ],
)
def test_pointing_game_hand_cases(saliency, kwargs, expected):
    out = compute_pointing_game(torch.tensor([[saliency]]), MASK, **kwargs)
    assert out.shape == (1, 1)
    assert out.item() == pytest.approx(expected)


def test_pointing_game_3d_multichannel_and_empty():
    s = torch.zeros(1, 1, 3, 3, 3)
    s[0, 0, 2, 1, 0] = 1.0
    m = torch.zeros(1, 3, 3, 3, 3)
    m[0, 0, 2, 1, 0] = 1  # hit
    m[0, 1, 0, 0, 0] = 1  # miss
    out = compute_pointing_game(s, m)  # channel 2 empty
    assert out[0, :2].tolist() == [1.0, 0.0] and math.isnan(out[0, 2])
    # tolerance does not turn an empty annotation into a hit
    assert math.isnan(compute_pointing_game(s, m, tolerance=2)[0, 2])


def test_pointing_game_upsampled_saliency():
    s = torch.tensor([[[[0.0, 0.0], [0.0, 1.0]]]])  # peak in the bottom-right quadrant
    m = torch.zeros(1, 1, 8, 8)
    m[..., 4:, 4:] = 1
    assert compute_pointing_game(s, m).item() == 1.0


def test_pointing_game_metric_hit_rate():
    s = torch.zeros(3, 1, 2, 2)
    s[0, 0, 0, 0] = 1
    s[1, 0, 1, 1] = 1
    s[2, 0, 0, 1] = 1
    m = torch.zeros(3, 1, 2, 2)
    m[0, 0, 0, 0] = 1
    m[2, 0, 0, 0] = 1  # sample 1: empty
    metric = PointingGame(get_not_nans=True)
    metric(y_pred=s, y=m)
    value, not_nans = metric.aggregate()
    assert value.item() == 0.5 and not_nans.item() == 2


def test_pointing_game_bad_tolerance():
    with pytest.raises(ValueError, match="tolerance"):
        compute_pointing_game(torch.rand(1, 1, 2, 2), torch.ones(1, 1, 2, 2), tolerance=-1)
    with pytest.raises(ValueError, match="tolerance"):
        PointingGame(tolerance=-2)
