from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from monai_explain.apps.study.stats import (
    PairedComparison,
    SeedComparison,
    bootstrap_mean_difference_ci,
    cohens_dz,
    drop_nan_pairs,
    holm_bonferroni,
    mcnemar_exact,
    paired_comparison,
    rank_biserial,
    seed_comparison,
    seed_summary,
    to_rows,
    wilcoxon_signed_rank,
)

NAN = float("nan")
T_975_DF2 = 4.302652729749462  # Student t quantile 0.975, 2 degrees of freedom (table value)


@pytest.mark.parametrize(
    "p, expected",
    [
        # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
        ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),
        ([0.3, 0.4], [0.6, 0.6]),  # 0.4 x 1 = 0.4 is raised to the previous 0.6 (monotone)
        ([0.9, 0.8], [1.0, 1.0]),  # capped at 1
        ([0.02, 0.02, 0.02], [0.06, 0.06, 0.06]),  # ties
        ([0.5, NAN, 0.01], [0.5, NAN, 0.02]),  # NaN kept, not counted: m = 2
        ([0.04], [0.04]),
        ([], []),
    ],
)
def test_holm_by_hand(p, expected):
    np.testing.assert_allclose(holm_bonferroni(p), expected, rtol=0, atol=1e-12, equal_nan=True)


def test_holm_bad_p():
    with pytest.raises(ValueError, match="p-values must lie in"):
        holm_bonferroni([0.1, 1.5])


def test_wilcoxon_by_hand():
    # |d| ranks: 0.05->1, 0.1->2, 0.15->3, 0.2->4, 0.25->5, 0.3->6, 0.4->7; R- = 1 + 2 = 3, R+ = 25.
    # exact two-sided p = 2 * #{subsets of 1..7 with sum <= 3} / 2**7 = 2 * 5 / 128.
    base = np.zeros(7)
    d = np.array([0.2, -0.1, 0.3, 0.4, -0.05, 0.25, 0.15])
    res = wilcoxon_signed_rank(base, d)
    assert (res.n_total, res.n_pairs, res.n_nan_dropped, res.n_zero_diff) == (7, 7, 0, 0)
    assert res.statistic == 3.0
    assert res.p_value == pytest.approx(10 / 128, abs=1e-12)
    assert rank_biserial(d) == pytest.approx((25 - 3) / 28)


def test_wilcoxon_matches_scipy_with_nan_dropped():
    rng = np.random.default_rng(3)
    x = rng.normal(size=40)
    y = x + 0.3 + rng.normal(scale=0.5, size=40)
    x[[1, 7, 20]] = NAN
    y[[7, 30]] = NAN  # 7 on both sides: 4 pairs dropped in all
    res = wilcoxon_signed_rank(x, y)
    keep = ~(np.isnan(x) | np.isnan(y))
    direct = sps.wilcoxon(y[keep] - x[keep])
    assert (res.n_total, res.n_pairs, res.n_nan_dropped) == (40, 36, 4)
    assert res.statistic == pytest.approx(float(direct.statistic))
    assert res.p_value == pytest.approx(float(direct.pvalue))


@pytest.mark.parametrize("zero_method", ["wilcox", "pratt", "zsplit"])
def test_wilcoxon_zero_methods_match_scipy(zero_method):
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    y = np.array([1.0, 3.0, 5.0, 4.0, 8.0, 5.5, 9.0, 8.0])
    res = wilcoxon_signed_rank(x, y, zero_method=zero_method)
    direct = sps.wilcoxon(y - x, zero_method=zero_method)
    assert res.n_zero_diff == 3  # differences 0, 1, 2, 0, 3, -0.5, 2, 0
    assert res.p_value == pytest.approx(float(direct.pvalue))


def test_wilcoxon_all_zero_and_empty():
    res = wilcoxon_signed_rank([0.2, 0.5, NAN], [0.2, 0.5, 0.7])
    assert (res.n_pairs, res.n_nan_dropped, res.n_zero_diff, res.statistic, res.p_value) == (2, 1, 2, 0.0, 1.0)
    res = wilcoxon_signed_rank([NAN, 1.0], [2.0, NAN])
    assert res.n_pairs == 0 and res.n_nan_dropped == 2 and math.isnan(res.p_value)


@pytest.mark.parametrize(
    "x, y, match",
    [
        ([1.0, 2.0], [1.0], "differ in length"),
        ([1.0, np.inf], [1.0, 2.0], "infinite"),
    ],
)
def test_paired_bad_input(x, y, match):
    with pytest.raises(ValueError, match=match):
        wilcoxon_signed_rank(x, y)


def test_wilcoxon_bad_zero_method():
    with pytest.raises(ValueError, match="zero_method"):
        wilcoxon_signed_rank([1.0, 2.0], [2.0, 3.0], zero_method="drop")


def test_drop_nan_pairs_counts():
    x, y, n = drop_nan_pairs([1.0, NAN, 3.0, 4.0], [1.5, 2.0, NAN, 5.0])
    assert n == 2 and x.tolist() == [1.0, 4.0] and y.tolist() == [1.5, 5.0]


