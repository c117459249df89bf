from __future__ import annotations

import logging
import multiprocessing
import os

import pytest
from ignite.engine import Engine

from monai_explain.handlers import OutputFolderLock

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX record locks")


def _hold(folder: str, ready, release) -> None:
    """Child process: a training that holds ``folder`` until told to stop."""
    OutputFolderLock([folder]).acquire()
    ready.set()
    release.wait(timeout=60)


def test_second_training_on_the_same_folder_is_refused_until_the_first_ends(tmp_path, caplog):
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    folder = tmp_path / "models"
    child = ctx.Process(target=_hold, args=(str(folder), ready, release), daemon=True)
    child.start()
    try:
        assert ready.wait(timeout=60)
        with pytest.raises(RuntimeError) as err:
            OutputFolderLock([folder, tmp_path / "eval"]).attach(Engine(lambda e, b: None))
        message = str(err.value)
        print(message)
        assert str(folder) in message and f"pid {child.pid}" in message and "allow_shared_output=true" in message
        with caplog.at_level(logging.WARNING, logger="monai_explain.handlers.output_lock"):
            shared = OutputFolderLock([folder], allow_shared="true")  # as given on the command line
            shared.acquire()
        assert any("allow_shared_output is set" in r.getMessage() for r in caplog.records)
    finally:
        release.set()
        child.join(timeout=30)
    # the first training ended: the folder is free again; the engine's end releases it for the next one
    lock = OutputFolderLock([folder])
    engine = Engine(lambda e, b: None)
    lock.attach(engine)
    assert lock.held
    engine.run([0], max_epochs=1)
    assert lock.held == []
    with pytest.raises(ValueError, match="allow_shared_output must be true or false, got 'maybe'"):
        OutputFolderLock([folder], allow_shared="maybe")


def test_same_process_may_take_its_own_lock_again(tmp_path):
    """A training that crashed in a notebook keeps its lock; resuming it in the same process works."""
    first = OutputFolderLock([tmp_path])
    first.acquire()  # never released: its training crashed
    second = OutputFolderLock([tmp_path])
    second.acquire()
    assert second.held == first.held
    second.release()  # the resumed training completes: the folder is free for other processes
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=OutputFolderLock([tmp_path]).acquire)
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0, "another process can take the folder"
