"""PNG figures of a study (matplotlib, Agg backend): trade-off curves, accuracy-vs-alignment scatter with the Pareto
front, forest plot of paired differences, saliency gallery of several settings on the same images."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .compare import dominance_counts

__all__ = ["plot_paired_differences", "plot_pareto", "plot_saliency_gallery", "plot_tradeoff"]

logger = logging.getLogger(__name__)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike, dpi: int = 100) -> Path:
    plt = _pyplot()
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    except OSError as e:
        raise OSError(f"could not write the figure {path}: {e}") from e
    finally:
        plt.close(fig)
    return path


def _num(v: Any) -> float:
    return float("nan") if v is None or v == "" else float(v)


def _check_keys(rows: Sequence[Mapping[str, Any]], keys: Sequence[str], what: str) -> None:
    if len(rows) == 0:
        raise ValueError(f"{what}: no rows to plot.")
    for i, r in enumerate(rows):
        missing = [k for k in keys if k not in r]
        if missing:
            raise KeyError(f"{what}: row #{i} ({r.get('setting', '?')}) lacks {missing}.")


def plot_tradeoff(
    summary: Sequence[Mapping[str, Any]],
    metric: str,
    path: str | os.PathLike,
    ylabel: str | None = None,
    title: str | None = None,
) -> Path:
    """Metric vs λ, one line per design, error bars = the CI over seeds, the λ = 0 baseline as a dashed line.

    The x axis is symmetric-log (linear below the smallest positive λ), so λ = 0 is shown next to λ values
    spanning decades. The baseline line is the mean of the λ = 0 rows' means, with its CI band when there is a
    single λ = 0 row; a design with its own λ = 0 row also has that point on its line.

    Args:
        summary: per-setting rows with ``design``, ``lambda``, ``<metric>_mean`` and optional
            ``<metric>_ci_low`` / ``<metric>_ci_high`` (:func:`~monai_explain.apps.study.comparisons.summarize_runs`).
        metric: the metric to plot.
        path: the PNG file.
        ylabel: y label (default the metric name).
        title: figure title.

    Returns:
        The path written.

    Raises:
        ValueError: no rows. KeyError: a row without ``design``, ``lambda`` or ``<metric>_mean``.
    """
    _check_keys(summary, ("design", "lambda", f"{metric}_mean"), "plot_tradeoff")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    lambdas = sorted({_num(r["lambda"]) for r in summary})
    positive = [v for v in lambdas if v > 0]
    base_rows = [r for r in summary if _num(r["lambda"]) == 0]
    designs = sorted({str(r["design"]) for r in summary if _num(r["lambda"]) > 0})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, design in enumerate(designs):
        rows = sorted((r for r in summary if str(r["design"]) == design), key=lambda r: _num(r["lambda"]))
        x = np.array([_num(r["lambda"]) for r in rows])
        y = np.array([_num(r[f"{metric}_mean"]) for r in rows])
        lo = np.array([_num(r.get(f"{metric}_ci_low")) for r in rows])
        hi = np.array([_num(r.get(f"{metric}_ci_high")) for r in rows])
        yerr = np.nan_to_num(np.vstack([y - lo, hi - y]), nan=0.0)
        ax.errorbar(x, y, yerr=yerr, marker="o", ms=4, capsize=3, color=colors[i % len(colors)], label=design)
    base_means = [_num(r[f"{metric}_mean"]) for r in base_rows if np.isfinite(_num(r[f"{metric}_mean"]))]
    if base_means:
        b = float(np.mean(base_means))
        ax.axhline(b, color="0.3", ls="--", lw=1.0, label="lambda=0 baseline")
        if len(base_rows) == 1:
            lo, hi = _num(base_rows[0].get(f"{metric}_ci_low")), _num(base_rows[0].get(f"{metric}_ci_high"))
            if np.isfinite(lo) and np.isfinite(hi):
                ax.axhspan(lo, hi, color="0.5", alpha=0.15, lw=0)
    if positive:
        ax.set_xscale("symlog", linthresh=min(positive), linscale=0.5)
    ax.set_xticks(lambdas)
    ax.set_xticklabels([f"{v:g}" for v in lambdas], fontsize=8)
    ax.set_xlabel("lambda (symlog)")
    ax.set_ylabel(ylabel or metric)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_pareto(
    rows: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    x_key: str = "accuracy_mean",
    y_key: str = "precision_mean",
    maximize: tuple[bool, bool] = (True, True),
    xlabel: str | None = None,
    ylabel: str | None = None,
) -> Path:
    """Scatter of the settings (one colour per design, λ written next to each point) with the Pareto front.

    Args:
        rows: per-setting rows with ``design``, ``lambda``, ``x_key`` and ``y_key``.
        path: the PNG file.
        x_key: first objective (x axis).
        y_key: second objective (y axis).
        maximize: per objective, True to maximise.
        xlabel: x label (default ``x_key``).
        ylabel: y label (default ``y_key``).

    Returns:
        The path written.

    Raises:
        ValueError: no rows. KeyError: a row without a needed key.
    """
    _check_keys(rows, ("design", "lambda", x_key, y_key), "plot_pareto")
    plt = _pyplot()
    x = np.array([_num(r[x_key]) for r in rows])
    y = np.array([_num(r[y_key]) for r in rows])
    on_front = dominance_counts(x if maximize[0] else -x, y if maximize[1] else -y) == 0
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, design in enumerate(sorted({str(r["design"]) for r in rows})):
        sel = np.array([str(r["design"]) == design for r in rows])
        ax.scatter(x[sel], y[sel], s=30, color=colors[i % len(colors)], label=design, zorder=3)
    for r, xi, yi in zip(rows, x, y):
        if np.isfinite(xi) and np.isfinite(yi):
            ax.annotate(f"{_num(r['lambda']):g}", (xi, yi), textcoords="offset points", xytext=(4, 3), fontsize=7)
    if on_front.any():
        order = np.argsort(x[on_front] if maximize[0] else -x[on_front], kind="stable")
        fx, fy = x[on_front][order], y[on_front][order]
        ax.plot(fx, fy, "k-", lw=1.0, alpha=0.6, zorder=2)
        ax.scatter(fx, fy, s=110, facecolors="none", edgecolors="k", lw=1.0, label="Pareto front", zorder=4)
    ax.set_xlabel(xlabel or x_key)
    ax.set_ylabel(ylabel or y_key)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_paired_differences(
    rows: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    metrics: Sequence[str] | None = None,
    alpha: float = 0.05,
) -> Path:
    """Forest plot of paired per-image differences vs λ = 0: one panel per metric, one line per setting.

    Filled markers: Holm-adjusted p < ``alpha``; open markers: not.

    Args:
        rows: paired-comparison rows (``to_rows`` of :class:`~monai_explain.apps.study.stats.PairedComparison`);
            only ``test == "wilcoxon"`` rows are drawn.
        path: the PNG file.
        metrics: metrics to draw (default all in ``rows``).
        alpha: significance level for the filled markers.

    Returns:
        The path written.

    Raises:
        ValueError: no Wilcoxon rows (for the requested metrics).
    """
    rows = [r for r in rows if r.get("test") == "wilcoxon" and (metrics is None or r.get("metric") in metrics)]
    if not rows:
        raise ValueError("plot_paired_differences: no Wilcoxon rows to plot.")
    _check_keys(rows, ("metric", "setting", "mean_diff", "ci_low", "ci_high", "p_holm"), "plot_paired_differences")
    metric_list = list(dict.fromkeys(r["metric"] for r in rows))
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    plt = _pyplot()
    ncols = min(3, len(metric_list))
    nrows = -(-len(metric_list) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.2 * ncols + 1.5, nrows * (0.35 * len(settings) + 1.4)), squeeze=False, sharey=True
    )
    flat = axes.reshape(-1)
    for ax in flat[len(metric_list) :]:
        ax.axis("off")
    for ax, m in zip(flat, metric_list):
        for r in (r for r in rows if r["metric"] == m):
            yi = settings.index(r["setting"])
            d, lo, hi, p = _num(r["mean_diff"]), _num(r["ci_low"]), _num(r["ci_high"]), _num(r["p_holm"])
            if np.isfinite(lo) and np.isfinite(hi):
                ax.plot([lo, hi], [yi, yi], color="C0", lw=1.5)
            filled = np.isfinite(p) and p < alpha
            ax.plot([d], [yi], "o", color="C0", mfc="C0" if filled else "white", ms=5)
        ax.axvline(0.0, color="0.3", lw=0.8, ls="--")
        ax.set_title(m, fontsize=9)
        ax.set_xlabel("difference vs lambda=0", fontsize=8)
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_yticks(range(len(settings)))
        row[0].set_yticklabels(settings, fontsize=7)
    axes[0][0].invert_yaxis()
    fig.tight_layout()
    return _save(fig, path)


def _view2d(x: np.ndarray) -> np.ndarray:
    """A displayable 2D view of one ``(C, *spatial)`` item: channel 0, middle slice of the last axis for 3D,
    transposed because MONAI puts the image column on the first spatial axis."""
    x = x[0]
    while x.ndim > 2:
        x = x[..., x.shape[-1] // 2]
    return x.T


def plot_saliency_gallery(
    images: Any,
    saliency: Mapping[str, Any],
    path: str | os.PathLike,
    masks: Any = None,
    image_titles: Sequence[str] | None = None,
    alpha: float = 0.45,
    panel_size: float = 2.2,
) -> Path:
    """A grid of saliency overlays: rows = settings, columns = the same test images.

    Each panel shows the image in grey, the setting's saliency map (channel 0, scaled to its own maximum) in
    colour and the annotation contour in green. 3D items are shown at the middle slice of the last axis.

    Args:
        images: ``(N, C, *spatial)`` images (numpy or CPU tensor).
        saliency: setting label -> ``(N, K, *spatial)`` maps on the images' grid, in the row order wanted.
        path: the PNG file.
        masks: ``(N, K, *spatial)`` annotation masks, or None.
        image_titles: one title per column (e.g. image ids).
        alpha: opacity of the saliency layer.
        panel_size: inches per panel.

    Returns:
        The path written.

    Raises:
        ValueError: no settings, images not ``(N, C, H, W[, D])``, a saliency or mask array whose number of items
            or spatial shape differs from the images' (the setting is named), wrong number of titles.
    """
    imgs = np.asarray(images, dtype=float)
    if imgs.ndim not in (4, 5) or imgs.shape[0] == 0:
        raise ValueError(f"images must be (N, C, H, W[, D]) with N >= 1, got shape {imgs.shape}.")
    if len(saliency) == 0:
        raise ValueError("plot_saliency_gallery needs at least one setting.")
    n, spatial = imgs.shape[0], imgs.shape[2:]
    maps = {}
    for name, s in saliency.items():
        a = np.asarray(s, dtype=float)
        if a.ndim != imgs.ndim or a.shape[0] != n or a.shape[2:] != spatial:
            raise ValueError(f"saliency of {name!r} has shape {a.shape}; expected ({n}, K, *{tuple(spatial)}).")
        maps[str(name)] = a
    m = None
    if masks is not None:
        m = np.asarray(masks, dtype=float)
        if m.ndim != imgs.ndim or m.shape[0] != n or m.shape[2:] != spatial:
            raise ValueError(f"masks have shape {m.shape}; expected ({n}, K, *{tuple(spatial)}).")
    if image_titles is not None and len(image_titles) != n:
        raise ValueError(f"{len(image_titles)} image titles for {n} images.")
    plt = _pyplot()
    rows = len(maps)
    fig, axes = plt.subplots(rows, n, figsize=(panel_size * n + 0.8, panel_size * rows), squeeze=False)
    for i, (name, a) in enumerate(maps.items()):
        for j in range(n):
            ax = axes[i][j]
            ax.imshow(_view2d(imgs[j]), cmap="gray")
            sal = _view2d(a[j])
            hi = float(np.nanmax(sal)) if np.isfinite(sal).any() else 0.0
            ax.imshow(sal / hi if hi > 0 else sal, cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0)
            if m is not None:
                mv = _view2d(m[j])
                if mv.max() > 0 and mv.min() < mv.max():
                    ax.contour(mv, levels=[0.5], colors="lime", linewidths=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0 and image_titles is not None:
                ax.set_title(str(image_titles[j]), fontsize=8)
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return _save(fig, path, dpi=80)
