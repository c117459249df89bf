"""The lambda x design x seed study: train and evaluate a bundle per setting, then write the report.

Each setting is trained with the bundle's own ``train.json`` and scored with ``evaluate.json`` on the in-distribution
``test`` split and on ``test_shifted`` (MONAI ``ConfigWorkflow`` in this process, so the bundle is exercised exactly
as a user runs it). All runs log to one MLflow experiment in ``<out>/mlruns.db``. A finished setting leaves
``<out>/runs/<name>/run.json`` and is not trained again; an interrupted one resumes from its last checkpoint.

lambda = 0 does not depend on the loss design, so it is trained once per seed, as design ``"none"``; every design's
supervised settings are compared with it on the same test images.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from monai.bundle import ConfigParser, ConfigWorkflow
from monai.networks.utils import eval_mode

from monai_explain.saliency import get_saliency_method

from .report import write_report

__all__ = ["SweepSetting", "per_image_table", "run_setting", "run_sweep", "saliency_gallery", "sweep_settings"]

logger = logging.getLogger(__name__)

BASELINE_DESIGN = "none"
SPLITS = {"test": "", "test_shifted": "_shifted"}
#: per-image columns tested against lambda = 0 (in-distribution alignment and correctness, shifted correctness)
PER_IMAGE_TESTED = ("correct", "correct_shifted", "probability", "coverage", "precision", "deletion_auc")


class SweepSetting(dict):
    """One (design, lambda, seed) cell of the study; ``name`` is its folder and MLflow run name."""

    @property
    def name(self) -> str:
        return f"{self['design']}_lambda{self['lambda']:g}_seed{self['seed']}"


def sweep_settings(designs: Sequence[str], lambdas: Sequence[float], seeds: Sequence[int]) -> list[SweepSetting]:
    """The settings of a study: every design x positive lambda x seed, plus one lambda = 0 run per seed."""
    if not designs or not lambdas or not seeds:
        raise ValueError("a sweep needs at least one design, one lambda and one seed.")
    if min(lambdas) < 0:
        raise ValueError(f"lambdas must be >= 0, got {list(lambdas)}.")
    out = []
    for seed in seeds:
        if 0 in lambdas:
            out.append(SweepSetting(design=BASELINE_DESIGN, **{"lambda": 0.0}, seed=int(seed)))
        for design in designs:
            for lam in lambdas:
                if lam > 0:
                    out.append(SweepSetting(design=design, **{"lambda": float(lam)}, seed=int(seed)))
    return out


def _configs(bundle: Path, *names: str) -> list[str]:
    return [str(bundle / "configs" / n) for n in names]


def _overrides(setting: SweepSetting, run_dir: Path, out: Path, base: Mapping[str, Any]) -> dict[str, Any]:
    design = "energy" if setting["design"] == BASELINE_DESIGN else setting["design"]
    return {
        **base,
        "loss_design": design,
        "lambda": setting["lambda"],
        "seed": setting["seed"],
        "ckpt_dir": str(run_dir / "models"),
        "output_dir": str(run_dir / "eval"),
        "tracking_uri": f"sqlite:///{out / 'mlruns.db'}",
        "experiment_name": base.get("experiment_name", "sweep"),
        "run_name": setting.name,
        "tracking_params#design": setting["design"],
    }


def _read_metrics(folder: Path) -> dict[str, float]:
    with open(folder / "metrics.csv") as f:
        return {row[0]: float(row[1]) for row in csv.reader(f) if row}


def _read_raw(folder: Path, name: str) -> dict[str, float]:
    path = folder / f"{name}_raw.csv"
    if not path.is_file():
        return {}
    with open(path) as f:
        rows = list(csv.reader(f))[1:]
    return {r[0]: float(r[1]) for r in rows}


def per_image_table(eval_dirs: Mapping[str, Path], labels: Mapping[str, float], path: Path) -> Path:
    """Merge a run's evaluation outputs into one per-image CSV (``image_id`` and the metric columns).

    In-distribution images fill ``correct``, ``probability``, ``coverage``, ``precision``, ``chance_level``,
    ``deletion_auc``; ``test_shifted`` images fill ``correct_shifted``. Other cells are empty (missing), so paired
    tests pair each column over the images that have it.
    """
    rows = []
    for split, folder in eval_dirs.items():
        with open(folder / "predictions.csv") as f:
            preds = {r[0]: float(r[1]) for r in csv.reader(f) if r}
        raw = {k: _read_raw(folder, k) for k in ("saliency_coverage", "saliency_precision", "chance_level", "deletion_auc")}
        suffix = SPLITS[split]
        for image_id, prob in preds.items():
            row = {"image_id": image_id, f"correct{suffix}": int((prob > 0.5) == (labels[image_id] > 0.5))}
            if not suffix:
                row.update(
                    probability=prob,
                    coverage=raw["saliency_coverage"].get(image_id),
                    precision=raw["saliency_precision"].get(image_id),
                    chance_level=raw["chance_level"].get(image_id),
                    deletion_auc=raw["deletion_auc"].get(image_id),
                )
            rows.append(row)
    fields = ["image_id", "correct", "probability", "coverage", "precision", "chance_level", "deletion_auc",
              "correct_shifted"]  # fmt: skip
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None or row.get(k) != row.get(k) else row.get(k)) for k in fields})
    return path


def _labels(bundle: Path, overrides: Mapping[str, Any], split: str) -> dict[str, float]:
    parser = ConfigParser()
    parser.read_config(_configs(bundle, "train.json"))
    parser.update(dict(overrides))
    parser["val_split"] = split
    data = parser.get_parsed_content("val_datalist")
    return {d["id"]: float(np.max(d["label"])) for d in data}


def _log_to_mlflow(out: Path, experiment: str, run_name: str, metrics: Mapping[str, float]) -> str | None:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{out / 'mlruns.db'}")
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], filter_string=f"attributes.run_name = '{run_name}'")
    if not runs:
        logger.warning(f"no MLflow run named {run_name!r}: test metrics not logged there")
        return None
    run = min(runs, key=lambda r: r.info.start_time)
    ts = int(time.time() * 1000)
    client.log_batch(run.info.run_id, metrics=[mlflow.entities.Metric(k, float(v), ts, 0) for k, v in metrics.items()])
    return run.info.run_id


def run_setting(bundle: Path, setting: SweepSetting, out: Path, base: Mapping[str, Any]) -> dict[str, Any]:
    """Train and evaluate one setting (or read its finished record); returns its row of the run table."""
    run_dir = out / "runs" / setting.name
    record_path = run_dir / "run.json"
    if record_path.is_file():
        logger.info(f"{setting.name}: finished earlier, not trained again")
        return json.loads(record_path.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    overrides = _overrides(setting, run_dir, out, base)
    t0 = time.perf_counter()
    train = ConfigWorkflow(config_file=_configs(bundle, "train.json"), workflow_type="train", resume=True, **overrides)
    train.initialize()
    train.run()
    train.finalize()
    train_time = time.perf_counter() - t0

    eval_dirs, labels, metrics = {}, {}, {}
    for split, suffix in SPLITS.items():
        eval_dir = run_dir / split
        ev = ConfigWorkflow(
            config_file=_configs(bundle, "train.json", "evaluate.json"),
            workflow_type=None,
            test_split=split,
            eval_dir=str(eval_dir),
            **overrides,
        )
        ev.initialize()
        ev.run()
        ev.finalize()
        eval_dirs[split] = eval_dir
        labels.update(_labels(bundle, overrides, split))
        m = _read_metrics(eval_dir)
        metrics[f"accuracy{suffix}"] = m["accuracy"]
        metrics[f"auc{suffix}"] = m["auc"]
        if not suffix:
            metrics.update(
                coverage=m["saliency_coverage"],
                precision=m["saliency_precision"],
                chance_level=m["chance_level"],
                deletion_auc=m["deletion_auc"],
                insertion_auc=m["insertion_auc"],
                pointing_game=m["pointing_game"],
            )
    metrics["train_time"] = train_time
    run_id = _log_to_mlflow(out, overrides["experiment_name"], setting.name, {f"test_{k}": v for k, v in metrics.items()})
    per_image = per_image_table(eval_dirs, labels, run_dir / "per_image.csv")
    record = {**setting, "run_id": run_id or setting.name, "run_name": setting.name, **metrics,
              "per_image_csv": str(per_image)}  # fmt: skip
    tmp = record_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, record_path)  # a record is either complete or absent
    return record


def saliency_gallery(
    bundle: Path, out: Path, base: Mapping[str, Any], settings: Sequence[SweepSetting], n_images: int = 6
) -> dict[str, Any]:
    """Saliency of the same positive test images under each setting's best checkpoint, for the report gallery."""
    parser = ConfigParser()
    parser.read_config(_configs(bundle, "train.json"))
    parser.update(_overrides(settings[0], out / "runs" / settings[0].name, out, base))
    parser["val_split"] = "test"
    dataset = parser.get_parsed_content("validate#dataset")
    items = [dataset[i] for i in _first_positive(dataset, n_images)]
    images = torch.stack([torch.as_tensor(it["image"]) for it in items])
    masks = torch.stack([torch.as_tensor(it["mask"]) for it in items])
    maps = {}
    for setting in settings:
        p = ConfigParser()
        p.read_config(_configs(bundle, "train.json"))
        p.update(_overrides(setting, out / "runs" / setting.name, out, base))
        net = p.get_parsed_content("network_def")
        state = torch.load(out / "runs" / setting.name / "models" / "model.pt", map_location="cpu", weights_only=True)
        net.load_state_dict(state.get("model", state))  # model.pt: {"model", "threshold"}
        method = get_saliency_method(p["saliency"], net, **p.get_parsed_content("saliency_kwargs"))
        with eval_mode(net), torch.enable_grad():
            s, _ = method(images, 0)
        label = "lambda=0" if setting["lambda"] == 0 else f"{setting['design']} lambda={setting['lambda']:g}"
        maps[f"{label} (seed {setting['seed']})"] = s.detach().numpy()
    return {"images": images.numpy(), "saliency": maps, "masks": masks.numpy(),
            "image_titles": [str(it.get("id", i))[:8] for i, it in enumerate(items)]}  # fmt: skip


