"""The report folder of a study, written from the per-image table: CSV tables, PNG plots, a Markdown summary.

=========================== ===========================================================================
``per_image.csv``           the study table: every run's per-image rows (and ``macro`` rows)
``runs.csv``                per-run metrics (long: design, lambda, seed, split, class, metric, value)
``summary.csv``             per setting, split, class and metric: n, mean, SD, t-based CI over seeds
``stats.csv``               tests vs lambda = 0: per-image Wilcoxon and McNemar, across-seed t-tests, Holm
``pareto.csv``              the accuracy vs alignment Pareto front of the settings
``recovery.csv``            per setting and seed: the share of the shortcut's cost won back (``recovery_splits``)
``recovery_summary.csv``    per setting: mean and minimum recovery over seeds, change in distribution
``recovery_overview.csv``   per setting: recoveries, AUC change in distribution, precision / chance, p-values
``tradeoff_*.png``          metric vs lambda per design; ``pareto.png``; ``paired_differences.png``
``summary.md``              the tables above in Markdown (how to read them: tutorial 03 and the docs)
=========================== ===========================================================================
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from .compare import compare_per_image, compare_seeds, pareto, summarize
from .plots import plot_paired_differences, plot_pareto, plot_tradeoff
from .recovery import recovery_overview, recovery_summary, shortcut_recovery
from .table import MACRO, add_macro, pd, run_metrics

__all__ = ["HEADLINE_METRICS", "markdown_table", "write_report"]

logger = logging.getLogger(__name__)

#: per-run metrics of the headline table and the trade-off plots (those present are used).
HEADLINE_METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "auc", "saliency_precision",
                                     "saliency_coverage", "chance_level", "deletion_auc", "confounder_change",
                                     "confounder_flip_rate")  # fmt: skip


def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as a Markdown table (numbers rounded, counts as integers, p-values (``p_*``) to 2 significant
    digits, NaN as ``n/a``), without ``tabulate``."""

    def cell(v: object, column: str) -> str:
        if pd.isna(v):
            return "n/a"
        if column.startswith("p_") and isinstance(v, float):
            return f"{v:.2g}"
        if column == "seed" or column.startswith("n_"):
            return f"{v:.0f}"
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v)

    cells = df.apply(lambda col: col.map(lambda v: cell(v, str(col.name))))
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells.to_numpy().tolist()])


