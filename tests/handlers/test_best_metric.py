"""NaNSafeBestMetric: a NaN key metric (e.g. ROC AUC of a one-class split) never becomes the best metric."""

from __future__ import annotations

import math
from contextlib import nullcontext

import pytest
import torch
from monai.engines import SupervisedEvaluator
from monai.engines.utils import default_metric_cmp_fn
from monai.handlers import ROCAUC, from_engine

from monai_explain.handlers import NaNSafeBestMetric, nan_safe_metric_cmp


def _run_epochs(label_sets, handlers):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 1))
    loader = [None]
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=loader,
        network=net,
        key_val_metric={"val_auc": ROCAUC(output_transform=from_engine(["pred", "label"]))},
        val_handlers=handlers,
    )
    g = torch.Generator().manual_seed(1)
    states = []
    for epoch, labels in enumerate(label_sets, 1):
        loader[0] = {"image": torch.rand(4, 1, 4, 4, generator=g), "label": torch.tensor(labels).float()[:, None]}
        with pytest.warns(UserWarning) if len(set(labels)) == 1 else nullcontext():
            evaluator.run(epoch)
        states.append(
            (evaluator.state.metrics["val_auc"], evaluator.state.best_metric, evaluator.state.best_metric_epoch)
        )
    return states


ONE_CLASS_FIRST = [[0, 0, 0, 0], [0, 1, 0, 1], [1, 1, 0, 0]]


def test_plain_monai_freezes_on_a_first_nan(caplog):
    """What the handler fixes: MONAI records the first NaN as best and never replaces it."""
    with caplog.at_level("INFO"):
        states = _run_epochs(ONE_CLASS_FIRST, None)
    assert math.isnan(states[0][0]) and states[-1][2] == 1 and math.isnan(states[-1][1])
    assert "Got new best metric of val_auc: nan" in caplog.text


def test_nan_is_never_the_best(caplog):
    with caplog.at_level("INFO"):
        states = _run_epochs(ONE_CLASS_FIRST, [NaNSafeBestMetric()])
    auc = [s[0] for s in states]
    assert math.isnan(auc[0]) and states[0][1:] == (-1, -1), "no best after a NaN-only first validation"
    best_epoch = 2 if auc[1] >= auc[2] else 3
    assert states[-1][2] == best_epoch and states[-1][1] == pytest.approx(max(auc[1:]))
    assert "val_auc is NaN at epoch 1" in caplog.text and "not a new best metric" in caplog.text
    assert "Got new best metric of val_auc: nan" not in caplog.text


def test_a_later_nan_keeps_the_earlier_best():
    states = _run_epochs([[0, 1, 0, 1], [1, 1, 1, 1]], [NaNSafeBestMetric()])
    assert states[-1][2] == 1 and states[-1][1] == pytest.approx(states[0][0])


@pytest.mark.parametrize(
    "current, best, expected",
    [
        (float("nan"), 0.5, False),
        (0.6, float("nan"), True),
        (0.6, 0.5, True),
        (0.4, 0.5, False),
        (float("nan"), float("nan"), False),
    ],
)
def test_nan_safe_cmp(current, best, expected):
    cmp = nan_safe_metric_cmp(default_metric_cmp_fn)
    assert cmp(current, best) is expected
    assert nan_safe_metric_cmp(cmp) is cmp, "wrapping twice is a no-op"
