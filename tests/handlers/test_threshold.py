from __future__ import annotations

import logging
import math

import pytest
import torch
from ignite.engine import Engine
from ignite.handlers import Checkpoint, DiskSaver
from torch import nn

from monai_explain.handlers import (
    DecisionThreshold,
    apply_threshold,
    choose_threshold,
    decision_metrics,
    load_decision_threshold,
)

# Hand computations (a prediction is positive when score >= threshold; candidates are midpoints):
#   separable: 0.1 0.3 | 0.6 0.8 -> the one cut with J = 1 is (0.3 + 0.6) / 2 = 0.45
#   overlap: sorted 0.8(+) 0.4(-) 0.35(+) 0.1(-): cuts 0.6 (TPR .5, FPR 0, J .5, F1 2/3), 0.375 (J 0, F1 .5),
#            0.225 (TPR 1, FPR .5, J .5, F1 .8): Youden ties 0.6 / 0.225 -> closest to 0.5 is 0.6; F1 -> 0.225
#   shifted: every score below 0.5, separable at (0.1 + 0.2) / 2 = 0.15
#   tie anchored both sides: 0.2(-) 0.45(+) 0.55(-) 0.8(+): cuts 0.675 (J .5), 0.5 (J 0), 0.325 (J .5)
#            -> |0.675-0.5| = 0.175 = |0.325-0.5|: the lower one, 0.325
CASES = [
    ("separable", [0.1, 0.3, 0.6, 0.8], [0, 0, 1, 1], "youden", 0.45),
    ("overlap_youden", [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], "youden", 0.6),
    ("overlap_f1", [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], "f1", 0.225),
    ("shifted", [0.05, 0.1, 0.2, 0.3], [0, 0, 1, 1], "youden", 0.15),
    ("tie_lower", [0.2, 0.45, 0.55, 0.8], [0, 1, 0, 1], "youden", 0.325),
    ("ties_in_scores", [0.2, 0.2, 0.7, 0.7, 0.7], [0, 0, 1, 1, 0], "youden", 0.45),
]


@pytest.mark.parametrize("name,scores,labels,rule,expected", CASES, ids=[c[0] for c in CASES])
def test_choose_threshold_hand_computed(name, scores, labels, rule, expected):
    assert choose_threshold(scores, labels, rule) == pytest.approx(expected)


@pytest.mark.parametrize(
    "scores,labels",
    [
        ([0.2, 0.7, 0.9], [1, 1, 1]),  # no negative
        ([0.4, 0.4, 0.4, 0.4], [0, 1, 0, 1]),  # one distinct score
        ([0.9, 0.1], [0, 1]),  # anti-correlated: J = -1 at the only cut
    ],
)
def test_choose_threshold_undefined(scores, labels):
    assert choose_threshold(scores, labels) is None


@pytest.mark.parametrize(
    "scores,labels,match",
    [
        ([0.1, 0.2], [0, 1, 1], "same length"),
        ([0.1, 0.2], [0, 2], "labels must be 0 or 1"),
        ([0.1, float("nan")], [0, 1], "finite"),
    ],
)
def test_choose_threshold_bad_input(scores, labels, match):
    with pytest.raises(ValueError, match=match):
        choose_threshold(scores, labels)
    with pytest.raises(ValueError, match="youden"):
        choose_threshold([0.1, 0.9], [0, 1], rule="auc")


def test_decision_metrics_hand_computed():
    p = torch.tensor([[0.2], [0.6], [0.7], [0.4]])
    y = torch.tensor([[0.0], [0.0], [1.0], [1.0]])
    at_half = decision_metrics(p, y, 0.5)  # decisions 0 1 1 0: sens 1/2, spec 1/2
    assert at_half["accuracy"].tolist() == [0.5] and at_half["balanced_accuracy"].tolist() == [0.5]
    at_03 = decision_metrics(p, y, [0.3])  # decisions 0 1 1 1: sens 1, spec 1/2
    assert at_03["accuracy"].tolist() == [0.75] and at_03["balanced_accuracy"].tolist() == [0.75]
    no_pos = decision_metrics(p, torch.zeros_like(y), 0.5)
    assert math.isnan(float(no_pos["balanced_accuracy"][0])) and float(no_pos["accuracy"][0]) == 0.5


