"""How much of a shortcut's cost a supervised setting wins back, per seed, from the per-run metrics.

A shortcut model scores well on a reference split that carries the spurious correlation (e.g. ``test``) and poorly on
a shifted split where the correlation is removed or reversed (``test_shifted``). For one metric, with the lambda = 0
runs as the baseline (:func:`~monai_explain.apps.study.compare.baseline_of`), each seed of a setting gets:

- ``shortcut_cost = mean(baseline[reference]) - mean(baseline[shifted])`` over the baseline seeds: what the shortcut
  costs under the shift;
- ``recovered = setting[shifted] - mean(baseline[shifted])``;
- ``recovery = recovered / shortcut_cost`` (1 = the whole cost won back; NaN when the cost is below ``min_cost``,
  :data:`MIN_SHORTCUT_COST` by default);
- ``reference_change = setting[reference] - mean(baseline[reference])``: the price paid in distribution;
- ``recovery_paired``: the same ratio against the lambda = 0 run of the *same* seed only (same initialisation and
  data order; NaN when that seed has no baseline run or its own cost is below ``min_cost``).

Why the pooled baseline comes first, and why no ratio over a small cost: tutorial 03 (``recovery*.csv``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from .compare import setting_label, versus_baseline
from .table import pd

__all__ = ["MIN_SHORTCUT_COST", "recovery_overview", "recovery_summary", "shortcut_recovery"]

#: Smallest lambda = 0 cost (in the metric's units) over which a recovery ratio is computed.
MIN_SHORTCUT_COST = 0.05

logger = logging.getLogger(__name__)


def shortcut_recovery(
    runs: pd.DataFrame,
    reference_split: str,
    shifted_split: str,
    metrics: Sequence[str] = ("balanced_accuracy", "auc"),
    min_cost: float = MIN_SHORTCUT_COST,
) -> pd.DataFrame:
    """Per (setting, seed, class, metric) recovery of the shortcut cost (definitions in the module docstring).

    Args:
        runs: per-run metrics (:func:`~monai_explain.apps.study.table.run_metrics`).
        reference_split: the split that keeps the training correlation.
        shifted_split: the split where it is removed or reversed.
        metrics: per-run metrics to score.
        min_cost: no ratio (NaN) where the lambda = 0 cost is below this.

    Returns:
        ``setting, design, lambda, seed, class, metric, baseline_reference, baseline_shifted, setting_reference,
        setting_shifted, shortcut_cost, recovered, recovery, reference_change``.
    """
    runs = runs[runs["metric"].isin(metrics) & runs["split"].isin([reference_split, shifted_split])]
    wide = runs.pivot_table(index=["design", "lambda", "seed", "class", "metric"], columns="split", values="value")
    if reference_split not in wide.columns or shifted_split not in wide.columns:
        return pd.DataFrame()
    wide = wide.reset_index().rename(columns={reference_split: "setting_reference", shifted_split: "setting_shifted"})
    keys, values = ["class", "metric"], ["setting_reference", "setting_shifted"]
    frames = []
    for design, lam, base, mine in versus_baseline(wide):
        pooled = base.groupby(keys)[values].mean().reset_index()
        pooled = pooled.rename(columns=lambda c: c.replace("setting_", "baseline_"))
        paired = base[["seed", *keys, *values]].rename(columns=lambda c: c.replace("setting_", "paired_"))
        both = mine.merge(pooled, on=keys, how="left").merge(paired, on=["seed", *keys], how="left")
        if n := int(both["paired_reference"].isna().sum()):
            logger.warning(f"recovery: {setting_label(design, lam)}: {n} run metric(s) without a lambda = 0 run of the same "
                           "seed (no paired recovery for them).")  # fmt: skip
        frames.append(both.assign(setting=setting_label(design, lam)))
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    out["shortcut_cost"] = out["baseline_reference"] - out["baseline_shifted"]
    out["recovered"] = out["setting_shifted"] - out["baseline_shifted"]
    out["recovery"] = out["recovered"] / out["shortcut_cost"].where(out["shortcut_cost"] >= min_cost)
    out["reference_change"] = out["setting_reference"] - out["baseline_reference"]
    paired_cost = out["paired_reference"] - out["paired_shifted"]
    paired_recovered = out["setting_shifted"] - out["paired_shifted"]
    out["recovery_paired"] = paired_recovered / paired_cost.where(paired_cost >= min_cost)
    small = out[out["shortcut_cost"] < min_cost].drop_duplicates(["class", "metric"])
    for cls, metric, cost in zip(small["class"], small["metric"], small["shortcut_cost"]):
        logger.info(f"recovery: no ratio for {cls} {metric}: the lambda = 0 cost {cost:.3f} is below {min_cost} "
                    "(the cost and the split values are kept).")  # fmt: skip
    cols = ["setting", "design", "lambda", "seed", "class", "metric", "baseline_reference", "baseline_shifted",
            "setting_reference", "setting_shifted", "shortcut_cost", "recovered", "recovery", "reference_change",
            "recovery_paired"]  # fmt: skip
    return out[cols].sort_values(["design", "lambda", "class", "metric", "seed"]).reset_index(drop=True)


def recovery_summary(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per (setting, class, metric): seeds scored, mean and minimum recovery (pooled baseline), mean reference change,
    mean and minimum paired recovery."""
    if per_seed.empty:
        return pd.DataFrame()
    g = per_seed.groupby(["setting", "design", "lambda", "class", "metric"], sort=False)
    out = g.agg(
        n_seeds=("recovery", "count"),
        mean_recovery=("recovery", "mean"),
        min_recovery=("recovery", "min"),
        mean_reference_change=("reference_change", "mean"),
        mean_recovery_paired=("recovery_paired", "mean"),
        min_recovery_paired=("recovery_paired", "min"),
    ).reset_index()
    return out.sort_values(["metric", "mean_recovery"], ascending=[True, False]).reset_index(drop=True)


