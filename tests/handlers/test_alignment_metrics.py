from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Engine
from monai.engines import SupervisedEvaluator
from monai.engines.utils import IterationEvents
from monai.handlers import from_engine
from torch import nn

from monai_explain.handlers import (
    ChanceLevelHandler,
    PointingGameHandler,
    SaliencyCoverageHandler,
    SaliencyIoUHandler,
    SaliencyPrecisionHandler,
)
from monai_explain.metrics import (
    compute_chance_level,
    compute_pointing_game,
    compute_saliency_coverage,
    compute_saliency_iou,
    compute_saliency_precision,
)


def _batches():
    """Two iterations of two 2D items; item 3 has an empty mask."""
    s = torch.tensor(
        [
            [[[0.9, 0.1], [0.2, 0.8]]],
            [[[0.1, 0.2], [0.3, 0.4]]],
            [[[0.5, 0.6], [0.7, 0.1]]],
            [[[0.4, 0.3], [0.2, 0.1]]],
        ]
    )
    m = torch.tensor(
        [
            [[[1.0, 1.0], [0.0, 0.0]]],
            [[[0.0, 0.0], [0.0, 1.0]]],
            [[[1.0, 0.0], [0.0, 0.0]]],
            [[[0.0, 0.0], [0.0, 0.0]]],
        ]
    )
    return s, m


# Hand-computed over the three non-empty items (top 25% = the single maximum):
#   precision: 1 (0.9 in top row), 1 (0.4 in mask), 0 (0.7 outside)  -> 2/3
#   coverage:  1/2, 1, 0                                                -> 1/2
#   chance:    1/2, 1/4, 1/4                                            -> 1/3
#   pointing:  1, 1, 0                                                  -> 2/3
EXPECTED = {"precision": 2 / 3, "coverage": 0.5, "chance": 1 / 3, "pointing": 2 / 3}


def _handlers():
    return {
        "precision": SaliencyPrecisionHandler(fraction=0.25),
        "coverage": SaliencyCoverageHandler(fraction=0.25),
        "chance": ChanceLevelHandler(),
        "pointing": PointingGameHandler(),
        "iou": SaliencyIoUHandler(),
        "mass": SaliencyPrecisionHandler(mode="mass"),
    }


def _run(process, data):
    engine = Engine(process)
    for name, handler in _handlers().items():
        handler.attach(engine, name)
    engine.run(data, max_epochs=1)
    return engine


def _expected_all(s, m):
    keep = [0, 1, 2]
    return {
        "iou": compute_saliency_iou(s, m)[keep].mean().item(),
        "mass": compute_saliency_precision(s, m, mode="mass")[keep].mean().item(),
    }


def test_handlers_on_decollated_output():
    s, m = _batches()
    data = [(s[:2], m[:2]), (s[2:], m[2:])]

    def process(engine, batch):
        return [{"saliency": si, "mask": mi, "pred": torch.zeros(2)} for si, mi in zip(*batch)]

    engine = _run(process, data)
    metrics = engine.state.metrics
    for key, value in EXPECTED.items():
        assert metrics[key] == pytest.approx(value), key
    for key, value in _expected_all(s, m).items():
        assert metrics[key] == pytest.approx(value), key
    details = engine.state.metric_details["precision"]
    assert details.shape == (4, 1) and math.isnan(details[3, 0])


def test_handlers_on_batch_dict_output():
    s, m = _batches()
    data = [(s[:2], m[:2]), (s[2:], m[2:])]
    engine = _run(lambda e, b: {"saliency": b[0], "mask": b[1]}, data)
    for key, value in EXPECTED.items():
        assert engine.state.metrics[key] == pytest.approx(value), key


def test_custom_output_transform_and_per_instance():
    s, _ = _batches()
    inst = torch.zeros(4, 1, 2, 2, dtype=torch.long)
    inst[0, 0, 0, 0] = 1  # found (0.9)
    inst[0, 0, 1, 1] = 2  # missed with top 25%
    inst[1, 0, 1, 1] = 1  # found (0.4)
    engine = Engine(lambda e, b: {"cam": b[0], "instances": b[1]})
    SaliencyCoverageHandler(
        per_instance=True, fraction=0.25, output_transform=from_engine(["cam", "instances"])
    ).attach(engine, "instances_found")
    engine.run([(s, inst)], max_epochs=1)
    assert engine.state.metrics["instances_found"] == pytest.approx((0.5 + 1.0) / 2)


