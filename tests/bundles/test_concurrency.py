"""Two bundle runs at the same time, each with its own checkpoint folder, sharing ONE MLflow sqlite store: the store
is not corrupted and the runs do not mix. (2-process DDP is tested in test_cxr_expl_ddp.py.)"""

from __future__ import annotations

import multiprocessing
import sqlite3

import mlflow
import pytest

from .test_faults import EPOCH_LENGTH, _reap_bundle_processes, bundle_cmd, start_bundle, wait_ok  # noqa: F401

pytestmark = pytest.mark.slow

EPOCHS = 2
LOSS_KEYS = ("loss", "task_loss", "expl_loss", "lambda")
VAL_KEYS = ("val_auc", "val_accuracy", "val_saliency_precision", "val_saliency_coverage", "val_chance_level")


def test_two_runs_in_parallel_share_one_mlflow_store(tmp_path, tiny_dataset):
    db = tmp_path / "shared" / "mlruns.db"
    db.parent.mkdir()
    uri = f"sqlite:///{db}"
    lambdas = ("0.0", "1.0")
    procs = {
        lam: start_bundle(
            bundle_cmd(tmp_path / f"lambda{lam}", tiny_dataset, epochs=EPOCHS, tracking_uri=uri, **{"lambda": lam}),
            tmp_path,
            tmp_path / f"lambda{lam}.log",
        )
        for lam in lambdas
    }
    logs = {lam: wait_ok(proc, tmp_path / f"lambda{lam}.log") for lam, proc in procs.items()}
    for lam, log in logs.items():
        assert "MLflow tracking failed" not in log, (lam, log[-3000:])
        assert (tmp_path / f"lambda{lam}" / "models" / f"last_checkpoint_epoch={EPOCHS}.pt").is_file()

    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("cxr_expl")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["energy_lambda0.0_seed0", "energy_lambda1.0_seed0"]
    for run in runs:
        lam = run.data.params["lambda"]
        assert run.info.run_name == f"energy_lambda{lam}_seed0" and run.info.status == "FINISHED"
        for key in LOSS_KEYS:  # every iteration logged exactly once, in this run only
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
            assert steps == list(range(1, EPOCHS * EPOCH_LENGTH + 1)), (lam, key, steps)
        for key in VAL_KEYS:
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
            assert steps == list(range(1, EPOCHS + 1)), (lam, key, steps)
        # lambda's own warm-up (0 -> end over epoch 1) tells the runs' metric histories apart
        last_lambda = client.get_metric_history(run.info.run_id, "lambda")[-1].value
        assert last_lambda == pytest.approx(float(lam))
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
        assert "overlay_epoch_001.png" in artifacts and "overlay_epoch_002.png" in artifacts, (lam, artifacts)


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
    except Exception as e:  # reported to the parent
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
