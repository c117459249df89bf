"""The sweep: settings, the bundle contract, progress with ETA, and a real 2-run sweep of the cxr_expl bundle at tiny
settings (report files; the per-image tables are the evaluations' own; a second invocation trains nothing)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from monai_explain.apps.study import BUNDLE_CONTRACT, Progress, bundle_contract, sweep_settings
from monai_explain.apps.study.__main__ import main

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


def test_bundle_contract_from_metadata(tmp_path):
    (tmp_path / "configs").mkdir()
    meta = tmp_path / "configs" / "metadata.json"
    meta.write_text(json.dumps({"monai_explain_study": {"splits": ["internal"], "ids": {"lambda": "expl_weight"}}}))
    c = bundle_contract(tmp_path)
    assert c["splits"] == ["internal"] and c["ids"]["lambda"] == "expl_weight"
    assert c["ids"]["seed"] == BUNDLE_CONTRACT["ids"]["seed"] and BUNDLE_CONTRACT["ids"]["lambda"] == "lambda"
    meta.write_text(json.dumps({"monai_explain_study": {"split": ["x"]}}))
    with pytest.raises(ValueError, match="unknown 'monai_explain_study' key\\(s\\) \\['split'\\]"):
        bundle_contract(tmp_path)


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

    before = {p: p.stat().st_mtime for p in out.glob("runs/*/models/model.pt")}
    assert main(args) == 0
    assert "finished earlier" in capsys.readouterr().out
    assert before == {p: p.stat().st_mtime for p in out.glob("runs/*/models/model.pt")}


def test_provenance_names_the_commit_and_ignores_the_plans_own_outputs(tmp_path):
    """A plan rewrites its tracked results folder stage by stage: that alone must not mark later stages ``+dirty``;
    a change anywhere else must."""
    import subprocess

    from monai_explain.apps.study.sweep import provenance

    repo = tmp_path / "repo"
    (repo / "bundle" / "configs").mkdir(parents=True)
    (repo / "bundle" / "results").mkdir()
    (repo / "bundle" / "configs" / "train.json").write_text("{}\n")
    (repo / "bundle" / "results" / "RESULTS.md").write_text("old\n")

    def git(*args: str) -> str:
        env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@t", "PATH": os.environ["PATH"], "HOME": str(tmp_path)}  # fmt: skip
        return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                              env=env).stdout.strip()  # fmt: skip

    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "x")
    head = git("rev-parse", "--short=12", "HEAD")
    bundle, results = repo / "bundle", repo / "bundle" / "results"
    line = provenance(bundle, [{"seconds": 60.0}, {"seconds": 30.0}], 12.0, "python -m x", results)
    assert line.startswith(f"Commit `{head}`; command `python -m x`; 2 runs, 1.5 min of run time in all")
    (results / "RESULTS.md").write_text("new\n")
    assert f"`{head}`" in provenance(bundle, [], 0.0, "c", results)
    assert f"`{head}+dirty`" in provenance(bundle, [], 0.0, "c")  # without outputs, any change counts
    (bundle / "configs" / "train.json").write_text('{"lambda": 1}\n')
    assert f"`{head}+dirty`" in provenance(bundle, [], 0.0, "c", results)
