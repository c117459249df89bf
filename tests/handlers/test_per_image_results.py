"""PerImageResultsWriter + SaliencyOutputHandler + FaithfulnessHandler on a stock MONAI SupervisedEvaluator:
one row per image and class, values checked against the metric handlers and by hand, the saved threshold used."""

from __future__ import annotations

import csv
import math
import warnings

import pytest
import torch
from monai.engines import SupervisedEvaluator
from monai.handlers import MetricsSaver, from_engine
from monai.transforms import Activationsd

from monai_explain.handlers import (
    FaithfulnessHandler,
    PerImageResultsWriter,
    SaliencyOutputHandler,
    SaliencyPrecisionHandler,
    resolve_threshold,
)
from monai_explain.saliency import CAM

CLASSES = ["Nodule/Mass", "Effusion"]


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, len(CLASSES)),
    )


def _batches() -> list[dict]:
    g = torch.Generator().manual_seed(3)
    out = []
    for b in range(2):
        image = torch.rand(3, 1, 16, 16, generator=g)
        label = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]) if b == 0 else torch.tensor([[0.0, 0.0]] * 3)
        mask = torch.zeros(3, 2, 16, 16)  # the second batch (all negative) has no annotation
        if b == 0:
            mask[0, 0, 2:8, 2:8] = 1.0
            mask[1, 1, 8:14, 4:12] = 1.0
            mask[2, 0, 1:5, 10:15] = 1.0  # image 2 has class 1 but no annotation of it: NaN there
        out.append({"image": image, "label": label, "mask": mask, "id": [f"img{3 * b + i}" for i in range(3)]})
    return out


def _evaluate(tmp_path, net, **writer_kwargs):
    saliency = SaliencyOutputHandler(CAM(net, "1", "4"))
    precision = SaliencyPrecisionHandler(output_transform=from_engine(["saliency", "mask"]))
    ev = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=_batches(),
        network=net,
        postprocessing=Activationsd(keys="pred", sigmoid=True),
        key_val_metric={"saliency_precision": precision},
        val_handlers=[
            saliency,
            FaithfulnessHandler("deletion_auc", steps=4, batch_size=8),
            PerImageResultsWriter(tmp_path, split="external", class_names=CLASSES, **writer_kwargs),
            MetricsSaver(
                str(tmp_path),
                metrics="*",
                metric_details=["correct"],
                batch_transform=lambda batch: [{"filename_or_obj": b["id"]} for b in batch],
            ),
        ],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        ev.run()
    with open(tmp_path / "per_image.csv") as f:
        return ev, list(csv.DictReader(f))


def test_one_row_per_image_and_class_with_the_metrics_of_that_pair(tmp_path):
    net = _model()
    ev, rows = _evaluate(tmp_path, net)
    assert len(rows) == 6 * 2
    assert list(rows[0])[:8] == ["id", "split", "class", "label", "probability", "threshold", "decision", "correct"]
    assert {"saliency_precision", "deletion_auc"} <= set(rows[0])
    assert [r["id"] for r in rows[:4]] == ["img0", "img0", "img1", "img1"]
    assert {r["split"] for r in rows} == {"external"} and [r["class"] for r in rows[:2]] == CLASSES

    with torch.no_grad():
        probs = torch.sigmoid(net(torch.cat([b["image"] for b in _batches()])))
    labels = torch.cat([b["label"] for b in _batches()])
    for r in rows:
        i, k = int(r["id"][3:]), CLASSES.index(r["class"])
        assert float(r["probability"]) == pytest.approx(float(probs[i, k]), abs=1e-6)
        assert float(r["threshold"]) == 0.5
        assert int(r["decision"]) == int(probs[i, k] >= 0.5)
        assert int(r["correct"]) == int(int(r["decision"]) == int(labels[i, k]))
        assert int(r["label"]) == int(labels[i, k])

    details = ev.state.metric_details
    annotated = {(0, 0), (1, 1), (2, 0)}
    for r in rows:
        i, k = int(r["id"][3:]), CLASSES.index(r["class"])
        for name in ("saliency_precision", "deletion_auc"):
            if (i, k) in annotated:  # alignment and faithfulness score the same (image, class) pairs
                assert float(r[name]) == pytest.approx(float(details[name][i, k]), abs=1e-12), (name, i, k)
            else:
                assert r[name] == "" and math.isnan(float(details[name][i, k])), (name, i, k)
    assert details["correct"].shape == (6, 2)
    with open(tmp_path / "correct_raw.csv") as f:
        raw = list(csv.reader(f))
    assert raw[0] == ["filename", "class0", "class1", "mean"] and len(raw) == 7
    assert {float(c) for row in raw[1:] for c in row[1:3]} == {0.0, 1.0}, "per-image 0/1, not confusion vectors"