def test_mean_batch_reduction_per_channel():
    s = torch.rand(3, 2, 4, 4)
    m = (torch.rand(3, 2, 4, 4) > 0.5).float()
    engine = Engine(lambda e, b: {"saliency": b[0], "mask": b[1]})
    SaliencyCoverageHandler(reduction="mean_batch").attach(engine, "coverage")
    engine.run([(s, m)], max_epochs=1)
    expected = compute_saliency_coverage(s, m).mean(0)
    torch.testing.assert_close(engine.state.metrics["coverage"], expected)


def test_with_monai_supervised_evaluator():
    """The handlers read the keys a saliency handler adds to a real MONAI evaluator's (decollated) output."""
    s, m = _batches()
    loader = [
        {"image": s[:2], "label": torch.tensor([0, 1]), "mask": m[:2]},
        {"image": s[2:], "label": torch.tensor([1, 0]), "mask": m[2:]},
    ]
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))

    def add_saliency(engine):  # stand-in for SaliencyOutputHandler: the image itself is the "saliency"
        engine.state.output["saliency"] = engine.state.output["image"]
        engine.state.output["mask"] = engine.state.batch["mask"]

    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=loader,
        network=net,
        key_val_metric={"precision": SaliencyPrecisionHandler(fraction=0.25)},
        additional_metrics={
            "coverage": SaliencyCoverageHandler(fraction=0.25),
            "chance": ChanceLevelHandler(),
            "pointing": PointingGameHandler(),
        },
        decollate=True,
    )
    evaluator.add_event_handler(IterationEvents.FORWARD_COMPLETED, add_saliency)
    evaluator.run()
    for key, value in EXPECTED.items():
        assert evaluator.state.metrics[key] == pytest.approx(value), key
    assert evaluator.state.best_metric == pytest.approx(EXPECTED["precision"])


def test_functional_expectations_are_consistent():
    s, m = _batches()
    keep = [0, 1, 2]
    assert compute_saliency_precision(s, m, fraction=0.25)[keep].mean().item() == pytest.approx(EXPECTED["precision"])
    assert compute_saliency_coverage(s, m, fraction=0.25)[keep].mean().item() == pytest.approx(EXPECTED["coverage"])
    assert compute_chance_level(m)[keep].mean().item() == pytest.approx(EXPECTED["chance"])
    assert compute_pointing_game(s, m)[keep].mean().item() == pytest.approx(EXPECTED["pointing"])


def test_split_without_annotations_reports_nan_and_the_count(caplog):
    """Before: precision, coverage and chance logged 0.0000 on a split with no annotated image."""
    s, _ = _batches()
    empty = torch.zeros(4, 1, 2, 2)
    with caplog.at_level("INFO", logger="monai_explain.handlers.alignment_metrics"):
        engine = _run(lambda e, b: {"saliency": b[0], "mask": b[1]}, [(s[:2], empty[:2]), (s[2:], empty[2:])])
    for key in ("precision", "coverage", "chance", "pointing", "iou", "mass"):
        assert math.isnan(engine.state.metrics[key]), key
    assert "precision: none of the 4 images has an annotation" in caplog.text


def test_count_of_annotated_images_is_logged(caplog):
    s, m = _batches()
    with caplog.at_level("INFO", logger="monai_explain.handlers.alignment_metrics"):
        engine = _run(lambda e, b: {"saliency": b[0], "mask": b[1]}, [(s, m)])
    assert engine.state.metrics["precision"] == pytest.approx(EXPECTED["precision"])
    assert "precision: computed over 3 of 4 images" in caplog.text


def test_mean_batch_reduction_nan_only_for_the_channel_without_annotation():
    g = torch.Generator().manual_seed(4)
    s = torch.rand(3, 2, 4, 4, generator=g)
    m = torch.zeros(3, 2, 4, 4)
    m[:, 0, 1:3, 1:3] = 1.0  # channel 1 never annotated
    engine = Engine(lambda e, b: {"saliency": b[0], "mask": b[1]})
    SaliencyCoverageHandler(reduction="mean_batch").attach(engine, "coverage")
    engine.run([(s, m)], max_epochs=1)
    value = engine.state.metrics["coverage"]
    assert value[0] == pytest.approx(compute_saliency_coverage(s, m)[:, 0].mean().item()) and math.isnan(value[1])