def test_apply_threshold_per_class():
    item = torch.tensor([0.5, 0.5])
    assert apply_threshold(item, torch.tensor([0.3, 0.7])).tolist() == [1.0, 0.0]
    batch = torch.tensor([[0.5, 0.5], [0.8, 0.2]])
    assert apply_threshold(batch, torch.tensor([0.3, 0.7]), channel_dim=1).tolist() == [[1.0, 0.0], [1.0, 0.0]]
    dt = DecisionThreshold()  # nothing chosen yet: its default 0.5
    assert apply_threshold(torch.tensor([0.49, 0.5]), dt).tolist() == [0.0, 1.0]
    dt.load_state_dict({"threshold": torch.tensor([0.45])})
    assert apply_threshold(torch.tensor([0.46]), dt).tolist() == [1.0]


def _engine():
    """An engine whose output is each batch's {"pred", "label"} (batch tensors, as a MONAI evaluator's dict)."""
    return Engine(lambda engine, batch: {"pred": batch[0], "label": batch[1]})


def test_handler_chooses_and_reports():
    # two iterations; the scores of the "shifted" case + two more: 0.05 0.1 0.12 | 0.2 0.3 0.25 -> cut 0.16
    batches = [
        (torch.tensor([[0.05], [0.2], [0.1]]), torch.tensor([[0.0], [1.0], [0.0]])),
        (torch.tensor([[0.3], [0.12], [0.25]]), torch.tensor([[1.0], [0.0], [1.0]])),
    ]
    dt = DecisionThreshold(rule="youden")
    engine = _engine()
    dt.attach(engine)
    dt.attach(engine)  # idempotent
    engine.run(batches, max_epochs=1)
    m = engine.state.metrics
    assert m["val_threshold"] == pytest.approx(0.16)
    assert m["val_accuracy"] == 1.0 and m["val_balanced_accuracy"] == 1.0
    assert dt.state_dict()["threshold"].tolist() == pytest.approx([0.16])
    # the same predictions at a kept threshold of 0.5: every score below it -> accuracy 1/2, balanced 1/2
    fixed = DecisionThreshold(rule=None, threshold=0.5, metric_prefix="")
    engine = _engine()
    fixed.attach(engine)
    engine.run(batches, max_epochs=1)
    assert engine.state.metrics == {"threshold": 0.5, "accuracy": 0.5, "balanced_accuracy": 0.5}


def test_handler_multiclass_and_undefined_class(caplog):
    # class 0 separable at 0.45; class 1 has no positive: keeps the default and warns
    p = torch.tensor([[0.1, 0.9], [0.3, 0.2], [0.6, 0.4], [0.8, 0.7]])
    y = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    dt = DecisionThreshold()
    engine = _engine()
    dt.attach(engine)
    with caplog.at_level(logging.WARNING):
        engine.run([(p, y)], max_epochs=1)
    assert "class 1" in caplog.text
    m = engine.state.metrics
    assert m["val_threshold_0"] == pytest.approx(0.45) and m["val_threshold_1"] == 0.5
    # class 0: accuracy 1; class 1 at 0.5: decisions 1 0 0 1 vs all 0 -> accuracy 1/2; balanced: class 1 NaN
    assert m["val_accuracy"] == pytest.approx(0.75) and m["val_balanced_accuracy"] == 1.0


def test_state_dict_in_checkpoint_and_loader(tmp_path, caplog):
    net = nn.Linear(2, 1)
    dt = DecisionThreshold()
    dt.load_state_dict({"threshold": torch.tensor([0.37])})
    engine = Engine(lambda e, b: None)
    saver = Checkpoint({"model": net, "threshold": dt}, DiskSaver(tmp_path, require_empty=False), filename_prefix="m")
    saver(engine)
    path = tmp_path / saver.last_checkpoint
    saved = torch.load(path, weights_only=True)
    assert saved["threshold"]["threshold"].tolist() == pytest.approx([0.37])
    assert load_decision_threshold(path, 1).tolist() == pytest.approx([0.37])
    # restore into a new object through ignite, as a resume would
    other = DecisionThreshold()
    Checkpoint.load_objects({"threshold": other}, saved)
    assert other.threshold.tolist() == pytest.approx([0.37])
    # a bare state dict (older model.pt): 0.5 per class, logged
    torch.save(net.state_dict(), tmp_path / "old.pt")
    with caplog.at_level(logging.WARNING):
        assert load_decision_threshold(tmp_path / "old.pt", 3).tolist() == [0.5, 0.5, 0.5]
    assert "no decision threshold" in caplog.text
    assert load_decision_threshold({"threshold": torch.tensor(0.2)}, 2).tolist() == pytest.approx([0.2, 0.2])
    with pytest.raises(ValueError, match="2 classes"):
        load_decision_threshold({"threshold": torch.tensor([0.2, 0.3, 0.4])}, 2)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_decision_threshold(tmp_path / "missing.pt", 1)
    with pytest.raises(KeyError, match="threshold"):
        DecisionThreshold().load_state_dict({"t": torch.tensor([0.1])})