def test_threshold_read_from_the_checkpoint(tmp_path):
    net = _model()
    ckpt = tmp_path / "model.pt"
    torch.save({"model": net.state_dict(), "threshold": torch.tensor([0.2, 0.9])}, ckpt)
    _, rows = _evaluate(tmp_path, net, checkpoint=ckpt)
    for r in rows:
        t = 0.2 if r["class"] == CLASSES[0] else 0.9
        assert float(r["threshold"]) == pytest.approx(t)
        assert int(r["decision"]) == int(float(r["probability"]) >= t)


class _Saved:
    def state_dict(self):
        return {"threshold": torch.tensor([0.3])}


@pytest.mark.parametrize(
    "threshold, expected", [(None, [0.5, 0.5]), (0.7, [0.7, 0.7]), ([0.1, 0.6], [0.1, 0.6]), (_Saved(), [0.3, 0.3])]
)
def test_resolve_threshold(threshold, expected):
    assert resolve_threshold(threshold, 2).tolist() == pytest.approx(expected)


@pytest.mark.parametrize("threshold, match", [([0.1, 0.2, 0.3], "C=2 values"), (1.5, "in \\[0, 1\\]")])
def test_bad_threshold(threshold, match):
    with pytest.raises(ValueError, match=match):
        resolve_threshold(threshold, 2)


def test_missing_id_key_is_named(tmp_path):
    with pytest.raises(Exception, match="no image id key 'case'"):
        _evaluate(tmp_path, _model(), id_key="case")


def test_inference_table_without_labels_flags_all_zero_maps(tmp_path):
    """Inference: no labels (label and correct empty), every class explained, all-zero maps flagged and counted."""
    net = _model()
    batches = [{"image": b["image"], "id": b["id"]} for b in _batches()]
    ev = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=batches,
        network=net,
        postprocessing=Activationsd(keys="pred", sigmoid=True),
        val_handlers=[
            SaliencyOutputHandler(CAM(net, "1", "4"), mask_key=None, target="all"),
            PerImageResultsWriter(
                tmp_path,
                split="infer",
                class_names=CLASSES,
                threshold=[0.4, 0.6],
                filename="predictions.csv",
                saliency_key="saliency",
            ),
        ],
    )
    ev.run()
    with open(tmp_path / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 * len(CLASSES) and list(rows[0])[-1] == "saliency_empty"
    assert all(r["label"] == "" and r["correct"] == "" for r in rows)
    for r in rows:
        thr = 0.4 if r["class"] == CLASSES[0] else 0.6
        assert int(r["decision"]) == int(float(r["probability"]) >= thr)
    # by hand: a ReLU'd CAM is all zero exactly where every channel-weighted activation is <= 0
    maps = {}
    with torch.no_grad():
        for b in batches:
            feats = net[1](net[0](b["image"]))
            cam = torch.einsum("kc,bchw->bkhw", net[4].weight, feats).clamp(min=0)
            for i, name in enumerate(b["id"]):
                for k, c in enumerate(CLASSES):
                    maps[(name, c)] = int(bool((cam[i, k] == 0).all()))
    assert {(r["id"], r["class"]): int(r["saliency_empty"]) for r in rows} == maps
