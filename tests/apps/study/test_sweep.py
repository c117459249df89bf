"""The sweep: settings, progress with ETA, and a real 2-run sweep of the cxr_expl bundle at tiny
settings (report files; the per-image tables are the evaluations' own; a second invocation trains nothing)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from monai_explain.apps.study import Progress, run_sweep, sweep_settings
from monai_explain.apps.study.__main__ import main
from monai_explain.apps.study.provenance import source_commit

BUNDLE = Path(__file__).resolve().parents[3] / "bundles" / "cxr_expl"


def test_sweep_settings_share_the_lambda_zero_baseline():
    names = [s.name for s in sweep_settings(["energy", "dice"], [0, 0.5], [0, 1])]
    assert names == [
        "none_lambda0_seed0", "energy_lambda0.5_seed0", "dice_lambda0.5_seed0",
        "none_lambda0_seed1", "energy_lambda0.5_seed1", "dice_lambda0.5_seed1",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="lambdas must be >= 0"):
        sweep_settings(["energy"], [-1.0], [0])


def test_progress_counts_runs_and_estimates_the_time_left():
    p = Progress(4)
    assert p.update("a", None) == "[1/4] a: finished earlier; 3 left, ETA n/a"
    assert p.update("b", 60.0) == "[2/4] b: 60 s; 2 left, ETA 2.0 min"
    assert p.update("c", 180.0) == "[3/4] c: 180 s; 1 left, ETA 2.0 min"  # mean 120 s x 1
    assert p.update("d", 30.0).endswith("0 left, done")


@pytest.mark.slow
def test_sweep_runs_the_bundle_and_reports(tmp_path, tiny_dataset, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "sweep"
    args = [
        "sweep", "--bundle", str(BUNDLE), "--designs", "energy", "--lambdas", "0", "1", "--seeds", "0",
        "--out", str(out), "--n_resamples", "200", "--set", f"dataset_dir={tiny_dataset}", "epochs=1",
        "batch_size=8", "image_size=[64,64]", "faithfulness_steps=5", "synthetic#n_train=24", "synthetic#n_val=8",
        "synthetic#n_test=8", "synthetic#n_test_shifted=8", "synthetic#image_size=64",
    ]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "[1/2] none_lambda0_seed0" in printed and "[2/2] energy_lambda1_seed0" in printed and "done" in printed
    report = out / "report"
    for name in ("per_image.csv", "runs.csv", "summary.csv", "stats.csv", "pareto.csv", "summary.md", "gallery.png"):
        assert (report / name).is_file(), name
    table = pd.read_csv(report / "per_image.csv")
    assert set(table["split"]) == {"test", "test_shifted"} and len(table) == 2 * 2 * 8
    evaluated = pd.read_csv(out / "runs" / "energy_lambda1_seed0" / "test_shifted" / "per_image.csv")
    mine = table[(table["design"] == "energy") & (table["split"] == "test_shifted")]
    assert sorted(mine["id"]) == sorted(evaluated["id"].astype(str))
    runs = pd.read_csv(report / "runs.csv")
    acc = runs[(runs["design"] == "energy") & (runs["split"] == "test_shifted") & (runs["metric"] == "accuracy")]
    assert acc["value"].iloc[0] == pytest.approx(evaluated["correct"].mean())
    assert "| test_shifted | Nodule/Mass | energy lambda=1 |" in (report / "summary.md").read_text()
    commit = json.loads((out / "runs" / "energy_lambda1_seed0" / "run.json").read_text())["commit"]
    assert commit == source_commit(BUNDLE)  # the code the run was trained with, as the report's provenance says
    assert f"2 runs, trained at `{commit}` (2);" in (report / "summary.md").read_text()

    before = {p: p.stat().st_mtime for p in out.glob("runs/*/models/model.pt")}
    assert main(args) == 0
    assert "finished earlier" in capsys.readouterr().out
    assert before == {p: p.stat().st_mtime for p in out.glob("runs/*/models/model.pt")}


def test_finished_runs_are_read_and_the_report_says_which_code_trained_them(tmp_path, caplog):
    """A run with a record is read, not retrained, whatever code the sweep has now: the provenance line counts the
    commits its runs were trained at, and a sweep mixing them warns."""
    table = pd.read_csv(Path(__file__).parent / "data" / "per_image_fixture.csv", dtype={"id": str})
    out, commits = tmp_path / "out", {0: "aaa", 1: None}
    for (design, lam, seed), rows in table[table["design"].isin(["none", "energy"]) & (table["lambda"] <= 1)].groupby(
        ["design", "lambda", "seed"]
    ):
        name = f"{design}_lambda{lam:g}_seed{seed}"
        path = out / "runs" / name / "test" / "per_image.csv"
        path.parent.mkdir(parents=True)
        rows.drop(columns=["design", "lambda", "seed"]).to_csv(path, index=False)
        record = {"design": design, "lambda": lam, "seed": seed, "name": name, "per_image": [str(path)], "seconds": 60}
        if commits[seed % 2]:
            record["commit"] = commits[seed % 2]
        (path.parent.parent / "run.json").write_text(json.dumps(record))
    (tmp_path / "bundle").mkdir()
    with caplog.at_level("WARNING"):
        summary = run_sweep(tmp_path / "bundle", ["energy"], [0, 1], [0, 1, 2], out, gallery=False, n_resamples=50)
    assert "6 runs, trained at `aaa` (4), not recorded (2); 6.0 min of run time in all" in summary.read_text()
    assert "Commit `unknown (not a git checkout)`" in summary.read_text()
    assert "trained at different commits or without a record ['aaa', 'not recorded']" in caplog.text
    assert "finished before runs recorded their settings; read as it is" in caplog.text

    # a run folder trained with other settings is never read (or resumed) as if it had this sweep's
    (out / "runs" / "energy_lambda1_seed2" / "settings.json").write_text(json.dumps({"epochs": 3, "lambda": 1.0}))
    with pytest.raises(ValueError, match=r"run energy_lambda1_seed2 was trained with \{'epochs': 3, .*but this sweep "
                       r"sets \{'epochs': 12, .*delete .*energy_lambda1_seed2 to train the run again"):  # fmt: skip
        run_sweep(tmp_path / "bundle", ["energy"], [0, 1], [0, 1, 2], out, {"epochs": 12}, gallery=False)
