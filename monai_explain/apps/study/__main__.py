"""Command line: ``python -m monai_explain.apps.study sweep --bundle bundles/cxr_expl --lambdas 0 0.3 1 --designs energy
outside dice --seeds 0 1 --out reports/sweep [--set epochs=3 synthetic#n_train=200 ...]``."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .sweep import run_sweep


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monai_explain.apps.study", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sweep = sub.add_parser("sweep", help="train + evaluate every (design, lambda, seed) and write the report")
    sweep.add_argument("--bundle", default="bundles/cxr_expl", help="bundle folder (with configs/)")
    sweep.add_argument("--designs", nargs="+", default=["energy", "outside", "dice"])
    sweep.add_argument("--lambdas", nargs="+", type=float, default=[0.0, 0.1, 0.3, 1.0, 3.0])
    sweep.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    sweep.add_argument("--out", default="reports/sweep", help="output folder (runs, mlruns.db, report)")
    sweep.add_argument(
        "--set", nargs="*", default=[], metavar="ID=VALUE", help="bundle config overrides, e.g. epochs=3 (JSON values)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    overrides = {}
    for item in args.set:
        if "=" not in item:
            parser.error(f"--set takes ID=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key] = _value(value)
    summary = run_sweep(args.bundle, args.designs, args.lambdas, args.seeds, args.out, overrides)
    print(f"report: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
