"""The provenance line of a study report: the commit, the command, the run time."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["provenance"]


def provenance(
    bundle: Path,
    records: Sequence[Mapping[str, Any]],
    wall_s: float,
    command: str | None = None,
    outputs: str | os.PathLike | None = None,
) -> str:
    """One Markdown line: the commit of the bundle's repository (``+dirty`` with local changes to tracked files,
    except under ``outputs``: the study's own results folder, which a plan rewrites stage by stage), the command, the
    summed time of the runs (``seconds`` of each record; runs of earlier invocations included) and this wall time."""

    def git(*args: str) -> str:
        try:
            res = subprocess.run(
                ["git", "-C", str(bundle), *args], check=False, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return res.stdout.strip() if res.returncode == 0 else ""

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown (not a git checkout)"
    if commit[0] != "u":
        changed = git("diff", "HEAD", "--name-only", "--no-renames").splitlines()  # tracked files, staged or not
        if outputs is not None:  # the paths are relative to the top of the repository
            top = Path(git("rev-parse", "--show-toplevel") or bundle).resolve()
            skip = os.path.relpath(Path(outputs).resolve(), top).replace(os.sep, "/").rstrip("/") + "/"
            changed = [name for name in changed if not name.startswith(skip)]
        if changed:
            commit += "+dirty"
    total = sum(float(r.get("seconds") or 0.0) for r in records)
    if command is None:
        argv = sys.argv[1:]
        command = shlex.join(["python", "-m", "monai_explain.apps.study", *argv]) if argv else "run_sweep()"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (f"Commit `{commit}`; command `{command}`; {len(records)} runs, {total / 60:.1f} min of run time in all, "
            f"this invocation {wall_s / 60:.1f} min; written {when}.")  # fmt: skip
