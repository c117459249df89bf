"""The sweep command on a 2 designs x 2 lambdas x 1 seed grid at tiny settings: report files and numbers agree with
the MLflow runs; a second invocation trains nothing again."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import mlflow
import pytest

from monai_explain.apps.study.__main__ import main
from monai_explain.apps.study.sweep import sweep_settings

pytestmark = pytest.mark.slow

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "cxr_expl"


def test_sweep_settings_share_the_lambda_zero_baseline():
    names = [s.name for s in sweep_settings(["energy", "dice"], [0, 0.5], [0, 1])]
    assert names == [
        "none_lambda0_seed0", "energy_lambda0.5_seed0", "dice_lambda0.5_seed0",
        "none_lambda0_seed1", "energy_lambda0.5_seed1", "dice_lambda0.5_seed1",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="lambdas must be >= 0"):
        sweep_settings(["energy"], [-1.0], [0])


def test_sweep_report_matches_mlflow(tmp_path, tiny_dataset, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "sweep"
    args = [
        "sweep", "--bundle", str(BUNDLE), "--designs", "energy", "outside", "--lambdas", "0", "1", "--seeds", "0",
        "--out", str(out), "--set", f"dataset_dir={tiny_dataset}", "epochs=1", "batch_size=8", "image_size=[64,64]",
        "faithfulness_steps=5", "synthetic#n_train=24", "synthetic#n_val=8", "synthetic#n_test=8",
        "synthetic#n_test_shifted=8", "synthetic#image_size=64",
    ]  # fmt: skip
    assert main(args) == 0
    report = out / "report"
    for name in ("runs.csv", "summary.csv", "stats.csv", "pareto.csv", "summary.md", "pareto.png", "gallery.png"):
        assert (report / name).is_file(), name
    assert list(report.glob("tradeoff_*.png")), "trade-off plots"

    with open(report / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert sorted((r["design"], float(r["lambda"])) for r in runs) == [("energy", 1.0), ("none", 0.0), ("outside", 1.0)]

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{out}/mlruns.db")
    exp = client.get_experiment_by_name("sweep")
    for row in runs:
        run = client.get_run(row["run_id"])
        assert run.data.params["design"] == row["design"]
        assert float(run.data.params["lambda"]) == float(row["lambda"])
        for key in ("accuracy", "accuracy_shifted", "precision", "coverage", "chance_level", "deletion_auc"):
            assert run.data.metrics[f"test_{key}"] == pytest.approx(float(row[key]), abs=1e-9), key
    assert len(client.search_runs([exp.experiment_id])) >= 3

    summary = (report / "summary.md").read_text()
    assert "accuracy_shifted" in summary and "gallery.png" in summary

    # resumable: the finished settings are read back, nothing is trained again
    before = {p: p.stat().st_mtime for p in out.glob("runs/*/models/model.pt")}
    assert main(args) == 0
    assert before == {p: p.stat().st_mtime for p in out.glob("runs/*/models/model.pt")}
    record = json.loads((out / "runs" / "none_lambda0_seed0" / "run.json").read_text())
    assert record["design"] == "none" and record["lambda"] == 0.0
