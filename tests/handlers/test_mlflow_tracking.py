from __future__ import annotations

import logging
import socket
import threading
import time

import mlflow
import pytest
import torch
from ignite.engine import Engine, Events
from monai.handlers import MLFlowHandler

from monai_explain.handlers import attach_checkpointing, training_run_id
from monai_explain.handlers.mlflow_tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, ResilientMLFlowHandler


def _engine():
    return Engine(lambda engine, batch: float(batch))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One sqlite store for the module (creating one takes seconds); each test uses its own experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlruns.db"


@pytest.fixture()
def uri(store, request, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(_handler, "experiment", request.node.name, raising=False)
    return store


def _handler(uri: str, **kwargs) -> ResilientMLFlowHandler:
    kwargs.setdefault("output_transform", lambda out: {"loss": out})
    return ResilientMLFlowHandler(tracking_uri=uri, experiment_name=_handler.experiment, **kwargs)


def _experiment_id(client) -> str:
    return client.get_experiment_by_name(_handler.experiment).experiment_id


def _steps(client, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


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


def test_hung_server_costs_seconds(caplog, monkeypatch):
    """A server that accepts connections and never answers: each call fails after request_timeout (1 s here),
    tracking is switched off after disable_after failures, the run goes on (before: 35 s per call)."""
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    port, stop, accepted = server.getsockname()[1], threading.Event(), []

    def accept_and_never_answer():
        deadline = time.monotonic() + 60  # stops itself whatever happens
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_and_never_answer, daemon=True)
    thread.start()
    try:
        handler = ResilientMLFlowHandler(
            tracking_uri=f"http://127.0.0.1:{port}",
            experiment_name="hung",
            output_transform=lambda out: out,
            request_timeout=1,
            request_max_retries=0,
            disable_after=2,
        )
        engine = _engine()
        handler.attach(engine)
        t0 = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="monai_explain.handlers.mlflow_tracking"):
            state = engine.run([1.0, 2.0, 3.0], max_epochs=2)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        server.close()
    print(f"hung server: {len(accepted)} connections accepted, run took {elapsed:.1f} s")
    assert state.iteration == 6 and handler.disabled and handler.failures == 2
    assert accepted, "the client reached the hung server"
    assert elapsed < 6.0, elapsed
    assert any("timed out" in r.getMessage().lower() or "timeout" in r.getMessage().lower() for r in caplog.records)


def test_each_training_gets_its_own_run_even_with_the_same_name(uri, tmp_path):
    ids = []
    for values in ([1.5, 2.5], [4.0, 5.0]):
        handler = _handler(uri, run_name="same_label", close_on_complete=True)
        engine = _engine()
        handler.attach(engine)
        engine.run(values, max_epochs=1)
        assert handler.failures == 0
        ids.append(handler.run_id)
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(_handler.experiment)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 2 and ids[0] != ids[1]
    assert {r.info.run_name for r in runs} == {"same_label"} and {r.info.status for r in runs} == {"FINISHED"}
    assert [m.value for m in client.get_metric_history(ids[0], "loss")] == [1.5, 2.5]
    assert [m.value for m in client.get_metric_history(ids[1], "loss")] == [4.0, 5.0]
    assert exp.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND, "MLflow 3 opens the experiment on its runs view"


def test_a_fresh_run_after_a_killed_one_does_not_log_into_it(uri):
    """The killed run stays RUNNING; a new training with the same name and other params gets its own run."""
    killed = _handler(uri, run_name="r", experiment_param={"lr": 0.1})
    engine = _engine()
    killed.attach(engine)
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=1), lambda e: e.terminate())
    engine.run([1.0, 2.0], max_epochs=1)  # no close: like a killed process
    fresh = _handler(uri, run_name="r", experiment_param={"lr": 0.01}, close_on_complete=True)
    engine = _engine()
    fresh.attach(engine)
    engine.run([3.0], max_epochs=1)
    assert fresh.failures == 0 and fresh.run_id != killed.run_id
    client = mlflow.MlflowClient(tracking_uri=uri)
    assert client.get_run(killed.run_id).data.params["lr"] == "0.1"
    assert client.get_run(fresh.run_id).data.params["lr"] == "0.01"
    assert [m.value for m in client.get_metric_history(fresh.run_id, "loss")] == [3.0]


def test_resume_continues_the_run_recorded_in_the_checkpoint(uri, tmp_path):
    """The handler's state goes into the last checkpoint under "mlflow"; a resumed training continues that run
    (also when another run with the same name is RUNNING), and marks it finished."""
    ckpt = tmp_path / "models"
    other = _handler(uri, run_name="r")  # a concurrent, unfinished run with the same label
    e0 = _engine()
    other.attach(e0)
    e0.run([9.0], max_epochs=1)

    first = _handler(uri, run_name="r", epoch_means=True, close_on_complete=True)
    e1 = _engine()
    first.attach(e1)
    attach_checkpointing(e1, ckpt, {"mlflow": first}, resume=False)
    e1.add_event_handler(Events.EPOCH_COMPLETED(once=1), lambda e: e.terminate())  # stops after epoch 1
    e1.run([1.0, 3.0], max_epochs=2)
    state = torch.load(ckpt / "last_checkpoint_epoch=1.pt", weights_only=True)
    assert state["mlflow"] == {"run_id": first.run_id}
    assert training_run_id(ckpt) == first.run_id

    second = _handler(uri, run_name="r", epoch_means=True, close_on_complete=True)
    e2 = _engine()
    second.attach(e2)
    attach_checkpointing(e2, ckpt, {"mlflow": second}, resume=True)
    e2.run([1.0, 3.0], max_epochs=2)
    assert second.run_id == first.run_id and second.failures == 0
    client = mlflow.MlflowClient(tracking_uri=uri)
    assert client.get_run(first.run_id).info.status == "FINISHED"
    assert client.get_run(other.run_id).info.status == "RUNNING", "the other run is not touched"
    assert [m.value for m in client.get_metric_history(other.run_id, "loss")] == [9.0]
    assert _steps(client, first.run_id, "loss") == [1, 2, 3, 4]
    means = client.get_metric_history(first.run_id, "epoch_loss")
    assert [(m.step, m.value) for m in sorted(means, key=lambda m: m.step)] == [(1, 2.0), (2, 2.0)]


