"""How much of a shortcut's cost a supervised setting wins back, per seed, from the per-run metrics.

A shortcut model scores well on a reference split that carries the spurious correlation (e.g. ``test``) and poorly on
a shifted split where the correlation is removed or reversed (``test_shifted``). For one metric and one seed, with the
lambda = 0 run of that seed as the baseline (:func:`~monai_explain.apps.study.compare.baseline_of`):

- ``shortcut_cost = baseline[reference] - baseline[shifted]``: what the shortcut costs under the shift;
- ``recovered = setting[shifted] - baseline[shifted]``;
- ``recovery = recovered / shortcut_cost`` (1 = the whole cost won back; NaN when the cost is not positive);
- ``reference_change = setting[reference] - baseline[reference]``: the price paid in distribution.

A setting whose seed has no baseline run with the same seed is not scored for that seed (counted in the log).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from monai_explain.utils.extras import optional_import_extra

from .compare import _label, baseline_of, settings

pd, _ = optional_import_extra("pandas", "study")

__all__ = ["recovery_summary", "shortcut_recovery"]

logger = logging.getLogger(__name__)


def shortcut_recovery(
    runs: pd.DataFrame,
    reference_split: str,
    shifted_split: str,
    metrics: Sequence[str] = ("balanced_accuracy", "auc"),
) -> pd.DataFrame:
    """Per (setting, seed, class, metric) recovery of the shortcut cost (definitions in the module docstring).

    Args:
        runs: per-run metrics (:func:`~monai_explain.apps.study.table.run_metrics`).
        reference_split: the split that keeps the training correlation.
        shifted_split: the split where it is removed or reversed.
        metrics: per-run metrics to score.

    Returns:
        ``setting, design, lambda, seed, class, metric, baseline_reference, baseline_shifted, setting_reference,
        setting_shifted, shortcut_cost, recovered, recovery, reference_change``.
    """
    runs = runs[runs["metric"].isin(metrics) & runs["split"].isin([reference_split, shifted_split])]
    wide = runs.pivot_table(index=["design", "lambda", "seed", "class", "metric"], columns="split", values="value")
    if reference_split not in wide.columns or shifted_split not in wide.columns:
        return pd.DataFrame()
    wide = wide.reset_index().rename(columns={reference_split: "reference", shifted_split: "shifted"})
    keys = ["seed", "class", "metric"]
    frames = []
    for design, lam in settings(wide):
        base = baseline_of(wide, design)[keys + ["reference", "shifted"]]
        mine = wide[(wide["design"] == design) & (wide["lambda"] == lam)][
            ["design", "lambda"] + keys + ["reference", "shifted"]
        ]
        both = mine.merge(base, on=keys, how="left", suffixes=("", "_base"))
        missing = both["reference_base"].isna() & both["shifted_base"].isna()
        if missing.any():
            logger.warning(f"recovery: {_label(design, lam)}: {int(missing.sum())} run metric(s) without a lambda = 0 "
                           "run of the same seed, not scored.")  # fmt: skip
        frames.append(both[~missing].assign(setting=_label(design, lam)))
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True).rename(
        columns={"reference_base": "baseline_reference", "shifted_base": "baseline_shifted",
                 "reference": "setting_reference", "shifted": "setting_shifted"}
    )  # fmt: skip
    out["shortcut_cost"] = out["baseline_reference"] - out["baseline_shifted"]
    out["recovered"] = out["setting_shifted"] - out["baseline_shifted"]
    out["recovery"] = np.where(out["shortcut_cost"] > 0, out["recovered"] / out["shortcut_cost"].where(
        out["shortcut_cost"] > 0), np.nan)  # fmt: skip
    out["reference_change"] = out["setting_reference"] - out["baseline_reference"]
    cols = [
        "setting",
        "design",
        "lambda",
        "seed",
        "class",
        "metric",
        "baseline_reference",
        "baseline_shifted",
        "setting_reference",
        "setting_shifted",
        "shortcut_cost",
        "recovered",
        "recovery",
        "reference_change",
    ]
    return out[cols].sort_values(["design", "lambda", "class", "metric", "seed"]).reset_index(drop=True)


def recovery_summary(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per (setting, class, metric): seeds scored, mean and minimum recovery, mean reference change."""
    if per_seed.empty:
        return pd.DataFrame()
    g = per_seed.groupby(["setting", "design", "lambda", "class", "metric"], sort=False)
    out = g.agg(
        n_seeds=("recovery", "count"),
        mean_recovery=("recovery", "mean"),
        min_recovery=("recovery", "min"),
        mean_reference_change=("reference_change", "mean"),
    ).reset_index()
    return out.sort_values(["metric", "mean_recovery"], ascending=[True, False]).reset_index(drop=True)
