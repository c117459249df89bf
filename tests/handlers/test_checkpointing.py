"""The declared checkpoint handlers: best model (atomic, resumable tracker), last checkpoint, resume."""

from __future__ import annotations

import errno
import math
import os
import re
from datetime import datetime, timezone

import pytest
import torch
from ignite.engine import Engine, Events

from monai_explain.handlers import (
    PREVIOUS_RUNS_FOLDER,
    BestModelSaver,
    LastCheckpointLoader,
    LastCheckpointSaver,
    PreviousRunArchiver,
    checkpointing,
    selection_start_epoch,
)


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


def _saved_epochs(tmp_path, values, state=None, from_epoch=1):
    """Run the evaluator over ``values``; return the epochs at which model.pt was written and the saver."""
    net = _net(0)
    saver = BestModelSaver(tmp_path, {"model": net}, from_epoch=from_epoch)
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


def test_selection_starts_at_from_epoch(tmp_path, caplog):
    """A warm-up epoch scoring 1.0 (the shortcut still works on the validation split) is never the best model."""
    with caplog.at_level("INFO", logger="monai_explain.handlers.checkpointing"):
        written, saver, _ = _saved_epochs(tmp_path, [0.9, 1.0, 0.7, 0.95, 0.99, 0.98], from_epoch=4)
    assert written == [4, 5] and saver.state_dict() == {"best_metric": 0.99, "best_metric_epoch": 5}
    assert "epoch 2: not eligible as the best model (model selection starts at epoch 4)" in caplog.text
    with pytest.raises(ValueError, match="from_epoch"):
        BestModelSaver(tmp_path, {"model": _net(0)}, from_epoch=0)
    assert BestModelSaver(tmp_path, {"model": _net(0)}, from_epoch="3").from_epoch == 3, "a command-line string"


@pytest.mark.parametrize(
    "epochs, val_interval, expected",
    [
        (12, 1, 5),  # the cxr_expl default: warm-up over epochs 1-4
        ("12", "1", 5),  # as typed on MONAI's command line
        (3, 1, 3),  # the warm-up outlasts the run: its last epoch, so model.pt is still written
        (12, 2, 5),  # validations at 2, 4, 6, ...: BestModelSaver takes the first of them from 5 on, i.e. 6
        (7, 3, 5),
        (4, 3, 3),  # validated at epoch 3 only
    ],
)
def test_selection_start_epoch(epochs, val_interval, expected):
    schedule = {"name": "linear_warmup", "end": 10.0, "warmup": 4}
    assert selection_start_epoch(schedule, epochs, val_interval) == expected
    assert selection_start_epoch(10.0, epochs, val_interval) == 1, "a constant lambda: every validation counts"
    with pytest.raises(ValueError, match="val_interval"):
        selection_start_epoch(schedule, epochs, 0)


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


def _two_trainings(ckpt, archiver_factory):
    """Train twice (2 epochs each, different weights) in ``ckpt``; the second one with the archiver attached first."""
    contents = []
    for seed in (1, 2):
        net = _net(seed)
        evaluator = _evaluator([0.5, 0.7])
        BestModelSaver(ckpt, {"model": net}).attach(evaluator)
        trainer = Engine(lambda e, b: None)
        archiver = archiver_factory() if seed == 2 else None
        if archiver is not None:
            archiver.attach(trainer)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e, ev=evaluator: ev.run([0], max_epochs=e.state.epoch))
        LastCheckpointSaver(ckpt, {"model": net}).attach(trainer)
        trainer.run([0], max_epochs=2)
        contents.append({p.name: p.read_bytes() for p in ckpt.iterdir() if p.is_file()})
    return contents, archiver


