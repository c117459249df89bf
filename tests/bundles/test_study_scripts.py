"""The study's analysis scripts in ``bundles/cxr_expl/study/``, on small hand-made inputs: what they read and what
they compute (their full-size outputs are committed and rewritten by ``make study``)."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

STUDY = Path(__file__).resolve().parents[2] / "bundles" / "cxr_expl" / "study"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"_study_{name}", STUDY / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _log_run(uri: str, name: str, accuracy: list[float], warmup: int) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("sweep") or client.get_experiment(client.create_experiment("sweep"))
    run = client.create_run(exp.experiment_id, run_name=name)
    client.log_param(run.info.run_id, "lambda_schedule", str({"name": "linear_warmup", "end": 10.0, "warmup": warmup}))
    for epoch, acc in enumerate(accuracy, start=1):
        client.log_metric(run.info.run_id, "val_accuracy", acc, step=epoch)
        client.log_metric(run.info.run_id, "val_auc", min(1.0, acc + 0.01), step=epoch)
        client.log_metric(run.info.run_id, "val_threshold", 0.5, step=epoch)
    client.set_terminated(run.info.run_id)


@pytest.mark.slow
def test_validation_curves_reads_the_latest_run_of_a_name_and_summarises_it(tmp_path, monkeypatch):
    """A run trained again in the same work folder (another worker's database) must not hide the latest one: the bug
    that once put an old curve in validation_curves.md. The summary starts the minimum at the first full-lambda
    epoch and reads the epoch of model.pt from the last checkpoint."""
    from monai.utils import path_to_sqlite_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    vc = _script("validation_curves")
    stage = tmp_path / "work" / "stage"
    stage.mkdir(parents=True)
    name = "cam/dice_lambda10_seed4"
    _log_run(path_to_sqlite_uri(str(stage / "mlruns_1.db")), name, [0.5, 0.5, 0.5, 0.5, 0.5, 0.5], warmup=1)
    time.sleep(0.05)
    _log_run(path_to_sqlite_uri(str(stage / "mlruns_0.db")), name, [0.95, 1.0, 0.68, 0.97, 0.99, 1.0], warmup=4)
    _log_run(path_to_sqlite_uri(str(stage / "mlruns_0.db")), "other_lambda1_seed0", [0.9] * 6, warmup=1)
    curves = vc.read_curves(stage, ("cam/dice_lambda10_",))
    assert list(curves) == [name]
    assert curves[name]["val_accuracy"] == {1: 0.95, 2: 1.0, 3: 0.68, 4: 0.97, 5: 0.99, 6: 1.0}
    assert curves[name]["settled"] == {0: 5.0}

    models = stage / "runs" / name / "models"
    models.mkdir(parents=True)
    torch.save({"best_model": {"best_metric": 0.99, "best_metric_epoch": 5}}, models / "last_checkpoint_epoch=6.pt")
    assert vc.selected_epoch(stage / "runs" / name) == 5
    assert vc.selected_epoch(stage / "runs" / "missing") is None

    out = tmp_path / "curves.md"
    argv = ["validation_curves.py", "--work", str(tmp_path / "work"), "--stages", "stage=cam/dice_lambda10_", "--out",
            str(out)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    vc.main()
    row = next(ln for ln in out.read_text().splitlines() if ln.startswith(f"| stage | {name} |"))
    # epochs, full lambda from, min from then on, min from epoch 3, largest drop, model.pt epoch, final AUC
    assert row == f"| stage | {name} | 6 | 5 | 0.99 | 0.68 | 0.32 | 5 | 1.000 |"


def test_reproduce_headline_compares_tables_cell_by_cell(tmp_path):
    """Equal tables: nothing differs; a changed number is counted with its size; NaN equals NaN; rows naming other
    settings, or a missing table, are errors that name the file and row."""
    compare_tables = _script("reproduce_headline").compare_tables
    committed, fresh = tmp_path / "committed", tmp_path / "fresh"
    committed.mkdir()
    fresh.mkdir()
    table = pd.DataFrame({"setting": ["none lambda=0", "cam/dice lambda=10"], "baseline": [None, "none lambda=0"],
                          "seed": [0, 0],
                          "auc": [0.75, 0.9821], "recovery": [float("nan"), 0.94]})  # fmt: skip
    table.to_csv(committed / "recovery.csv", index=False)
    table.to_csv(fresh / "recovery.csv", index=False)
    same = compare_tables(committed, fresh)
    assert same.to_dict("records") == [
        {"file": "recovery.csv", "rows": 2, "numeric_cells": 6, "cells_differing": 0, "max_abs_difference": 0.0}
    ]
    table.assign(auc=[0.75, 0.9721]).to_csv(fresh / "recovery.csv", index=False)
    changed = compare_tables(committed, fresh).iloc[0]
    assert changed["cells_differing"] == 1 and changed["max_abs_difference"] == pytest.approx(0.01)
    table.assign(setting=["none lambda=0", "cam/energy lambda=3"]).to_csv(fresh / "recovery.csv", index=False)
    with pytest.raises(ValueError, match=r"recovery.csv, row 1: committed \['cam/dice lambda=10', 'none lambda=0'\]"):
        compare_tables(committed, fresh)
    table.to_csv(fresh / "recovery.csv", index=False)
    table.to_csv(committed / "runs.csv", index=False)
    with pytest.raises(FileNotFoundError, match="the fresh report has no runs.csv"):
        compare_tables(committed, fresh)


def test_reproduce_headline_ignores_only_the_provenance_line():
    without = _script("reproduce_headline").without_provenance
    block = "## Shortcut recovery\n\n| a |\n|---|\n| 1 |\n\nCommit `abc`; command `x`; 10 runs, 58 min.\n"
    assert without(block) == without(block.replace("`abc`", "`def`").replace("58 min", "12 min"))
    assert without(block) != without(block.replace("| 1 |", "| 2 |"))


def test_routing_density_reads_one_for_no_preference_and_names_an_unfinished_run(tmp_path, monkeypatch):
    """The routing check's density: gradient mass on the marker box over the box's share of the image."""
    rc = _script("routing_check")
    box = torch.zeros(16, 16, dtype=torch.bool)
    box[:4, :4] = True  # 1/16 of the image
    torch.manual_seed(0)
    assert rc.marker_density_of(-2.0 * torch.ones(16, 16), box) == pytest.approx(1.0)  # signs do not matter
    inside = torch.zeros(16, 16)
    inside[box] = torch.rand(16) + 0.1
    assert rc.marker_density_of(inside, box) == pytest.approx(16.0)  # all the mass on the marker
    half = inside.clone()
    half[8, 8] = inside[box].sum()  # as much mass outside the box as inside
    assert rc.marker_density_of(half, box) == pytest.approx(8.0)

    monkeypatch.setattr(rc, "GROUPS", [("stage", str(tmp_path / "data"), 64, ["none_lambda0_seed0"])])
    monkeypatch.setattr(sys, "argv", ["routing_check.py", "--work", str(tmp_path), "--out", str(tmp_path / "r.md")])
    with pytest.raises(FileNotFoundError, match=r"none_lambda0_seed0: run not finished"):
        rc.main()
