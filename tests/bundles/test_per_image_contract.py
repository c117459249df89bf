"""evaluate.json writes the per-image results table (the contract the study reads), per-image 0/1 correctness, the
saliency figure of the checkpoint (the study's gallery), and no RuntimeWarning in a normal run (issues 10 and 11)."""

from __future__ import annotations

import csv
import warnings

import pytest
from monai.bundle import ConfigWorkflow

from monai_explain.handlers import PER_IMAGE_COLUMNS, load_decision_threshold

from .conftest import CONFIGS, TINY

pytestmark = pytest.mark.slow


def _workflow(root, data, configs, workflow_type, **override):
    return ConfigWorkflow(
        config_file=[str(CONFIGS / c) for c in configs],
        meta_file=str(CONFIGS / "metadata.json"),
        workflow_type=workflow_type,
        bundle_root=str(root),
        dataset_dir=str(data),
        **{**TINY, **override},
    )


def test_evaluate_writes_the_per_image_table(tmp_path, tiny_dataset, no_tracking_env):
    train = _workflow(tmp_path, tiny_dataset, ("train.json",), "train", epochs=1)
    train.initialize()
    train.run()
    train.finalize()
    ev = _workflow(tmp_path, tiny_dataset, ("train.json", "evaluate.json"), None, test_split="test_shifted")
    ev.initialize()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # e.g. "Mean of empty slice" from unannotated images
        ev.run()
    ev.finalize()
    out = tmp_path / "eval" / "test_shifted"
    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and tuple(rows[0])[: len(PER_IMAGE_COLUMNS)] == PER_IMAGE_COLUMNS
    for name in ("saliency_precision", "saliency_coverage", "chance_level", "deletion_auc", "insertion_auc"):
        assert name in rows[0], name
    with open(out / "predictions.csv") as f:
        probs = {r[0]: float(r[1]) for r in csv.reader(f) if r}
    saved = float(load_decision_threshold(tmp_path / "models" / "model.pt", 1)[0])
    for r in rows:
        assert r["split"] == "test_shifted" and r["class"] == "Nodule/Mass"
        assert float(r["threshold"]) == pytest.approx(saved, abs=1e-6), "the threshold saved with the model"
        assert float(r["probability"]) == pytest.approx(probs[r["id"]], abs=1e-4)
        assert int(r["correct"]) == int(int(r["decision"]) == int(r["label"]))
        assert (r["saliency_precision"] == "") == (r["label"] == "0")  # scored for annotated images only
    with open(out / "metrics.csv") as f:
        accuracy = {k: float(v) for k, v in csv.reader(f)}["accuracy"]
    assert accuracy == pytest.approx(sum(int(r["correct"]) for r in rows) / 8)
    with open(out / "correct_raw.csv") as f:
        raw = list(csv.reader(f))[1:]
    assert len(raw) == 8 and {float(r[1]) for r in raw} <= {0.0, 1.0}
    assert not (out / "accuracy_raw.csv").exists(), "no confusion vectors"
    overlay = out / "saliency_overlay.png"
    assert overlay.read_bytes()[:4] == b"\x89PNG" and overlay.stat().st_size > 5000, "the checkpoint's saliency figure"
