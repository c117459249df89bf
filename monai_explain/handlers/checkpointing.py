"""Resumable training: MONAI's ``CheckpointSaver`` / ``CheckpointLoader`` wired for "continue from the last epoch".

The trainer's own state (epoch, iteration) is saved with the network and optimizer, so everything derived from it
continues where it stopped: the lambda schedule (a function of the engine state), learning-rate schedules passed in
``save_dict``, and the MLflow run (``MLFlowHandler`` continues the unfinished run of the same ``run_name``).

A crash must never cost the last complete checkpoint. MONAI's ``CheckpointSaver`` cannot promise that: it writes
through Ignite's ``DiskSaver(atomic=False)`` straight into the final file name, and Ignite's ``Checkpoint`` deletes
the previous file *before* writing the next one (``n_saved=1``), so a kill or a full disk during the write leaves
only a truncated ``last_checkpoint_epoch=<N>.pt``. Here each checkpoint is written to a hidden temporary file in
the same folder, flushed to disk, renamed over its final name, and only then are older last checkpoints deleted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from monai.handlers import CheckpointLoader
from monai.utils import IgniteInfo, min_version, optional_import

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
Checkpoint, _ = optional_import("ignite.handlers", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Checkpoint")

__all__ = ["LAST_CHECKPOINT_PREFIX", "attach_checkpointing", "find_last_checkpoint"]

logger = logging.getLogger(__name__)

LAST_CHECKPOINT_PREFIX = "last"
_EPOCH = re.compile(rf"^{LAST_CHECKPOINT_PREFIX}_checkpoint_epoch=(\d+)\.pt$")
_PART_SUFFIX = ".part"  # temporary files of a write in progress: ".<final name>.<random><_PART_SUFFIX>"
_PART = re.compile(rf"^\.{LAST_CHECKPOINT_PREFIX}_checkpoint_epoch=\d+\.pt\..+{re.escape(_PART_SUFFIX)}$")


def _free_space(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB free there"
    except OSError:
        return "free space unknown"


class _AtomicDiskSaver:
    """Save handler for Ignite's ``Checkpoint`` that writes atomically and durably and names the file on failure.

    The checkpoint goes to a hidden temporary file in the destination folder, is flushed and fsync'ed, then renamed
    over its final name (and the folder fsync'ed): a reader sees the old file or the complete new one, never a
    truncated one, also after a kill or a power loss. On failure the temporary file is removed and the error (e.g.
    a full disk: ``OSError`` ENOSPC, or the ``RuntimeError`` torch's writer raises) is raised again, same type and
    errno, with the checkpoint's path and the free space in the message.
    """

    def __init__(self, dirname: str | os.PathLike) -> None:
        self.dirname = Path(dirname)
        self.dirname.mkdir(parents=True, exist_ok=True)

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        path = self.dirname / filename
        fd, tmp = tempfile.mkstemp(dir=self.dirname, prefix=f".{filename}.", suffix=_PART_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as e:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            if isinstance(e, (OSError, RuntimeError)):
                message = f"could not write the checkpoint {path} ({_free_space(self.dirname)})"
                if isinstance(e, OSError) and e.errno is not None:
                    raise OSError(e.errno, f"{message}: {e.strerror or e}") from e
                if isinstance(e, OSError):
                    raise OSError(f"{message}: {e}") from e
                raise RuntimeError(f"{message}: {e}") from e
            raise
        # mkstemp makes the file private to its owner; give group/others read access (as Ignite's DiskSaver does)
        os.chmod(path, os.stat(path).st_mode | stat.S_IRGRP | stat.S_IROTH)
        with contextlib.suppress(OSError):  # make the rename itself durable (not possible on every file system)
            dir_fd = os.open(self.dirname, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def remove(self, filename: str) -> None:
        (self.dirname / filename).unlink(missing_ok=True)


def find_last_checkpoint(ckpt_dir: str | os.PathLike) -> str | None:
    """Path of the newest ``last_checkpoint_epoch=<N>.pt`` in ``ckpt_dir`` (highest N), or None.

    Temporary files of a write in progress or interrupted by a kill (``.<name>.<random>.part``) never match.
    """
    folder = Path(ckpt_dir)
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _EPOCH.match(p.name)) and p.is_file()]
    return str(max(found)[1]) if found else None


def attach_checkpointing(
    trainer: Any,
    ckpt_dir: str | os.PathLike,
    save_dict: Mapping[str, Any],
    resume: bool = True,
    save: bool = True,
    map_location: Any = None,
) -> str | None:
    """Attach a per-epoch "last" checkpoint saver and, when one exists and ``resume``, a loader of it.

    Call it before ``trainer.run()``. ``trainer`` is added to ``save_dict`` under ``"trainer"``.

    Args:
        trainer: the MONAI/Ignite trainer.
        ckpt_dir: checkpoint folder.
        save_dict: objects to save and restore (network, optimizer, lr scheduler, ...).
        resume: load the newest last checkpoint of ``ckpt_dir`` when there is one.
        save: write checkpoints (False on ranks other than 0). Each epoch's checkpoint is written atomically; then
            every other ``last_checkpoint_epoch=<N>.pt`` of ``ckpt_dir`` is deleted. Temporary files left by an
            interrupted write are deleted (and counted in a warning) when this is called.
        map_location: passed to ``torch.load``.

    Returns:
        The checkpoint resumed from, or None.

    Raises:
        OSError: when a checkpoint cannot be written (e.g. ENOSPC), naming the file; the previous one is kept.
        RuntimeError: when torch's writer fails (what it raises on a full disk), naming the file.
    """
    objects = dict(save_dict)
    objects["trainer"] = trainer
    if save:
        saver = _AtomicDiskSaver(ckpt_dir)
        folder = saver.dirname
        leftovers = [p for p in folder.iterdir() if _PART.match(p.name)]
        for p in leftovers:
            p.unlink(missing_ok=True)
        if leftovers:
            logger.warning(f"removed {len(leftovers)} incomplete checkpoint file(s) left by an interrupted write")
        # n_saved=None: Ignite's Checkpoint would delete the previous file before writing the new one; older last
        # checkpoints are deleted below, once the new one is complete on disk
        checkpoint = Checkpoint(
            objects,
            saver,
            filename_prefix=LAST_CHECKPOINT_PREFIX,
            score_function=lambda engine: engine.state.epoch,
            score_name="epoch",
            n_saved=None,
        )

        def save_last(engine: Any) -> None:
            checkpoint(engine)
            newest = folder / checkpoint.last_checkpoint
            for p in folder.iterdir():
                if p != newest and _EPOCH.match(p.name):
                    p.unlink(missing_ok=True)
            logger.info(f"saved {newest}")

        trainer.add_event_handler(Events.EPOCH_COMPLETED, save_last)
    last = find_last_checkpoint(ckpt_dir) if resume else None
    if last is not None:
        logger.info(f"resuming training from {last}")
        CheckpointLoader(load_path=last, load_dict=objects, map_location=map_location).attach(trainer)
    return last
