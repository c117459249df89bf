"""One training per output folder: a second training started on the same checkpoint / output folder is refused."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from monai.utils import IgniteInfo, ensure_tuple, min_version, optional_import

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["OutputFolderLock"]

logger = logging.getLogger(__name__)

_TRUE, _FALSE = {"true", "1", "yes", "y", "on"}, {"false", "0", "no", "n", "off", ""}
_HELD: dict[str, IO[str]] = {}  # lock files this process holds, by path (closing one would release its lock)


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, str):
        if value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def _lock_path(folder: Path) -> Path:
    digest = hashlib.md5(str(folder).encode("utf-8"), usedforsecurity=False).hexdigest()
    return Path(tempfile.gettempdir()) / f"monai_explain_output-{digest}.lock"


class OutputFolderLock:
    """Refuses to start a training whose checkpoint or output folder another running training writes to.

    Two trainings in one bundle folder would overwrite each other's ``models/model.pt``, last checkpoints and
    overlays. When attached, the handler takes an exclusive lock for each folder in ``folders`` (a POSIX record
    lock on a file in the temporary folder named after the folder's resolved path; nothing is written into the
    folders). If another process holds one, it raises a ``RuntimeError`` naming the folder, the other process
    (pid, host, start time, command) and the option that allows sharing. The locks are released when the engine
    completes, and by the operating system when the process ends (also on a crash or SIGKILL), so a killed run
    can be resumed at once. The same process may take its own locks again (a resumed training in one notebook).

    Limits: the check sees trainings on the same machine (the lock files live in its temporary folder); on
    Windows (no ``fcntl``) it does nothing and says so at debug level.

    Args:
        folders: the folders the training writes (checkpoint folder, output folder).
        allow_shared: start anyway, with a warning, when another training holds a folder (each run then needs its
            own file names; the bundle's do not differ, so its outputs overwrite each other).
    """

    def __init__(self, folders: str | os.PathLike | Sequence[str | os.PathLike], allow_shared: bool = False) -> None:
        self.folders = [Path(f).resolve() for f in ensure_tuple(folders)]
        self.allow_shared = _as_bool(allow_shared, "allow_shared_output")
        self.held: list[str] = []

    def attach(self, engine: Any) -> None:
        self.acquire()
        if not engine.has_event_handler(self.release, Events.COMPLETED):
            engine.add_event_handler(Events.COMPLETED, self.release)

    def acquire(self) -> None:
        """Lock every folder; raise (or warn, with ``allow_shared``) when another process holds one."""
        if os.name == "nt":
            logger.debug("OutputFolderLock: no fcntl on Windows, concurrent trainings are not detected")
            return
        import fcntl

        for folder in self.folders:
            path = str(_lock_path(folder))
            if path in _HELD:  # this process holds it already (e.g. a training that crashed): take it over
                if path not in self.held:
                    self.held.append(path)
                continue
            f = open(path, "a+")  # noqa: SIM115 (kept open while the lock is held)
            try:
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.seek(0)
                holder = f.read().strip() or "unknown process"
                f.close()  # this process holds no lock on the file: closing it releases nothing
                message = (
                    f"another training is writing to {folder} ({holder}). Give each run its own folders "
                    "(--bundle_root, or --ckpt_dir and --output_dir), wait for it to end, or set "
                    "allow_shared_output=true to run anyway (outputs of the same name overwrite each other)."
                )
                if not self.allow_shared:
                    raise RuntimeError(message) from None
                logger.warning(f"allow_shared_output is set: {message}")
                continue
            f.seek(0)
            f.truncate()
            started = time.strftime("%Y-%m-%d %H:%M:%S")
            f.write(f"pid {os.getpid()} on {socket.gethostname()}, started {started}: {' '.join(sys.argv)[:300]}")
            f.flush()
            _HELD[path] = f
            self.held.append(path)

    def release(self) -> None:
        """Release the locks this handler took."""
        while self.held:
            f = _HELD.pop(self.held.pop(), None)
            if f is not None:
                f.close()  # closing the file releases the process's record lock on it
