"""Does the README's headline reproduce? Retrain the plan's headline stage from nothing and compare its tables.

Trains every run of the ``headline`` stage of ``plan.json`` (the bundle's default recipe and its lambda = 0 baseline,
over the stage's seeds) into an empty work folder, on data generated there, with the study's own command
(:func:`monai_explain.apps.study.run_plan`, ``--workers`` runs at a time, one torch thread each as in the committed
study), then compares every CSV table of the fresh stage report with the committed one in ``results/<stage>/``:
the rows must name the same settings, seeds, splits and metrics, and each numeric cell is compared. It also says
whether the README's block (``results/headline.md``, without its provenance line) came out the same. Run::

    python bundles/cxr_expl/study/reproduce_headline.py --work reports/reproduce \
        --out bundles/cxr_expl/study/results/reproduction.md

(``make reproduce``; about 15 min on 2 cores). The work folder must be empty or new, so that nothing is read from
an earlier training; ``--resume`` continues an interrupted reproduction in the same folder.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from monai_explain.apps.study import markdown_table, run_plan

STUDY = Path(__file__).resolve().parent


def compare_tables(committed: Path, fresh: Path, atol: float = 1e-9) -> pd.DataFrame:
    """Cell-by-cell comparison of the CSV tables of two report folders (the committed folder's files).

    Rows are compared in order; the text columns (setting, split, metric, ...) must be equal, numeric cells are
    equal when both are NaN or they differ by at most ``atol``.

    Returns:
        One row per file: ``file, rows, numeric_cells, cells_differing, max_abs_difference``.

    Raises:
        FileNotFoundError: a committed table the fresh report lacks.
        ValueError: tables of different shape or columns, or rows that name different settings (file and first row
            named).
    """
    out = []
    for path in sorted(committed.glob("*.csv")):
        other = fresh / path.name
        if not other.is_file():
            raise FileNotFoundError(f"the fresh report has no {path.name} (expected {other}).")
        a, b = pd.read_csv(path), pd.read_csv(other)
        if a.shape != b.shape or list(a.columns) != list(b.columns):
            raise ValueError(
                f"{path.name}: committed {a.shape} {list(a.columns)} vs fresh {b.shape} {list(b.columns)}."
            )
        numeric = [c for c in a.columns if pd.api.types.is_numeric_dtype(a[c]) and pd.api.types.is_numeric_dtype(b[c])]
        text = [c for c in a.columns if c not in numeric]
        differ = (a[text].fillna("").astype(str) != b[text].fillna("").astype(str)).any(axis=1)  # NaN equals NaN
        if differ.any():
            row = int(np.flatnonzero(differ)[0])
            raise ValueError(f"{path.name}, row {row}: committed {a[text].iloc[row].tolist()} vs fresh "
                             f"{b[text].iloc[row].tolist()}.")  # fmt: skip
        x, y = a[numeric].to_numpy(dtype=float), b[numeric].to_numpy(dtype=float)
        same = (np.isnan(x) & np.isnan(y)) | (np.abs(x - y) <= atol)
        diff = np.abs(x - y)[~np.isnan(x) & ~np.isnan(y)]
        out.append({"file": path.name, "rows": len(a), "numeric_cells": int(x.size),
                    "cells_differing": int((~same).sum()),
                    "max_abs_difference": float(diff.max()) if diff.size else 0.0})  # fmt: skip
    return pd.DataFrame(out)


def without_provenance(text: str) -> str:
    """A report block without its provenance line (commit, command, times: they differ by design)."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("Commit `")).strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", type=Path, default=STUDY / "plan.json")
    parser.add_argument("--results", type=Path, default=STUDY / "results", help="the committed results folder")
    parser.add_argument("--work", type=Path, required=True, help="an empty or new folder for the fresh runs")
    parser.add_argument("--out", type=Path, required=True, help="the Markdown record to write")
    parser.add_argument("--workers", type=int, default=2, help="runs trained at a time (the committed study: 2)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted reproduction in --work")
    args = parser.parse_args(argv)
    work = args.work.resolve()
    if work.exists() and any(work.iterdir()) and not args.resume:
        parser.error(f"--work {work} is not empty: its finished runs would not be trained again (use a new folder, "
                     "or --resume to continue an interrupted reproduction).")  # fmt: skip
    stage = json.loads(args.plan.read_text()).get("headline")
    if not stage:
        parser.error(f"{args.plan}: the plan names no headline stage.")
    start = time.perf_counter()
    command = shlex.join(["python", "bundles/cxr_expl/study/reproduce_headline.py", *(argv or sys.argv[1:])])
    fresh = work / "results"
    run_plan(args.plan, work, fresh, only=[stage], workers=args.workers, command=command,
             overrides={"dataset_dir": str(work / "data" / "shortcut_cxr")})  # fmt: skip
    table = compare_tables(args.results / stage, fresh / stage)
    same_block = without_provenance((args.results / "headline.md").read_text()) == without_provenance(
        (fresh / "headline.md").read_text()
    )
    fresh_provenance = next(
        ln for ln in (fresh / stage / "summary.md").read_text().splitlines() if ln.startswith("Commit")
    )
    committed_provenance = next(
        ln for ln in (args.results / stage / "summary.md").read_text().splitlines() if ln.startswith("Commit")
    )
    lines = [
        f"# Reproduction of the headline stage `{stage}`",
        "",
        (
            f"Written by `{command}` (`make reproduce`) in {(time.perf_counter() - start) / 60:.1f} min: every run "
            "of the stage retrained from nothing, on data generated anew, then its report compared with the committed "
            "one."
        ),
        "",
        f"- Fresh: {fresh_provenance}",
        f"- Committed: {committed_provenance}",
        f"- The README's block (`headline.md` without its provenance line): {'identical' if same_block else 'DIFFERENT'}.",
        "",
        "Every CSV table of the stage report, cell by cell (rows in order; text columns equal; numbers within 1e-9):",
        "",
        markdown_table(table, digits=12),
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if same_block and int(table["cells_differing"].sum()) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