def test_validator_and_evaluation_log_into_the_training_run(uri, tmp_path):
    trainer_handler = _handler(uri, run_name="train", experiment_param={"lr": 0.1})
    validator_handler = _handler(uri, run_of=trainer_handler, iteration_log=False)
    trainer, validator = _engine(), Engine(lambda e, b: None)

    @validator.on(Events.EPOCH_COMPLETED)
    def _metric(engine):
        engine.state.metrics = {"val_auc": 0.5 + 0.1 * trainer.state.epoch}

    trainer_handler.attach(trainer)
    validator_handler.attach(validator)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: validator.run([0], max_epochs=1))
    validator_handler.global_epoch_transform = lambda _: trainer.state.epoch
    trainer.run([1.0, 2.0], max_epochs=2)
    trainer_handler.close()

    evaluation = _handler(uri, run_id=trainer_handler.run_id, metric_prefix="test_", iteration_log=False,
                          experiment_param={"test_checkpoint": "model.pt"}, close_on_complete=True)  # fmt: skip
    evaluator = Engine(lambda e, b: None)
    evaluator.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update(auc=0.75))
    evaluation.attach(evaluator)
    evaluator.run([0], max_epochs=1)

    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([_experiment_id(client)])
    assert run.info.run_id == trainer_handler.run_id and run.info.status == "FINISHED"
    assert [(m.step, round(m.value, 6)) for m in client.get_metric_history(run.info.run_id, "val_auc")] == [
        (1, 0.6),
        (2, 0.7),
    ]
    assert run.data.metrics["test_auc"] == 0.75 and "auc" not in run.data.metrics
    assert run.data.params["lr"] == "0.1" and run.data.params["test_checkpoint"] == "model.pt"
    assert run.data.params["max_epochs"] == "2", "the evaluation's engine attributes are not logged there"
    assert validator_handler.failures == 0 and evaluation.failures == 0


def test_plain_mlflow_handler_on_the_same_engine_is_taken_over(uri, tmp_path, caplog):
    """What ``--tracking mlflow`` adds: a plain MLFlowHandler after ours. Each metric is logged once per step."""
    config = tmp_path / "config.json"
    config.write_text("{}")
    ours = _handler(uri, run_name="r", close_on_complete=True)
    plain = MLFlowHandler(tracking_uri=uri, experiment_name=_handler.experiment, run_name="r", tag_name="train_loss",
                          artifacts=str(config), close_on_complete=True)  # fmt: skip
    engine = _engine()
    ours.attach(engine)
    plain.attach(engine)
    with caplog.at_level(logging.INFO, logger="monai_explain.handlers.mlflow_tracking"):
        engine.run([1.0, 2.0], max_epochs=2)
    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([_experiment_id(client)])
    assert [r.info.run_id for r in runs] == [ours.run_id]
    assert _steps(client, ours.run_id, "loss") == [1, 2, 3, 4]
    assert "train_loss" not in runs[0].data.metrics
    assert [a.path for a in client.list_artifacts(ours.run_id)] == ["config.json"]
    assert any("detached" in r.getMessage() for r in caplog.records)


def test_local_store_records_metrics(uri, tmp_path):
    handler = _handler(uri, run_name="r1")
    engine = _engine()
    handler.attach(engine)
    engine.run([1.5, 2.5], max_epochs=1)
    assert handler.failures == 0
    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([_experiment_id(client)])
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.value for m in history] == [1.5, 2.5]


def test_run_id_and_run_of_are_exclusive(uri, tmp_path):
    with pytest.raises(ValueError, match="run_id or run_of"):
        _handler(uri, run_id="abc", run_of=object())


def test_only_rank_0_tracks(tmp_path, monkeypatch):
    """On other ranks of a distributed run the handler is inert: no store opened, nothing attached."""
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    db = tmp_path / "rank1" / "mlruns.db"
    handler = ResilientMLFlowHandler(tracking_uri=f"sqlite:///{db}", experiment_name="x")
    engine = _engine()
    handler.attach(engine)
    engine.run([1.0], max_epochs=1)
    assert handler.disabled and handler.state_dict() == {"run_id": None} and not db.exists()


def test_run_page_opens_the_machine_learning_view(uri):
    handler = _handler(uri, run_name="r", close_on_complete=True)
    engine = _engine()
    handler.attach(engine)
    engine.run([1.0], max_epochs=1)
    page = handler.run_page()
    assert f"/runs/{handler.run_id}?workflowType=machine_learning" in page and "mlflow ui --backend-store-uri" in page
