from __future__ import annotations

import logging

import mlflow
from ignite.engine import Engine

from monai_explain.handlers.mlflow_tracking import ResilientMLFlowHandler


def _engine():
    return Engine(lambda engine, batch: float(batch))


def test_unreachable_server_warns_and_training_completes(caplog, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    handler = ResilientMLFlowHandler(
        tracking_uri="http://127.0.0.1:9", experiment_name="down", output_transform=lambda out: out
    )
    engine = _engine()
    handler.attach(engine)
    with caplog.at_level(logging.WARNING, logger="monai_explain.handlers.mlflow_tracking"):
        state = engine.run([1.0, 2.0, 3.0], max_epochs=2)
    assert state.epoch == 2 and state.iteration == 6
    assert handler.disabled and handler.failures == 3
    messages = [r.getMessage() for r in caplog.records]
    assert any("MLflow tracking failed in start" in m for m in messages)
    assert any("switched off" in m for m in messages)


def test_local_store_records_metrics(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    handler = ResilientMLFlowHandler(
        tracking_uri=uri, experiment_name="ok", run_name="r1", output_transform=lambda out: {"loss": out}
    )
    engine = _engine()
    handler.attach(engine)
    engine.run([1.5, 2.5], max_epochs=1)
    assert handler.failures == 0
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("ok")
    (run,) = client.search_runs([exp.experiment_id])
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.value for m in history] == [1.5, 2.5]