def test_archiver_moves_the_earlier_runs_files_byte_identical(tmp_path, caplog):
    ckpt = tmp_path / "models"
    with caplog.at_level("WARNING"):
        (first, second), archiver = _two_trainings(ckpt, lambda: PreviousRunArchiver(ckpt))
    assert sorted(first) == ["last_checkpoint_epoch=2.pt", "model.pt"]
    archives = list((ckpt / PREVIOUS_RUNS_FOLDER).iterdir())
    assert archives == [archiver.archived]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", archiver.archived.name)
    assert {p.name: p.read_bytes() for p in archiver.archived.iterdir()} == first, "moved byte-identical"
    assert sorted(second) == sorted(first) and second["model.pt"] != first["model.pt"], "the new run's own files"
    assert "moved last_checkpoint_epoch=2.pt, model.pt to" in caplog.text and str(archiver.archived) in caplog.text


def test_without_archiver_the_second_run_overwrites(tmp_path):
    """What the archiver prevents: the first run's best model is gone after a second fresh run."""
    ckpt = tmp_path / "models"
    (first, second), _ = _two_trainings(ckpt, lambda: None)
    assert second["model.pt"] != first["model.pt"] and not (ckpt / PREVIOUS_RUNS_FOLDER).exists()


def test_archiver_never_overwrites_an_archive_and_ignores_other_files(tmp_path, monkeypatch, caplog):
    ckpt = tmp_path / "models"
    ckpt.mkdir()
    for name in ("model.pt", "last_checkpoint_epoch=3.pt", ".last_checkpoint_epoch=4.pt.x1.part", "notes.txt"):
        (ckpt / name).write_bytes(name.encode())
    (ckpt / "last_checkpoint_epoch=9.pt").mkdir()  # not a file: left alone
    fixed = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    monkeypatch.setattr(checkpointing, "datetime", type("Clock", (), {"now": staticmethod(lambda tz=None: fixed)}))
    first = PreviousRunArchiver(ckpt).archive()
    (ckpt / "model.pt").write_bytes(b"second")
    second = PreviousRunArchiver(ckpt).archive()  # the same second: a suffixed folder
    assert first is not None and second is not None and first != second and second.parent == first.parent
    assert (first.name, second.name) == ("2026-01-02T03-04-05Z", "2026-01-02T03-04-05Z-2")
    assert sorted(p.name for p in first.iterdir()) == ["last_checkpoint_epoch=3.pt", "model.pt"]
    assert (first / "model.pt").read_bytes() == b"model.pt" and (second / "model.pt").read_bytes() == b"second"
    left = sorted(p.name for p in ckpt.iterdir())
    assert left == [".last_checkpoint_epoch=4.pt.x1.part", "last_checkpoint_epoch=9.pt", "notes.txt", "previous"]
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert PreviousRunArchiver(ckpt).archive() is None, "nothing to move: no new archive"
        assert PreviousRunArchiver(tmp_path / "absent").archive() is None
    assert caplog.text == "" and len(list(first.parent.iterdir())) == 2
    assert PreviousRunArchiver(ckpt, patterns="notes.txt").archive() is not None


def test_archiver_runs_once_at_started_and_names_a_file_it_cannot_move(tmp_path, monkeypatch):
    ckpt = tmp_path / "models"
    ckpt.mkdir()
    (ckpt / "model.pt").write_bytes(b"old")
    archiver = PreviousRunArchiver(ckpt)
    engine = Engine(lambda e, b: (ckpt / "model.pt").write_bytes(b"new"))
    archiver.attach(engine)
    archiver.attach(engine)
    assert engine.has_event_handler(archiver, Events.STARTED)
    assert (ckpt / "model.pt").read_bytes() == b"old", "nothing moves before the run starts"
    engine.run([0], max_epochs=1)
    assert archiver.archived is not None and (archiver.archived / "model.pt").read_bytes() == b"old"
    engine.run([0], max_epochs=2)  # the same training continued: its own model.pt stays
    assert (ckpt / "model.pt").read_bytes() == b"new" and len(list((ckpt / "previous").iterdir())) == 1

    def refuse(src, dst):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "rename", refuse)
    with pytest.raises(OSError, match=re.escape(f"could not move {ckpt / 'model.pt'} from an earlier training")):
        PreviousRunArchiver(ckpt).archive()
