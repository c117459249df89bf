"""A study plan: several sweeps run by one command, their reports gathered into one committed results folder.

A plan is a JSON file::

    {
      "title": "cxr_expl: does explanation supervision undo the marker shortcut?",
      "stages": [
        {"name": "mechanism", "bundle": "bundles/cxr_expl", "settings": "mechanism_settings.json",
         "designs": ["cam/energy", "cam/outside-2s-neg"], "lambdas": [0, 1, 10], "seeds": [0, 1],
         "set": {"epochs": 8, "image_size": [64, 64]}, "n_resamples": 2000},
        ...
      ],
      "headline": "defaults"
    }

Paths in a stage (``bundle``, ``settings``) are relative to the plan file's folder unless absolute; ``set`` holds
config overrides as JSON values; ``splits`` is optional (the bundle contract's by default); ``workers`` trains that
many runs at a time. Each stage is one :func:`~monai_explain.apps.study.sweep.run_sweep` into ``<work>/<name>``
(``"work": "other"`` shares the run folder of another stage with the same bundle and ``set`` overrides, so runs of the
same setting, lambda and seed are trained once; :func:`load_plan` refuses a shared folder with other overrides),
resumable: finished runs are not trained again. Its report is copied to ``<results>/<name>/`` without the per-image
table (kept in the work folder). ``<results>/RESULTS.md`` lists every stage with its provenance line and its shortcut
recovery table; ``<results>/headline.md`` is the recovery table of the ``headline`` stage, the block the README quotes
verbatim (a test compares them).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .sweep import run_sweep

__all__ = ["HEADLINE_FILE", "load_plan", "run_plan"]

logger = logging.getLogger(__name__)

HEADLINE_FILE = "headline.md"
_STAGE_KEYS = {"name", "bundle", "settings", "designs", "lambdas", "seeds", "set", "splits", "n_resamples", "gallery",
               "workers", "work"}  # fmt: skip
_REQUIRED = ("name", "bundle", "lambdas", "seeds")


def load_plan(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a plan file (format in the module docstring); paths are made absolute.

    Raises:
        ValueError: a missing or unknown key (named with the stage), duplicate stage names, stages that share a run
            folder (``"work"``) with different bundles or ``set`` overrides, an unknown headline.
    """
    path = Path(path).resolve()
    plan = json.loads(path.read_text())
    stages = plan.get("stages")
    if not isinstance(stages, list) or not stages:
        raise ValueError(f"{path}: 'stages' must be a non-empty list.")
    names = []
    for i, st in enumerate(stages):
        where = f"{path}: stage {i} ({st.get('name', '?')!r})"
        missing = [k for k in _REQUIRED if k not in st]
        unknown = sorted(set(st) - _STAGE_KEYS)
        if missing or unknown:
            raise ValueError(
                f"{where}: missing key(s) {missing}, unknown key(s) {unknown} (known: {sorted(_STAGE_KEYS)})."
            )
        for key in ("bundle", "settings"):
            if st.get(key):
                st[key] = str((path.parent / st[key]).resolve())
        names.append(st["name"])
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: duplicate stage names {names}.")
    first: dict[str, dict[str, Any]] = {}
    for st in stages:  # a shared run folder means shared runs: they must be trained the same way for every stage
        other = first.setdefault(st.get("work", st["name"]), st)
        if (other["bundle"], other.get("set", {})) != (st["bundle"], st.get("set", {})):
            raise ValueError(
                f"{path}: stages {other['name']!r} and {st['name']!r} share the run folder "
                f"{st.get('work', st['name'])!r} but not their bundle and 'set' overrides: their lambda = 0 runs would "
                "be trained with the settings of whichever stage runs first."
            )
    if plan.get("headline") not in (None, *names):
        raise ValueError(f"{path}: headline {plan['headline']!r} is not a stage name {names}.")
    plan["path"] = str(path)
    return plan


