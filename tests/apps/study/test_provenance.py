"""The provenance line of a report: the commit (``+dirty`` outside the plan's own outputs), the command, run time."""

from __future__ import annotations

import os
import subprocess

from monai_explain.apps.study import provenance


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
    assert line.startswith(f"Commit `{head}`; command `python -m x`; 2 runs, 1.5 min of run time in all")
    (results / "RESULTS.md").write_text("new\n")
    assert f"`{head}`" in provenance(bundle, [], 0.0, "c", results)
    assert f"`{head}+dirty`" in provenance(bundle, [], 0.0, "c")  # without outputs, any change counts
    (bundle / "configs" / "train.json").write_text('{"lambda": 1}\n')
    assert f"`{head}+dirty`" in provenance(bundle, [], 0.0, "c", results)
