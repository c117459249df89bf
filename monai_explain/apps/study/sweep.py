"""The lambda x design x seed study of a bundle: train and evaluate one run per setting, then write the report.

Each run trains with the bundle's train config and is evaluated with its evaluate config on every requested split
(MONAI ``ConfigWorkflow`` in this process, so the bundle runs exactly as a user runs it). The study then reads only
the per-image table each evaluation writes (:data:`monai_explain.handlers.PER_IMAGE_FILE`). Which config ids it
sets is the one contract below, :data:`BUNDLE_CONTRACT`; a bundle may change any entry in its ``metadata.json``
under the key ``"monai_explain_study"``. A finished run leaves ``<out>/runs/<name>/run.json`` and is not trained
again; an interrupted one resumes from its last checkpoint. Progress (runs done / total, ETA) is logged and printed.

lambda = 0 does not depend on the loss design, so it is trained once per seed, as design ``"none"``.

A "design" of the study is either a loss design name (set as the contract's ``design`` id) or the label of a named
setting: a set of config overrides given in ``settings`` (``--settings FILE.json`` on the command line), e.g.
``{"gradcam/energy": {"saliency": "gradcam", "saliency_kwargs": {"target_layer": "features.transition2"},
"loss_design": "energy"}}``; the label is what the report calls the design.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser, ConfigWorkflow

from monai_explain.handlers.per_image_results import PER_IMAGE_FILE

from .gallery import saliency_gallery
from .report import write_report
from .table import read_per_image

__all__ = [
    "BASELINE_DESIGN",
    "BUNDLE_CONTRACT",
    "Progress",
    "bundle_contract",
    "provenance",
    "run_setting",
    "run_sweep",
    "sweep_settings",
]

logger = logging.getLogger(__name__)

BASELINE_DESIGN = "none"

#: How the study drives a bundle: config files, the config ids it overrides (role -> id), the splits evaluated by
#: default and the per-image file name. Override per bundle in metadata.json: ``{"monai_explain_study": {...}}``.
BUNDLE_CONTRACT: dict[str, Any] = {
    "prepare_config": None,
    "train_config": "train.json",
    "evaluate_config": "evaluate.json",
    "splits": ["test", "test_shifted"],
    "recovery_splits": ["test", "test_shifted"],
    "per_image_file": PER_IMAGE_FILE,
    "design_when_lambda0": "energy",
    "ids": {"design": "loss_design", "lambda": "lambda", "seed": "seed", "ckpt_dir": "ckpt_dir",
            "output_dir": "output_dir", "split": "test_split", "eval_dir": "eval_dir", "tracking_uri": "tracking_uri",
            "experiment_name": "experiment_name", "run_name": "run_name", "dataset": "validate#dataset",
            "network": "network", "saliency_method": "validate#saliency_method"},
}  # fmt: skip


def bundle_contract(bundle: str | os.PathLike) -> dict[str, Any]:
    """:data:`BUNDLE_CONTRACT` updated with the bundle's ``configs/metadata.json`` ``"monai_explain_study"`` entry."""
    meta_path = Path(bundle) / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text()).get("monai_explain_study", {}) if meta_path.is_file() else {}
    unknown = sorted(set(meta) - set(BUNDLE_CONTRACT))
    if unknown:
        raise ValueError(
            f"{meta_path}: unknown 'monai_explain_study' key(s) {unknown} (known: {sorted(BUNDLE_CONTRACT)})."
        )
    return {**BUNDLE_CONTRACT, **meta, "ids": {**BUNDLE_CONTRACT["ids"], **meta.get("ids", {})}}


class SweepSetting(dict):
    """One (design, lambda, seed) run of the study; ``name`` is its folder and MLflow run name."""

    @property
    def name(self) -> str:
        return f"{self['design']}_lambda{self['lambda']:g}_seed{self['seed']}"