def _provenance_of(summary_md: Path) -> str:
    lines = summary_md.read_text().splitlines()
    return next((ln for ln in lines if ln.startswith("Commit `")), "")


def _headline(report: Path) -> str:
    """The recovery summary of a stage's report and its provenance line (headed ``## Shortcut recovery``)."""
    text = (report / "summary.md").read_text()
    start = text.find("## Shortcut recovery")
    if start < 0:
        raise ValueError(f"{report / 'summary.md'}: no shortcut recovery table (does the stage have lambda = 0?).")
    end = text.find("\n## ", start + 1)
    block = text[start : end if end > 0 else len(text)].strip()
    return block + "\n\n" + _provenance_of(report / "summary.md") + "\n"


def run_plan(
    plan_path: str | os.PathLike,
    work: str | os.PathLike,
    results: str | os.PathLike,
    only: Sequence[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    workers: int | None = None,
    command: str | None = None,
) -> Path:
    """Run every stage of a plan (or those named in ``only``) and write the results folder; returns RESULTS.md.

    Args:
        plan_path: the plan JSON file.
        work: folder of the sweeps' runs (checkpoints, per-image tables); reused to resume.
        results: the results folder (one sub-folder per stage, RESULTS.md, headline.md).
        only: stage names to run (the others are left as they are in ``results``).
        overrides: config overrides added to every stage's ``set`` (e.g. ``{"num_workers": 2}``).
        workers: runs trained at a time (None: each stage's ``workers``, default 1); see
            :func:`~monai_explain.apps.study.sweep.run_sweep`.
        command: how the plan was started, for the provenance lines (default: this process's command line).

    Raises:
        ValueError: a stage name in ``only`` that the plan does not have, or what :func:`load_plan` raises.
        RuntimeError: when a run of a stage fails (from :func:`~monai_explain.apps.study.sweep.run_sweep`).
    """
    plan = load_plan(plan_path)
    work, results = Path(work).resolve(), Path(results).resolve()
    results.mkdir(parents=True, exist_ok=True)
    names = [st["name"] for st in plan["stages"]]
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; the plan has {names}.")
    for st in plan["stages"]:
        if only and st["name"] not in only:
            continue
        t0 = time.perf_counter()
        named = json.loads(Path(st["settings"]).read_text()) if st.get("settings") else None
        designs = st.get("designs") or (list(named) if named else ["energy"])
        summary = run_sweep(
            st["bundle"], designs, st["lambdas"], st["seeds"], work / st.get("work", st["name"]),
            {**st.get("set", {}), **(overrides or {})}, st.get("splits"), st.get("n_resamples", 10000),
            gallery=st.get("gallery", False), settings=named, workers=workers or st.get("workers", 1), command=command,
            outputs=results,
        )  # fmt: skip
        if (results / st["name"]).exists():
            shutil.rmtree(results / st["name"])
        shutil.copytree(summary.parent, results / st["name"], ignore=shutil.ignore_patterns("per_image.csv"))
        logger.info(f"stage {st['name']}: {time.perf_counter() - t0:.0f} s")
        if st["name"] == plan.get("headline"):
            # one heading level down, as in RESULTS.md: the README quotes it inside its study section
            (results / HEADLINE_FILE).write_text("#" + _headline(summary.parent))
    intro = (
        f"Plan: `{os.path.relpath(plan['path'])}`. Regenerate with `make study`. Every stage's folder holds its report "
        "(summary.md, CSV tables, plots)."
    )
    lines = [f"# {plan.get('title', 'Study results')}", "", intro, ""]
    for name in names:
        md = results / name / "summary.md"
        lines += [f"## [{name}]({name}/summary.md)", ""]
        if not md.is_file():
            lines += ["Not run yet.", ""]
            continue
        try:
            lines += ["#" + _headline(results / name), ""]  # the recovery table one level down, then provenance
        except ValueError:
            lines += [_provenance_of(md), ""]
    path = results / "RESULTS.md"
    path.write_text("\n".join(lines))
    return path
