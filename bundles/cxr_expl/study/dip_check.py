"""Is the validation dip of the default recipe's seed 4 (epoch 3, inside the lambda warm-up) a property of the seed?

The study trains each run with one torch thread (two workers on two cores). In an earlier training of the study
(another commit, another machine), seed 4 of the default recipe fell to a validation accuracy of 0.68 at epoch 3,
and in the committed one it does not (``validation_curves.md``). This script trains the same seed on the same data
for the first ``--epochs`` epochs twice, with 1 and with 2 torch threads: same initialisation, same
data order and augmentations (``EpochSeedHandler``), only the order of floating-point reductions differs. It writes
the validation accuracy (at the epoch's Youden threshold) and AUC of every epoch of both runs, then evaluates the
model of the last epoch of each (``evaluate.json`` with ``--ckpt_path`` at that epoch's weights: with 3 epochs, all
inside the warm-up, ``model.pt`` is the last epoch) on ``test`` and ``test_shifted``: AUC, saliency precision over
chance and the confounder metric tell what the model relies on at the dip. Run by ``make study`` after the plan::

    python bundles/cxr_expl/study/dip_check.py --data reports/study/data/shortcut_cxr --work reports/study/dip_check \
        --out bundles/cxr_expl/study/results/dip_check.md
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient
from monai.utils import path_to_sqlite_uri

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def train(data: Path, root: Path, seed: int, epochs: int, threads: int) -> dict[str, dict[int, float]]:
    """One training of the bundle's default recipe in a subprocess; ``{metric: {epoch: value}}`` of validation."""
    db = root / "mlruns.db"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIGS / "train.json"),
           "--bundle_root", str(root), "--dataset_dir", str(data), "--seed", str(seed), "--epochs", str(epochs),
           "--log_model", "false", "--tracking_uri", path_to_sqlite_uri(str(db))]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = MlflowClient(tracking_uri=path_to_sqlite_uri(str(db)))
    run = client.search_runs([e.experiment_id for e in client.search_experiments()])[0]
    return {
        key: {int(m.step): float(m.value) for m in client.get_metric_history(run.info.run_id, key)}
        for key in ("val_accuracy", "val_auc")
    }


def evaluate(data: Path, root: Path, seed: int, split: str) -> dict[str, float]:
    """``evaluate.json`` on ``<root>/models/model.pt`` for one split, in a subprocess; the metrics it writes."""
    eval_dir = root / "eval" / split
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file",
           str([str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")]), "--bundle_root", str(root),
           "--dataset_dir", str(data), "--seed", str(seed), "--test_split", split, "--eval_dir", str(eval_dir),
           "--tracking_uri", path_to_sqlite_uri(str(root / "mlruns.db"))]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(eval_dir / "metrics.csv") as f:
        return {name: float(value) for name, value in csv.reader(f)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("reports/study/data/shortcut_cxr"))
    ap.add_argument("--work", type=Path, default=Path("reports/study/dip_check"))
    ap.add_argument("--out", type=Path, default=Path("bundles/cxr_expl/study/results/dip_check.md"))
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    if not (args.data / "manifest.json").is_file():
        raise FileNotFoundError(f"{args.data}: no generated data set; run the study plan first (`make study`).")
    start, rows, evals = time.perf_counter(), [], []
    for threads in (1, 2):
        root = args.work / f"seed{args.seed}_threads{threads}"
        shutil.rmtree(root, ignore_errors=True)  # a fresh training each time: the point is to retrain
        curves = train(args.data.resolve(), root.resolve(), args.seed, args.epochs, threads)
        epochs = sorted(curves["val_accuracy"])
        rows.append(
            f"| {threads} | accuracy | " + " | ".join(f"{curves['val_accuracy'][e]:.2f}" for e in epochs) + " |"
        )
        rows.append(f"| {threads} | AUC | " + " | ".join(f"{curves['val_auc'][e]:.3f}" for e in epochs) + " |")
        for split in ("test", "test_shifted"):
            m = evaluate(args.data.resolve(), root.resolve(), args.seed, split)
            evals.append(f"| {threads} | {split} | {m['auc']:.3f} | {m['balanced_accuracy']:.3f} | "
                         f"{m['saliency_precision'] / m['chance_level']:.1f} | {m['pointing_game']:.2f} | "
                         f"{m['confounder_change']:.3f} | {m['confounder_flip_rate']:.3f} |")  # fmt: skip
    header = "| torch threads | validation | " + " | ".join(f"epoch {e}" for e in range(1, args.epochs + 1)) + " |"
    text = "\n".join([
        f"# Seed {args.seed} of the default recipe, first {args.epochs} epochs, with 1 and 2 torch threads",
        "",
        (f"Written by `bundles/cxr_expl/study/dip_check.py` (`make study`) in {time.perf_counter() - start:.0f} s. "
         "Same seed, data order and initialisation; only the order of floating-point reductions differs."),
        "",
        header,
        "|" + "---|" * (args.epochs + 2),
        *rows,
        "",
        f"The model of epoch {args.epochs} of each run, evaluated on the test splits (`evaluate.json`):",
        "",
        ("| torch threads | split | AUC | balanced accuracy | saliency precision / chance | pointing game | "
         "confounder change | confounder flip rate |"),
        "|" + "---|" * 8,
        *evals,
        "",
    ])  # fmt: skip
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
