"""Statistics for comparing study settings: paired per-image tests, bootstrap CIs, effect sizes, Holm, seed CIs.

Every function takes plain arrays and returns a plain dataclass; :func:`to_rows` turns results into table rows.
Differences are always ``setting - baseline`` (positive: the setting has the larger value).

Paired per-image tests (the same test images scored by two settings):

- :func:`wilcoxon_signed_rank` wraps :func:`scipy.stats.wilcoxon`; pairs with NaN on either side are dropped and
  counted (``n_nan_dropped``); when every remaining difference is zero the p-value is 1 (no evidence of a
  difference) without calling scipy.
- :func:`mcnemar_exact`: exact McNemar test for paired binary outcomes (correct / wrong) = two-sided binomial test
  of the discordant pairs (:func:`scipy.stats.binomtest`).
- :func:`bootstrap_mean_difference_ci`: percentile bootstrap of the mean difference, resampling *pairs* (images),
  vectorised and seeded.
- effect sizes: mean difference, :func:`rank_biserial` (matched-pairs rank-biserial correlation, Kerby's simple
  difference form ``(R+ - R-) / (R+ + R-)``) and :func:`cohens_dz` (mean difference / SD of the differences).
- :func:`paired_comparison` does all of the above for one pair of arrays.

Across seeds (one value per training run): :func:`seed_summary` (mean, SD, t-based CI) and
:func:`seed_comparison` (Welch's t-test, or a paired t-test matching runs by seed).

Multiplicity: :func:`holm_bonferroni` (Holm's step-down adjustment; scipy's ``false_discovery_control`` is
Benjamini-Hochberg, which controls a different error rate).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

__all__ = [
    "McNemarResult",
    "PairedComparison",
    "SeedComparison",
    "SeedSummary",
    "WilcoxonResult",
    "bootstrap_mean_difference_ci",
    "cohens_dz",
    "drop_nan_pairs",
    "holm_bonferroni",
    "mcnemar_exact",
    "paired_comparison",
    "rank_biserial",
    "seed_comparison",
    "seed_summary",
    "to_rows",
    "wilcoxon_signed_rank",
]

logger = logging.getLogger(__name__)

_NAN = float("nan")
_ZERO_METHODS = ("wilcox", "pratt", "zsplit")


def holm_bonferroni(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values (family-wise error rate control).

    With the ``m`` finite p-values sorted ascending ``p(1) <= ... <= p(m)``, the adjusted value of ``p(i)`` is
    ``max_{j <= i} min(1, (m - j + 1) p(j))``; rejecting where the adjusted value is ``<= alpha`` is Holm's
    procedure. NaN p-values (tests that could not be run) stay NaN and are not counted in ``m``.

    Args:
        p_values: the family's p-values, in any order.

    Returns:
        The adjusted p-values, in the input order.

    Raises:
        ValueError: a p-value outside [0, 1].

    Example:
        >>> holm_bonferroni([0.01, 0.04, 0.03, 0.005]).round(3).tolist()
        [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(p_values, dtype=float).reshape(-1)
    ok = ~np.isnan(p)
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {p[ok][(p[ok] < 0) | (p[ok] > 1)].tolist()}.")
    out = np.full_like(p, np.nan)
    idx = np.flatnonzero(ok)
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def drop_nan_pairs(baseline: Any, setting: Any, name: str = "values") -> tuple[np.ndarray, np.ndarray, int]:
    """Keep the pairs where both values are finite numbers.

    Args:
        baseline: 1D values of the baseline.
        setting: 1D values of the setting, same length.
        name: what the values are (for messages).

    Returns:
        ``(baseline_kept, setting_kept, n_dropped)``.

    Raises:
        ValueError: different lengths, or infinite values.
    """
    x = np.asarray(baseline, dtype=float).reshape(-1)
    y = np.asarray(setting, dtype=float).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"{name}: paired arrays differ in length ({x.size} baseline vs {y.size} setting).")
    if np.isinf(x).any() or np.isinf(y).any():
        raise ValueError(f"{name}: infinite values in a paired comparison.")
    keep = ~(np.isnan(x) | np.isnan(y))
    n_dropped = int((~keep).sum())
    if n_dropped:
        logger.info(f"{name}: {n_dropped} of {x.size} pairs have NaN on at least one side and are dropped.")
    return x[keep], y[keep], n_dropped


@dataclass
class WilcoxonResult:
    """Wilcoxon signed-rank test on paired values.

    Attributes:
        n_total: pairs given. n_pairs: pairs used (both values present). n_nan_dropped: pairs dropped for NaN.
        n_zero_diff: used pairs whose difference is exactly zero. statistic: scipy's statistic (for two-sided
        tests, the smaller of the signed-rank sums). p_value: NaN when no pair is left.
        zero_method: how zero differences were handled (see :func:`scipy.stats.wilcoxon`).
    """

    n_total: int
    n_pairs: int
    n_nan_dropped: int
    n_zero_diff: int
    statistic: float
    p_value: float
    zero_method: str = "wilcox"


def wilcoxon_signed_rank(
    baseline: Any, setting: Any, zero_method: str = "wilcox", alternative: str = "two-sided"
) -> WilcoxonResult:
    """Wilcoxon signed-rank test of ``setting - baseline``; NaN pairs dropped and counted.

    Args:
        baseline: 1D per-image values of the baseline.
        setting: 1D per-image values of the setting, same images in the same order.
        zero_method: ``"wilcox"`` (zero differences left out, scipy's default), ``"pratt"`` or ``"zsplit"``.
        alternative: ``"two-sided"``, ``"greater"`` (setting larger) or ``"less"``.

    Returns:
        A :class:`WilcoxonResult`. No pair left: NaN statistic and p-value. All differences zero: statistic 0,
        p-value 1.

    Raises:
        ValueError: different lengths, infinite values or an unknown ``zero_method``.

    Example:
        >>> wilcoxon_signed_rank([0.1, 0.2, float("nan"), 0.3], [0.3, 0.1, 0.5, 0.6]).n_nan_dropped
        1
    """
    if zero_method not in _ZERO_METHODS:
        raise ValueError(f"zero_method must be one of {_ZERO_METHODS}, got {zero_method!r}.")
    x, y, n_dropped = drop_nan_pairs(baseline, setting, "wilcoxon_signed_rank")
    d = y - x
    n_zero = int((d == 0).sum())
    n_total = d.size + n_dropped
    if d.size == 0:
        return WilcoxonResult(n_total, 0, n_dropped, 0, _NAN, _NAN, zero_method)
    if n_zero == d.size:
        logger.info("wilcoxon_signed_rank: all differences are zero; p-value set to 1.")
        return WilcoxonResult(n_total, int(d.size), n_dropped, n_zero, 0.0, 1.0, zero_method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # tiny samples: scipy warns and still answers
        res = sps.wilcoxon(d, zero_method=zero_method, alternative=alternative)
    return WilcoxonResult(n_total, int(d.size), n_dropped, n_zero, float(res.statistic), float(res.pvalue), zero_method)


@dataclass
class McNemarResult:
    """Exact McNemar test on paired binary outcomes.

    Attributes:
        n_total, n_pairs, n_nan_dropped: as in :class:`WilcoxonResult`.
        n_baseline_only: pairs where only the baseline is positive (correct).
        n_setting_only: pairs where only the setting is positive (correct).
        p_value: two-sided exact binomial p-value of ``n_setting_only`` among the discordant pairs
            (1 when there is no discordant pair, NaN when no pair is left).
    """

    n_total: int
    n_pairs: int
    n_nan_dropped: int
    n_baseline_only: int
    n_setting_only: int
    p_value: float


def mcnemar_exact(baseline: Any, setting: Any) -> McNemarResult:
    """Exact McNemar test of two paired binary outcomes (e.g. per-image correctness of two models).

    Args:
        baseline: 1D 0/1 values (NaN = missing) of the baseline.
        setting: 1D 0/1 values of the setting, same images.

    Returns:
        A :class:`McNemarResult`.

    Raises:
        ValueError: values other than 0, 1 or NaN, or different lengths.

    Example:
        >>> mcnemar_exact([1, 1, 0, 0, 1], [1, 0, 1, 1, 1]).n_setting_only
        2
    """
    x, y, n_dropped = drop_nan_pairs(baseline, setting, "mcnemar_exact")
    for name, v in (("baseline", x), ("setting", y)):
        bad = v[(v != 0) & (v != 1)]
        if bad.size:
            raise ValueError(f"mcnemar_exact: {name} values must be 0 or 1, got {np.unique(bad)[:5].tolist()}.")
    b = int(((x == 1) & (y == 0)).sum())
    c = int(((x == 0) & (y == 1)).sum())
    if x.size == 0:
        p = _NAN
    elif b + c == 0:
        p = 1.0
    else:
        p = float(sps.binomtest(c, b + c, 0.5, alternative="two-sided").pvalue)
    return McNemarResult(int(x.size) + n_dropped, int(x.size), n_dropped, b, c, p)


def bootstrap_mean_difference_ci(
    baseline: Any,
    setting: Any,
    confidence: float = 0.95,
    n_resamples: int = 10000,
    seed: int | np.random.Generator | None = 0,
    chunk_size: int = 1000,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean paired difference ``mean(setting - baseline)``.

    Images (pairs) are resampled with replacement, so the pairing is kept. NaN pairs are dropped first (count them
    with :func:`drop_nan_pairs`). Resamples are drawn in chunks of ``chunk_size`` to bound memory.

    Args:
        baseline: 1D per-image values of the baseline.
        setting: 1D per-image values of the setting, same images.
        confidence: the CI level in (0, 1).
        n_resamples: bootstrap resamples.
        seed: seed or ``numpy.random.Generator``; the same seed gives the same CI.
        chunk_size: resamples drawn at once.

    Returns:
        ``(low, high)``; ``(nan, nan)`` with fewer than 2 pairs.

    Raises:
        ValueError: ``confidence`` outside (0, 1) or ``n_resamples`` < 1.

    Example:
        >>> lo, hi = bootstrap_mean_difference_ci([1, 2, 3, 4], [2, 3, 3, 6], seed=0)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}.")
    x, y, _ = drop_nan_pairs(baseline, setting, "bootstrap_mean_difference_ci")
    d = y - x
    n = d.size
    if n < 2:
        return _NAN, _NAN
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    means = np.empty(n_resamples, dtype=float)
    for start in range(0, n_resamples, chunk_size):
        k = min(chunk_size, n_resamples - start)
        idx = rng.integers(0, n, size=(k, n))
        means[start : start + k] = d[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def rank_biserial(differences: Any, zero_method: str = "wilcox") -> float:
    """Matched-pairs rank-biserial correlation ``(R+ - R-) / (R+ + R-)`` of paired differences.

    ``R+`` / ``R-`` are the sums of the ranks of ``|d|`` (average ranks for ties) over positive / negative
    differences. Zero differences follow ``zero_method`` as in the Wilcoxon test: ``"wilcox"`` drops them before
    ranking, ``"pratt"`` ranks them and then drops their ranks, ``"zsplit"`` splits their ranks between both sums.
    The value lies in [-1, 1]: +1 when every non-zero difference is positive. NaN differences are dropped.

    Args:
        differences: 1D ``setting - baseline`` values.
        zero_method: ``"wilcox"``, ``"pratt"`` or ``"zsplit"``.

    Returns:
        The correlation; NaN when no non-zero difference is left (``"wilcox"``/``"pratt"``) or no value at all.

    Raises:
        ValueError: unknown ``zero_method``.

    Example:
        >>> rank_biserial([1.0, -2.0, 3.0, 0.0])  # ranks 1, 2, 3: (4 - 2) / 6
        0.3333333333333333
    """
    if zero_method not in _ZERO_METHODS:
        raise ValueError(f"zero_method must be one of {_ZERO_METHODS}, got {zero_method!r}.")
    d = np.asarray(differences, dtype=float).reshape(-1)
    d = d[~np.isnan(d)]
    if zero_method == "wilcox":
        d = d[d != 0]
    if d.size == 0:
        return _NAN
    ranks = sps.rankdata(np.abs(d))
    r_plus = float(ranks[d > 0].sum())
    r_minus = float(ranks[d < 0].sum())
    r_zero = float(ranks[d == 0].sum())
    total = r_plus + r_minus + (r_zero if zero_method == "zsplit" else 0.0)
    if total == 0:
        return _NAN
    return (r_plus - r_minus) / total


def cohens_dz(differences: Any) -> float:
    """Cohen's d_z for paired data: ``mean(d) / std(d, ddof=1)`` (NaN differences dropped).

    Args:
        differences: 1D ``setting - baseline`` values.

    Returns:
        The effect size; NaN with fewer than 2 values or when the differences do not vary (undefined).

    Example:
        >>> round(cohens_dz([1.0, 2.0, 3.0]), 6)
        2.0
    """
    d = np.asarray(differences, dtype=float).reshape(-1)
    d = d[~np.isnan(d)]
    if d.size < 2:
        return _NAN
    sd = float(np.std(d, ddof=1))
    if sd == 0:
        return _NAN
    return float(np.mean(d)) / sd


@dataclass
class PairedComparison:
    """A per-image paired comparison of a setting with the baseline on one metric.

    Attributes:
        metric: the per-image column. test: ``"wilcoxon"`` or ``"mcnemar_exact"``.
        setting, design, lambda_, baseline, seed: context (``seed`` None when seeds were averaged).
        n_images: images present in both. n_pairs: pairs used. n_nan_dropped: pairs dropped for NaN.
        n_unmatched: images present on one side only (left out). n_zero_diff: pairs with zero difference.
        baseline_mean, setting_mean, mean_diff: means over the used pairs. ci_low, ci_high: bootstrap CI of
        ``mean_diff``. statistic, p_value: of the test (McNemar: the statistic is ``n_setting_only``). p_holm: Holm-adjusted p-value within its family.
        rank_biserial, cohens_dz: effect sizes. n_baseline_only, n_setting_only: discordant pairs (McNemar).
    """

    metric: str
    test: str
    n_images: int
    n_pairs: int
    n_nan_dropped: int
    n_zero_diff: int
    baseline_mean: float
    setting_mean: float
    mean_diff: float
    ci_low: float
    ci_high: float
    statistic: float
    p_value: float
    rank_biserial: float
    cohens_dz: float
    n_baseline_only: int | None = None
    n_setting_only: int | None = None
    p_holm: float = _NAN
    setting: str = ""
    design: str = ""
    lambda_: float = _NAN
    baseline: str = ""
    seed: int | None = None
    n_unmatched: int = 0


def paired_comparison(
    baseline: Any,
    setting: Any,
    metric: str = "value",
    test: str = "wilcoxon",
    confidence: float = 0.95,
    n_resamples: int = 10000,
    seed: int | np.random.Generator | None = 0,
    zero_method: str = "wilcox",
) -> PairedComparison:
    """Test, bootstrap CI and effect sizes for paired per-image values of a setting vs the baseline.

    Args:
        baseline: 1D per-image values of the baseline (NaN = missing).
        setting: 1D per-image values of the setting, same images in the same order.
        metric: name stored in the result.
        test: ``"wilcoxon"`` (any values) or ``"mcnemar_exact"`` (0/1 values).
        confidence: level of the bootstrap CI.
        n_resamples: bootstrap resamples.
        seed: bootstrap seed.
        zero_method: zero differences in the Wilcoxon test and the rank-biserial correlation.

    Returns:
        A :class:`PairedComparison` (context fields left at their defaults; fill them with
        :func:`dataclasses.replace`).

    Raises:
        ValueError: unknown ``test``, or bad values (see :func:`wilcoxon_signed_rank`, :func:`mcnemar_exact`).
    """
    if test not in ("wilcoxon", "mcnemar_exact"):
        raise ValueError(f"test must be 'wilcoxon' or 'mcnemar_exact', got {test!r}.")
    x, y, n_dropped = drop_nan_pairs(baseline, setting, metric)
    d = y - x
    low, high = bootstrap_mean_difference_ci(x, y, confidence, n_resamples, seed)
    b_only = s_only = None
    if test == "wilcoxon":
        w = wilcoxon_signed_rank(x, y, zero_method=zero_method)
        statistic, p = w.statistic, w.p_value
    else:
        mc = mcnemar_exact(x, y)
        statistic, p = float(mc.n_setting_only), mc.p_value
        b_only, s_only = mc.n_baseline_only, mc.n_setting_only
    mean = lambda v: float(v.mean()) if v.size else _NAN
    return PairedComparison(
        metric=metric,
        test=test,
        n_images=int(d.size) + n_dropped,
        n_pairs=int(d.size),
        n_nan_dropped=n_dropped,
        n_zero_diff=int((d == 0).sum()),
        baseline_mean=mean(x),
        setting_mean=mean(y),
        mean_diff=mean(d),
        ci_low=low,
        ci_high=high,
        statistic=statistic,
        p_value=p,
        rank_biserial=rank_biserial(d, zero_method),
        cohens_dz=cohens_dz(d),
        n_baseline_only=b_only,
        n_setting_only=s_only,
    )


@dataclass
class SeedSummary:
    """Mean over seeds with a t-based CI: ``mean +- t_{(1+c)/2, n-1} * sd / sqrt(n)``.

    Attributes:
        n: finite values used. n_nan: missing values left out. mean, std (ddof=1), ci_low, ci_high:
        NaN where undefined (``std`` and the CI need n >= 2).
    """

    n: int
    n_nan: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


def seed_summary(values: Any, confidence: float = 0.95) -> SeedSummary:
    """Mean, SD and t-based CI of one metric over the seeds of a setting (NaN values left out and counted).

    Args:
        values: one value per run (seed); ``None``/NaN = missing.
        confidence: CI level in (0, 1).

    Returns:
        A :class:`SeedSummary`.

    Raises:
        ValueError: ``confidence`` outside (0, 1) or an infinite value.

    Example:
        >>> s = seed_summary([0.8, 0.9, 1.0])
        >>> round(s.mean, 6), round(s.std, 6)
        (0.9, 0.1)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    v = np.asarray([_NAN if a is None else a for a in np.asarray(values, dtype=object).reshape(-1)], dtype=float)
    if np.isinf(v).any():
        raise ValueError(f"seed_summary: infinite value in {v.tolist()}.")
    n_nan = int(np.isnan(v).sum())
    v = v[~np.isnan(v)]
    n = int(v.size)
    if n == 0:
        return SeedSummary(0, n_nan, _NAN, _NAN, _NAN, _NAN)
    mean = float(v.mean())
    if n == 1:
        return SeedSummary(1, n_nan, mean, _NAN, _NAN, _NAN)
    sd = float(v.std(ddof=1))
    half = float(sps.t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n)
    return SeedSummary(n, n_nan, mean, sd, mean - half, mean + half)


@dataclass
class SeedComparison:
    """Comparison of one per-run metric between a setting and the baseline across seeds.

    Attributes:
        metric, test (``"welch_t"`` or ``"paired_t"``), setting, design, lambda_, baseline: context.
        n_baseline, n_setting: runs used on each side (paired: matched seeds). n_unmatched: runs without a partner
        seed (paired test only). baseline_mean, setting_mean, mean_diff: means (``setting - baseline``).
        ci_low, ci_high: t-based CI of the difference (Welch-Satterthwaite df for Welch). statistic, df, p_value:
        of the t-test (NaN when a side has fewer than 2 values, or the differences do not vary).
        p_holm: Holm-adjusted within its family.
    """

    metric: str
    test: str
    n_baseline: int
    n_setting: int
    baseline_mean: float
    setting_mean: float
    mean_diff: float
    ci_low: float
    ci_high: float
    statistic: float
    df: float
    p_value: float
    n_unmatched: int = 0
    p_holm: float = _NAN
    setting: str = ""
    design: str = ""
    lambda_: float = _NAN
    baseline: str = ""


def seed_comparison(
    baseline: Any,
    setting: Any,
    metric: str = "value",
    method: str = "welch",
    baseline_seeds: Sequence[int] | None = None,
    setting_seeds: Sequence[int] | None = None,
    confidence: float = 0.95,
) -> SeedComparison:
    """Compare a per-run metric of a setting with the baseline over seeds.

    ``"welch"`` (default) treats the runs as two independent samples (Welch's t-test, unequal variances): valid
    whatever the seed does. ``"paired"`` matches the runs by seed (same initialisation and data order in both)
    and runs a paired t-test on the per-seed differences: more power when the seed drives much of the
    variation, but only the seeds present on both sides count (the others are counted in ``n_unmatched``).
    NaN values are left out.

    Args:
        baseline: one value per baseline run.
        setting: one value per setting run.
        metric: name stored in the result.
        method: ``"welch"`` or ``"paired"``.
        baseline_seeds: the seed of each baseline value (needed for ``"paired"``).
        setting_seeds: the seed of each setting value (needed for ``"paired"``).
        confidence: level of the CI of the difference.

    Returns:
        A :class:`SeedComparison` (context fields at their defaults).

    Raises:
        ValueError: unknown ``method``; ``"paired"`` without seeds or with seeds not matching the values in length
            or repeated on one side.
    """
    if method not in ("welch", "paired"):
        raise ValueError(f"method must be 'welch' or 'paired', got {method!r}.")
    x = np.asarray([_NAN if a is None else a for a in list(baseline)], dtype=float)
    y = np.asarray([_NAN if a is None else a for a in list(setting)], dtype=float)
    n_unmatched = 0
    if method == "paired":
        if baseline_seeds is None or setting_seeds is None:
            raise ValueError("method='paired' needs baseline_seeds and setting_seeds.")
        if len(baseline_seeds) != x.size or len(setting_seeds) != y.size:
            raise ValueError("the seeds must match the values in length.")
        for name, s in (("baseline_seeds", baseline_seeds), ("setting_seeds", setting_seeds)):
            if len(set(s)) != len(s):
                raise ValueError(f"{name} has repeated seeds {list(s)}.")
        bx = {int(s): v for s, v in zip(baseline_seeds, x) if not np.isnan(v)}
        sy = {int(s): v for s, v in zip(setting_seeds, y) if not np.isnan(v)}
        common = sorted(set(bx) & set(sy))
        n_unmatched = len(set(bx) ^ set(sy))
        if n_unmatched:
            logger.info(f"{metric}: {n_unmatched} run(s) have no partner seed and are left out of the paired test.")
        x = np.asarray([bx[s] for s in common], dtype=float)
        y = np.asarray([sy[s] for s in common], dtype=float)
    else:
        x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    mean = lambda v: float(v.mean()) if v.size else _NAN
    diff = mean(y) - mean(x)
    stat = df = p = low = high = _NAN
    enough = x.size >= 2 and y.size >= 2
    if enough:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # zero variance: scipy answers NaN
            res = sps.ttest_ind(y, x, equal_var=False) if method == "welch" else sps.ttest_rel(y, x)
            ci = res.confidence_interval(confidence)
        stat, df, p = float(res.statistic), float(res.df), float(res.pvalue)
        if not math.isnan(stat):  # no variation on either side: no t statistic, no CI
            low, high = float(ci.low), float(ci.high)
    return SeedComparison(
        metric=metric,
        test="welch_t" if method == "welch" else "paired_t",
        n_baseline=int(x.size),
        n_setting=int(y.size),
        baseline_mean=mean(x),
        setting_mean=mean(y),
        mean_diff=diff,
        ci_low=low,
        ci_high=high,
        statistic=stat,
        df=df,
        p_value=p,
        n_unmatched=n_unmatched,
    )


def to_rows(results: Iterable[Any]) -> list[dict[str, Any]]:
    """Turn result dataclasses (or dicts) into flat table rows; the field ``lambda_`` becomes ``lambda``.

    Args:
        results: :class:`PairedComparison`, :class:`SeedComparison`, :class:`SeedSummary`, ... or dicts.

    Returns:
        One dict per result, fields in declaration order.

    Raises:
        TypeError: an item that is neither a dataclass instance nor a mapping.
    """
    rows = []
    for r in results:
        if dataclasses.is_dataclass(r) and not isinstance(r, type):
            d = dataclasses.asdict(r)
        elif isinstance(r, dict):
            d = dict(r)
        else:
            raise TypeError(f"to_rows: cannot turn {type(r).__name__} into a row.")
        rows.append({("lambda" if k == "lambda_" else k): v for k, v in d.items()})
    return rows
