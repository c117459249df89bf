"""The declared checkpoint handlers: best model (atomic, resumable tracker), last checkpoint, resume."""

from __future__ import annotations

import errno
import math
import os
import re

import pytest
import torch
from ignite.engine import Engine, Events

from monai_explain.handlers import BestModelSaver, LastCheckpointLoader, LastCheckpointSaver


def _evaluator(values: list[float]) -> Engine:
    """An engine whose key metric at epoch e is values[e - 1] (set before the saver runs)."""
    engine = Engine(lambda e, b: None)

    def metrics(e):
        e.state.key_metric_name = "val_auc"
        e.state.metrics = {"val_auc": values[e.state.epoch - 1]}

    engine.add_event_handler(Events.EPOCH_COMPLETED, metrics)
    return engine


def _net(seed: int) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(3, 2)


def _saved_epochs(tmp_path, values, state=None):
    """Run the evaluator over ``values``; return the epochs at which model.pt was written and the saver."""
    net = _net(0)
    saver = BestModelSaver(tmp_path, {"model": net})
    engine = _evaluator(values)
    saver.attach(engine)
    if state is not None:
        saver.load_state_dict(state)
    written = []
    inode = {"model.pt": None}

    def record(e):  # model.pt is replaced by a rename: a new inode means a write
        path = tmp_path / "model.pt"
        now = path.stat().st_ino if path.exists() else None
        if now != inode["model.pt"]:
            written.append(e.state.epoch)
        inode["model.pt"] = now

    engine.add_event_handler(
        Events.STARTED,
        lambda e: inode.update(
            {"model.pt": (tmp_path / "model.pt").stat().st_ino} if (tmp_path / "model.pt").exists() else {}
        ),
    )
    engine.add_event_handler(Events.EPOCH_COMPLETED, record)
    engine.run([0], max_epochs=len(values))
    return written, saver, engine


def test_best_model_written_when_better_nan_never_best(tmp_path):
    written, saver, _ = _saved_epochs(tmp_path, [0.5, 0.7, 0.6, math.nan, 0.7, 0.8])
    assert written == [1, 2, 6], "first validation, then only strict improvements; NaN never"
    assert saver.state_dict() == {"best_metric": 0.8, "best_metric_epoch": 6}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"], "no temporary files left"
    assert set(torch.load(tmp_path / "model.pt", weights_only=True)) == {"weight", "bias"}, "a plain state dict"


def test_nan_first_validation_writes_then_any_number_is_better(tmp_path):
    written, saver, _ = _saved_epochs(tmp_path, [math.nan, 0.1])
    assert written == [1, 2] and saver.state_dict()["best_metric"] == 0.1


def test_resumed_tracker_keeps_the_best_model(tmp_path):
    """The bug of issue 13 item 3: a fresh tracker overwrote model.pt at the resumed run's first validation."""
    _, saver, _ = _saved_epochs(tmp_path, [0.9, 0.6])
    state = saver.state_dict()
    assert state == {"best_metric": 0.9, "best_metric_epoch": 1}
    before = (tmp_path / "model.pt").read_bytes()
    written, resumed, engine = _saved_epochs(tmp_path, [0.7, 0.8], state=state)
    assert written == [] and (tmp_path / "model.pt").read_bytes() == before, "0.7 and 0.8 do not beat 0.9"
    assert resumed.state_dict() == state
    assert engine.state.best_metric == 0.9 and engine.state.best_metric_epoch == 1, "evaluator state restored"
    fresh, _, _ = _saved_epochs(tmp_path, [0.7, 0.8])
    assert fresh == [1, 2], "without the state, the run starts a new best"


@pytest.mark.parametrize("fault", ["enospc", "dev-full"])
def test_best_model_write_error_names_the_file_and_keeps_the_previous(tmp_path, monkeypatch, fault):
    net = _net(0)
    saver = BestModelSaver(tmp_path, {"model": net})
    engine = _evaluator([0.5, 0.9])
    saver.attach(engine)
    real_save = torch.save

    def failing(obj, f, *args, **kwargs):
        if fault == "dev-full":
            return real_save(obj, "/dev/full", *args, **kwargs)
        f.write(b"PK\x03\x04" + b"\0" * 60)  # a partial zip archive, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    engine.add_event_handler(Events.EPOCH_STARTED(once=2), lambda e: monkeypatch.setattr(torch, "save", failing))
    before_params = {k: v.clone() for k, v in net.state_dict().items()}
    target = tmp_path / "model.pt"
    with pytest.raises((OSError, RuntimeError), match=re.escape(f"could not write the best model {target}")):
        engine.run([0], max_epochs=2)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"], "no partial file left"
    kept = torch.load(target, weights_only=True)
    assert all(torch.equal(kept[k], v) for k, v in before_params.items()), "the previous best model is intact"


def test_last_checkpoint_carries_the_best_model_tracker_and_resumes_it(tmp_path):
    ckpt = tmp_path / "models"
    net = _net(1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    evaluator = _evaluator([0.9, 0.3, 0.4])
    best = BestModelSaver(ckpt, {"model": net})
    best.attach(evaluator)
    trainer = Engine(lambda e, b: None)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: evaluator.run([0], max_epochs=e.state.epoch))
    objects = {"model": net, "optimizer": opt, "best_model": best, "mlflow": None}
    LastCheckpointSaver(ckpt, objects).attach(trainer)
    trainer.run([0, 1], max_epochs=2)
    assert sorted(p.name for p in ckpt.iterdir()) == ["last_checkpoint_epoch=2.pt", "model.pt"]
    state = torch.load(ckpt / "last_checkpoint_epoch=2.pt", weights_only=True)
    assert set(state) == {"model", "optimizer", "best_model", "trainer"}, "None entries (disabled) are skipped"
    assert state["best_model"] == {"best_metric": 0.9, "best_metric_epoch": 1}

    # a new process: fresh objects, resumed from the last checkpoint; epoch 3 (0.4) must not replace model.pt
    net2 = _net(2)
    evaluator2 = _evaluator([0.9, 0.3, 0.4])
    best2 = BestModelSaver(ckpt, {"model": net2})
    best2.attach(evaluator2)
    trainer2 = Engine(lambda e, b: None)
    trainer2.add_event_handler(Events.EPOCH_COMPLETED, lambda e: evaluator2.run([0], max_epochs=e.state.epoch))
    loader = LastCheckpointLoader(
        ckpt, {"model": net2, "optimizer": torch.optim.SGD(net2.parameters()), "best_model": best2}
    )
    loader.attach(trainer2)
    model_pt = (ckpt / "model.pt").read_bytes()
    epochs = []
    trainer2.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs.append(e.state.epoch))
    trainer2.run([0, 1], max_epochs=3)
    assert loader.loaded == str(ckpt / "last_checkpoint_epoch=2.pt") and epochs == [3]
    assert (ckpt / "model.pt").read_bytes() == model_pt
    assert best2.state_dict() == {"best_metric": 0.9, "best_metric_epoch": 1}


def test_loader_without_checkpoint_starts_anew(tmp_path, caplog):
    loader = LastCheckpointLoader(tmp_path / "none", {"model": _net(0)})
    engine = Engine(lambda e, b: None)
    with caplog.at_level("WARNING"):
        loader.attach(engine)
    assert loader.loaded is None and "holds no last checkpoint" in caplog.text
