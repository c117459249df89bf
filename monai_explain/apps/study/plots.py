"""PNG figures of a study (matplotlib, Agg backend), drawn from the study's DataFrames: metric vs lambda, the
accuracy-vs-alignment Pareto front, a forest plot of paired differences, and figures stacked into one (the
saliency gallery)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_explain.utils.extras import optional_import_extra

from .table import pd

__all__ = ["plot_paired_differences", "plot_pareto", "plot_tradeoff", "stack_figures"]


def _pyplot():
    matplotlib, _ = optional_import_extra("matplotlib", "study")
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _check(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if df.empty:
        raise ValueError(f"{what}: no rows to plot.")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"{what}: the table lacks the column(s) {missing}.")


def _save(fig: Any, path: str | os.PathLike, dpi: int = 100) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    except OSError as e:
        raise OSError(f"could not write the figure {path}: {e}") from e
    finally:
        _pyplot().close(fig)
    return path


def _save_axes(fig: Any, ax: Any, path: str | os.PathLike, **labels: str) -> Path:
    """Axis labels, grid and legend of a one-panel figure, then :func:`_save`."""
    ax.set(**labels)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_tradeoff(summary: pd.DataFrame, path: str | os.PathLike, ylabel: str = "", title: str = "") -> Path:
    """One metric vs lambda, one line per design, error bars = the CI over seeds, lambda = 0 as a dashed line.

    The x axis is symmetric-log (linear below the smallest positive lambda), so lambda = 0 sits next to values
    spanning decades; the baseline line is the mean of the lambda = 0 rows, with their CI band when there is one.

    Args:
        summary: rows of one (split, class, metric) of :func:`~monai_explain.apps.study.compare.summarize`:
            ``design, lambda, mean, ci_low, ci_high``.
        path: the PNG file. ylabel: y label. title: figure title.

    Raises:
        ValueError: no rows. KeyError: a missing column.
    """
    _check(summary, ("design", "lambda", "mean", "ci_low", "ci_high"), "plot_tradeoff")
    fig, ax = _pyplot().subplots(figsize=(6.0, 4.0))
    for design, g in summary[summary["lambda"] > 0].sort_values("lambda").groupby("design"):
        err = np.nan_to_num(np.vstack([g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]]), nan=0.0)
        ax.errorbar(g["lambda"], g["mean"], yerr=err, marker="o", ms=4, capsize=3, label=design)
    base = summary[(summary["lambda"] == 0) & summary["mean"].notna()]
    if len(base):
        ax.axhline(base["mean"].mean(), color="0.3", ls="--", lw=1.0, label="lambda=0 baseline")
        if len(base) == 1 and base[["ci_low", "ci_high"]].notna().all(axis=None):
            ax.axhspan(base["ci_low"].iloc[0], base["ci_high"].iloc[0], color="0.5", alpha=0.15, lw=0)
    lambdas = sorted(summary["lambda"].unique())
    if any(v > 0 for v in lambdas):
        ax.set_xscale("symlog", linthresh=min(v for v in lambdas if v > 0), linscale=0.5)
    ax.set_xticks(lambdas, [f"{v:g}" for v in lambdas], fontsize=8)
    return _save_axes(fig, ax, path, xlabel="lambda (symlog)", ylabel=ylabel, title=title)


def plot_pareto(front: pd.DataFrame, path: str | os.PathLike, xlabel: str = "x", ylabel: str = "y") -> Path:
    """Scatter of the settings (one colour per design, lambda written next to each point) with the Pareto front.

    Args:
        front: :func:`~monai_explain.apps.study.compare.pareto` rows: ``design, lambda, x, y, on_front``.
        path: the PNG file. xlabel, ylabel: axis labels.

    Raises:
        ValueError: no rows. KeyError: a missing column.
    """
    _check(front, ("design", "lambda", "x", "y", "on_front"), "plot_pareto")
    fig, ax = _pyplot().subplots(figsize=(5.5, 4.5))
    for design, g in front.groupby("design"):
        ax.scatter(g["x"], g["y"], s=30, label=design, zorder=3)
    for _, r in front.dropna(subset=["x", "y"]).iterrows():
        ax.annotate(f"{r['lambda']:g}", (r["x"], r["y"]), textcoords="offset points", xytext=(4, 3), fontsize=7)
    on = front[front["on_front"]].sort_values("x")
    if len(on):
        ax.plot(on["x"], on["y"], "k-", lw=1.0, alpha=0.6, zorder=2)
        ax.scatter(on["x"], on["y"], s=110, facecolors="none", edgecolors="k", lw=1.0, label="Pareto front", zorder=4)
    return _save_axes(fig, ax, path, xlabel=xlabel, ylabel=ylabel)


def plot_paired_differences(stats: pd.DataFrame, path: str | os.PathLike, alpha: float = 0.05) -> Path:
    """Forest plot of paired per-image differences vs lambda = 0: one panel per metric, one line per setting.

    Filled markers: Holm-adjusted p < ``alpha``; open markers: not.

    Args:
        stats: Wilcoxon rows of :func:`~monai_explain.apps.study.compare.compare_per_image` (``setting, metric,
            mean_diff, ci_low, ci_high, p_holm``; other tests are left out).
        path: the PNG file. alpha: significance level of the filled markers.

    Raises:
        ValueError: no Wilcoxon rows. KeyError: a missing column.
    """
    if "test" in stats.columns:
        stats = stats[stats["test"] == "wilcoxon"]
    _check(stats, ("setting", "metric", "mean_diff", "ci_low", "ci_high", "p_holm"), "plot_paired_differences")
    metrics, settings = list(dict.fromkeys(stats["metric"])), list(dict.fromkeys(stats["setting"]))
    ncols = min(3, len(metrics))
    nrows = -(-len(metrics) // ncols)
    size = (3.2 * ncols + 1.5, nrows * (0.35 * len(settings) + 1.4))
    fig, axes = _pyplot().subplots(nrows, ncols, figsize=size, squeeze=False, sharey=True)
    for ax in axes.reshape(-1)[len(metrics) :]:
        ax.axis("off")
    for ax, m in zip(axes.reshape(-1), metrics):
        for _, r in stats[stats["metric"] == m].iterrows():
            y = settings.index(r["setting"])
            ax.plot([r["ci_low"], r["ci_high"]], [y, y], color="C0", lw=1.5)
            filled = bool(r["p_holm"] < alpha)
            ax.plot([r["mean_diff"]], [y], "o", color="C0", mfc="C0" if filled else "white", ms=5)
        ax.axvline(0.0, color="0.3", lw=0.8, ls="--")
        ax.set_title(m, fontsize=9)
        ax.set_xlabel("difference vs lambda=0", fontsize=8)
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_yticks(range(len(settings)), settings, fontsize=7)
    axes[0][0].invert_yaxis()
    fig.tight_layout()
    return _save(fig, path)


def stack_figures(figures: Mapping[str, str | os.PathLike], path: str | os.PathLike, width: float = 10.0) -> Path:
    """PNG figures one above the other in one figure, each under its label (e.g. the saliency overlays that the
    evaluations of several runs wrote for the same images).

    Args:
        figures: label -> PNG file, in the order wanted.
        path: the PNG file written. width: figure width in inches.

    Raises:
        ValueError: no figures. FileNotFoundError: a missing file (named).
    """
    if not figures:
        raise ValueError("stack_figures needs at least one figure.")
    plt = _pyplot()
    images = []
    for label, f in figures.items():
        if not Path(f).is_file():
            raise FileNotFoundError(f"figure {f} of {label!r} does not exist.")
        images.append((label, plt.imread(str(f))))
    heights = [width * img.shape[0] / img.shape[1] for _, img in images]
    fig, axes = plt.subplots(len(images), 1, figsize=(width, sum(heights) + 0.4 * len(images)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})  # fmt: skip
    for ax, (label, img) in zip(axes[:, 0], images):
        ax.imshow(img)
        ax.set_title(label, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)
