"""Every supervised setting (lambda > 0) against its lambda = 0 baseline, by ``groupby`` on the study tables.

Rules:

- **Setting** = ``(design, lambda)``; its runs differ by seed.
- **Baseline** of a design = its own ``lambda = 0`` runs when there are some; otherwise the ``lambda = 0`` runs of all
  designs pooled, one run per seed (the design first in alphabetical order when several share a seed).
- **Per-image tests** (:func:`compare_per_image`), per split, class and metric: each image's value is averaged over
  the seeds of a setting (NaN when every seed is NaN) and paired with the baseline's average on the same images
  (images missing on one side are counted in ``n_unmatched``): Wilcoxon, bootstrap CI, effect sizes. Per-image
  correctness also gets McNemar's exact test once per seed, against the baseline run with the same seed.
- **Across-seed tests** (:func:`compare_seeds`): per-run metrics, Welch's t-test (or paired by seed).
- **Holm**: p-values are adjusted within each family = one test of one metric on one split and class, across all
  settings (and seeds).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from .stats import holm, paired_test, seed_test, t_interval
from .table import MACRO, metric_columns, pd

__all__ = ["baseline_of", "compare_per_image", "compare_seeds", "dominance_counts", "pareto", "setting_label", "settings",
           "summarize", "versus_baseline"]  # fmt: skip

_FAMILY = ["test", "split", "class", "metric"]


def settings(df: pd.DataFrame) -> list[tuple[str, float]]:
    """The supervised settings ``(design, lambda > 0)`` of a table, sorted."""
    return sorted({(d, float(lam)) for d, lam in zip(df["design"], df["lambda"]) if lam > 0})


def baseline_of(df: pd.DataFrame, design: str) -> pd.DataFrame:
    """The rows of the lambda = 0 runs that ``design``'s settings are compared with (rule in the module docstring)."""
    base = df[df["lambda"] == 0]
    if (base["design"] == design).any():
        return base[base["design"] == design]
    first = base[["design", "seed"]].drop_duplicates().sort_values(["design", "seed"]).drop_duplicates("seed")
    return base.merge(first, on=["design", "seed"])


def versus_baseline(df: pd.DataFrame) -> Iterator[tuple[str, float, pd.DataFrame, pd.DataFrame]]:
    """``(design, lambda, baseline rows, the setting's rows)`` of each supervised setting, in :func:`settings` order."""
    for design, lam in settings(df):
        yield design, lam, baseline_of(df, design), df[(df["design"] == design) & (df["lambda"] == lam)]


def setting_label(design: str, lam: float) -> str:
    """The name of a setting in the report's tables, e.g. ``"cam/dice lambda=10"``."""
    return f"{design} lambda={lam:g}"


def _with_holm(rows: list[dict]) -> pd.DataFrame:
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["p_holm"] = out.groupby(_FAMILY, dropna=False)["p_value"].transform(lambda p: holm(p.to_numpy()))
    return out