def test_mcnemar_by_hand():
    # pairs: (1,1) (1,0) (0,1) (0,1) (1,1) (0,1) (0,1) (0,NaN): b = 1, c = 4, 1 dropped
    # exact two-sided p = 2 * P(X <= 1), X ~ Bin(5, 1/2) = 2 * (1 + 5) / 32
    res = mcnemar_exact([1, 1, 0, 0, 1, 0, 0, 0], [1, 0, 1, 1, 1, 1, 1, NAN])
    assert (res.n_total, res.n_pairs, res.n_nan_dropped, res.n_baseline_only, res.n_setting_only) == (8, 7, 1, 1, 4)
    assert res.p_value == pytest.approx(12 / 32)


def test_mcnemar_no_discordant_and_bad_values():
    assert mcnemar_exact([1, 0, 1], [1, 0, 1]).p_value == 1.0
    with pytest.raises(ValueError, match="setting values must be 0 or 1"):
        mcnemar_exact([1, 0], [0.5, 1])


def test_bootstrap_covers_shift_and_is_reproducible():
    rng = np.random.default_rng(11)
    x = rng.normal(size=200)
    y = x + 0.5 + rng.normal(scale=0.5, size=200)  # true mean difference 0.5
    lo, hi = bootstrap_mean_difference_ci(x, y, n_resamples=2000, seed=5)
    assert lo < 0.5 < hi
    assert hi - lo < 0.25
    assert bootstrap_mean_difference_ci(x, y, n_resamples=2000, seed=5) == (lo, hi)
    assert bootstrap_mean_difference_ci(x, y, n_resamples=2000, seed=6) != (lo, hi)
    # close to the normal-theory interval of the differences
    d = y - x
    half = 1.96 * d.std(ddof=1) / np.sqrt(d.size)
    assert lo == pytest.approx(d.mean() - half, abs=0.02) and hi == pytest.approx(d.mean() + half, abs=0.02)


def test_bootstrap_coverage_rate():
    # 200 synthetic paired samples with a known shift of 0.3: the 95% CI should cover it in about 95% of them
    rng = np.random.default_rng(2)
    hits = 0
    for k in range(200):
        x = rng.normal(size=40)
        y = x + 0.3 + rng.normal(size=40)
        lo, hi = bootstrap_mean_difference_ci(x, y, n_resamples=400, seed=k)
        hits += lo < 0.3 < hi
    assert 0.88 <= hits / 200 <= 0.99


def test_bootstrap_chunks_do_not_change_result():
    x, y = np.arange(10.0), np.arange(10.0) + np.linspace(0, 1, 10)
    assert bootstrap_mean_difference_ci(x, y, n_resamples=300, seed=1, chunk_size=1000) == bootstrap_mean_difference_ci(
        x, y, n_resamples=300, seed=1, chunk_size=1000
    )
    assert all(math.isnan(v) for v in bootstrap_mean_difference_ci([1.0], [2.0]))
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_mean_difference_ci(x, y, confidence=1.5)


@pytest.mark.parametrize(
    "d, zero_method, expected",
    [
        ([1.0, -2.0, 3.0, 0.0], "wilcox", (4 - 2) / 6),  # zeros out; ranks 1, 2, 3
        ([1.0, -2.0, 3.0, 0.0], "pratt", (6 - 3) / 9),  # zero ranked 1 then dropped: R+ = 2 + 4, R- = 3
        ([1.0, -2.0, 3.0, 0.0], "zsplit", (6 - 3) / 10),  # zero's rank 1 split between R+ and R-: total 10
        ([2.0, 2.0, -2.0], "wilcox", (4 - 2) / 6),  # tied |d|: average rank 2 each
        ([1.0, 2.0, NAN], "wilcox", 1.0),
        ([0.0, 0.0], "wilcox", NAN),
    ],
)
def test_rank_biserial_by_hand(d, zero_method, expected):
    assert rank_biserial(d, zero_method) == pytest.approx(expected, nan_ok=True)


@pytest.mark.parametrize(
    "d, expected",
    [
        ([1.0, 2.0, 3.0], 2.0),  # mean 2, sd 1
        ([1.0, -2.0, 3.0, 0.0], 0.5 / math.sqrt(13 / 3)),  # mean 0.5, squares of deviations sum to 13
        ([1.0, 1.0], NAN),  # no variation
        ([2.0], NAN),
        ([1.0, NAN, 3.0], 2.0 / math.sqrt(2.0)),
    ],
)
def test_cohens_dz_by_hand(d, expected):
    assert cohens_dz(d) == pytest.approx(expected, nan_ok=True)


