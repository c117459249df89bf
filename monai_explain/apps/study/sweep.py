"""The lambda x design x seed study of a bundle: train and evaluate one run per setting, then write the report.

Each run trains with the bundle's train config and is evaluated with its evaluate config on every requested split
(MONAI ``ConfigWorkflow`` in this process, so the bundle runs exactly as a user runs it). The study then reads only
the per-image table each evaluation writes; what it sets in a bundle is the bundle contract
(:mod:`~monai_explain.apps.study.contract`). A finished run leaves ``<out>/runs/<name>/run.json`` and is not trained
again; an interrupted one resumes from its last checkpoint. Both only for the same settings: a run folder keeps the
overrides it was started with (``settings.json``), and a sweep asking other settings of it raises. Progress (runs
done / total, ETA) is logged and printed.

lambda = 0 does not depend on the loss design, so it is trained once per seed, as design ``"none"``.

A "design" of the study is either a loss design name (set as the contract's ``design`` id) or the label of a named
setting: a set of config overrides given in ``settings`` (``--settings FILE.json`` on the command line), e.g.
``{"gradcam/energy": {"saliency": "gradcam", "saliency_kwargs": {"target_layer": "features.transition2"},
"loss_design": "energy"}}``; the label is what the report calls the design.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser, ConfigWorkflow

from .compare import setting_label
from .contract import bundle_contract
from .plots import stack_figures
from .provenance import provenance, source_commit
from .report import write_report
from .table import RUN, read_per_image

__all__ = ["BASELINE_DESIGN", "Progress", "run_sweep", "sweep_settings"]

logger = logging.getLogger(__name__)

BASELINE_DESIGN = "none"


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


def _workflow(config_file: str | list[str], workflow_type: str | None, **overrides: Any) -> None:
    """Run one MONAI bundle workflow (initialize, run, finalize) with config overrides."""
    workflow = ConfigWorkflow(config_file=config_file, workflow_type=workflow_type, **overrides)
    workflow.initialize()
    workflow.run()
    workflow.finalize()


def prepare_data(bundle: Path, base: Mapping[str, Any], contract: Mapping[str, Any]) -> dict[str, Any]:
    """Run the bundle's data preparation config (contract ``"prepare_config"``, if any) with the overrides it knows;
    return the overrides for training, without those only the preparation defines (e.g. ``synthetic#n_train``)."""
    name = contract.get("prepare_config")
    if not name:
        return dict(base)
    configs = bundle / "configs"
    prep_ids = set(ConfigParser.load_config_file(configs / name))
    only_prep = prep_ids - set(ConfigParser.load_config_file(configs / contract["train_config"]))
    _workflow(str(configs / name), None, **{k: v for k, v in base.items() if k.split("#")[0] in prep_ids})
    return {k: v for k, v in base.items() if k.split("#")[0] not in only_prep}


@dataclass
class _Sweep:
    """What the runs of one sweep share: the bundle, the output folder, the config overrides of every run (after
    :func:`prepare_data`), the bundle contract, the named settings and the folder whose changes do not make a run's
    recorded commit ``+dirty`` (see :func:`run_sweep`)."""

    bundle: Path
    out: Path
    base: Mapping[str, Any]
    contract: Mapping[str, Any]
    named: Mapping[str, Mapping[str, Any]] | None = None
    outputs: str | os.PathLike | None = None

    def run_dir(self, setting: SweepSetting) -> Path:
        return self.out / "runs" / setting.name

    def config_files(self, *roles: str) -> list[str]:
        return [str(self.bundle / "configs" / self.contract[role]) for role in roles]

    def done(self, setting: SweepSetting) -> bool:
        """Whether the run has finished (in this or an earlier invocation): its record exists."""
        return (self.run_dir(setting) / "run.json").is_file()

    def overrides(self, setting: SweepSetting, tracking_db: str = "mlruns.db") -> dict[str, Any]:
        ids, run_dir, label = self.contract["ids"], self.run_dir(setting), setting["design"]
        if self.named and label in self.named:
            chosen = dict(self.named[label])
        else:
            chosen = {ids["design"]: self.contract["design_when_lambda0"] if label == BASELINE_DESIGN else label}
        return {**self.base, **chosen, ids["lambda"]: setting["lambda"], ids["seed"]: setting["seed"],
                ids["ckpt_dir"]: str(run_dir / "models"), ids["output_dir"]: str(run_dir / "eval"),
                ids["tracking_uri"]: f"sqlite:///{self.out / tracking_db}", ids["run_name"]: setting.name,
                ids["experiment_name"]: self.base.get(ids["experiment_name"], "sweep")}  # fmt: skip

    def settings(self, setting: SweepSetting) -> dict[str, Any]:
        """What defines a run's training: its config overrides without the paths (``settings.json`` of the run folder,
        written when it starts).

        Raises:
            ValueError: the run folder holds a run started or finished with other settings (a finished run is read, not
                retrained, and an interrupted one resumes: neither may stand for a setting it was not trained with).
        """
        ids = self.contract["ids"]
        paths = {ids[k] for k in ("ckpt_dir", "output_dir", "eval_dir", "tracking_uri")} | {"bundle_root"}
        want = json.loads(json.dumps({k: v for k, v in self.overrides(setting).items() if k not in paths}))
        path = self.run_dir(setting) / "settings.json"
        if not path.is_file():
            if self.done(setting):
                logger.warning(f"{self.run_dir(setting)}: finished before runs recorded their settings; read as it is.")
            return want
        had = json.loads(path.read_text())
        differ = sorted(k for k in want.keys() | had.keys() if want.get(k, "<unset>") != had.get(k, "<unset>"))
        if differ:
            raise ValueError(
                f"{path}: run {setting.name} was trained with { ({k: had.get(k, '<unset>') for k in differ}) }, but this "
                f"sweep sets { ({k: want.get(k, '<unset>') for k in differ}) }; use a new output folder for other "
                f"settings, or delete {self.run_dir(setting)} to train the run again."
            )
        return want

    def run(self, setting: SweepSetting, tracking_db: str = "mlruns.db") -> dict[str, Any]:
        """Train and evaluate one run (or read its record): ``{design, lambda, seed, name, per_image: [csv, ...],
        seconds, commit}`` (``commit``: :func:`~monai_explain.apps.study.provenance.source_commit` when it started).

        Raises:
            ValueError: the run's folder holds a run of other settings (:meth:`settings`).
        """
        run_dir = self.run_dir(setting)
        record_path = run_dir / "run.json"
        settings = self.settings(setting)
        if record_path.is_file():
            return json.loads(record_path.read_text())
        ids, start, commit = self.contract["ids"], time.perf_counter(), source_commit(self.bundle, self.outputs)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "settings.json").write_text(json.dumps(settings, indent=2, sort_keys=True))
        overrides = self.overrides(setting, tracking_db)
        _workflow(self.config_files("train_config")[0], "train", resume=True, **overrides)
        tables = []
        for split in self.contract["splits"]:
            eval_dir = run_dir / split
            _workflow(self.config_files("train_config", "evaluate_config"), None,
                      **{**overrides, ids["split"]: split, ids["eval_dir"]: str(eval_dir)})  # fmt: skip
            tables.append(str(eval_dir / self.contract["per_image_file"]))
        seconds = round(time.perf_counter() - start, 1)
        record = {**setting, "name": setting.name, "per_image": tables, "seconds": seconds, "commit": commit}
        tmp = record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, record_path)  # a record is either complete or absent
        return record

    def train(self, runs: Sequence[SweepSetting], tracking_db: str = "mlruns.db", prefix: str = "") -> list[dict]:
        """:meth:`run` for each run in turn, with a progress line (logged and printed) after each."""
        progress, records = Progress(len(runs)), []
        for s in runs:
            done_before, t0 = self.done(s), time.perf_counter()
            records.append(self.run(s, tracking_db))
            line = prefix + progress.update(s.name, None if done_before else time.perf_counter() - t0)
            logger.info(line)
            print(line, flush=True)
        return records

    def train_in_workers(self, runs: Sequence[SweepSetting], workers: int) -> None:
        """Train the unfinished runs in ``workers`` processes (dealt round-robin); raises when a worker fails, naming
        its runs."""
        runs = [s for s in runs if not self.done(s)]
        ctx, threads = mp.get_context("spawn"), max(1, (os.cpu_count() or 1) // workers)
        procs = []
        for k in range(workers):
            if mine := runs[k::workers]:
                p = ctx.Process(target=_worker, args=(self, k, threads, mine), daemon=False)
                p.start()
                procs.append((p, mine))
        failed = []
        for p, mine in procs:
            p.join()
            if p.exitcode != 0:
                failed += [s.name for s in mine if not self.done(s)]
        if failed:
            raise RuntimeError(f"sweep workers failed; runs not finished: {failed} (rerun the same command to resume).")

    def gallery(self, df: Any, runs: Sequence[SweepSetting]) -> Path | None:
        """``<out>/report/gallery.png``: the saliency figures the evaluations of the first split wrote (contract
        ``"overlay_file"``, in the split's evaluation folder) for the first lambda = 0 run and for the run with the
        best mean saliency precision, one above the other (each figure shows the split's first positives and
        negatives, so the same images).

        Returns:
            The path written, or None when there is no run to show or a figure is missing (logged).
        """
        split, name = self.contract["splits"][0], self.contract.get("overlay_file")
        chosen = [s for s in runs if s["lambda"] == 0][:1]
        if "saliency_precision" in df.columns:
            sup = df[(df["lambda"] > 0) & (df["split"] == split)].groupby(RUN)["saliency_precision"]
            if sup.ngroups:
                chosen += [s for s in runs if (s["design"], s["lambda"], s["seed"]) == sup.mean().idxmax()]
        figures = {f"{setting_label(s['design'], s['lambda'])} seed {s['seed']}": self.run_dir(s) / split / str(name)
                   for s in chosen}  # fmt: skip
        missing = [str(f) for f in figures.values() if not f.is_file()]
        if not name or not figures or missing:
            logger.warning(f"no saliency gallery: overlay_file {name!r}, missing figure(s) {missing}.")
            return None
        return stack_figures(figures, self.out / "report" / "gallery.png")


def _worker(sweep: _Sweep, k: int, threads: int, runs: list[SweepSetting]) -> None:
    torch.set_num_threads(threads)
    sweep.train(runs, tracking_db=f"mlruns_{k}.db", prefix=f"worker {k}: ")


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
    outputs: str | os.PathLike | None = None,
) -> Path:
    """Run (or resume) the whole study and write ``<out>/report``; returns the path of ``summary.md``.

    Args:
        bundle: the bundle folder (its ``metadata.json`` declares the study contract).
        designs: loss designs, or labels of ``settings``.
        lambdas: lambda values; 0 adds one baseline run per seed (design :data:`BASELINE_DESIGN`).
        seeds: training seeds.
        out: work folder; finished runs (``runs/<name>/run.json``) are read, not trained again.
        overrides: config overrides of every run.
        splits: evaluated splits (default: the contract's).
        n_resamples: bootstrap resamples of the report's intervals.
        gallery: draw the saliency gallery of the report.
        settings: named sets of config overrides usable as designs (see the module docstring).
        workers: runs trained at a time; above 1, each in its own process with ``cpu_count // workers`` torch
            threads (runs dealt round-robin; worker ``k`` logs to MLflow in ``<out>/mlruns_<k>.db``, since SQLite
            takes one writer at a time).
        command: how the study was started, for the report's provenance line (default: this process's command).
        outputs: a folder of the repository whose changes do not make the provenance or a run's recorded commit
            ``+dirty`` (a plan's results).

    Raises:
        ValueError: ``workers`` below 1, or a ``settings`` label equal to :data:`BASELINE_DESIGN`.
        RuntimeError: when a worker fails (its unfinished runs are named; rerun to resume).
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
    sweep, runs = _Sweep(bundle, out, base, contract, settings, outputs), sweep_settings(designs, lambdas, seeds)
    logger.info(f"sweep: {len(runs)} runs x splits {contract['splits']} into {out}")
    if int(workers) > 1:
        sweep.train_in_workers(runs, int(workers))
    records = sweep.train(runs)
    trained_at = sorted({str(r.get("commit", "not recorded")) for r in records})
    if len(trained_at) > 1:
        logger.warning(f"sweep {out}: its runs were trained at different commits or without a record {trained_at}; "
                       "for numbers of one code state, run the sweep into a new --out folder.")  # fmt: skip
    df = read_per_image({(r["design"], r["lambda"], r["seed"]): r["per_image"] for r in records})
    path = write_report(
        df, out / "report", n_resamples=n_resamples, title=f"Explanation supervision study: {bundle.name}",
        recovery_splits=tuple(contract["recovery_splits"]) if contract.get("recovery_splits") else None,
        provenance=provenance(bundle, records, time.perf_counter() - wall_start, command, outputs),
    )  # fmt: skip
    if gallery:
        sweep.gallery(df, runs)
    return path