def sweep_settings(designs: Sequence[str], lambdas: Sequence[float], seeds: Sequence[int]) -> list[SweepSetting]:
    """Every design x positive lambda x seed, plus one lambda = 0 run per seed (design ``"none"``)."""
    if not designs or not lambdas or not seeds:
        raise ValueError("a sweep needs at least one design, one lambda and one seed.")
    if min(lambdas) < 0:
        raise ValueError(f"lambdas must be >= 0, got {list(lambdas)}.")
    out = []
    for seed in seeds:
        if 0 in lambdas:
            out.append(SweepSetting(design=BASELINE_DESIGN, **{"lambda": 0.0}, seed=int(seed)))
        out += [SweepSetting(design=d, **{"lambda": float(lam)}, seed=int(seed)) for d in designs for lam in lambdas
                if lam > 0]  # fmt: skip
    return out


class Progress:
    """Runs done / total and an ETA from the mean time of the runs trained in this invocation."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.times = total, 0, []

    def update(self, name: str, seconds: float | None) -> str:
        """Count one run (``seconds`` None: finished earlier, not trained) and return the progress line."""
        self.done += 1
        if seconds is not None:
            self.times.append(seconds)
        left = self.total - self.done
        eta = f"ETA {sum(self.times) / len(self.times) * left / 60:.1f} min" if self.times and left else "ETA n/a"
        took = "finished earlier" if seconds is None else f"{seconds:.0f} s"
        return f"[{self.done}/{self.total}] {name}: {took}; {left} left, {eta if left else 'done'}"


def prepare_data(bundle: Path, base: Mapping[str, Any], contract: Mapping[str, Any]) -> dict[str, Any]:
    """Run the bundle's data preparation config (contract ``"prepare_config"``, if any) with the overrides it knows;
    return the overrides for training, without those only the preparation defines (e.g. ``synthetic#n_train``)."""
    name = contract.get("prepare_config")
    if not name:
        return dict(base)
    configs = bundle / "configs"
    prep_ids = set(ConfigParser.load_config_file(configs / name))
    only_prep = prep_ids - set(ConfigParser.load_config_file(configs / contract["train_config"]))
    prep = ConfigWorkflow(
        config_file=str(configs / name),
        workflow_type=None,
        **{k: v for k, v in base.items() if k.split("#")[0] in prep_ids},
    )
    prep.initialize()
    prep.run()
    prep.finalize()
    return {k: v for k, v in base.items() if k.split("#")[0] not in only_prep}


def _overrides(
    setting: SweepSetting,
    out: Path,
    base: Mapping[str, Any],
    contract: Mapping[str, Any],
    named: Mapping[str, Mapping[str, Any]] | None = None,
    tracking_db: str = "mlruns.db",
) -> dict:
    ids, run_dir, label = contract["ids"], out / "runs" / setting.name, setting["design"]
    if named and label in named:
        chosen = dict(named[label])
    else:
        chosen = {ids["design"]: contract["design_when_lambda0"] if label == BASELINE_DESIGN else label}
    return {**base, **chosen, ids["lambda"]: setting["lambda"], ids["seed"]: setting["seed"],
            ids["ckpt_dir"]: str(run_dir / "models"), ids["output_dir"]: str(run_dir / "eval"),
            ids["tracking_uri"]: f"sqlite:///{out / tracking_db}", ids["run_name"]: setting.name,
            ids["experiment_name"]: base.get(ids["experiment_name"], "sweep")}  # fmt: skip


def run_setting(
    bundle: Path,
    setting: SweepSetting,
    out: Path,
    base: Mapping[str, Any],
    contract: Mapping[str, Any],
    named: Mapping[str, Mapping[str, Any]] | None = None,
    tracking_db: str = "mlruns.db",
) -> dict[str, Any]:
    """Train and evaluate one run (or read its record): ``{design, lambda, seed, name, per_image: [csv, ...]}``."""
    run_dir = out / "runs" / setting.name
    record_path = run_dir / "run.json"
    if record_path.is_file():
        return json.loads(record_path.read_text())
    ids, configs = contract["ids"], bundle / "configs"
    start = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    overrides = _overrides(setting, out, base, contract, named, tracking_db)
    train = ConfigWorkflow(config_file=str(configs / contract["train_config"]), workflow_type="train", resume=True,
                           **overrides)  # fmt: skip
    train.initialize()
    train.run()
    train.finalize()
    tables = []
    for split in contract["splits"]:
        eval_dir = run_dir / split
        ev = ConfigWorkflow(
            config_file=[str(configs / contract["train_config"]), str(configs / contract["evaluate_config"])],
            workflow_type=None,
            **{**overrides, ids["split"]: split, ids["eval_dir"]: str(eval_dir)},
        )
        ev.initialize()
        ev.run()
        ev.finalize()
        tables.append(str(eval_dir / contract["per_image_file"]))
    record = {**setting, "name": setting.name, "per_image": tables, "seconds": round(time.perf_counter() - start, 1)}
    tmp = record_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, record_path)  # a record is either complete or absent
    return record


