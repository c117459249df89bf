"""Where a study's numbers come from: the commit a run was trained at, and the provenance line of a report."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["provenance", "source_commit"]


def source_commit(path: str | os.PathLike, outputs: str | os.PathLike | None = None) -> str:
    """The commit of the git checkout that holds ``path`` (12 hex digits), ``+dirty`` when tracked files differ from it
    (outside ``outputs``: the study's own results folder, which a plan rewrites stage by stage), or
    ``"unknown (not a git checkout)"``."""

    def git(*args: str) -> str:
        try:
            res = subprocess.run(
                ["git", "-C", str(path), *args], check=False, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return res.stdout.strip() if res.returncode == 0 else ""

    commit = git("rev-parse", "--short=12", "HEAD")
    if not commit:
        return "unknown (not a git checkout)"
    changed = git("diff", "HEAD", "--name-only", "--no-renames").splitlines()  # tracked files, staged or not
    if outputs is not None:  # the paths are relative to the top of the repository
        top = Path(git("rev-parse", "--show-toplevel") or path).resolve()
        skip = os.path.relpath(Path(outputs).resolve(), top).replace(os.sep, "/").rstrip("/") + "/"
        changed = [name for name in changed if not name.startswith(skip)]
    return commit + "+dirty" if changed else commit


def provenance(
    bundle: Path,
    records: Sequence[Mapping[str, Any]],
    wall_s: float,
    command: str | None = None,
    outputs: str | os.PathLike | None = None,
) -> str:
    """One Markdown line: the commit of the bundle's repository now (:func:`source_commit`), the command, the number of
    runs and the commit(s) their code was trained at (each record's ``commit``; ``not recorded`` for records that
    predate it: runs finished in earlier invocations are read, not retrained, so they may come from older code), the
    summed time of the runs (``seconds`` of each record; earlier invocations included) and this wall time."""
    commit = source_commit(bundle, outputs)
    trained = Counter(f"`{r['commit']}`" if r.get("commit") else "not recorded" for r in records)
    at = ", ".join(f"{c} ({n})" for c, n in sorted(trained.items(), key=lambda kv: -kv[1]))
    total = sum(float(r.get("seconds") or 0.0) for r in records)
    if command is None:
        argv = sys.argv[1:]
        command = shlex.join(["python", "-m", "monai_explain.apps.study", *argv]) if argv else "run_sweep()"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (f"Commit `{commit}`; command `{command}`; {len(records)} runs, trained at {at or 'n/a'}; "
            f"{total / 60:.1f} min of run time in all, this invocation {wall_s / 60:.1f} min; written {when}.")  # fmt: skip
