"""The provenance line of a report: the commit (``+dirty`` outside the plan's own outputs), the command, run time."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from monai_explain.apps.study import provenance
from monai_explain.apps.study.provenance import source_commit


def test_provenance_names_the_commit_and_ignores_the_plans_own_outputs(tmp_path):
    """A plan rewrites its tracked results folder stage by stage: that alone must not mark later stages ``+dirty``;
    a change anywhere else must."""
    repo = tmp_path / "repo"
    (repo / "bundle" / "configs").mkdir(parents=True)
    (repo / "bundle" / "results").mkdir()
    (repo / "bundle" / "configs" / "train.json").write_text("{}\n")
    (repo / "bundle" / "results" / "RESULTS.md").write_text("old\n")

    def git(*args: str) -> str:
        env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@t", "PATH": os.environ["PATH"], "HOME": str(tmp_path)}  # fmt: skip
        return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                              env=env).stdout.strip()  # fmt: skip

    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "x")
    head = git("rev-parse", "--short=12", "HEAD")
    bundle, results = repo / "bundle", repo / "bundle" / "results"
    line = provenance(bundle, [{"seconds": 60.0}, {"seconds": 30.0}], 12.0, "python -m x", results)
    assert line.startswith(
        f"Commit `{head}`; command `python -m x`; 2 runs, trained at not recorded (2); 1.5 min of run time in all"
    )
    assert source_commit(bundle, results) == head
    (results / "RESULTS.md").write_text("new\n")
    assert f"`{head}`" in provenance(bundle, [], 0.0, "c", results)
    assert f"`{head}+dirty`" in provenance(bundle, [], 0.0, "c")  # without outputs, any change counts
    (bundle / "configs" / "train.json").write_text('{"lambda": 1}\n')
    assert f"`{head}+dirty`" in provenance(bundle, [], 0.0, "c", results)
    assert source_commit(bundle, results) == f"{head}+dirty"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert source_commit(elsewhere) == "unknown (not a git checkout)"


def test_provenance_counts_the_commits_the_runs_were_trained_at():
    """Runs read from earlier invocations may come from older code: the line says which commit trained how many."""
    records = [{"seconds": 60.0, "commit": "aaa"}] * 3 + [{"seconds": 60.0, "commit": "bbb+dirty"}, {"seconds": 60.0}]
    line = provenance(Path("."), records, 0.0, "c")
    assert "5 runs, trained at `aaa` (3), `bbb+dirty` (1), not recorded (1); 5.0 min of run time in all" in line
