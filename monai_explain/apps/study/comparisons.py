"""Study-level comparisons: every supervised setting (lambda > 0) against its lambda = 0 baseline.

Rules (documented once here, used by the report):

- **Setting** = ``(design, lambda)``; its runs differ by seed.
- **Baseline** of a design = its own ``lambda = 0`` runs when the sweep has them; otherwise the ``lambda = 0`` runs
  of all designs pooled (λ = 0 trains the same model whatever the design label), one run per seed: when several
  designs have a λ = 0 run with the same seed, the design first in alphabetical order is used and the others are
  counted and logged.
- **Per-image tests** (:func:`compare_per_image`): for each per-image metric the values of an image are averaged
  over the seeds of a setting (NaN-aware; NaN when every seed is NaN), then paired with the baseline's seed average
  on the same images: Wilcoxon signed-rank test, bootstrap CI of the mean difference, rank-biserial correlation,
  Cohen's d_z. Images are the sampling unit. Per-image correctness (binary) also gets McNemar's exact test,
  once per seed against the baseline run with the same seed (seed averaging would break the binary outcome).
- **Across-seed tests** (:func:`compare_seeds`): per-run metrics (accuracy, AUC, ...) compared with Welch's t-test
  by default, or paired by seed.
- **Holm**: p-values are Holm-adjusted within each family = one test on one metric across all settings (and, for
  McNemar, all seeds).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .stats import (
    PairedComparison,
    SeedComparison,
    holm_bonferroni,
    paired_comparison,
    seed_comparison,
    seed_summary,
)
from .tables import (
    PER_IMAGE_METRICS,
    PerImageTable,
    SettingKey,
    align_per_image,
    group_runs,
    metric_keys,
    read_per_image_csv,
    setting_label,
    validate_runs,
)

__all__ = [
    "SEED_TEST_METRICS",
    "apply_holm",
    "baseline_runs",
    "compare_per_image",
    "compare_seeds",
    "load_per_image",
    "summarize_runs",
]

logger = logging.getLogger(__name__)

#: per-run metrics compared across seeds by default.
SEED_TEST_METRICS: tuple[str, ...] = ("accuracy", "accuracy_shifted", "auc")


def baseline_runs(groups: Mapping[SettingKey, Sequence[Mapping[str, Any]]], design: str) -> list[dict[str, Any]]:
    """The λ = 0 runs a setting of ``design`` is compared with (rule in the module docstring).

    Args:
        groups: runs grouped by setting (:func:`monai_explain.apps.study.tables.group_runs`).
        design: the design of the setting.

    Returns:
        The baseline runs, one per seed, sorted by seed; empty when the sweep has no λ = 0 run.
    """
    own = groups.get((design, 0.0))
    if own:
        return [dict(r) for r in own]
    by_seed: dict[int, dict[str, Any]] = {}
    extra = 0
    for key in sorted(k for k in groups if k[1] == 0.0):
        for r in groups[key]:
            if r["seed"] in by_seed:
                extra += 1
            else:
                by_seed[r["seed"]] = dict(r)
    if extra:
        logger.info(f"pooled lambda=0 baseline for {design!r}: {extra} run(s) repeat a seed and are not used.")
    return [by_seed[s] for s in sorted(by_seed)]


def _baseline_label(runs: Sequence[Mapping[str, Any]]) -> str:
    keys = sorted({(str(r["design"]), float(r["lambda"])) for r in runs})
    return "; ".join(setting_label(k) for k in keys)


def summarize_runs(
    runs: Sequence[Mapping[str, Any]], metrics: Sequence[str] | None = None, confidence: float = 0.95
) -> list[dict[str, Any]]:
    """One row per setting: number of runs, seeds, and for each metric ``n``, mean, SD and t-based CI over seeds.

    Args:
        runs: the run table (validated here).
        metrics: metric keys; default every numeric key of the table.
        confidence: CI level.

    Returns:
        Rows with ``design, lambda, setting, n_runs, seeds`` and ``<metric>_n, <metric>_mean, <metric>_std,
        <metric>_ci_low, <metric>_ci_high``, sorted by design then lambda.

    Raises:
        ValueError: an invalid run table (see :func:`~monai_explain.apps.study.tables.validate_runs`).
    """
    runs = validate_runs(runs)
    metrics = list(metrics) if metrics is not None else metric_keys(runs)
    rows = []
    for key, group in group_runs(runs).items():
        row: dict[str, Any] = {
            "design": key[0],
            "lambda": key[1],
            "setting": setting_label(key),
            "n_runs": len(group),
            "seeds": ";".join(str(r["seed"]) for r in group),
        }
        for m in metrics:
            s = seed_summary([r.get(m) for r in group], confidence)
            if s.n_nan:
                logger.info(f"{setting_label(key)}: {s.n_nan} run(s) lack {m!r}; left out of its summary.")
            row.update(
                {
                    f"{m}_n": s.n,
                    f"{m}_mean": s.mean,
                    f"{m}_std": s.std,
                    f"{m}_ci_low": s.ci_low,
                    f"{m}_ci_high": s.ci_high,
                }
            )
        rows.append(row)
    return rows


def load_per_image(
    runs: Sequence[Mapping[str, Any]], per_image: Mapping[str, str | os.PathLike | PerImageTable]
) -> dict[str, PerImageTable]:
    """Read the per-image table of each run that has one.

    Args:
        runs: the validated run table.
        per_image: ``run_id`` -> CSV path or :class:`PerImageTable`.

    Returns:
        ``run_id`` -> table, for the runs listed in ``per_image``; runs without one are counted and logged.

    Raises:
        ValueError: a ``run_id`` in ``per_image`` that is not in the run table.
    """
    ids = {r["run_id"] for r in runs}
    unknown = sorted(set(per_image) - ids)
    if unknown:
        raise ValueError(f"per-image tables given for unknown run_id(s) {unknown[:5]}.")
    missing = sorted(ids - set(per_image))
    if missing:
        logger.warning(
            f"{len(missing)} run(s) have no per-image table (e.g. {missing[:3]}); they are left out of "
            "the per-image tests."
        )
    out = {}
    for run_id, src in per_image.items():
        out[run_id] = src if isinstance(src, PerImageTable) else read_per_image_csv(src)
    return out


def _nanmean_rows(a: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN, on purpose
        return np.nanmean(a, axis=0)


def compare_per_image(
    runs: Sequence[Mapping[str, Any]],
    per_image: Mapping[str, str | os.PathLike | PerImageTable],
    metrics: Sequence[str] | None = None,
    mcnemar_metric: str | None = "correct",
    confidence: float = 0.95,
    n_resamples: int = 10000,
    seed: int = 0,
    zero_method: str = "wilcox",
) -> list[PairedComparison]:
    """Paired per-image comparisons of every λ > 0 setting with its λ = 0 baseline, Holm-adjusted.

    Args:
        runs: the run table.
        per_image: ``run_id`` -> per-image CSV path or table.
        metrics: per-image columns to test; default those of
            :data:`~monai_explain.apps.study.tables.PER_IMAGE_METRICS` except ``chance_level`` (a property of the
            mask, equal in every run) that all tables have (absent ones are logged).
        mcnemar_metric: binary column that also gets McNemar's exact test per seed; None to skip.
        confidence: bootstrap CI level.
        n_resamples: bootstrap resamples.
        seed: bootstrap seed (the same for every comparison: each one is reproducible on its own).
        zero_method: zero differences in the Wilcoxon test.

    Returns:
        Wilcoxon rows (setting x metric) then McNemar rows (setting x seed), with ``p_holm`` filled.

    Raises:
        ValueError: invalid runs, unknown run ids in ``per_image``.
        KeyError: a requested metric missing from a table.
    """
    runs = validate_runs(runs)
    tables = load_per_image(runs, per_image)
    if metrics is None:
        wanted = [m for m in PER_IMAGE_METRICS if m != "chance_level"]
        metrics = [m for m in wanted if tables and all(m in t.columns for t in tables.values())]
        absent = [m for m in wanted if m not in metrics]
        if absent:
            logger.info(f"per-image metric(s) {absent} are not in every per-image table; not tested.")
    groups = group_runs(runs)
    results: list[PairedComparison] = []
    mcnemar: list[PairedComparison] = []
    for key, group in groups.items():
        if key[1] == 0.0:
            continue
        base = [r for r in baseline_runs(groups, key[0]) if r["run_id"] in tables]
        mine = [r for r in group if r["run_id"] in tables]
        if not base or not mine:
            logger.warning(f"{setting_label(key)}: no per-image tables for the setting or its baseline; not tested.")
            continue
        context = {
            "setting": setting_label(key),
            "design": key[0],
            "lambda_": key[1],
            "baseline": _baseline_label(base),
        }
        for m in metrics:
            _, vals, n_unmatched = align_per_image([tables[r["run_id"]] for r in base + mine], m)
            res = paired_comparison(
                _nanmean_rows(vals[: len(base)]),
                _nanmean_rows(vals[len(base) :]),
                m,
                "wilcoxon",
                confidence,
                n_resamples,
                seed,
                zero_method,
            )
            results.append(dataclasses.replace(res, n_unmatched=n_unmatched, **context))
        if mcnemar_metric is not None and mcnemar_metric in metrics:
            base_by_seed = {r["seed"]: r for r in base}
            for r in mine:
                b = base_by_seed.get(r["seed"])
                if b is None:
                    logger.warning(
                        f"{setting_label(key)} seed {r['seed']}: no baseline run with that seed; "
                        "no McNemar test for it."
                    )
                    continue
                _, vals, n_unmatched = align_per_image([tables[b["run_id"]], tables[r["run_id"]]], mcnemar_metric)
                res = paired_comparison(
                    vals[0], vals[1], mcnemar_metric, "mcnemar_exact", confidence, n_resamples, seed, zero_method
                )
                ctx = {**context, "baseline": _baseline_label([b])}
                mcnemar.append(dataclasses.replace(res, n_unmatched=n_unmatched, seed=r["seed"], **ctx))
    return apply_holm(results + mcnemar)


def compare_seeds(
    runs: Sequence[Mapping[str, Any]],
    metrics: Sequence[str] | None = None,
    method: str = "welch",
    confidence: float = 0.95,
) -> list[SeedComparison]:
    """Across-seed comparisons of per-run metrics between every λ > 0 setting and its λ = 0 baseline.

    Args:
        runs: the run table.
        metrics: per-run metrics; default those of :data:`SEED_TEST_METRICS` present in the table.
        method: ``"welch"`` (independent samples) or ``"paired"`` (matched by seed); see
            :func:`~monai_explain.apps.study.stats.seed_comparison`.
        confidence: CI level of the difference.

    Returns:
        One :class:`SeedComparison` per setting and metric, Holm-adjusted per metric.

    Raises:
        ValueError: invalid runs, unknown ``method``, a requested metric absent from every run.
    """
    runs = validate_runs(runs)
    present = metric_keys(runs)
    if metrics is None:
        metrics = [m for m in SEED_TEST_METRICS if m in present]
    else:
        absent = [m for m in metrics if m not in present]
        if absent:
            raise ValueError(f"metric(s) {absent} are in no run (metrics: {present}).")
    groups = group_runs(runs)
    out: list[SeedComparison] = []
    for key, group in groups.items():
        if key[1] == 0.0:
            continue
        base = baseline_runs(groups, key[0])
        if not base:
            logger.warning(f"{setting_label(key)}: no lambda=0 run to compare with.")
            continue
        context = {
            "setting": setting_label(key),
            "design": key[0],
            "lambda_": key[1],
            "baseline": _baseline_label(base),
        }
        for m in metrics:
            res = seed_comparison(
                [r.get(m) for r in base],
                [r.get(m) for r in group],
                m,
                method,
                [r["seed"] for r in base],
                [r["seed"] for r in group],
                confidence,
            )
            out.append(dataclasses.replace(res, **context))
    return apply_holm(out)


def apply_holm(results: Sequence[Any], family: Sequence[str] = ("test", "metric")) -> list[Any]:
    """Fill ``p_holm`` of result dataclasses, Holm-adjusting within each family of equal ``family`` fields.

    Args:
        results: dataclasses with ``p_value``, ``p_holm`` and the ``family`` fields.
        family: the fields that define a family.

    Returns:
        New dataclasses, in the input order.
    """
    fams: dict[tuple, list[int]] = {}
    for i, r in enumerate(results):
        fams.setdefault(tuple(getattr(r, f) for f in family), []).append(i)
    out = list(results)
    for idx in fams.values():
        adj = holm_bonferroni([results[i].p_value for i in idx])
        for i, a in zip(idx, adj):
            out[i] = dataclasses.replace(results[i], p_holm=float(a))
    return out