def provenance(bundle: Path, records: Sequence[Mapping[str, Any]], wall_s: float, command: str | None = None) -> str:
    """One Markdown line: the commit of the bundle's repository (``+dirty`` with local changes), the command, the
    summed time of the runs (``seconds`` of each record; runs of earlier invocations included) and this wall time."""

    def git(*args: str) -> str:
        try:
            res = subprocess.run(
                ["git", "-C", str(bundle), *args], check=False, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return res.stdout.strip() if res.returncode == 0 else ""

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown (not a git checkout)"
    if commit[0] != "u" and git("status", "--porcelain", "--untracked-files=no"):
        commit += "+dirty"
    total = sum(float(r.get("seconds") or 0.0) for r in records)
    if command is None:
        command = (
            shlex.join(["python", "-m", "monai_explain.apps.study", *sys.argv[1:]]) if sys.argv[1:] else "run_sweep()"
        )
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (f"Commit `{commit}`; command `{command}`; {len(records)} runs, {total / 60:.1f} min of run time in all, "
            f"this invocation {wall_s / 60:.1f} min; written {when}.")  # fmt: skip


def run_sweep(
    bundle: str | os.PathLike,
    designs: Sequence[str],
    lambdas: Sequence[float],
    seeds: Sequence[int],
    out: str | os.PathLike,
    overrides: Mapping[str, Any] | None = None,
    splits: Sequence[str] | None = None,
    n_resamples: int = 10000,
    gallery: bool = True,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    workers: int = 1,
    command: str | None = None,
) -> Path:
    """Run (or resume) the whole study and write ``<out>/report``; returns the path of ``summary.md``.

    ``settings`` names sets of config overrides usable as designs (see the module docstring); a label equal to
    :data:`BASELINE_DESIGN` is refused. ``workers > 1`` trains that many runs at a time, each in its own process
    with ``cpu_count // workers`` torch threads (runs are dealt round-robin; worker ``k`` logs to MLflow in
    ``<out>/mlruns_<k>.db``, since SQLite takes one writer at a time). ``command``: how the study was started, for
    the provenance line of the report (default: this process's command line).
    """
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1, got {workers}.")
    if settings and BASELINE_DESIGN in settings:
        raise ValueError(f"settings: the label {BASELINE_DESIGN!r} is reserved for the lambda = 0 runs.")
    wall_start = time.perf_counter()
    bundle, out = Path(bundle).resolve(), Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    contract = bundle_contract(bundle)
    if splits:
        contract["splits"] = list(splits)
    base = prepare_data(bundle, {"bundle_root": str(bundle), **(overrides or {})}, contract)
    runs = sweep_settings(designs, lambdas, seeds)
    progress = Progress(len(runs))
    logger.info(f"sweep: {len(runs)} runs x splits {contract['splits']} into {out}")
    if int(workers) > 1:
        _run_in_workers(int(workers), bundle, runs, out, base, contract, settings)
    records = []
    for s in runs:
        done_before = (out / "runs" / s.name / "run.json").is_file()
        t0 = time.perf_counter()
        records.append(run_setting(bundle, s, out, base, contract, settings))
        line = progress.update(s.name, None if done_before else time.perf_counter() - t0)
        logger.info(line)
        print(line, flush=True)
    df = read_per_image({(r["design"], r["lambda"], r["seed"]): r["per_image"] for r in records})
    path = write_report(
        df, out / "report", n_resamples=n_resamples, title=f"Explanation supervision study: {bundle.name}",
        recovery_splits=tuple(contract["recovery_splits"]) if contract.get("recovery_splits") else None,
        provenance=provenance(bundle, records, time.perf_counter() - wall_start, command),
    )  # fmt: skip
    if gallery:
        _gallery(bundle, out, base, contract, df, runs, settings)
    return path


def _worker(
    k: int, threads: int, bundle: Path, runs: list[SweepSetting], out: Path, base: Mapping, contract: Mapping,
    named: Mapping | None,
) -> None:  # fmt: skip
    import torch

    torch.set_num_threads(threads)
    progress = Progress(len(runs))
    for s in runs:
        done_before = (out / "runs" / s.name / "run.json").is_file()
        t0 = time.perf_counter()
        run_setting(bundle, s, out, base, contract, named, tracking_db=f"mlruns_{k}.db")
        line = f"worker {k}: " + progress.update(s.name, None if done_before else time.perf_counter() - t0)
        logger.info(line)
        print(line, flush=True)


def _run_in_workers(
    workers: int, bundle: Path, runs: list[SweepSetting], out: Path, base: Mapping, contract: Mapping,
    named: Mapping | None,
) -> None:  # fmt: skip
    """Train the unfinished runs in ``workers`` processes (dealt round-robin); raises when a worker fails, naming its
    runs."""
    import multiprocessing as mp

    runs = [s for s in runs if not (out / "runs" / s.name / "run.json").is_file()]
    ctx = mp.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = []
    for k in range(workers):
        mine = runs[k::workers]
        if mine:
            p = ctx.Process(target=_worker, args=(k, threads, bundle, mine, out, base, contract, named), daemon=False)
            p.start()
            procs.append((p, mine))
    failed = []
    for p, mine in procs:
        p.join()
        if p.exitcode != 0:
            failed += [s.name for s in mine if not (out / "runs" / s.name / "run.json").is_file()]
    if failed:
        raise RuntimeError(f"sweep workers failed; runs not finished: {failed} (rerun the same command to resume).")


def _gallery(
    bundle: Path,
    out: Path,
    base: Mapping,
    contract: Mapping,
    df: Any,
    settings: list[SweepSetting],
    named: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """``report/gallery.png``: the first seed's lambda = 0 run and the run with the best mean saliency precision."""
    split = contract["splits"][0]
    chosen = [s for s in settings if s["lambda"] == 0][:1]
    if "saliency_precision" in df.columns:
        sup = df[(df["lambda"] > 0) & (df["split"] == split)].groupby(["design", "lambda", "seed"])[
            "saliency_precision"
        ]
        if sup.ngroups:
            d, lam, seed = sup.mean().idxmax()
            chosen += [s for s in settings if (s["design"], s["lambda"], s["seed"]) == (d, lam, seed)]
    if not chosen:
        return
    configs = [bundle / "configs" / contract["train_config"], bundle / "configs" / contract["evaluate_config"]]
    runs = {
        f"{s['design']} lambda={s['lambda']:g} seed {s['seed']}": _overrides(s, out, base, contract, named)
        for s in chosen
    }
    saliency_gallery(configs, runs, contract, split, out / "report" / "gallery.png")