def summarize(metrics: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per setting, split, class and metric: n, mean, SD and t-based CI over seeds (the runs' ``value``)."""
    keys = ["design", "lambda", "split", "class", "metric"]
    out = metrics.groupby(keys, sort=True)["value"].apply(lambda v: pd.Series(t_interval(v, confidence)))
    out = out.unstack().reset_index()
    out.insert(2, "setting", [setting_label(d, lam) for d, lam in zip(out["design"], out["lambda"])])
    return out


def compare_per_image(
    df: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    confidence: float = 0.95,
    n_resamples: int = 10000,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired per-image tests of every supervised setting against its baseline (rules in the module docstring).

    Args:
        df: the study table (:func:`~monai_explain.apps.study.table.read_per_image`).
        metrics: per-image columns to test; default ``correct``, ``probability`` and every metric column except
            ``chance_level`` (a property of the mask, equal in every run).
        confidence: bootstrap CI level. n_resamples: bootstrap resamples. seed: bootstrap seed.

    Returns:
        One row per test with the context (``setting, design, lambda, baseline, split, class, metric, test,
        seed``), the counts, means, CI, effect sizes, ``p_value`` and ``p_holm``.
    """
    if metrics is None:
        metrics = ["correct", "probability"] + [m for m in metric_columns(df) if m != "chance_level"]
    keys = ["split", "class", "id"]
    rows = []
    for design, lam, base, mine in versus_baseline(df):
        context = {"setting": setting_label(design, lam), "design": design, "lambda": lam,
                   "baseline": "; ".join(sorted({setting_label(d, 0) for d in base["design"]}))}  # fmt: skip
        b_mean, s_mean = base.groupby(keys)[list(metrics)].mean(), mine.groupby(keys)[list(metrics)].mean()
        pairs = b_mean.merge(s_mean, left_index=True, right_index=True, suffixes=("_b", "_s"))
        lone = b_mean.index.symmetric_difference(s_mean.index).to_frame(index=False)
        unmatched = lone.groupby(["split", "class"]).size() if len(lone) else {}
        for (split, cls), g in pairs.groupby(level=["split", "class"]):
            for m in metrics:
                res = paired_test(g[f"{m}_b"], g[f"{m}_s"], "wilcoxon", confidence, n_resamples, seed)
                rows.append({**context, "split": split, "class": cls, "metric": m, "test": "wilcoxon",
                             "seed": None, "n_unmatched": int(unmatched.get((split, cls), 0)), **res})  # fmt: skip
        if "correct" not in metrics:
            continue
        on = ["seed", *keys]
        joined = base[on + ["design", "correct"]].merge(mine[on + ["correct"]], on=on, suffixes=("", "_s"))
        joined = joined[joined["class"] != MACRO]  # a mean over classes is not a binary outcome
        for (s, split, cls), g in joined.groupby(["seed", "split", "class"]):
            res = paired_test(g["correct"], g["correct_s"], "mcnemar_exact", confidence, n_resamples, seed)
            rows.append({**context, "baseline": setting_label(g["design"].iloc[0], 0), "split": split, "class": cls,
                         "metric": "correct", "test": "mcnemar_exact", "seed": int(s), **res})  # fmt: skip
    return _with_holm(rows)


def compare_seeds(
    metrics: pd.DataFrame,
    names: Sequence[str] = ("accuracy", "balanced_accuracy", "auc"),
    method: str = "welch",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Across-seed tests of per-run metrics (:func:`~monai_explain.apps.study.table.run_metrics`) of every supervised
    setting against its baseline, per split and class; Holm-adjusted per family."""
    metrics = metrics[metrics["metric"].isin(names)]
    rows = []
    for design, lam, base, mine in versus_baseline(metrics):
        for (split, cls, m), g in mine.groupby(["split", "class", "metric"]):
            b = base[(base["split"] == split) & (base["class"] == cls) & (base["metric"] == m)]
            res = seed_test(b["value"], g["value"], method, b["seed"].tolist(), g["seed"].tolist(), confidence)
            rows.append({"setting": setting_label(design, lam), "design": design, "lambda": lam, "split": split,
                         "class": cls, "metric": m, **res})  # fmt: skip
    return _with_holm(rows)


def dominance_counts(x: Sequence[float], y: Sequence[float]) -> np.ndarray:
    """How many points dominate each point (both maximised); -1 for a NaN objective. Equal points do not dominate.

    Example:
        >>> dominance_counts([1, 2, 2, 0], [3, 2, 1, 0]).tolist()
        [0, 0, 1, 3]
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    bad = np.isnan(a) | np.isnan(b)
    ge = (a[None, :] >= a[:, None]) & (b[None, :] >= b[:, None])
    gt = (a[None, :] > a[:, None]) | (b[None, :] > b[:, None])
    counts = (ge & gt & ~bad[None, :]).sum(axis=1)
    counts[bad] = -1
    return counts


def pareto(summary: pd.DataFrame, x: tuple[str, str, str], y: tuple[str, str, str]) -> pd.DataFrame:
    """Pareto front of the settings' means of two (split, class, metric) objectives, both maximised.

    Returns:
        ``design, lambda, setting, x, y, n_dominating, on_front``, front first (sorted by x, best first).
    """
    cols = []
    for name, (split, cls, metric) in (("x", x), ("y", y)):
        sel = summary[(summary["split"] == split) & (summary["class"] == cls) & (summary["metric"] == metric)]
        cols.append(sel.set_index(["design", "lambda", "setting"])["mean"].rename(name))
    out = pd.concat(cols, axis=1).reset_index()
    out["n_dominating"] = dominance_counts(out["x"], out["y"])
    out["on_front"] = out["n_dominating"] == 0
    order = out.assign(_rank=out["n_dominating"].where(out["n_dominating"] >= 0, len(out)))
    return order.sort_values(["_rank", "x"], ascending=[True, False]).drop(columns="_rank").reset_index(drop=True)
