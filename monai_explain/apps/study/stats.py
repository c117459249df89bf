"""Statistics of a study (scipy.stats): paired per-image tests (:func:`paired_test`), tests over seeds
(:func:`seed_test`), t-based CIs over seeds (:func:`t_interval`) and Holm's step-down adjusted p-values
(:func:`holm`; scipy has only Benjamini-Hochberg). Differences are always ``setting - baseline``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from monai_explain.utils.extras import optional_import_extra

sps, _ = optional_import_extra("scipy.stats", "study")

__all__ = ["cohens_dz", "holm", "paired_test", "rank_biserial", "seed_test", "t_interval"]


def holm(p_values: Any) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in the input order; NaN stays NaN and is not counted.

    Example:
        >>> holm([0.01, 0.04, 0.03, 0.005]).round(3).tolist()
        [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(p_values, dtype=float).reshape(-1)
    ok = np.flatnonzero(~np.isnan(p))
    if ((p[ok] < 0) | (p[ok] > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p[ok].tolist()}.")
    out = np.full_like(p, np.nan)
    order = ok[np.argsort(p[ok], kind="stable")]
    out[order] = np.maximum.accumulate(np.minimum(1.0, (ok.size - np.arange(ok.size)) * p[order]))
    return out


def rank_biserial(d: Any) -> float:
    """Matched-pairs rank-biserial correlation ``(R+ - R-) / (R+ + R-)`` of differences (zeros and NaN dropped).

    Example:
        >>> round(rank_biserial([1.0, -2.0, 3.0, 0.0]), 6)  # ranks 1, 2, 3: (4 - 2) / 6
        0.333333
    """
    d = np.asarray(d, dtype=float)
    d = d[~np.isnan(d) & (d != 0)]
    if d.size == 0:
        return np.nan
    r = sps.rankdata(np.abs(d))
    return float((r[d > 0].sum() - r[d < 0].sum()) / r.sum())


def cohens_dz(d: Any) -> float:
    """Cohen's d_z = mean / SD (ddof 1) of the differences; NaN with fewer than 2 values or no variation."""
    d = np.asarray(d, dtype=float)
    d = d[~np.isnan(d)]
    sd = float(np.std(d, ddof=1)) if d.size > 1 else 0.0
    return float(np.mean(d)) / sd if sd > 0 else np.nan


