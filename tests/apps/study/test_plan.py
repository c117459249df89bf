"""Study plans: the plan file checks, and the same pipeline as ``make study`` at tiny settings (2 seeds, 1 epoch,
2 worker processes): per-stage reports, recovery tables, RESULTS.md and the README-quoted headline block."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from monai_explain.apps.study import plan as plan_module
from monai_explain.apps.study import validate_per_image, write_report
from monai_explain.apps.study.__main__ import main
from monai_explain.apps.study.plan import HEADLINE_FILE, load_plan

BUNDLE = Path(__file__).resolve().parents[3] / "bundles" / "cxr_expl"
SETTINGS = BUNDLE / "study" / "mechanism_settings.json"
FIXTURE = Path(__file__).parent / "data" / "per_image_fixture.csv"


def _write(path: Path, plan: dict) -> Path:
    path.write_text(json.dumps(plan))
    return path


@pytest.mark.parametrize(
    "plan, match",
    [
        ({"stages": []}, "'stages' must be a non-empty list"),
        ({"stages": [{"name": "a", "bundle": "b", "lambdas": [0]}]}, "missing key\\(s\\) \\['seeds'\\]"),
        ({"stages": [{"name": "a", "bundle": "b", "lambdas": [0], "seeds": [0], "lamdas": [1]}]}, "'lamdas'"),
        ({"stages": [{"name": "a", "bundle": "b", "lambdas": [0], "seeds": [0]}] * 2}, "duplicate stage names"),
        ({"stages": [{"name": "a", "bundle": "b", "lambdas": [0], "seeds": [0]}], "headline": "z"}, "headline 'z'"),
    ],
)
def test_bad_plans_are_refused_with_the_key_named(tmp_path, plan, match):
    with pytest.raises(ValueError, match=match):
        load_plan(_write(tmp_path / "plan.json", plan))


def test_plan_paths_are_relative_to_the_plan_file(tmp_path):
    plan = load_plan(_write(tmp_path / "plan.json", {"stages": [
        {"name": "a", "bundle": "../b", "settings": "s.json", "lambdas": [0], "seeds": [0]}]}))  # fmt: skip
    assert plan["stages"][0]["bundle"] == str((tmp_path / "../b").resolve())
    assert plan["stages"][0]["settings"] == str(tmp_path / "s.json")


def test_plan_gathers_stage_reports_from_the_command_line(tmp_path, monkeypatch, capsys):
    """The plan without training (each sweep replaced by a copy of a fixed report): what every stage's sweep is
    given, the stage folders, RESULTS.md and the headline block."""
    df = validate_per_image(pd.read_csv(FIXTURE, dtype={"id": str, "class": str}))
    fixed = tmp_path / "fixed"
    write_report(df, fixed, n_resamples=100, recovery_splits=("test", "test_shifted"), provenance="Commit `abc`.")
    calls = []

    def fake_sweep(*args, **kwargs):
        names = ["bundle", "designs", "lambdas", "seeds", "out", "overrides", "splits", "n_resamples"]
        calls.append({**dict(zip(names, args)), **kwargs})
        shutil.copytree(fixed, Path(args[4]) / "report", dirs_exist_ok=True)
        return Path(args[4]) / "report" / "summary.md"

    monkeypatch.setattr(plan_module, "run_sweep", fake_sweep)
    (tmp_path / "s.json").write_text(json.dumps({"cam/x": {"k": 1}}))
    stage = {"bundle": ".", "lambdas": [0, 1], "seeds": [0]}
    plan = _write(tmp_path / "plan.json", {"title": "T", "headline": "b", "stages": [
        {**stage, "name": "a", "settings": "s.json", "set": {"k": 1}},
        {**stage, "name": "b", "designs": ["x"], "work": "a", "set": {"k": 1}, "workers": 2, "n_resamples": 5,
         "splits": ["test"]},
        {**stage, "name": "c"}]})  # fmt: skip
    results, work = tmp_path / "results", (tmp_path / "work").resolve()
    args = ["plan", str(plan), "--work", str(work), "--results", str(results), "--only", "a", "b", "--set", "o=2",
            "p=text"]  # fmt: skip
    assert main(args) == 0
    assert "results:" in capsys.readouterr().out
    a, b = calls
    assert a["designs"] == ["cam/x"] and a["settings"] == {"cam/x": {"k": 1}} and b["designs"] == ["x"]
    assert a["overrides"] == b["overrides"] == {"k": 1, "o": 2, "p": "text"}
    assert a["out"] == b["out"] == work / "a" and (a["workers"], b["workers"]) == (1, 2)
    assert (a["n_resamples"], a["splits"], a["gallery"]) == (10000, None, False) and b["n_resamples"] == 5
    copied = sorted(f.name for f in (results / "a").iterdir())
    assert copied == sorted(f.name for f in fixed.iterdir() if f.name != "per_image.csv")
    headline = (results / HEADLINE_FILE).read_text()
    assert headline.startswith("### Shortcut recovery (test_shifted vs test")
    assert headline.endswith("\n\nCommit `abc`.\n")
    index = (results / "RESULTS.md").read_text()
    assert index.startswith("# T\n") and "## [c](c/summary.md)\n\nNot run yet." in index
    assert "## [a](a/summary.md)\n\n### Shortcut recovery" in index and not (results / "c").exists()


@pytest.mark.slow
def test_tiny_plan_runs_like_make_study(tmp_path, tiny_dataset, monkeypatch, capfd):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tiny = {"dataset_dir": str(tiny_dataset), "epochs": 1, "batch_size": 8, "image_size": [64, 64],
            "faithfulness_steps": 2, "log_model": False, "synthetic#n_train": 24, "synthetic#n_val": 8,
            "synthetic#n_test": 8, "synthetic#n_test_shifted": 8, "synthetic#image_size": 64}  # fmt: skip
    plan = _write(tmp_path / "plan.json", {
        "title": "tiny",
        "stages": [{"name": "defaults", "bundle": str(BUNDLE), "settings": str(SETTINGS),
                    "designs": ["cam/outside-2s-neg"], "lambdas": [0, 1], "seeds": [0, 1], "set": tiny,
                    "n_resamples": 200, "workers": 2}],
        "headline": "defaults",
    })  # fmt: skip
    results = tmp_path / "results"
    assert main(["plan", str(plan), "--work", str(tmp_path / "work"), "--results", str(results)]) == 0
    printed = capfd.readouterr().out  # the workers are other processes: read the file descriptor
    assert "worker 0:" in printed and "worker 1:" in printed  # two processes trained
    assert (tmp_path / "work" / "defaults" / "mlruns_0.db").is_file()
    assert (tmp_path / "work" / "defaults" / "mlruns_1.db").is_file()
    stage = results / "defaults"
    for name in ("summary.md", "runs.csv", "summary.csv", "stats.csv", "recovery.csv", "recovery_summary.csv"):
        assert (stage / name).is_file(), name
    assert not (stage / "per_image.csv").exists()  # the large table stays in the work folder
    headline = (results / HEADLINE_FILE).read_text()
    assert headline.startswith("### Shortcut recovery (test_shifted vs test")
    assert "| cam/outside-2s-neg lambda=1 | Nodule/Mass | balanced_accuracy | 2 |" in headline
    assert "Commit `" in headline and "command `python -m monai_explain.apps.study plan" in headline
    index = (results / "RESULTS.md").read_text()
    assert "## [defaults](defaults/summary.md)" in index and "Commit `" in index


def test_stages_sharing_a_run_folder_must_train_alike(tmp_path):
    """Shared runs (the lambda = 0 baseline) would otherwise carry the overrides of whichever stage ran first."""
    (tmp_path / "b").mkdir()
    stage = {"bundle": "b", "lambdas": [0, 1], "seeds": [0]}
    plan = {"stages": [{"name": "a", **stage, "set": {"epochs": 4}}, {"name": "c", "work": "a", **stage, "set": {}}]}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    with pytest.raises(ValueError, match="stages 'a' and 'c' share the run folder 'a' but not their bundle and 'set'"):
        load_plan(tmp_path / "plan.json")
    plan["stages"][1]["set"] = {"epochs": 4}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    assert [st["name"] for st in load_plan(tmp_path / "plan.json")["stages"]] == ["a", "c"]