def recovery_overview(
    per_seed: pd.DataFrame, summary: pd.DataFrame, stats: pd.DataFrame, reference_split: str, shifted_split: str
) -> pd.DataFrame:
    """One row per supervised setting and class with what decides whether it undoes the shortcut.

    Columns: recovery of balanced accuracy and of AUC (mean and minimum over seeds, pooled baseline), the change of
    the reference split's AUC against lambda = 0, saliency precision / chance level on the shifted split (means over
    seeds), and two tests on the shifted split against lambda = 0 (Holm-adjusted p): per-image Wilcoxon of correctness
    (averaged over seeds) and Welch's t-test of balanced accuracy across seeds (NaN when not computed).
    """
    if per_seed.empty:
        return pd.DataFrame()
    means = summary[summary["split"] == shifted_split].groupby(["setting", "class", "metric"])["mean"].first()
    tests = ["setting", "class", "metric", "test"]
    p_holm = {} if stats.empty else stats[stats["split"] == shifted_split].groupby(tests)["p_holm"].first()
    rows = []
    for (setting, cls), g in per_seed.groupby(["setting", "class"], sort=False):
        bacc, auc = g[g["metric"] == "balanced_accuracy"], g[g["metric"] == "auc"]
        prec, chance = (means.get((setting, cls, m), np.nan) for m in ("saliency_precision", "chance_level"))
        rows.append({
            "setting": setting, "class": cls,
            "bacc_recovery_mean": bacc["recovery"].mean(), "bacc_recovery_min": bacc["recovery"].min(),
            "auc_recovery_mean": auc["recovery"].mean(), "auc_recovery_min": auc["recovery"].min(),
            "reference_auc_change": auc["reference_change"].mean(),
            "precision_over_chance": prec / chance if chance and chance > 0 else np.nan,
            "p_correct_wilcoxon": float(p_holm.get((setting, cls, "correct", "wilcoxon"), np.nan)),
            "p_bacc_welch": float(p_holm.get((setting, cls, "balanced_accuracy", "welch_t"), np.nan)),
        })  # fmt: skip
    return pd.DataFrame(rows)
