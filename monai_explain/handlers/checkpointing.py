"""Resumable training as declared handlers: the last checkpoint, the best model, and resuming from them.

- :class:`LastCheckpointSaver` (on the trainer) writes ``last_checkpoint_epoch=<N>.pt`` after every epoch (after
  that epoch's validation): network, optimizer, the trainer's own state (epoch, iteration), the best-model
  tracker and whatever else is in its ``save_dict`` (e.g. the MLflow run under ``"mlflow"``).
- :class:`BestModelSaver` (on the evaluator) writes ``model.pt`` when the key metric beats the best so far; its
  state (the best value and its epoch) travels in the last checkpoint, so that a resumed run compares with the
  same best value as an uninterrupted one and writes the same ``model.pt``.
- :class:`LastCheckpointLoader` (on the trainer) loads the newest last checkpoint when the run starts.
- :class:`PreviousRunArchiver` (on the trainer) is its counterpart for a fresh run: when the run starts, it moves
  the best model and the last checkpoint an earlier run left in the folder to ``previous/<UTC time>/``, so that a
  second training in the same folder never overwrites them silently.

Everything derived from the trainer state continues where it stopped: the lambda schedule (a function of the engine
state), learning-rate schedules passed in ``save_dict``, the data order (``EpochSeedHandler``).

A crash must never cost the last complete checkpoint. MONAI's ``CheckpointSaver`` cannot promise that: it writes
through Ignite's ``DiskSaver(atomic=False)`` straight into the final file name, and Ignite's ``Checkpoint`` deletes
the previous file *before* writing the next one (``n_saved=1``), so a kill or a full disk during the write leaves
only a truncated ``last_checkpoint_epoch=<N>.pt``. Here each checkpoint is written to a hidden temporary file in
the same folder, flushed to disk, renamed over its final name, and only then are older last checkpoints deleted.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import math
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from monai.handlers import CheckpointLoader
from monai.utils import IgniteInfo, min_version, optional_import

from monai_explain.handlers.lambda_schedules import first_settled_epoch
from monai_explain.utils.config import as_int

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
Checkpoint, _ = optional_import("ignite.handlers", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Checkpoint")

__all__ = [
    "LAST_CHECKPOINT_PREFIX",
    "PREVIOUS_RUNS_FOLDER",
    "BestModelSaver",
    "LastCheckpointLoader",
    "LastCheckpointSaver",
    "PreviousRunArchiver",
    "attach_checkpointing",
    "find_last_checkpoint",
    "selection_start_epoch",
]

logger = logging.getLogger(__name__)

LAST_CHECKPOINT_PREFIX = "last"
PREVIOUS_RUNS_FOLDER = "previous"  # sub-folder of the checkpoint folder that receives an earlier run's files
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

    def __init__(self, dirname: str | os.PathLike, filename: str | None = None, what: str = "checkpoint") -> None:
        self.dirname = Path(dirname)
        self.dirname.mkdir(parents=True, exist_ok=True)
        self.filename = filename  # a fixed file name instead of Ignite's (e.g. "model.pt")
        self.what = what

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        filename = self.filename or filename
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
                message = f"could not write the {self.what} {path} ({_free_space(self.dirname)})"
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
        (self.dirname / (self.filename or filename)).unlink(missing_ok=True)


def find_last_checkpoint(ckpt_dir: str | os.PathLike) -> str | None:
    """Path of the newest ``last_checkpoint_epoch=<N>.pt`` in ``ckpt_dir`` (highest N), or None.

    Temporary files of a write in progress or interrupted by a kill (``.<name>.<random>.part``) never match.
    """
    folder = Path(ckpt_dir)
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _EPOCH.match(p.name)) and p.is_file()]
    return str(max(found)[1]) if found else None


def _present(objects: Mapping[str, Any]) -> dict[str, Any]:
    """The entries that are not None (a component disabled in the config, e.g. on ranks other than 0)."""
    return {k: v for k, v in objects.items() if v is not None}


class LastCheckpointSaver:
    """Write ``last_checkpoint_epoch=<N>.pt`` atomically after every epoch and delete the older ones.

    Declare it in ``train#handlers`` after the ``ValidationHandler``: Ignite runs handlers of one event in the order
    they were attached, so the checkpoint of epoch N holds the best-model tracker as updated by epoch N's validation.
    The engine it is attached to is saved under ``"trainer"``. Temporary files left by an interrupted write are
    deleted (and counted in a warning) when it is attached.

    Args:
        save_dir: checkpoint folder (created).
        save_dict: objects with ``state_dict()`` to save (network, optimizer, :class:`BestModelSaver`, lr scheduler,
            MLflow handler, ...); None values (disabled components) are skipped.

    Raises:
        OSError: when a checkpoint cannot be written (e.g. ENOSPC), naming the file; the previous one is kept.
        RuntimeError: when torch's writer fails (what it raises on a full disk), naming the file.

    Example:
        ``{"_target_": "monai_explain.handlers.LastCheckpointSaver", "save_dir": "@ckpt_dir",
        "save_dict": "@checkpoint_objects"}`` in ``train#handlers``.
    """

    def __init__(self, save_dir: str | os.PathLike, save_dict: Mapping[str, Any]) -> None:
        self.save_dir = Path(save_dir)
        self.save_dict = _present(save_dict)
        self.last_checkpoint: Path | None = None

    def attach(self, engine: Any) -> None:
        saver = _AtomicDiskSaver(self.save_dir)
        leftovers = [p for p in self.save_dir.iterdir() if _PART.match(p.name)]
        for p in leftovers:
            p.unlink(missing_ok=True)
        if leftovers:
            logger.warning(f"removed {len(leftovers)} incomplete checkpoint file(s) left by an interrupted write")
        # n_saved=None: Ignite's Checkpoint would delete the previous file before writing the new one; older last
        # checkpoints are deleted in __call__, once the new one is complete on disk
        self._checkpoint = Checkpoint(
            {**self.save_dict, "trainer": engine},
            saver,
            filename_prefix=LAST_CHECKPOINT_PREFIX,
            score_function=lambda e: e.state.epoch,
            score_name="epoch",
            n_saved=None,
        )
        if not engine.has_event_handler(self, Events.EPOCH_COMPLETED):
            engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Any) -> None:
        self._checkpoint(engine)
        newest = self.save_dir / self._checkpoint.last_checkpoint
        for p in self.save_dir.iterdir():
            if p != newest and _EPOCH.match(p.name):
                p.unlink(missing_ok=True)
        self.last_checkpoint = newest
        logger.info(f"saved {newest}")


class LastCheckpointLoader:
    """When the run starts, load the newest ``last_checkpoint_epoch=<N>.pt`` of ``ckpt_dir`` (MONAI's
    ``CheckpointLoader``), so that training continues after the last completed epoch.

    The engine it is attached to is loaded from ``"trainer"``. Declare it with ``"_disabled_"`` bound to the
    ``resume`` knob (``"$not monai_explain.utils.as_bool(@resume, 'resume')"``). With no checkpoint in ``ckpt_dir``
    the run starts from scratch (with a warning).

    Args:
        ckpt_dir: checkpoint folder.
        load_dict: the objects to restore, as in :class:`LastCheckpointSaver`'s ``save_dict``; None values skipped.
        map_location: passed to ``torch.load``.
    """

    def __init__(self, ckpt_dir: str | os.PathLike, load_dict: Mapping[str, Any], map_location: Any = None) -> None:
        self.ckpt_dir = Path(ckpt_dir)
        self.load_dict = _present(load_dict)
        self.map_location = map_location
        self.loaded: str | None = None

    def attach(self, engine: Any) -> None:
        last = find_last_checkpoint(self.ckpt_dir)
        if last is None:
            logger.warning(f"resume requested but {self.ckpt_dir} holds no last checkpoint: training starts anew")
            return
        logger.info(f"resuming training from {last}")
        CheckpointLoader(
            load_path=last, load_dict={**self.load_dict, "trainer": engine}, map_location=self.map_location
        ).attach(engine)
        self.loaded = last


class PreviousRunArchiver:
    """When a fresh training starts, move what an earlier run left in ``ckpt_dir`` to ``ckpt_dir/previous/<time>/``.

    A second training started in the same folder without ``resume`` would overwrite the earlier run's best model
    (``model.pt``, :class:`BestModelSaver`) and delete its last checkpoint (:class:`LastCheckpointSaver` keeps only
    its own newest one). This handler is the counterpart of :class:`LastCheckpointLoader` for a fresh run: at the
    engine's first ``STARTED`` event (before any epoch, so before anything is saved) it moves the files of
    ``ckpt_dir`` that match ``patterns`` into a new folder ``ckpt_dir/previous/<UTC time>/`` (e.g.
    ``previous/2026-11-30T20-31-05Z``; a suffix ``-2``, ``-3``, ... is added when that name exists, so an archive is
    never overwritten) and logs a WARNING naming the files and the destination. The files are renamed (same file
    system, nothing is copied), so they keep their bytes: the archive folder is a complete checkpoint folder, which
    ``evaluate.json`` can evaluate with ``--ckpt_path <archive>/model.pt``. With nothing to move it does nothing.

    Declare it in ``train#handlers`` after :class:`~monai_explain.handlers.OutputFolderLock` (a concurrent training's
    files are never moved: the lock refuses to start first), with ``"_disabled_"`` true when resuming and on ranks
    other than 0 (``"$@is_not_rank0 or monai_explain.utils.as_bool(@resume, 'resume')"``). Temporary files of an
    interrupted write (``.<name>.<random>.part``) do not match the default patterns; :class:`LastCheckpointSaver`
    deletes them.

    Args:
        ckpt_dir: the checkpoint folder of the training.
        patterns: shell-style patterns (:mod:`fnmatch`) of the file names to move; default: the best model
            ``model.pt`` and the last checkpoints ``last_checkpoint_epoch=*.pt``.
        archive_folder: name of the sub-folder of ``ckpt_dir`` that holds the archives.

    Example:
        ``{"_target_": "monai_explain.handlers.PreviousRunArchiver", "_disabled_": "$@is_not_rank0 or
        monai_explain.utils.as_bool(@resume, 'resume')", "ckpt_dir": "@ckpt_dir"}`` in ``train#handlers``.
    """

    def __init__(
        self,
        ckpt_dir: str | os.PathLike,
        patterns: Sequence[str] = ("model.pt", f"{LAST_CHECKPOINT_PREFIX}_checkpoint_epoch=*.pt"),
        archive_folder: str = PREVIOUS_RUNS_FOLDER,
    ) -> None:
        if isinstance(patterns, str):
            patterns = (patterns,)
        self.ckpt_dir = Path(ckpt_dir)
        self.patterns = tuple(patterns)
        self.archive_folder = archive_folder
        self.archived: Path | None = None  # the archive folder made by this handler, if any
        self._done = False

    def attach(self, engine: Any) -> None:
        if not engine.has_event_handler(self, Events.STARTED):
            engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Any = None) -> None:
        if self._done:  # once per training: a later engine.run() continues this run, its files are its own
            return
        self._done = True
        self.archive()

    def previous_files(self) -> list[Path]:
        """The files of ``ckpt_dir`` that match ``patterns`` (sorted by name)."""
        if not self.ckpt_dir.is_dir():
            return []
        return sorted(
            p
            for p in self.ckpt_dir.iterdir()
            if (p.is_file() or p.is_symlink()) and any(fnmatch.fnmatchcase(p.name, pat) for pat in self.patterns)
        )

    def _new_archive(self) -> Path:
        root = self.ckpt_dir / self.archive_folder
        root.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")
        for n in range(1, 10_000):
            folder = root / (stamp if n == 1 else f"{stamp}-{n}")
            try:
                folder.mkdir()  # not exist_ok: an existing archive is never written into
            except FileExistsError:
                continue
            return folder
        raise FileExistsError(f"could not make a new archive folder under {root} for {stamp}")

    def archive(self) -> Path | None:
        """Move the earlier run's files now.

        Returns:
            The archive folder, or None when there was nothing to move.

        Raises:
            OSError: when a file cannot be moved, naming it (the training must not start and overwrite it).
        """
        files = self.previous_files()
        if not files:
            return None
        folder = self._new_archive()
        moved: list[str] = []
        for src in files:
            try:
                os.rename(src, folder / src.name)
            except OSError as e:
                raise OSError(
                    e.errno,
                    f"could not move {src} from an earlier training to {folder} "
                    f"(already moved: {', '.join(moved) or 'nothing'}): {e.strerror or e}",
                ) from e
            moved.append(src.name)
        self.archived = folder
        logger.warning(
            f"{self.ckpt_dir} held files of an earlier training and this one starts anew (resume is false): moved "
            f"{', '.join(moved)} to {folder} (use --resume true to continue a training instead)"
        )
        return folder


def selection_start_epoch(lambda_schedule: Any, epochs: Any, val_interval: Any = 1) -> int:
    """The ``from_epoch`` of :class:`BestModelSaver` for an explanation-supervised run.

    The first validated epoch trained wholly at the schedule's final lambda
    (:func:`~monai_explain.handlers.first_settled_epoch`); when the warm-up outlasts the run, the run's last validated
    epoch, so that a short run (a test, a smoke run) still writes ``model.pt``. Validations happen every
    ``val_interval`` epochs (MONAI's ``ValidationHandler(interval=...)``).

    Args:
        lambda_schedule: anything :func:`~monai_explain.handlers.get_lambda_schedule` accepts.
        epochs: the run's number of epochs (a command-line string is accepted).
        val_interval: epochs between validations.

    Raises:
        ValueError: ``epochs`` or ``val_interval`` is not an integer >= 1, or the schedule is invalid.

    Example:
        >>> selection_start_epoch({"name": "linear_warmup", "end": 10.0, "warmup": 4}, 12)
        5
        >>> selection_start_epoch({"name": "linear_warmup", "end": 10.0, "warmup": 4}, 2)
        2
    """
    epochs, interval = as_int(epochs, "epochs", minimum=1), as_int(val_interval, "val_interval", minimum=1)
    last_validated = max(interval, epochs - epochs % interval)
    return min(first_settled_epoch(lambda_schedule), last_validated)


class BestModelSaver:
    """Write the best model (``model.pt``) atomically when the evaluator's key metric beats the best so far.

    MONAI's ``CheckpointSaver(save_key_metric=True)`` deletes ``model.pt`` before it writes the new one (a crash or a
    full disk in between leaves no best model or a truncated one) and forgets the best value when a run is resumed
    (the resumed run then overwrites ``model.pt`` at its first validation). Here the file is replaced atomically
    (temporary file, fsync, rename; errors name the file) and :meth:`state_dict` holds the best value and its epoch:
    put this object in :class:`LastCheckpointSaver`'s ``save_dict`` and a resumed run writes the same ``model.pt``
    as an uninterrupted one. A NaN key metric never counts as a new best (it is ranked below every number); the
    first eligible validation always writes ``model.pt``. On loading, the evaluator's ``state.best_metric`` and
    ``state.best_metric_epoch`` are restored as well.

    Validations before ``from_epoch`` are not eligible: an explanation-supervised run should be selected among the
    epochs trained at the full lambda (:func:`~monai_explain.handlers.first_settled_epoch` gives that epoch for a
    lambda schedule). Among equal scores the earliest eligible epoch is kept, as in Ignite's ``Checkpoint``.

    Args:
        save_dir: folder of the best model (created).
        save_dict: objects to save (network, decision threshold, ...); None values skipped. With a single entry
            the file holds that object's ``state_dict()`` itself (as MONAI's ``CheckpointSaver`` writes it).
        filename: the best model's file name.
        key_metric_name: the metric to compare (default: the evaluator's key metric).
        from_epoch: the first epoch (the evaluator's ``state.epoch``, i.e. the trainer's epoch under MONAI's
            ``ValidationHandler``) whose validation may become the best model; 1 makes every validation eligible.
            Set it no later than the last validated epoch, or no ``model.pt`` is written.

    Raises:
        ValueError: ``from_epoch`` is not an integer >= 1.

    Example:
        ``"validate#best_model_saver": {"_target_": "monai_explain.handlers.BestModelSaver", "save_dir":
        "@ckpt_dir", "save_dict": {"model": "@network"}, "from_epoch": 5}``, listed in ``validate#handlers``.
    """

    def __init__(
        self,
        save_dir: str | os.PathLike,
        save_dict: Mapping[str, Any],
        filename: str = "model.pt",
        key_metric_name: str | None = None,
        from_epoch: int = 1,
    ) -> None:
        self.save_dir = Path(save_dir)
        self.filename = filename
        self.key_metric_name = key_metric_name
        self.from_epoch = as_int(from_epoch, "from_epoch", minimum=1)
        self._engine: Any = None
        self._best_epoch = -1
        self._checkpoint = Checkpoint(
            _present(save_dict),
            _AtomicDiskSaver(self.save_dir, filename=filename, what="best model"),
            score_function=self._score,
            score_name="key_metric",
            n_saved=1,
        )

    def _score(self, engine: Any) -> float:
        name = self.key_metric_name or engine.state.key_metric_name
        value = float(engine.state.metrics[name])
        if math.isnan(value):
            logger.warning(f"key metric {name} is NaN at epoch {engine.state.epoch}: never counted as a new best")
            return -math.inf
        return value

    def attach(self, engine: Any) -> None:
        self._engine = engine
        if not engine.has_event_handler(self, Events.EPOCH_COMPLETED):
            engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _saved(self) -> list:
        return list(self._checkpoint.state_dict()["_saved"])

    def __call__(self, engine: Any) -> None:
        if engine.state.epoch < self.from_epoch:
            logger.info(
                f"epoch {engine.state.epoch}: not eligible as the best model (model selection starts at epoch "
                f"{self.from_epoch})"
            )
            return
        before = self._saved()
        self._checkpoint(engine)
        if self._saved() != before:
            self._best_epoch = engine.state.epoch
            logger.info(f"saved the best model {self.save_dir / self.filename} (epoch {engine.state.epoch})")

    def state_dict(self) -> dict[str, Any]:
        """The best value so far and its epoch (``best_metric`` is None before the first validation)."""
        saved = self._saved()
        return {"best_metric": float(saved[0][0]) if saved else None, "best_metric_epoch": self._best_epoch}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        best, epoch = state_dict["best_metric"], int(state_dict["best_metric_epoch"])
        self._checkpoint.load_state_dict({"_saved": [] if best is None else [(float(best), self.filename)]})
        self._best_epoch = epoch
        if self._engine is not None and best is not None:
            self._engine.state.best_metric = float(best)
            self._engine.state.best_metric_epoch = epoch


def attach_checkpointing(
    trainer: Any,
    ckpt_dir: str | os.PathLike,
    save_dict: Mapping[str, Any],
    resume: bool = True,
    save: bool = True,
    map_location: Any = None,
) -> str | None:
    """Attach a per-epoch "last" checkpoint saver and, when one exists and ``resume``, a loader of it.

    The imperative form of :class:`LastCheckpointSaver` + :class:`LastCheckpointLoader` (bundles declare those in
    ``train#handlers``). Call it before ``trainer.run()``. ``trainer`` is added to ``save_dict`` under ``"trainer"``.

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
    if save:
        LastCheckpointSaver(ckpt_dir, save_dict).attach(trainer)
    if not resume:
        return None
    loader = LastCheckpointLoader(ckpt_dir, save_dict, map_location=map_location)
    loader.attach(trainer)
    return loader.loaded
