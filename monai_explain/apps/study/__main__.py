"""Command line of the study.

``python -m monai_explain.apps.study sweep --bundle bundles/cxr_expl --lambdas 0 0.3 1 --designs energy dice
--seeds 0 1 --out reports/sweep [--splits test test_shifted] [--set epochs=3 synthetic#n_train=200 ...]``

``python -m monai_explain.apps.study plan bundles/cxr_expl/study/plan.json --results bundles/cxr_expl/study/results``:
every stage (sweep) of a plan, and the results folder the README quotes (``make study``).

``python -m monai_explain.apps.study report --table study.csv --out reports/study``: the report of an existing
study table (the per-image rows of every run with ``design, lambda, seed`` columns in front).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys

from .plan import run_plan
from .report import write_report
from .sweep import run_sweep
from .table import pd, validate_per_image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monai_explain.apps.study", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sweep = sub.add_parser("sweep", help="train + evaluate every (design, lambda, seed) and write the report")
    sweep.add_argument("--bundle", default="bundles/cxr_expl", help="bundle folder (with configs/)")
    sweep.add_argument(
        "--designs",
        nargs="+",
        help="loss designs or labels of --settings (default: every label of --settings, else energy outside dice)",
    )
    sweep.add_argument("--settings", help="JSON file {label: {config_id: value}}: named settings usable in --designs")
    sweep.add_argument("--no_gallery", action="store_true", help="skip the saliency gallery of the report")
    sweep.add_argument("--workers", type=int, default=1, help="runs trained at a time, one process each")
    sweep.add_argument("--lambdas", nargs="+", type=float, default=[0.0, 0.1, 0.3, 1.0, 3.0])
    sweep.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    sweep.add_argument("--splits", nargs="+", help="splits to evaluate (default: the bundle contract's)")
    sweep.add_argument("--out", default="reports/sweep", help="output folder (runs, mlruns.db, report)")
    sweep.add_argument("--set", nargs="*", default=[], metavar="ID=VALUE", help="bundle config overrides (JSON values)")
    sweep.add_argument("--n_resamples", type=int, default=10000, help="bootstrap resamples")
    report = sub.add_parser("report", help="the report of an existing study table (CSV)")
    report.add_argument("--table", required=True, help="CSV: design, lambda, seed + the per-image contract columns")
    report.add_argument("--out", default="reports/study")
    report.add_argument("--n_resamples", type=int, default=10000, help="bootstrap resamples")
    report.add_argument(
        "--recovery_splits",
        nargs=2,
        metavar=("REFERENCE", "SHIFTED"),
        help="splits of the shortcut recovery tables (e.g. test test_shifted)",
    )
    plan = sub.add_parser("plan", help="run a study plan (several sweeps) and write its results folder")
    plan.add_argument("plan", help="plan JSON file (see monai_explain.apps.study.plan)")
    plan.add_argument("--work", default="reports/study", help="folder of the runs (resumable)")
    plan.add_argument("--results", required=True, help="results folder (RESULTS.md, headline.md, one folder a stage)")
    plan.add_argument("--only", nargs="+", help="run only these stages")
    plan.add_argument("--workers", type=int, help="runs trained at a time (default: the plan's)")
    plan.add_argument("--set", nargs="*", default=[], metavar="ID=VALUE", help="overrides added to every stage")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "monai_explain.apps.study", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.command == "report":
        df = validate_per_image(pd.read_csv(args.table, dtype={"id": str, "class": str, "split": str}), args.table)
        splits = tuple(args.recovery_splits) if args.recovery_splits else None
        print(f"report: {write_report(df, args.out, n_resamples=args.n_resamples, recovery_splits=splits)}")
        return 0
    overrides = {}
    for item in args.set:
        if "=" not in item:
            parser.error(f"--set takes ID=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    if args.command == "plan":
        print(f"results: {run_plan(args.plan, args.work, args.results, args.only, overrides, args.workers, command)}")
        return 0
    named = None
    if args.settings:
        with open(args.settings) as f:
            named = json.load(f)
        if not isinstance(named, dict) or not all(isinstance(v, dict) for v in named.values()):
            parser.error(f"--settings {args.settings}: expected a JSON object {{label: {{config_id: value}}}}")
    designs = args.designs or (list(named) if named else ["energy", "outside", "dice"])
    unknown = [d for d in designs if "/" in d and not (named and d in named)]
    if unknown:
        parser.error(f"--designs {unknown}: not a label of --settings {args.settings}")
    path = run_sweep(
        args.bundle, designs, args.lambdas, args.seeds, args.out, overrides, args.splits, args.n_resamples,
        gallery=not args.no_gallery, settings=named, workers=args.workers, command=command,
    )  # fmt: skip
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
