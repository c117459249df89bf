"""Training-recipe stability study (issue 9): how much does validation accuracy swing between epochs, and why?

Trains the ``cxr_expl`` bundle (``configs/train.json``) with one recipe variant per run and records, after every
epoch, the validation probabilities. From them it reports per epoch: AUC, accuracy at 0.5, the Youden threshold
and the balanced accuracy / accuracy there, and the mean probability of negatives and positives (a collapse of
accuracy at 0.5 with a stable AUC is a shift of the score offset, not a loss of ranking).

Usage (CPU, a few minutes per run on 2 free cores with ``--n-train 200``)::

    PYTHONPATH=$PWD nice -n 10 python benchmarks/recipe_stability.py --runs default lambda0 --out /tmp/stab
    PYTHONPATH=$PWD python benchmarks/recipe_stability.py --summarize /tmp/stab

Variants (``--runs``): see ``VARIANTS`` below.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigWorkflow
from monai.utils import IgniteInfo, min_version, optional_import
from sklearn.metrics import roc_auc_score

from monai_explain.handlers import choose_threshold, decision_metrics

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "cxr_expl"

_COSINE = (
    "$torch.optim.lr_scheduler.LambdaLR(@optimizer, lambda it, n=len(@train#dataloader) * @epochs, "
    "w=len(@train#dataloader): min(1.0, (it + 1) / w) * 0.5 * (1 + math.cos(math.pi * min(it, n) / n)))"
)
_WARMUP = "$torch.optim.lr_scheduler.LambdaLR(@optimizer, lambda it, w=len(@train#dataloader): min(1.0, (it + 1) / w))"
#: name -> config overrides (on top of the common ones) and, optionally, an iteration-level LR scheduler expression.
VARIANTS: dict[str, dict] = {
    "default": {},
    "default_rerun": {},  # the same recipe again: run-to-run noise at one seed (same seed, CPU nondeterminism)
    "lambda0": {"lambda": 0.0},
    "lr5e-4": {"learning_rate": 5e-4},
    "lr1e-3": {"learning_rate": 1e-3},
    "cosine_warmup": {"scheduler": _COSINE},
    "warmup": {"scheduler": _WARMUP},
    "adamw_wd5e-2": {
        "optimizer": {
            "_target_": "torch.optim.AdamW",
            "params": "$@network.parameters()",
            "lr": "@learning_rate",
            "weight_decay": 0.05,
        }
    },
    "batch32": {"batch_size": 32},
    "instance_norm": {"network_def#norm": "instance"},
    "lr1e-3_cosine": {"learning_rate": 1e-3, "scheduler": _COSINE},
    "lr5e-4_cosine": {"learning_rate": 5e-4, "scheduler": _COSINE},
}


def _probabilities(engine) -> tuple[np.ndarray, np.ndarray]:
    out = engine.state.output
    p = np.stack([np.asarray(torch.as_tensor(o["pred"]).detach().cpu()) for o in out])
    y = np.stack([np.asarray(torch.as_tensor(o["label"]).detach().cpu()) for o in out])
    return p.reshape(len(p), -1), y.reshape(len(y), -1)


def _recalibrated_bn_probabilities(net, fresh, train_loader, val_loader, device) -> np.ndarray:
    """Validation probabilities of a copy of ``net`` whose BatchNorm statistics are re-estimated on the training set.

    Each BatchNorm layer's running mean / variance is reset and recomputed as a plain average over one pass of the
    training images (``momentum=None``) with the current weights. If accuracy at 0.5 is stable with these
    statistics but not with the running ones, the swings come from running statistics lagging behind the weights.
    """
    clone = fresh.to(device)  # a new instance: the trained one holds saliency hooks' tensors (no deepcopy)
    clone.load_state_dict(net.state_dict())
    bns = [m for m in clone.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return np.zeros((0, 1))
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    clone.train()
    with torch.no_grad():
        for batch in train_loader:
            clone(batch["image"].to(device))
        clone.eval()
        out = [torch.sigmoid(clone(batch["image"].to(device))).cpu() for batch in val_loader]
    return torch.cat(out).numpy().reshape(-1, 1)


def run_variant(
    name: str, out: Path, n_train: int, epochs: int, seed: int, bundle: Path = BUNDLE, image_size: int | None = None
) -> dict:
    """Train one variant, return its per-epoch validation record (also written to ``out/<name>.json``)."""
    spec = dict(VARIANTS[name])
    scheduler = spec.pop("scheduler", None)
    run_dir = out / name
    overrides = {
        "bundle_root": str(bundle),
        "dataset_dir": str(out / f"data_n{n_train}"),
        "synthetic#n_train": n_train,
        "synthetic#n_test": 10,
        "synthetic#n_test_shifted": 10,
        "ckpt_dir": str(run_dir / "models"),
        "output_dir": str(run_dir / "eval"),
        "epochs": epochs,
        "seed": seed,
        **({} if image_size is None else {"image_size": [image_size, image_size]}),
        **spec,
    }
    wf = ConfigWorkflow(
        config_file=str(bundle / "configs" / "train.json"),
        meta_file=str(bundle / "configs" / "metadata.json"),
        logging_file=str(bundle / "configs" / "logging.conf"),
        workflow_type="train",
        **overrides,
    )
    # lighter runs: no overlays, no MLflow (nothing they measure is used here)
    for section in ("train#handlers", "validate#handlers"):
        for h in wf.parser[section]:
            if isinstance(h, dict) and str(h.get("_target_", "")).endswith(("SaliencyOverlayHandler", "MLFlowHandler")):
                h["_disabled_"] = True
    if scheduler is not None:
        wf.parser["imports"] = wf.parser["imports"] + ["$import math"]
        wf.parser["train#handlers"] = wf.parser["train#handlers"] + [
            {"_target_": "LrScheduleHandler", "lr_scheduler": scheduler, "epoch_level": False, "print_lr": False}
        ]
    wf.initialize()
    records: list[dict] = []
    evaluator = wf.parser.get_parsed_content("validate#evaluator")
    trainer = wf.parser.get_parsed_content("train#trainer")
    optimizer = wf.parser.get_parsed_content("optimizer")
    probs: list[np.ndarray] = []
    labels: list[np.ndarray] = []

    def _collect(engine):
        p, y = _probabilities(engine)
        probs.append(p)
        labels.append(y)

    network = wf.parser.get_parsed_content("network")
    device = wf.parser.get_parsed_content("device")
    train_loader = torch.utils.data.DataLoader(wf.parser.get_parsed_content("train#dataset"), batch_size=16)
    val_loader = wf.parser.get_parsed_content("validate#dataloader")

    def _epoch(engine):
        p, y = np.concatenate(probs), np.concatenate(labels)
        fresh = wf.parser.get_parsed_content("network_def", lazy=False)
        p_bn = _recalibrated_bn_probabilities(network, fresh, train_loader, val_loader, device)
        probs.clear()
        labels.clear()
        t = choose_threshold(p[:, 0], y[:, 0], "youden")
        at_half = decision_metrics(torch.from_numpy(p), torch.from_numpy(y), 0.5)
        at_t = decision_metrics(torch.from_numpy(p), torch.from_numpy(y), 0.5 if t is None else t)
        logit = np.log(np.clip(p[:, 0], 1e-7, 1 - 1e-7) / np.clip(1 - p[:, 0], 1e-7, 1))
        records.append({
            "epoch": trainer.state.epoch,
            "lr": float(optimizer.param_groups[0]["lr"]),
            "auc": float(roc_auc_score(y[:, 0], p[:, 0])),
            "acc_05": float(at_half["accuracy"][0]),
            "bacc_05": float(at_half["balanced_accuracy"][0]),
            "threshold": None if t is None else float(t),
            "acc_t": float(at_t["accuracy"][0]),
            "bacc_t": float(at_t["balanced_accuracy"][0]),
            "mean_p_neg": float(p[y[:, 0] == 0, 0].mean()),
            "mean_p_pos": float(p[y[:, 0] == 1, 0].mean()),
            "median_logit": float(np.median(logit)),
        })  # fmt: skip
        if len(p_bn) == len(p):  # the same model with BatchNorm statistics re-estimated (see above)
            t_bn = choose_threshold(p_bn[:, 0], y[:, 0], "youden")
            records[-1].update(
                auc_bn=float(roc_auc_score(y[:, 0], p_bn[:, 0])),
                acc_05_bn=float(decision_metrics(torch.from_numpy(p_bn), torch.from_numpy(y), 0.5)["accuracy"][0]),
                threshold_bn=None if t_bn is None else float(t_bn),
                mean_p_neg_bn=float(p_bn[y[:, 0] == 0, 0].mean()),
                mean_p_pos_bn=float(p_bn[y[:, 0] == 1, 0].mean()),
            )

    evaluator.add_event_handler(Events.ITERATION_COMPLETED, _collect)
    evaluator.add_event_handler(Events.EPOCH_COMPLETED, _epoch)
    start = time.perf_counter()
    wf.run()
    wall = time.perf_counter() - start
    wf.finalize()
    result = {"name": name, "overrides": {k: str(v) for k, v in overrides.items()}, "scheduler": scheduler,
              "wall_s": round(wall, 1), "epochs": records}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def _swing(values: list[float]) -> tuple[float, float]:
    """(max drop between consecutive epochs, standard deviation over the second half of training)."""
    v = np.asarray(values, dtype=float)
    drops = np.maximum(0.0, v[:-1] - v[1:])
    half = v[len(v) // 2 :]
    return (float(drops.max()) if drops.size else 0.0), float(half.std())


def summarize(out: Path) -> str:
    """A markdown table, one row per variant, from the ``out/*.json`` records."""
    rows = [
        (
            "| variant | wall s | final AUC | min AUC (ep>=3) | acc@0.5 final / min (ep>=3) | max drop acc@0.5 | "
            "sd acc@0.5 (2nd half) | bacc@Youden final / min (ep>=3) | max drop bacc@Youden | threshold range (ep>=3) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(out.glob("*.json")):
        r = json.loads(path.read_text())
        ep = r["epochs"]
        late = [e for e in ep if e["epoch"] >= 3] or ep
        acc = [e["acc_05"] for e in ep]
        bacc = [e["bacc_t"] for e in ep]
        thr = [e["threshold"] for e in late if e["threshold"] is not None]
        d_acc, sd_acc = _swing(acc)
        d_bacc, _ = _swing(bacc)
        rows.append(
            f"| {r['name']} | {r['wall_s']:.0f} | {ep[-1]['auc']:.3f} | {min(e['auc'] for e in late):.3f} | "
            f"{acc[-1]:.2f} / {min(e['acc_05'] for e in late):.2f} | {d_acc:.2f} | {sd_acc:.3f} | "
            f"{bacc[-1]:.2f} / {min(e['bacc_t'] for e in late):.2f} | {d_bacc:.2f} | "
            + (f"{min(thr):.3f}-{max(thr):.3f}" if thr else "n/a")
            + " |"
        )
    return "\n".join(rows)


def curves(out: Path) -> str:
    """Per-epoch lines ``epoch: auc acc@0.5 bacc@t threshold p_neg p_pos`` of every variant."""
    lines = []
    for path in sorted(out.glob("*.json")):
        r = json.loads(path.read_text())
        lines.append(f"{r['name']}:")
        for e in r["epochs"]:
            thr = "n/a" if e["threshold"] is None or math.isnan(e["threshold"]) else f"{e['threshold']:.3f}"
            lines.append(
                f"  ep {e['epoch']:2d} lr {e['lr']:.2e} auc {e['auc']:.3f} acc@0.5 {e['acc_05']:.2f} "
                f"bacc@t {e['bacc_t']:.2f} t {thr} p_neg {e['mean_p_neg']:.3f} p_pos {e['mean_p_pos']:.3f}"
                + (
                    f" | BN re-estimated: auc {e['auc_bn']:.3f} acc@0.5 {e['acc_05_bn']:.2f} "
                    f"p_neg {e['mean_p_neg_bn']:.3f} p_pos {e['mean_p_pos_bn']:.3f}"
                    if "auc_bn" in e
                    else ""
                )
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="*", default=[], choices=sorted(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("/tmp/recipe_stability"))
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=None, help="network input size (default: the bundle's)")
    parser.add_argument(
        "--bundle", type=Path, default=BUNDLE, help="bundle folder (a copy keeps runs independent of edits)"
    )
    parser.add_argument("--summarize", type=Path, default=None, help="print the table of a finished --out folder")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (1: no oversubscription)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.summarize is not None:
        print(summarize(args.summarize))
        print()
        print(curves(args.summarize))
        return
    for name in args.runs:
        r = run_variant(name, args.out, args.n_train, args.epochs, args.seed, args.bundle, args.image_size)
        print(f"{name}: {r['wall_s']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
