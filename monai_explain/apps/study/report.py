"""The report folder of a lambda x design x seed study: CSV tables, PNG plots and a Markdown summary.

Files written by :func:`write_report` in ``out_dir``:

=========================== ===========================================================================
``runs.csv``                every run (``design, lambda, seed, run_id`` then its metrics)
``summary.csv``             per setting: n runs, seeds, and per metric n, mean, SD, t-based CI over seeds
``stats.csv``               tests vs λ = 0: per-image Wilcoxon (+ bootstrap CI, effect sizes), McNemar per
                            seed, across-seed t-tests; raw and Holm-adjusted p-values
``pareto.csv``              accuracy vs alignment Pareto front of the settings (means over seeds)
``tradeoff_<metric>.png``   metric vs λ per design (one per headline metric present)
``pareto.png``              accuracy vs alignment scatter with the front
``paired_differences.png``  forest plot of the per-image paired differences (when per-image data exist)
``gallery.png``             saliency gallery (when ``gallery`` is given)
``summary.md``              headline table, front, tests, plot list and a reading generated from the numbers
=========================== ===========================================================================
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .comparisons import baseline_runs, compare_per_image, compare_seeds, summarize_runs
from .pareto import pareto_table
from .plots import plot_paired_differences, plot_pareto, plot_saliency_gallery, plot_tradeoff
from .stats import seed_summary, to_rows
from .tables import (
    METRIC_HIGHER_IS_BETTER,
    RUN_KEYS,
    PerImageTable,
    group_runs,
    metric_keys,
    validate_runs,
    write_csv,
)

__all__ = ["HEADLINE_METRICS", "PER_IMAGE_KEY", "write_report"]

logger = logging.getLogger(__name__)

#: per-run metrics of the headline table and the trade-off plots (those present in the runs are used).
HEADLINE_METRICS: tuple[str, ...] = (
    "accuracy",
    "accuracy_shifted",
    "precision",
    "coverage",
    "chance_level",
    "deletion_auc",
)
#: run key holding the per-image CSV path, used when ``write_report(per_image=None)``.
PER_IMAGE_KEY = "per_image_csv"

_STATS_COLUMNS = (
    "setting", "design", "lambda", "baseline", "metric", "test", "seed",
    "n_images", "n_pairs", "n_nan_dropped", "n_unmatched", "n_zero_diff", "n_baseline", "n_setting",
    "baseline_mean", "setting_mean", "mean_diff", "ci_low", "ci_high",
    "rank_biserial", "cohens_dz", "n_baseline_only", "n_setting_only",
    "statistic", "df", "p_value", "p_holm",
)  # fmt: skip


def _f(v: Any, digits: int = 3) -> str:
    if v is None or v == "":
        return "n/a"
    v = float(v)
    return "n/a" if math.isnan(v) else f"{v:.{digits}f}"


def _p(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def _p_text(v: Any) -> str:
    s = _p(v)
    return f"p {s[0]} {s[1:]}" if s.startswith("<") else f"p = {s}"


def _ci(mean: Any, lo: Any, hi: Any) -> str:
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return _f(mean)
    return f"{_f(mean)} [{_f(lo)}, {_f(hi)}]"


def _signed(v: float) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:+.3f}"


def _diff_ci(r: Mapping[str, Any]) -> str:
    lo, hi = r["ci_low"], r["ci_high"]
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return _signed(r["mean_diff"])
    return f"{_signed(r['mean_diff'])} [{_f(lo)}, {_f(hi)}]"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines


def write_report(
    runs: Sequence[Mapping[str, Any]],
    out_dir: str | os.PathLike,
    per_image: Mapping[str, str | os.PathLike | PerImageTable] | None = None,
    *,
    headline_metrics: Sequence[str] = HEADLINE_METRICS,
    per_image_metrics: Sequence[str] | None = None,
    accuracy_metric: str = "accuracy",
    alignment_metric: str = "precision",
    seed_test_metrics: Sequence[str] | None = None,
    seed_test_method: str = "welch",
    confidence: float = 0.95,
    alpha: float = 0.05,
    n_resamples: int = 10000,
    seed: int = 0,
    gallery: Mapping[str, Any] | None = None,
    title: str = "Explanation supervision study",
) -> Path:
    """Write the report folder of a study (files listed in the module docstring).

    Args:
        runs: one dict per run with ``design``, ``lambda``, ``seed``, ``run_id`` and numeric metrics (None =
            missing). Other text keys (paths, notes) are copied into ``runs.csv`` only.
        out_dir: the report folder (created).
        per_image: ``run_id`` -> per-image CSV path or table. None: taken from each run's ``per_image_csv`` key
            when present; without per-image data only the across-seed tests are run.
        headline_metrics: per-run metrics of the headline table and the trade-off plots.
        per_image_metrics: per-image columns to test (default: see
            :func:`~monai_explain.apps.study.comparisons.compare_per_image`).
        accuracy_metric: per-run accuracy key (Pareto x axis).
        alignment_metric: per-run alignment key (Pareto y axis), e.g. ``"precision"`` or ``"coverage"``.
        seed_test_metrics: per-run metrics tested across seeds (default accuracy, shifted accuracy, AUC).
        seed_test_method: ``"welch"`` or ``"paired"`` (by seed).
        confidence: level of every CI.
        alpha: level at which Holm-adjusted p-values are called significant in the text.
        n_resamples: bootstrap resamples.
        seed: bootstrap seed.
        gallery: optional ``{"images", "saliency", "masks", "image_titles"}`` for
            :func:`~monai_explain.apps.study.plots.plot_saliency_gallery` (``masks``/``image_titles`` optional).
        title: the Markdown title.

    Returns:
        The path of ``summary.md``.

    Raises:
        ValueError: an invalid run table or per-image mapping (see
            :func:`~monai_explain.apps.study.tables.validate_runs`).

    Example:
        >>> runs = [{"design": "energy", "lambda": 0.0, "seed": 0, "run_id": "a", "accuracy": 0.8}, ...]  # doctest: +SKIP
        >>> write_report(runs, "report", per_image={"a": "runs/a/per_image.csv"})  # doctest: +SKIP
    """
    runs = validate_runs(runs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = metric_keys(runs)
    if per_image is None:
        per_image = {r["run_id"]: r[PER_IMAGE_KEY] for r in runs if r.get(PER_IMAGE_KEY)}
    files: dict[str, Path] = {}

    extra = [k for k in dict.fromkeys(k for r in runs for k in r) if k not in RUN_KEYS]
    files["runs"] = write_csv(runs, out / "runs.csv", fieldnames=list(RUN_KEYS) + extra)
    summary = summarize_runs(runs, metrics, confidence)
    files["summary"] = write_csv(summary, out / "summary.csv")

    has_base = any(r["lambda"] == 0 for r in runs)
    has_sup = any(r["lambda"] > 0 for r in runs)
    paired = []
    if per_image and has_base and has_sup:
        paired = compare_per_image(runs, per_image, per_image_metrics, "correct", confidence, n_resamples, seed)
    seeded = compare_seeds(runs, seed_test_metrics, seed_test_method, confidence) if has_base and has_sup else []
    if not has_base:
        logger.warning("the sweep has no lambda=0 run: no tests against the baseline.")
    stat_rows = to_rows(paired) + to_rows(seeded)
    files["stats"] = write_csv(stat_rows, out / "stats.csv", fieldnames=list(_STATS_COLUMNS))

    xk, yk = f"{accuracy_metric}_mean", f"{alignment_metric}_mean"
    front: list[dict[str, Any]] = []
    if all(k in summary[0] for k in (xk, yk)):
        front = pareto_table(summary, xk, yk, keep=("design", "lambda", "setting"))
        files["pareto"] = write_csv(front, out / "pareto.csv")
        files["pareto_plot"] = plot_pareto(
            summary, out / "pareto.png", xk, yk, xlabel=accuracy_metric, ylabel=alignment_metric
        )
    else:
        logger.warning(f"no {accuracy_metric!r}/{alignment_metric!r} in the runs: no Pareto front.")

    plots = {}
    for m in (m for m in headline_metrics if m in metrics):
        plots[m] = plot_tradeoff(summary, m, out / f"tradeoff_{m}.png", title=f"{m} vs lambda")
    if any(r["test"] == "wilcoxon" for r in stat_rows):
        files["paired_plot"] = plot_paired_differences(stat_rows, out / "paired_differences.png")
    if gallery is not None:
        files["gallery"] = plot_saliency_gallery(
            gallery["images"],
            gallery["saliency"],
            out / "gallery.png",
            masks=gallery.get("masks"),
            image_titles=gallery.get("image_titles"),
        )

    md = _markdown(
        title,
        runs,
        summary,
        stat_rows,
        front,
        files,
        plots,
        [m for m in headline_metrics if m in metrics],
        accuracy_metric,
        alignment_metric,
        confidence,
        alpha,
        seed_test_method,
        bool(per_image),
    )
    path = out / "summary.md"
    path.write_text("\n".join(md) + "\n")
    logger.info(f"report written to {out}")
    return path


def _markdown(
    title: str,
    runs: list[dict[str, Any]],
    summary: list[dict[str, Any]],
    stat_rows: list[dict[str, Any]],
    front: list[dict[str, Any]],
    files: dict[str, Path],
    plots: dict[str, Path],
    headline: list[str],
    acc: str,
    align: str,
    confidence: float,
    alpha: float,
    seed_method: str,
    has_per_image: bool,
) -> list[str]:
    level = f"{confidence:.0%}"
    designs = sorted({r["design"] for r in runs})
    lambdas = sorted({r["lambda"] for r in runs})
    seeds = sorted({r["seed"] for r in runs})
    md = [f"# {title}", ""]
    md.append(
        f"{len(runs)} runs: {len(designs)} design(s) ({', '.join(designs)}), lambda in "
        f"{{{', '.join(f'{v:g}' for v in lambdas)}}}, seeds {{{', '.join(map(str, seeds))}}}. "
        f"Values are means over seeds with t-based {level} confidence intervals in brackets."
    )
    md += ["", "## Headline", ""]
    header = ["setting", "n runs"] + headline
    body = [
        [s["setting"], s["n_runs"]] + [_ci(s[f"{m}_mean"], s[f"{m}_ci_low"], s[f"{m}_ci_high"]) for m in headline]
        for s in summary
    ]
    md += _md_table(header, body)

    md += ["", f"## Pareto front ({acc} vs {align}, both maximised)", ""]
    if front:
        md += _md_table(
            ["setting", acc, align, "on front", "dominated by"],
            [
                [
                    r["setting"],
                    _f(r[f"{acc}_mean"]),
                    _f(r[f"{align}_mean"]),
                    "yes" if r["on_front"] else "no",
                    "n/a" if r["n_dominating"] is None else r["n_dominating"],
                ]
                for r in front
            ],
        )
    else:
        md.append(f"Not computed: the runs lack {acc!r} or {align!r}.")

    wil = [r for r in stat_rows if r["test"] == "wilcoxon"]
    mcn = [r for r in stat_rows if r["test"] == "mcnemar_exact"]
    seeded = [r for r in stat_rows if r["test"] in ("welch_t", "paired_t")]
    md += ["", "## Paired per-image tests vs lambda = 0", ""]
    if wil:
        md.append(
            "Per image, values are averaged over the seeds of a setting and paired with the baseline on the same "
            f"images. Difference = setting - baseline; {level} percentile bootstrap CI over images; "
            "r = matched-pairs rank-biserial correlation; d_z = mean / SD of the differences; Wilcoxon signed-rank "
            "p-values, Holm-adjusted across settings for each metric."
        )
        md.append("")
        md += _md_table(
            [
                "setting",
                "metric",
                "pairs (NaN dropped)",
                "baseline",
                "setting",
                "difference [CI]",
                "r",
                "d_z",
                "p",
                "p Holm",
            ],
            [
                [
                    r["setting"],
                    r["metric"],
                    f"{r['n_pairs']} ({r['n_nan_dropped']})",
                    _f(r["baseline_mean"]),
                    _f(r["setting_mean"]),
                    _diff_ci(r),
                    _f(r["rank_biserial"], 2),
                    _f(r["cohens_dz"], 2),
                    _p(r["p_value"]),
                    _p(r["p_holm"]),
                ]
                for r in wil
            ],
        )
    else:
        md.append("No per-image data were given." if not has_per_image else "No paired test could be run.")
    if mcn:
        md += [
            "",
            (
                "McNemar exact test on per-image correctness, per seed (discordant pairs: only the baseline correct "
                "/ only the setting correct), Holm-adjusted across settings and seeds:"
            ),
            "",
        ]
        md += _md_table(
            ["setting", "seed", "pairs", "baseline only", "setting only", "p", "p Holm"],
            [
                [
                    r["setting"],
                    r["seed"],
                    r["n_pairs"],
                    r["n_baseline_only"],
                    r["n_setting_only"],
                    _p(r["p_value"]),
                    _p(r["p_holm"]),
                ]
                for r in mcn
            ],
        )
    md += ["", "## Across-seed tests vs lambda = 0", ""]
    if seeded:
        how = "Welch's t-test (runs as independent samples)" if seed_method == "welch" else "paired t-test by seed"
        md += [f"{how}; {level} CI of the difference; Holm-adjusted across settings for each metric.", ""]
        md += _md_table(
            ["setting", "metric", "n (baseline, setting)", "difference [CI]", "p", "p Holm"],
            [
                [
                    r["setting"],
                    r["metric"],
                    f"{r['n_baseline']}, {r['n_setting']}",
                    _diff_ci(r),
                    _p(r["p_value"]),
                    _p(r["p_holm"]),
                ]
                for r in seeded
            ],
        )
    else:
        md.append("Not run (no lambda = 0 runs, no supervised runs, or none of the tested metrics).")

    md += ["", "## Files", ""]
    for p in list(files.values()) + list(plots.values()):
        md.append(f"- `{p.name}`")

    md += ["", "## Reading", ""]
    md += _reading(runs, summary, stat_rows, front, acc, align, confidence, alpha)
    return md


def _reading(
    runs: list[dict[str, Any]],
    summary: list[dict[str, Any]],
    stat_rows: list[dict[str, Any]],
    front: list[dict[str, Any]],
    acc: str,
    align: str,
    confidence: float,
    alpha: float,
) -> list[str]:
    """Sentences generated from the numbers: what they show, and what they do not."""
    out: list[str] = []
    groups = group_runs(runs)
    sup = [s for s in summary if s["lambda"] > 0]
    align_up = METRIC_HIGHER_IS_BETTER.get(align, True)
    n_seeds = [s["n_runs"] for s in summary]

    def base_stats(design: str, metric: str):
        return seed_summary([r.get(metric) for r in baseline_runs(groups, design)], confidence)

    key = f"{align}_mean"
    cands = [s for s in sup if key in s and np.isfinite(s[key])]
    if not any(r["lambda"] == 0 for r in runs):
        out.append("- The sweep has no lambda = 0 run, so no statement relative to the unsupervised baseline is made.")
    elif cands:
        best = (max if align_up else min)(cands, key=lambda s: s[key])
        b = base_stats(best["design"], align)
        out.append(
            f"- The best mean {align} among supervised settings is {best['setting']}: "
            f"{_ci(best[key], best[f'{align}_ci_low'], best[f'{align}_ci_high'])} vs "
            f"{_ci(b.mean, b.ci_low, b.ci_high)} at lambda = 0 (difference {_signed(best[key] - b.mean)})."
        )
        pr = next(
            (
                r
                for r in stat_rows
                if r["test"] == "wilcoxon" and r["metric"] == align and r["setting"] == best["setting"]
            ),
            None,
        )
        if pr is not None:
            excl = np.isfinite(pr["ci_low"]) and (pr["ci_low"] > 0 or pr["ci_high"] < 0)
            out.append(
                f"  Paired over {pr['n_pairs']} images: {_signed(pr['mean_diff'])} "
                f"[{_f(pr['ci_low'])}, {_f(pr['ci_high'])}], Holm-adjusted Wilcoxon {_p_text(pr['p_holm'])}; the bootstrap CI "
                f"{'excludes' if excl else 'includes'} 0."
            )
        if f"{acc}_mean" in best:
            a = base_stats(best["design"], acc)
            sr = next(
                (
                    r
                    for r in stat_rows
                    if r["test"] in ("welch_t", "paired_t") and r["metric"] == acc and r["setting"] == best["setting"]
                ),
                None,
            )
            line = (
                f"- At that setting {acc} is {_ci(best[f'{acc}_mean'], best[f'{acc}_ci_low'], best[f'{acc}_ci_high'])}"
                f" vs {_ci(a.mean, a.ci_low, a.ci_high)} at lambda = 0 (difference {_signed(best[f'{acc}_mean'] - a.mean)})."
            )
            if sr is not None and np.isfinite(sr["ci_low"]):
                if sr["ci_low"] <= 0 <= sr["ci_high"]:
                    line += (
                        f" The across-seed CI of the difference [{_f(sr['ci_low'])}, {_f(sr['ci_high'])}] "
                        "includes 0: no accuracy change is shown, which is not the same as showing equal "
                        "accuracy."
                    )
                else:
                    line += (
                        f" The across-seed CI of the difference [{_f(sr['ci_low'])}, {_f(sr['ci_high'])}] excludes 0."
                    )
            elif sr is not None:
                line += " Too few seeds for an across-seed CI of the difference."
            out.append(line)
        shifted = f"{acc}_shifted"
        if f"{shifted}_mean" in best and f"{acc}_mean" in best:
            a, s_ = base_stats(best["design"], acc), base_stats(best["design"], shifted)
            gap_b = s_.mean - a.mean
            gap_s = best[f"{shifted}_mean"] - best[f"{acc}_mean"]
            out.append(
                f"- Shifted minus in-distribution {acc}: {_signed(gap_b)} at lambda = 0, {_signed(gap_s)} at "
                f"{best['setting']}."
            )
        if "chance_level_mean" in best and align == "precision":
            c = best["chance_level_mean"]
            bp = base_stats(best["design"], "precision")
            out.append(
                f"- Chance level (the precision of a uniform map, i.e. the annotated share of the image) is "
                f"{_f(c)}; mean precision is {_f(bp.mean)} at lambda = 0 and {_f(best[key])} at {best['setting']}."
            )
    wil = [r for r in stat_rows if r["test"] == "wilcoxon"]
    if wil:
        sig = [r for r in wil if np.isfinite(r["p_holm"]) and r["p_holm"] < alpha]
        text = f"- {len(sig)} of {len(wil)} paired per-image Wilcoxon tests have Holm-adjusted p < {alpha:g}"
        if sig:
            parts = []
            for r in sig:
                up = METRIC_HIGHER_IS_BETTER.get(r["metric"])
                word = "higher" if r["mean_diff"] > 0 else "lower"
                better = "" if up is None else (" (better)" if (r["mean_diff"] > 0) == up else " (worse)")
                parts.append(f"{r['setting']} {r['metric']} {word}{better}")
            text += ": " + "; ".join(parts)
        out.append(text + ".")
        dropped = sum(int(r["n_nan_dropped"]) for r in wil)
        if dropped:
            out.append(
                f"- {dropped} image pairs (summed over tests) were dropped for a NaN value, e.g. images without an "
                "annotation have no alignment value; those tests speak for the annotated images only."
            )
    if front:
        on = [r["setting"] for r in front if r["on_front"]]
        out.append(f"- Pareto front ({acc} vs {align}): {', '.join(on)}.")
    if min(n_seeds) < 3:
        out.append(
            f"- Some settings have only {min(n_seeds)} seed(s): across-seed CIs are wide (undefined with one seed) "
            "and the across-seed tests have little power."
        )
    out.append(
        "- Not shown by these numbers: alignment with the annotations measures agreement with (often coarse) "
        "boxes, not that the model relies on the lesion; deletion/insertion AUC measure how faithful the map is to "
        "the model, not whether the model is right; the results hold for this data set, network and saliency "
        "method."
    )
    return out