def _headline(summary: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per setting, split and class; one column per headline metric (mean [CI])."""
    s = summary[summary["metric"].isin(metrics)].dropna(subset=["mean"])
    cells = [f"{m:.3f}" if pd.isna(low) else f"{m:.3f} [{low:.3f}, {high:.3f}]"
             for m, low, high in zip(s["mean"], s["ci_low"], s["ci_high"])]  # fmt: skip
    s = s.assign(cell=cells)
    wide = s.pivot_table(index=["split", "class", "setting"], columns="metric", values="cell", aggfunc="first")
    return wide[[m for m in metrics if m in wide.columns]].reset_index()


def write_report(
    df: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    headline_metrics: Sequence[str] = HEADLINE_METRICS,
    seed_metrics: Sequence[str] = ("accuracy", "balanced_accuracy", "auc"),
    seed_method: str = "welch",
    pareto_axes: tuple[str, str] = ("accuracy", "saliency_precision"),
    confidence: float = 0.95,
    n_resamples: int = 10000,
    seed: int = 0,
    title: str = "Explanation supervision study",
    recovery_splits: tuple[str, str] | None = None,
    provenance: str | None = None,
) -> Path:
    """Write the report folder of a study (files in the module docstring); returns the path of ``summary.md``.

    Args:
        df: the study table (:func:`~monai_explain.apps.study.table.read_per_image`).
        out_dir: the report folder (created).
        headline_metrics: per-run metrics of the headline table and the trade-off plots.
        seed_metrics: per-run metrics tested across seeds. seed_method: ``"welch"`` or ``"paired"``.
        pareto_axes: ``(accuracy metric, alignment metric)`` of the Pareto front, on the first split and the macro
            class (the only class with one class).
        confidence: level of every CI. n_resamples: bootstrap resamples. seed: bootstrap seed.
        title: the Markdown title.
        recovery_splits: ``(reference, shifted)`` split names for the shortcut recovery tables
            (:mod:`~monai_explain.apps.study.recovery`); None or a split missing from the table: no recovery.
        provenance: a Markdown paragraph put under the title (commit, command, wall time).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = add_macro(df)
    runs = run_metrics(df)
    summary = summarize(runs, confidence)
    has_base, has_sup = (df["lambda"] == 0).any(), (df["lambda"] > 0).any()
    if not has_base:
        logger.warning("the study has no lambda = 0 run: no tests against the baseline.")
    tests = [compare_per_image(df, None, confidence, n_resamples, seed), compare_seeds(runs, seed_metrics, seed_method,
             confidence)] if has_base and has_sup else []  # fmt: skip
    tests = [t for t in tests if not t.empty]
    stats = pd.concat(tests, ignore_index=True) if tests else pd.DataFrame()
    split = str(df["split"].iloc[0])
    cls = MACRO if (df["class"] == MACRO).any() else str(df["class"].iloc[0])
    front = pareto(summary, (split, cls, pareto_axes[0]), (split, cls, pareto_axes[1]))
    tables = {"per_image": df, "runs": runs, "summary": summary, "stats": stats, "pareto": front}

    if front[["x", "y"]].notna().all(axis=1).any():
        plot_pareto(front, out / "pareto.png", f"{split} {pareto_axes[0]}", f"{split} {pareto_axes[1]}")
    for (sp, c, m), g in summary[summary["metric"].isin(headline_metrics)].groupby(["split", "class", "metric"]):
        if g["mean"].notna().any() and c in (cls, MACRO):
            plot_tradeoff(g, out / f"tradeoff_{sp}_{m}.png", m, f"{sp} {c}: {m} vs lambda")
    if not stats.empty and (stats["test"] == "wilcoxon").any():
        forest = stats[(stats["test"] == "wilcoxon") & (stats["class"] == cls)]
        forest = forest.assign(metric=forest["split"] + " " + forest["metric"])
        plot_paired_differences(forest, out / "paired_differences.png")

    level = f"{confidence:.0%}"
    n_runs = df[["design", "lambda", "seed"]].drop_duplicates().shape[0]
    intro = (
        f"{n_runs} runs; splits {', '.join(df['split'].unique())}; classes {', '.join(df['class'].unique())}. "
        f"Means over seeds with t-based {level} CIs. How to read this report: tutorial 03 and the bundle docs."
    )
    md = [f"# {title}", ""] + ([provenance, ""] if provenance else [])
    md += [intro, "", "## Headline", "", markdown_table(_headline(summary, headline_metrics)), ""]
    if recovery_splits and set(recovery_splits) <= set(df["split"]) and has_base and has_sup:
        ref, shifted = recovery_splits
        tables["recovery"] = shortcut_recovery(runs, ref, shifted)
        tables["recovery_summary"] = rec = recovery_summary(tables["recovery"])
        if not rec.empty:
            tables["recovery_overview"] = recovery_overview(tables["recovery"], summary, stats, ref, shifted)
            md += [f"## Shortcut recovery ({shifted} vs {ref}; share of the lambda = 0 cost won back, per seed)", ""]
            md += [markdown_table(tables["recovery_overview"]), ""]
            md += ["Recovery per metric (pooled lambda = 0 baseline; `paired`: against the same seed's baseline):", ""]
            md += [markdown_table(rec.drop(columns=["design", "lambda"])), ""]
    md += [f"## Pareto front ({split} {cls}: {pareto_axes[0]} vs {pareto_axes[1]})", ""]
    md += [markdown_table(front.drop(columns=["design", "lambda"]))]
    if not stats.empty:
        cols = ["setting", "split", "class", "metric", "test", "seed", "n_pairs", "n_nan_dropped", "baseline_mean",
                "setting_mean", "mean_diff", "ci_low", "ci_high", "rank_biserial", "cohens_dz", "p_value", "p_holm",
                "n_baseline", "n_setting"]  # fmt: skip
        md += ["", f"## Tests vs lambda = 0 (difference = setting - baseline; {level} CIs; Holm per family)", ""]
        md += [markdown_table(stats.reindex(columns=cols).dropna(axis=1, how="all"))]
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    path = out / "summary.md"
    path.write_text("\n".join(md) + "\n")
    logger.info(f"report written to {out}")
    return path