def _first_positive(dataset: Sequence[dict], n: int) -> list[int]:
    found = []
    for i in range(len(dataset)):
        if float(torch.as_tensor(dataset[i]["mask"]).max()) > 0:
            found.append(i)
        if len(found) == n:
            break
    return found


def run_sweep(
    bundle: str | os.PathLike,
    designs: Sequence[str],
    lambdas: Sequence[float],
    seeds: Sequence[int],
    out: str | os.PathLike,
    overrides: Mapping[str, Any] | None = None,
) -> Path:
    """Run (or resume) the whole study and write ``<out>/report``; returns the path of ``summary.md``."""
    bundle, out = Path(bundle).resolve(), Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    base = {"bundle_root": str(bundle), **(overrides or {})}
    settings = sweep_settings(designs, lambdas, seeds)
    logger.info(f"sweep: {len(settings)} settings into {out}")
    runs = [run_setting(bundle, s, out, base) for s in settings]
    best = _best_supervised(runs)
    gallery_settings = [s for s in settings if s["lambda"] == 0 and s["seed"] == settings[0]["seed"]]
    if best is not None:
        gallery_settings.append(next(s for s in settings if s.name == best["run_name"]))
    gallery = saliency_gallery(bundle, out, base, gallery_settings) if gallery_settings else None
    return write_report(
        runs,
        out / "report",
        per_image_metrics=PER_IMAGE_TESTED,
        gallery=gallery,
        title=f"Explanation supervision study: {bundle.name}",
    )


def _best_supervised(runs: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The supervised run with the highest saliency precision (ties: higher accuracy)."""
    sup = [r for r in runs if r["lambda"] > 0 and r.get("precision") is not None]
    return max(sup, key=lambda r: (r["precision"], r.get("accuracy") or 0.0)) if sup else None
