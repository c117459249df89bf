"""Validation curves of the study's full-size runs, read from their MLflow databases: does accuracy collapse?

For every run of the given stages (default, all at full size: the default recipe, dice at lambda 10 with the lambda
warmed up over 4 epochs, stage ``full_cam_dice``; its variant with a 1-epoch warm-up, ``full_cam_dice_warmup1``; the
earlier default, energy at lambda 3, ``full_cam_energy``; and the lambda = 0 runs of the first and the last, each
trained with its stage's model selection), the
validation accuracy at the epoch's chosen threshold (Youden's J on the validation split), the validation AUC and the
threshold, per epoch; then per run the first epoch trained wholly at the full lambda (from the logged lambda
schedule: where model selection starts, bundle id ``select_from_epoch``), the lowest accuracy from that epoch on and
from epoch 3 on, the largest drop between two consecutive epochs and the epoch that ``model.pt`` holds (read from the
run's last checkpoint). Written by ``make study`` after the plan::

    python bundles/cxr_expl/study/validation_curves.py --work reports/study \
        --out bundles/cxr_expl/study/results/validation_curves.md
"""

from __future__ import annotations

import argparse
import ast
import itertools
from pathlib import Path

import torch
from mlflow.tracking import MlflowClient
from monai.utils import path_to_sqlite_uri

from monai_explain.handlers import find_last_checkpoint, first_settled_epoch

METRICS = ("val_accuracy", "val_auc", "val_threshold")


def read_curves(stage_dir: Path, prefixes: tuple[str, ...]) -> dict[str, dict[str, dict[int, float]]]:
    """``{run name: {metric: {epoch: value}}}`` from every ``mlruns*.db`` of a stage folder (last value per epoch),
    plus ``"settled": {0: first epoch at the full lambda}`` from the run's logged ``lambda_schedule``.

    A run name logged more than once (a run trained again in the same work folder) keeps its latest run.
    """
    latest: dict[str, tuple[int, dict[str, dict[int, float]]]] = {}
    for db in sorted(stage_dir.glob("mlruns*.db")):
        client = MlflowClient(tracking_uri=path_to_sqlite_uri(str(db)))
        ids = [e.experiment_id for e in client.search_experiments()]
        for run in client.search_runs(ids, max_results=50000) if ids else ():
            name, started = run.info.run_name or "", int(run.info.start_time or 0)
            if not name.startswith(prefixes) or (name in latest and latest[name][0] > started):
                continue
            curves = {}
            for key in METRICS:
                history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.timestamp)
                curves[key] = {int(m.step): float(m.value) for m in history}
            schedule = ast.literal_eval(run.data.params.get("lambda_schedule", "0.0"))
            curves["settled"] = {0: float(first_settled_epoch(schedule))}
            latest[name] = (started, curves)
    return {name: curves for name, (_, curves) in latest.items()}


def selected_epoch(run_dir: Path) -> int | None:
    """The epoch ``model.pt`` holds, from the run's last checkpoint (None when there is none)."""
    last = find_last_checkpoint(run_dir / "models")
    if last is None:
        return None
    state = torch.load(last, map_location="cpu", weights_only=False).get("best_model") or {}
    return state.get("best_metric_epoch")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="reports/study")
    ap.add_argument("--stages", nargs="+", default=["full_cam_dice", "full_cam_energy", "full_cam_dice_warmup1=cam/dice_lambda10_"],
                    help="stage folders; STAGE=PREFIX,PREFIX limits a stage to those run name prefixes")  # fmt: skip
    ap.add_argument("--runs", nargs="+", default=["none_lambda0_", "cam/dice_lambda10_", "cam/energy_lambda3_"],
                    help="run name prefixes")  # fmt: skip
    ap.add_argument("--out", default="bundles/cxr_expl/study/results/validation_curves.md")
    args = ap.parse_args()
    lines = [
        (
            "# Validation curves of the full-size runs: the default recipe, its 1-epoch warm-up variant, the earlier default "
            "and lambda = 0"
        ),
        "",
        (
            "Accuracy at the threshold chosen on the validation split each epoch (Youden's J), from the runs' MLflow "
            "databases. Written by `bundles/cxr_expl/study/validation_curves.py` (`make study`)."
        ),
        "",
    ]
    header = ("| stage | run | epochs | full lambda from epoch | min accuracy from then on | min accuracy (epoch >= 3) "
              "| largest drop between epochs | model.pt epoch | final AUC |")  # fmt: skip
    summary = [header, "|" + "---|" * 9]
    for spec in args.stages:
        stage, _, only = spec.partition("=")
        prefixes = tuple(only.split(",")) if only else tuple(args.runs)
        curves = read_curves(Path(args.work) / stage, prefixes)
        if not curves:
            raise FileNotFoundError(f"no MLflow runs {prefixes} in {Path(args.work) / stage}; run the study first.")
        for name in sorted(curves):
            acc, auc, thr = (curves[name].get(m, {}) for m in METRICS)
            epochs = sorted(acc)
            lines += [f"## {stage} / {name}", "", "| epoch | " + " | ".join(map(str, epochs)) + " |",
                      "|---|" + "---|" * len(epochs),
                      "| accuracy | " + " | ".join(f"{acc[e]:.2f}" for e in epochs) + " |",
                      "| AUC | " + " | ".join(f"{auc.get(e, float('nan')):.3f}" for e in epochs) + " |",
                      "| threshold | " + " | ".join(f"{thr.get(e, float('nan')):.2f}" for e in epochs) + " |", ""]  # fmt: skip
            settled = int(curves[name]["settled"][0])
            late, full = [acc[e] for e in epochs if e >= 3], [acc[e] for e in epochs if e >= settled]
            drops = [acc[a] - acc[b] for a, b in itertools.pairwise(epochs)]
            chosen = selected_epoch(Path(args.work) / stage / "runs" / name)
            summary.append(
                f"| {stage} | {name} | {len(epochs)} | {settled} | {min(full, default=float('nan')):.2f} | "
                f"{min(late, default=float('nan')):.2f} | {max([0.0, *drops]):.2f} | {chosen if chosen is not None else '-'} | "
                f"{auc.get(epochs[-1], float('nan')):.3f} |"
            )
    text = "\n".join(lines[:4] + summary + [""] + lines[4:]) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print("\n".join(summary))


if __name__ == "__main__":
    main()