def paired_test(
    baseline: Any,
    setting: Any,
    test: str = "wilcoxon",
    confidence: float = 0.95,
    n_resamples: int = 10000,
    seed: int = 0,
) -> dict[str, Any]:
    """Test of paired per-image values (Wilcoxon signed-rank, p = 1 when every difference is zero; or exact McNemar for
    0/1 values, a two-sided binomial test of the discordant pairs), seeded percentile bootstrap CI of the mean
    difference, :func:`rank_biserial` and :func:`cohens_dz`. Pairs with NaN on either side are dropped and counted.

    Args:
        baseline: per-image values of the baseline (NaN = missing).
        setting: per-image values of the setting, same images in the same order.
        test: ``"wilcoxon"`` or ``"mcnemar_exact"`` (0/1 values).
        confidence: bootstrap CI level. n_resamples: bootstrap resamples. seed: bootstrap seed.

    Returns:
        ``n_pairs, n_nan_dropped, n_zero_diff, baseline_mean, setting_mean, mean_diff, ci_low, ci_high,
        rank_biserial, cohens_dz, statistic, p_value`` and, for McNemar, ``n_baseline_only, n_setting_only``.

    Raises:
        ValueError: unknown test, arrays of different lengths, infinite values, non-0/1 values for McNemar.
    """
    if test not in ("wilcoxon", "mcnemar_exact"):
        raise ValueError(f"test must be 'wilcoxon' or 'mcnemar_exact', got {test!r}.")
    x, y = np.asarray(baseline, dtype=float), np.asarray(setting, dtype=float)
    if x.shape != y.shape or np.isinf(x).any() or np.isinf(y).any():
        raise ValueError(f"paired values must be finite and of one length, got {x.shape} and {y.shape}.")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    d = y - x
    out: dict[str, Any] = {
        "n_pairs": int(d.size), "n_nan_dropped": int((~keep).sum()), "n_zero_diff": int((d == 0).sum()),
        "baseline_mean": x.mean() if d.size else np.nan, "setting_mean": y.mean() if d.size else np.nan,
        "mean_diff": d.mean() if d.size else np.nan, "ci_low": np.nan, "ci_high": np.nan,
        "rank_biserial": rank_biserial(d), "cohens_dz": cohens_dz(d), "statistic": np.nan, "p_value": np.nan,
    }  # fmt: skip
    if d.size >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant differences: a degenerate (zero-width) interval, on purpose
            ci = sps.bootstrap((d,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                               method="percentile", random_state=seed).confidence_interval  # fmt: skip
        out["ci_low"], out["ci_high"] = (float(ci.low), float(ci.high)) if np.isfinite(ci.low) else (d[0], d[0])
    if test == "mcnemar_exact":
        if not (np.isin(x, (0, 1)).all() and np.isin(y, (0, 1)).all()):
            raise ValueError("mcnemar_exact needs 0/1 values.")
        b, c = int(((x == 1) & (y == 0)).sum()), int(((x == 0) & (y == 1)).sum())
        p = np.nan if d.size == 0 else 1.0 if b + c == 0 else sps.binomtest(c, b + c, 0.5).pvalue
        out.update(statistic=float(c), p_value=float(p), n_baseline_only=b, n_setting_only=c)
    elif d.size and (d == 0).all():
        out.update(statistic=0.0, p_value=1.0)
    elif d.size:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # tiny samples: scipy warns and still answers
            res = sps.wilcoxon(d, zero_method="wilcox")
        out.update(statistic=float(res.statistic), p_value=float(res.pvalue))
    return out


def t_interval(values: Any, confidence: float = 0.95) -> dict[str, float]:
    """``n`` (finite values), ``mean``, ``std`` (ddof 1) and the t-based CI ``mean +- t sd / sqrt(n)``.

    Example:
        >>> {k: round(v, 6) for k, v in t_interval([0.8, 0.9, 1.0]).items() if k in ("mean", "std")}
        {'mean': 0.9, 'std': 0.1}
    """
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    n = int(v.size)
    mean = float(v.mean()) if n else np.nan
    if n < 2:
        return {"n": n, "mean": mean, "std": np.nan, "ci_low": np.nan, "ci_high": np.nan}
    sd = float(v.std(ddof=1))
    half = float(sps.t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "std": sd, "ci_low": mean - half, "ci_high": mean + half}


def seed_test(
    baseline: Any,
    setting: Any,
    method: str = "welch",
    baseline_seeds: Sequence[int] | None = None,
    setting_seeds: Sequence[int] | None = None,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Compare one per-run metric of a setting with the baseline over seeds, with the CI of the difference.

    ``"welch"``: Welch's t-test, the runs as two independent samples. ``"paired"``: a paired t-test of the runs
    matched by seed (only seeds on both sides count; the others are counted in ``n_unmatched``). NaN values are left
    out.

    Returns:
        ``test, n_baseline, n_setting, n_unmatched, baseline_mean, setting_mean, mean_diff, ci_low, ci_high,
        statistic, df, p_value`` (NaN where a side has fewer than 2 values or nothing varies).

    Raises:
        ValueError: an unknown method; ``"paired"`` without the seeds or with a seed twice on one side.
    """
    if method not in ("welch", "paired"):
        raise ValueError(f"method must be 'welch' or 'paired', got {method!r}.")
    x, y = np.asarray(baseline, dtype=float), np.asarray(setting, dtype=float)
    n_unmatched = 0
    if method == "paired":
        if baseline_seeds is None or setting_seeds is None:
            raise ValueError("method='paired' needs baseline_seeds and setting_seeds.")
        for side, seeds in (("baseline", baseline_seeds), ("setting", setting_seeds)):
            if len(set(map(int, seeds))) != len(seeds):
                raise ValueError(f"method='paired': the {side} has a seed more than once ({list(seeds)}).")
        bx = {int(s): v for s, v in zip(baseline_seeds, x) if not np.isnan(v)}
        sy = {int(s): v for s, v in zip(setting_seeds, y) if not np.isnan(v)}
        common = sorted(set(bx) & set(sy))
        n_unmatched = len(set(bx) ^ set(sy))
        x, y = np.array([bx[s] for s in common]), np.array([sy[s] for s in common])
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    out = {
        "test": f"{method}_t" if method == "welch" else "paired_t", "n_baseline": int(x.size),
        "n_setting": int(y.size), "n_unmatched": n_unmatched, "baseline_mean": x.mean() if x.size else np.nan,
        "setting_mean": y.mean() if y.size else np.nan, "ci_low": np.nan, "ci_high": np.nan, "statistic": np.nan,
        "df": np.nan, "p_value": np.nan,
    }  # fmt: skip
    out["mean_diff"] = out["setting_mean"] - out["baseline_mean"]
    if x.size >= 2 and y.size >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # zero variance: scipy answers NaN
            res = sps.ttest_ind(y, x, equal_var=False) if method == "welch" else sps.ttest_rel(y, x)
            ci = res.confidence_interval(confidence)
        out.update(statistic=float(res.statistic), df=float(res.df), p_value=float(res.pvalue))
        if not math.isnan(out["statistic"]):
            out.update(ci_low=float(ci.low), ci_high=float(ci.high))
    return out
