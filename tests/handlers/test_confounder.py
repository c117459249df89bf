from __future__ import annotations

import math

import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator
from torch import nn

from monai_explain.handlers import ConfounderRelianceHandler, DecisionThreshold


class SumNet(nn.Module):
    """logit = sum of the pixels - 5."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor(-5.0))

    def forward(self, x):
        return x.flatten(1).sum(1, keepdim=True) + self.bias


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _data():
    """Image A: 0.25 + a 2x2 block of 1.0 (sum 7) under its region; B: no region; C: flat 0.5 with a region."""
    a = torch.full((1, 4, 4), 0.25)
    a[:, :2, :2] = 1.0
    ma = torch.zeros(1, 4, 4)
    ma[:, :2, :2] = 1.0
    b = torch.linspace(0.1, 0.9, 16).reshape(1, 4, 4)
    c = torch.full((1, 4, 4), 0.5)
    mc = torch.zeros(1, 4, 4)
    mc[:, 2:, 2:] = 1.0
    items = [(a, ma), (b, torch.zeros(1, 4, 4)), (c, mc)]
    return [{"image": i, "label": torch.tensor([1.0]), "confounder_mask": m} for i, m in items]


def test_handler_in_evaluator_hand_computed():
    net = SumNet()
    # the local fill (margin 1) puts 0.25 on A's block: sum 4 -> sigmoid(-1); C is unchanged (flat 0.5)
    change_a = _sigmoid(2) - _sigmoid(-1)
    threshold = DecisionThreshold(rule=None, threshold=0.3)  # read through the handler; sigmoid(-1) = 0.27 < 0.3
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(_data()), batch_size=2),
        network=net,
        key_val_metric={
            "confounder_change": ConfounderRelianceHandler(net, threshold=threshold, fill="local", margin=1)
        },
    )
    evaluator.run()
    m = evaluator.state.metrics
    assert m["confounder_change"] == pytest.approx(change_a / 2, abs=1e-6), "mean over the two images with a region"
    assert m["confounder_change_flip_rate"] == 0.5
    details = evaluator.state.metric_details
    assert details["confounder_change"].shape == (3, 1) and torch.isnan(details["confounder_change"][1]).all()
    assert details["confounder_change_flip_rate"][:, 0].tolist()[0::2] == [1.0, 0.0]


def test_handler_names_missing_region_key():
    net = SumNet()
    data = [{k: v for k, v in d.items() if k != "confounder_mask"} for d in _data()]
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(data), batch_size=3),
        network=net,
        key_val_metric={"reliance": ConfounderRelianceHandler(net, flip_rate_name="flips")},
    )
    with pytest.raises(Exception, match="confounder_mask"):
        evaluator.run()


def test_flip_rate_name():
    net = SumNet()
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(_data()), batch_size=3),
        network=net,
        key_val_metric={"reliance": ConfounderRelianceHandler(net, fill="constant", flip_rate_name="flips")},
    )
    evaluator.run()
    # constant 0: A's sum 7 -> 3 (sigmoid(2) -> sigmoid(-2), flipped); C's sum 8 -> 6 (sigmoid(3) -> sigmoid(1))
    assert evaluator.state.metrics["flips"] == 0.5 and "reliance_flip_rate" not in evaluator.state.metrics
    expected = ((_sigmoid(2) - _sigmoid(-2)) + (_sigmoid(3) - _sigmoid(1))) / 2
    assert evaluator.state.metrics["reliance"] == pytest.approx(expected, abs=1e-6)
