"""Every tutorial executed end to end as a script with ``--quick``, and the files and numbers it writes checked."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

pytestmark = pytest.mark.slow

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"
REPO = TUTORIALS.parent


def _run(script: str, workdir: Path, timeout: int) -> str:
    """Run ``tutorials/<script> --quick --workdir <workdir>`` from the repository root; returns its stdout."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    # one thread: the quick settings are tiny, and several OpenMP threads on a shared CPU only wait for each other
    env.update(OMP_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    result = subprocess.run(
        [sys.executable, str(TUTORIALS / script), "--quick", "--workdir", str(workdir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result.stdout


def _in_unit_interval(value: float) -> bool:
    return 0.0 <= value <= 1.0


def test_readme_lists_every_tutorial():
    readme = (TUTORIALS / "README.md").read_text()
    scripts = sorted(p.name for p in TUTORIALS.glob("[0-9][0-9]_*.py"))
    assert len(scripts) == 4
    for name in scripts:
        assert name in readme, name
        text = (TUTORIALS / name).read_text()
        assert text.startswith("# %% [markdown]\n# # "), f"{name}: a percent-format notebook with a title cell"
        assert "--quick" in text and "--workdir" in text


def test_01_add_explanation_supervision(tmp_path):
    out = _run("01_add_explanation_supervision.py", tmp_path, timeout=420)
    results = json.loads((tmp_path / "results.json").read_text())
    assert sorted(results) == ["lambda=0/test", "lambda=0/test_shifted", "lambda=1/test", "lambda=1/test_shifted"]
    for key, metrics in results.items():
        assert set(metrics) == {"auc", "accuracy", "saliency_precision", "saliency_coverage", "chance_level"}, key
        assert all(_in_unit_interval(v) for v in metrics.values()), (key, metrics)
        assert 0.0 < metrics["chance_level"] < 0.2, "a lesion box is a small part of the image"
    for split in ("test", "test_shifted"):  # the chance level depends on the masks only, not on the model
        assert results[f"lambda=0/{split}"]["chance_level"] == results[f"lambda=1/{split}"]["chance_level"]
    for key, metrics in results.items():  # the printed table shows the saved numbers
        name, split = key.split("/")
        row = next(line.split() for line in out.splitlines() if line.split()[:2] == [name, split])
        assert [float(v) for v in row[2:]] == pytest.approx(
            [metrics[c] for c in ("auc", "accuracy", "saliency_precision", "saliency_coverage", "chance_level")],
            abs=5e-4 + 1e-9,
        )
    # the handler ran: the supervised trainer's epoch line carries the explanation term and lambda
    epoch = re.search(r"epoch 1/1: loss ([\d.]+), task_loss ([\d.]+), expl_loss ([\d.]+), lambda ([\d.]+)", out)
    assert epoch is not None, out[-2000:]
    loss, task, expl, lam = (float(v) for v in epoch.groups())
    assert 0.0 < lam <= 1.0 and 0.0 < expl <= 1.0
    assert loss == pytest.approx(task + lam * expl, abs=2e-4)
    # the plain PyTorch loop: total = task + 1.0 * explanation, three steps, no hooks left behind
    steps = re.findall(r"step (\d): task ([\d.]+)  explanation ([\d.]+)  total ([\d.]+)", out)
    assert [s[0] for s in steps] == ["0", "1", "2"]
    for _, task, expl, total in steps:
        assert float(total) == pytest.approx(float(task) + float(expl), abs=2e-4)
    assert "hooks left on the network after the loop: False" in out


def test_02_bundle_on_your_data(tmp_path):
    out = _run("02_bundle_on_your_data.py", tmp_path, timeout=420)
    # the stand-ins are written in the published formats
    with open(tmp_path / "rsna-pneumonia" / "stage_2_train_labels.csv") as f:
        rsna = list(csv.reader(f))
    assert rsna[0] == ["patientId", "x", "y", "width", "height", "Target"]
    assert len(rsna) == 1 + 40, "24 + 8 + 8 images, one lesion (box) per positive, one row per negative"
    assert sum(r[5] == "1" for r in rsna[1:]) == 20 and all(r[1:5] == [""] * 4 for r in rsna[1:] if r[5] == "0")
    assert len(list((tmp_path / "rsna-pneumonia" / "stage_2_train_images").glob("*.dcm"))) == 40
    with open(tmp_path / "siim-acr" / "train-rle.csv") as f:
        siim = list(csv.reader(f))
    assert siim[0] == ["ImageId", " EncodedPixels"]
    assert sum(r[1] == "-1" for r in siim[1:]) == 20 and len(siim) == 41
    assert len(list((tmp_path / "siim-acr" / "dicom-images-train").glob("*/*/*.dcm"))) == 40
    override = json.loads((tmp_path / "siim_rle_mask.json").read_text())
    assert override["preprocessing_transforms#1"]["_target_"] == "monai_explain.transforms.RLEToMaskd"
    assert "RLE mask covers columns" in out  # the script asserts that the mask matches the lesion box
    assert "--box_fusion '$None'" in out, "the printed RSNA command turns reader fusion off"

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert sorted(metrics) == ["rsna", "siim", "vindr"]
    keys = {"val_auc", "val_accuracy", "val_saliency_precision", "val_saliency_coverage", "val_chance_level"}
    for name, m in metrics.items():
        assert keys <= set(m), name
        assert all(_in_unit_interval(m[k]) for k in keys), (name, m)
        assert 0.0 < m["val_chance_level"] < 0.2, name
        assert (tmp_path / "runs" / name / "models" / "model.pt").is_file(), name
        assert (tmp_path / "runs" / name / "models" / "last_checkpoint_epoch=1.pt").is_file(), name
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns.db'}")
    for name in metrics:
        (run,) = client.search_runs([client.get_experiment_by_name(f"cxr_expl_{name}").experiment_id])
        assert run.info.status == "FINISHED" and run.data.params["dataset"] == name


def test_03_tradeoff_study(tmp_path):
    out = _run("03_tradeoff_study.py", tmp_path, timeout=480)
    report = tmp_path / "sweep" / "report"
    for name in ("per_image.csv", "runs.csv", "summary.csv", "stats.csv", "pareto.csv", "summary.md", "pareto.png"):
        assert (report / name).is_file(), name
    with open(report / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert sorted({(r["design"], float(r["lambda"]), r["seed"]) for r in runs}) == [
        ("energy", 1.0, "0"),
        ("none", 0.0, "0"),
    ]
    assert "[2/2]" in out and "best-aligned supervised setting" in out
    with open(report / "summary.csv") as f:
        summary = {(r["setting"], r["split"], r["metric"]): float(r["mean"]) for r in csv.DictReader(f)}
    headline = [("test", "accuracy"), ("test_shifted", "accuracy"), ("test", "saliency_precision"),
                ("test", "chance_level"), ("test", "saliency_coverage"), ("test", "deletion_auc")]  # fmt: skip
    for setting in ("energy lambda=1", "none lambda=0"):  # the printed headline table shows summary.csv's means
        printed = next(line for line in out.splitlines() if line.strip().startswith(setting))
        values = [float(v) for v in printed.split()[-6:]]
        tolerance = 5e-4 + 1e-9  # printed to 3 decimals: half a unit, plus float error
        assert values == pytest.approx([summary[(setting, s, m)] for s, m in headline], abs=tolerance), setting


def test_04_3d_recipe(tmp_path):
    out = _run("04_3d_recipe.py", tmp_path, timeout=420)
    assert "first nodule at RAS" in out  # the script asserts that the sphere mask sits on the nodule voxels
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    columns = ("auc", "accuracy", "saliency_precision", "saliency_coverage", "chance_level", "pointing_game")
    runs = [f"{m}/{s}" for m in ("baseline", "supervised") for s in ("test", "test_shifted")]
    assert sorted(metrics) == sorted(f"{r}/{c}" for r in runs for c in columns)
    for key, value in metrics.items():
        assert math.isfinite(value) and _in_unit_interval(value), (key, value)
    for split in ("test", "test_shifted"):  # the chance level depends on the masks only
        chance = metrics[f"baseline/{split}/chance_level"]
        assert chance == metrics[f"supervised/{split}/chance_level"] and 0.0 < chance < 0.05
    for name in ("baseline", "supervised"):
        assert (tmp_path / "runs" / name / "models" / "model.pt").is_file(), name
    for key in runs:  # the printed table shows the saved numbers
        row = next(line.split() for line in out.splitlines() if line.startswith(key + " "))
        assert [float(v) for v in row[1:]] == pytest.approx([metrics[f"{key}/{c}"] for c in columns], abs=5e-4 + 1e-9)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns.db'}")
    runs_logged = client.search_runs([client.get_experiment_by_name("ct_expl").experiment_id])
    assert {"baseline", "supervised"} <= {r.info.run_name for r in runs_logged}