def test_paired_comparison_fields():
    base = [0.1, 0.2, 0.3, NAN, 0.5]
    sett = [0.3, 0.1, 0.6, 0.7, 0.9]
    res = paired_comparison(base, sett, metric="precision", n_resamples=200, seed=0)
    assert isinstance(res, PairedComparison)
    assert (res.n_images, res.n_pairs, res.n_nan_dropped, res.n_zero_diff) == (5, 4, 1, 0)
    assert res.baseline_mean == pytest.approx(0.275) and res.setting_mean == pytest.approx(0.475)
    assert res.mean_diff == pytest.approx(0.2)  # d = 0.2, -0.1, 0.3, 0.4
    assert res.rank_biserial == pytest.approx((2 + 3 + 4 - 1) / 10)
    assert res.ci_low <= res.mean_diff <= res.ci_high
    assert res.n_baseline_only is None
    mc = paired_comparison([1, 0, 1, 0], [1, 1, 1, 1], metric="correct", test="mcnemar_exact", n_resamples=100)
    assert (mc.n_baseline_only, mc.n_setting_only, mc.p_value) == (0, 2, pytest.approx(0.5))
    with pytest.raises(ValueError, match="test must be"):
        paired_comparison(base, sett, test="ttest")


@pytest.mark.parametrize(
    "values, n, n_nan, mean, std, half",
    [
        ([0.8, 0.9, 1.0], 3, 0, 0.9, 0.1, T_975_DF2 * 0.1 / math.sqrt(3)),
        ([0.8, NAN, 0.9, None, 1.0], 3, 2, 0.9, 0.1, T_975_DF2 * 0.1 / math.sqrt(3)),
        ([0.7, 0.7, 0.7], 3, 0, 0.7, 0.0, 0.0),
        ([0.75], 1, 0, 0.75, NAN, NAN),
        ([NAN], 0, 1, NAN, NAN, NAN),
    ],
)
def test_seed_summary_by_hand(values, n, n_nan, mean, std, half):
    s = seed_summary(values)
    assert (s.n, s.n_nan) == (n, n_nan)
    assert s.mean == pytest.approx(mean, nan_ok=True)
    assert s.std == pytest.approx(std, nan_ok=True, abs=1e-12)
    assert s.ci_low == pytest.approx(mean - half, nan_ok=True)
    assert s.ci_high == pytest.approx(mean + half, nan_ok=True)


def test_seed_summary_bad_input():
    with pytest.raises(ValueError, match="confidence"):
        seed_summary([1.0, 2.0], confidence=0.0)
    with pytest.raises(ValueError, match="infinite"):
        seed_summary([1.0, np.inf])


def test_seed_comparison_welch_by_hand():
    x, y = [1.0, 2.0, 3.0], [2.0, 4.0, 5.1]
    a, b = 1.0 / 3, 2.47 / 3  # var / n of each side
    t = 1.7 / math.sqrt(a + b)
    df = (a + b) ** 2 / (a**2 / 2 + b**2 / 2)
    res = seed_comparison(x, y, metric="accuracy")
    assert isinstance(res, SeedComparison) and res.test == "welch_t"
    assert res.mean_diff == pytest.approx(1.7)
    assert res.statistic == pytest.approx(t) and res.df == pytest.approx(df)
    assert res.p_value == pytest.approx(2 * sps.t.sf(t, df))
    half = sps.t.ppf(0.975, df) * math.sqrt(a + b)
    assert (res.ci_low, res.ci_high) == (pytest.approx(1.7 - half), pytest.approx(1.7 + half))


def test_seed_comparison_paired_matches_seeds():
    # seeds 0, 1, 2 on both sides, plus an unmatched seed 9 in the setting; differences 1, 2, 3
    res = seed_comparison(
        [1.0, 2.0, 3.0], [4.0, 2.0, 4.0, 6.0], method="paired", baseline_seeds=[0, 1, 2], setting_seeds=[9, 0, 1, 2]
    )
    assert res.test == "paired_t" and (res.n_baseline, res.n_setting, res.n_unmatched) == (3, 3, 1)
    assert res.mean_diff == pytest.approx(2.0)
    assert res.statistic == pytest.approx(2.0 / (1.0 / math.sqrt(3)))
    assert res.df == 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "anova"}, "method must be"),
        ({"method": "paired"}, "needs baseline_seeds"),
        ({"method": "paired", "baseline_seeds": [0, 0], "setting_seeds": [0, 1]}, "repeated seeds"),
        ({"method": "paired", "baseline_seeds": [0], "setting_seeds": [0, 1]}, "match the values in length"),
    ],
)
def test_seed_comparison_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        seed_comparison([1.0, 2.0], [2.0, 3.0], **kwargs)


def test_seed_comparison_too_few_runs():
    res = seed_comparison([1.0], [2.0, 3.0])
    assert res.mean_diff == pytest.approx(1.5) and math.isnan(res.p_value) and math.isnan(res.ci_low)


def test_to_rows():
    rows = to_rows(
        [SeedComparison("auc", "welch_t", 2, 2, 0.5, 0.6, 0.1, 0.0, 0.2, 1.0, 2.0, 0.3, lambda_=0.5), {"a": 1}]
    )
    assert rows[0]["lambda"] == 0.5 and "lambda_" not in rows[0] and rows[0]["metric"] == "auc"
    assert rows[1] == {"a": 1}
    with pytest.raises(TypeError, match="cannot turn"):
        to_rows([3])
