"""Two bundle runs at the same time, each with its own checkpoint folder, sharing ONE MLflow sqlite store: the store
is not corrupted and the runs do not mix. (2-process DDP is tested in test_cxr_expl_ddp.py.)"""

from __future__ import annotations

import multiprocessing
import sqlite3

import mlflow
import pytest
import torch

from .test_faults import EPOCH_LENGTH, _reap_bundle_processes, bundle_cmd, start_bundle, wait_ok  # noqa: F401

pytestmark = pytest.mark.slow

EPOCHS = 2
LOSS_KEYS = ("loss", "task_loss", "expl_loss", "lambda")
VAL_KEYS = ("val_auc", "val_accuracy", "val_saliency_precision", "val_saliency_coverage", "val_chance_level")


def test_two_runs_in_parallel_share_one_mlflow_store(tmp_path, tiny_dataset):
    """Two trainings at once on one store with the SAME run name (only the learning rate differs; the second one
    with MONAI's ``--tracking mlflow``): two runs, each with its own params, every metric once per step, nothing
    duplicated by the extra MONAI handler, and the overlays logged into each run after each validation."""
    db = tmp_path / "shared" / "mlruns.db"
    db.parent.mkdir()
    uri = f"sqlite:///{db}"
    settings = {"0.002": {}, "0.001": {"tracking": "mlflow"}}
    procs = {
        lr: start_bundle(
            bundle_cmd(
                tmp_path / f"lr{lr}", tiny_dataset, epochs=EPOCHS, tracking_uri=uri, run_name="same_name",
                learning_rate=lr, **{"lambda": "1.0"}, **extra,
            ),
            tmp_path,
            tmp_path / f"lr{lr}.log",
        )
        for lr, extra in settings.items()
    }  # fmt: skip
    logs = {lr: wait_ok(proc, tmp_path / f"lr{lr}.log", timeout=900) for lr, proc in procs.items()}
    for lr, log in logs.items():
        assert "MLflow tracking failed" not in log, (lr, log[-3000:])
        assert (tmp_path / f"lr{lr}" / "models" / f"last_checkpoint_epoch={EPOCHS}.pt").is_file()
    assert "plain MLFlowHandler on this engine (e.g. from --tracking mlflow) is detached" in logs["0.001"]

    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("cxr_expl")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["learning_rate"] for r in runs) == ["0.001", "0.002"], "one run per training"
    for run in runs:
        lr = run.data.params["learning_rate"]
        assert run.info.run_name == "same_name" and run.info.status == "FINISHED"
        ckpt = torch.load(tmp_path / f"lr{lr}" / "models" / f"last_checkpoint_epoch={EPOCHS}.pt", weights_only=True)
        assert ckpt["mlflow"]["run_id"] == run.info.run_id, "each checkpoint records its own run"
        for key in (*LOSS_KEYS, "lr_group_0"):  # every iteration logged exactly once, in this run only
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
            assert steps == list(range(1, EPOCHS * EPOCH_LENGTH + 1)), (lr, key, steps)
        for key in (*VAL_KEYS, *(f"epoch_{k}" for k in LOSS_KEYS)):  # once per epoch
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
            assert steps == list(range(1, EPOCHS + 1)), (lr, key, steps)
        assert "train_loss" not in run.data.metrics, "no duplicate of the loss from MONAI's handler"
        assert [m.value for m in client.get_metric_history(run.info.run_id, "lr_group_0")] == [float(lr)] * (
            EPOCHS * EPOCH_LENGTH
        )
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "overlays")]
        assert artifacts == [f"overlays/overlay_epoch_{e:03d}.png" for e in range(1, EPOCHS + 1)], (lr, artifacts)
    tracked = next(r for r in runs if r.data.params["learning_rate"] == "0.001")
    configs = [a.path for a in client.list_artifacts(tracked.info.run_id) if a.path.startswith("config_")]
    assert len(configs) == 1, "the executed config saved by --tracking mlflow is logged in the run"
    print({r.data.params["learning_rate"]: (r.info.run_id, sorted(r.data.metrics)) for r in runs})


def _track_one_run(uri: str, run_name: str, barrier, errors) -> None:
    """Child process: open the store when all children are ready, log 3 iterations of one run."""
    from ignite.engine import Engine

    from monai_explain.handlers import ResilientMLFlowHandler

    try:
        barrier.wait(timeout=60)
        handler = ResilientMLFlowHandler(
            tracking_uri=uri, experiment_name="race", run_name=run_name, output_transform=lambda out: {"x": out}
        )
        engine = Engine(lambda e, b: float(b))
        handler.attach(engine)
        engine.run([1.0, 2.0, 3.0], max_epochs=1)
        handler.close()
        if handler.failures or handler.disabled:
            errors.put(f"{run_name}: {handler.failures} tracking failures, switched off: {handler.disabled}")
    except Exception as e:  # noqa: BLE001 (reported to the parent)
        errors.put(f"{run_name}: {type(e).__name__}: {e}")


def test_runs_starting_together_on_a_new_store_all_track(tmp_path):
    """Three processes open one NEW sqlite store and create one experiment at the same instant (a barrier): the
    store's tables and the experiment are created once and every run is tracked completely."""
    ctx = multiprocessing.get_context("fork")
    uri = f"sqlite:///{tmp_path / 'new' / 'mlruns.db'}"
    barrier, errors = ctx.Barrier(3), ctx.Queue()
    children = [
        ctx.Process(target=_track_one_run, args=(uri, f"run{i}", barrier, errors), daemon=True) for i in range(3)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
        if child.is_alive():
            child.kill()
    reported = []
    while not errors.empty():
        reported.append(errors.get(timeout=1))
    assert [c.exitcode for c in children] == [0, 0, 0] and reported == [], reported

    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("race").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["run0", "run1", "run2"]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "x")] == [
            (1, 1.0),
            (2, 2.0),
            (3, 3.0),
        ]


def test_experiment_created_meanwhile_by_another_run_is_used(tmp_path, monkeypatch):
    """The experiment-creation race, made deterministic: our lookup by name ran just before another run created
    the experiment, so our create fails with RESOURCE_ALREADY_EXISTS; the handler must use the experiment."""
    from ignite.engine import Engine

    from monai_explain.handlers import ResilientMLFlowHandler

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    winner = mlflow.MlflowClient(tracking_uri=uri).create_experiment("race")
    real_lookup, lookups = mlflow.MlflowClient.get_experiment_by_name, []

    def stale_first_lookup(self, name):
        lookups.append(name)
        return None if len(lookups) == 1 else real_lookup(self, name)

    monkeypatch.setattr(mlflow.MlflowClient, "get_experiment_by_name", stale_first_lookup)
    handler = ResilientMLFlowHandler(
        tracking_uri=uri, experiment_name="race", run_name="late", output_transform=lambda out: {"x": out}
    )
    engine = Engine(lambda e, b: float(b))
    handler.attach(engine)
    engine.run([1.0, 2.0], max_epochs=1)
    assert len(lookups) == 2 and handler.failures == 0
    assert handler.experiment.experiment_id == winner
    history = mlflow.MlflowClient(tracking_uri=uri).get_metric_history(handler.cur_run.info.run_id, "x")
    assert [m.value for m in history] == [1.0, 2.0]
