"""Resumable training: MONAI's ``CheckpointSaver`` / ``CheckpointLoader`` wired for "continue from the last epoch".

The trainer's own state (epoch, iteration) is saved with the network and optimizer, so everything derived from it
continues where it stopped: the lambda schedule (a function of the engine state), learning-rate schedules passed in
``save_dict``, and the MLflow run (``MLFlowHandler`` continues the unfinished run of the same ``run_name``).
Checkpoints are written through Ignite's ``DiskSaver`` with ``atomic=True``: to a temporary file in the same
folder, then renamed, so a process killed mid-write leaves the previous complete checkpoint in place.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monai.handlers import CheckpointLoader, CheckpointSaver

__all__ = ["LAST_CHECKPOINT_PREFIX", "find_last_checkpoint", "attach_checkpointing"]

logger = logging.getLogger(__name__)

LAST_CHECKPOINT_PREFIX = "last"
_EPOCH = re.compile(rf"^{LAST_CHECKPOINT_PREFIX}_checkpoint_epoch=(\d+)\.pt$")


def find_last_checkpoint(ckpt_dir: str | os.PathLike) -> str | None:
    """Path of the newest ``last_checkpoint_epoch=<N>.pt`` in ``ckpt_dir`` (highest N), or None.

    Temporary files of an interrupted write (Ignite writes ``<name>.tmp...`` first) never match.
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
        save: write checkpoints (False on ranks other than 0).
        map_location: passed to ``torch.load``.

    Returns:
        The checkpoint resumed from, or None.
    """
    objects = dict(save_dict)
    objects["trainer"] = trainer
    if save:
        CheckpointSaver(
            save_dir=str(ckpt_dir),
            save_dict=objects,
            file_prefix=LAST_CHECKPOINT_PREFIX,
            save_interval=1,
            epoch_level=True,
            n_saved=1,
        ).attach(trainer)
    last = find_last_checkpoint(ckpt_dir) if resume else None
    if last is not None:
        logger.info(f"resuming training from {last}")
        CheckpointLoader(load_path=last, load_dict=objects, map_location=map_location).attach(trainer)
    return last
