"""Statistics of the study, by hand on small inputs (values carried over from the previous implementation's tests)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from monai_explain.apps.study.stats import cohens_dz, holm, paired_test, rank_biserial, seed_test, t_interval

NAN = float("nan")
T_975_DF2 = 4.302652729749462  # Student t quantile 0.975, 2 degrees of freedom (table value)


@pytest.mark.parametrize(
    "p, expected",
    [
        ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),  # x4, x3, x2, x1 then running max
        ([0.3, 0.4], [0.6, 0.6]),
        ([0.9, 0.8], [1.0, 1.0]),
        ([0.02, 0.02, 0.02], [0.06, 0.06, 0.06]),
        ([0.5, NAN, 0.01], [0.5, NAN, 0.02]),  # NaN kept, not counted: m = 2
        ([], []),
    ],
)
def test_holm_by_hand(p, expected):
    np.testing.assert_allclose(holm(p), expected, rtol=0, atol=1e-12, equal_nan=True)
    with pytest.raises(ValueError, match="p-values must lie in"):
        holm([0.1, 1.5])


def test_wilcoxon_by_hand():
    # |d| ranks 1..7; R- = 1 + 2 = 3, R+ = 25; exact two-sided p = 2 * 5 / 128
    d = np.array([0.2, -0.1, 0.3, 0.4, -0.05, 0.25, 0.15])
    res = paired_test(np.zeros(7), d, n_resamples=500)
    assert (res["n_pairs"], res["n_nan_dropped"], res["n_zero_diff"]) == (7, 0, 0)
    assert res["statistic"] == 3.0 and res["p_value"] == pytest.approx(10 / 128, abs=1e-12)
    assert res["rank_biserial"] == pytest.approx((25 - 3) / 28)


def test_paired_fields_nan_dropped_and_bootstrap_reproducible():
    base, sett = [0.1, 0.2, 0.3, NAN, 0.5], [0.3, 0.1, 0.6, 0.7, 0.9]
    res = paired_test(base, sett, n_resamples=500, seed=0)
    assert (res["n_pairs"], res["n_nan_dropped"]) == (4, 1)
    assert res["baseline_mean"] == pytest.approx(0.275) and res["setting_mean"] == pytest.approx(0.475)
    assert res["mean_diff"] == pytest.approx(0.2)  # d = 0.2, -0.1, 0.3, 0.4
    assert res["ci_low"] <= 0.2 <= res["ci_high"]
    assert paired_test(base, sett, n_resamples=500, seed=0) == res
    assert paired_test(base, sett, n_resamples=500, seed=1)["ci_low"] != res["ci_low"]


def test_bootstrap_covers_a_known_shift():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    y = x + 0.5 + rng.normal(scale=0.5, size=200)
    res = paired_test(x, y, n_resamples=2000)
    half = 1.96 * np.std(y - x, ddof=1) / np.sqrt(200)
    assert res["ci_low"] == pytest.approx(np.mean(y - x) - half, abs=0.02)
    assert res["ci_high"] == pytest.approx(np.mean(y - x) + half, abs=0.02)


def test_all_zero_empty_and_bad_input():
    res = paired_test([0.3, 0.4, NAN], [0.3, 0.4, 0.1])
    assert (res["n_pairs"], res["n_zero_diff"], res["p_value"]) == (2, 2, 1.0)
    assert (res["ci_low"], res["ci_high"]) == (0.0, 0.0)
    assert math.isnan(paired_test([NAN], [1.0])["p_value"])
    for x, y in (([1.0, 2.0], [1.0]), ([1.0, np.inf], [1.0, 2.0])):
        with pytest.raises(ValueError, match="finite and of one length"):
            paired_test(x, y)
    with pytest.raises(ValueError, match="test must be"):
        paired_test([1.0], [1.0], test="ttest")


def test_mcnemar_by_hand():
    # b = 1, c = 4, 1 pair dropped; exact two-sided p = 2 * P(X <= 1), X ~ Bin(5, 1/2) = 12 / 32
    res = paired_test([1, 1, 0, 0, 1, 0, 0, 0], [1, 0, 1, 1, 1, 1, 1, NAN], "mcnemar_exact", n_resamples=200)
    assert (res["n_pairs"], res["n_nan_dropped"], res["n_baseline_only"], res["n_setting_only"]) == (7, 1, 1, 4)
    assert res["p_value"] == pytest.approx(12 / 32)
    assert paired_test([1, 0, 1], [1, 0, 1], "mcnemar_exact", n_resamples=50)["p_value"] == 1.0
    with pytest.raises(ValueError, match="0/1"):
        paired_test([1, 0], [0.5, 1], "mcnemar_exact", n_resamples=50)


@pytest.mark.parametrize(
    "d, expected",
    [([1.0, -2.0, 3.0, 0.0], (4 - 2) / 6), ([2.0, 2.0, -2.0], (4 - 2) / 6), ([1.0, 2.0, NAN], 1.0), ([0.0, 0.0], NAN)],
)
def test_rank_biserial_by_hand(d, expected):
    assert rank_biserial(d) == pytest.approx(expected, nan_ok=True)


@pytest.mark.parametrize(
    "d, expected",
    [([1.0, 2.0, 3.0], 2.0), ([1.0, -2.0, 3.0, 0.0], 0.5 / math.sqrt(13 / 3)), ([1.0, 1.0], NAN), ([2.0], NAN)],
)
def test_cohens_dz_by_hand(d, expected):
    assert cohens_dz(d) == pytest.approx(expected, nan_ok=True)


@pytest.mark.parametrize(
    "values, n, mean, std, half",
    [
        ([0.8, 0.9, 1.0], 3, 0.9, 0.1, T_975_DF2 * 0.1 / math.sqrt(3)),
        ([0.8, NAN, 0.9, 1.0], 3, 0.9, 0.1, T_975_DF2 * 0.1 / math.sqrt(3)),
        ([0.7, 0.7, 0.7], 3, 0.7, 0.0, 0.0),
        ([0.75], 1, 0.75, NAN, NAN),
        ([NAN], 0, NAN, NAN, NAN),
    ],
)
def test_t_interval_by_hand(values, n, mean, std, half):
    s = t_interval(values)
    assert s["n"] == n and s["mean"] == pytest.approx(mean, nan_ok=True)
    assert s["std"] == pytest.approx(std, nan_ok=True, abs=1e-12)
    assert s["ci_low"] == pytest.approx(mean - half, nan_ok=True)
    assert s["ci_high"] == pytest.approx(mean + half, nan_ok=True)


def test_welch_by_hand():
    a, b = 1.0 / 3, 2.47 / 3  # var / n of each side
    t = 1.7 / math.sqrt(a + b)
    df = (a + b) ** 2 / (a**2 / 2 + b**2 / 2)
    res = seed_test([1.0, 2.0, 3.0], [2.0, 4.0, 5.1])
    assert res["test"] == "welch_t" and res["mean_diff"] == pytest.approx(1.7)
    assert res["statistic"] == pytest.approx(t) and res["df"] == pytest.approx(df)
    assert res["p_value"] == pytest.approx(2 * sps.t.sf(t, df))
    half = sps.t.ppf(0.975, df) * math.sqrt(a + b)
    assert (res["ci_low"], res["ci_high"]) == (pytest.approx(1.7 - half), pytest.approx(1.7 + half))


def test_paired_by_seed():
    res = seed_test([1.0, 2.0, 3.0], [4.0, 2.0, 4.0, 6.0], "paired", [0, 1, 2], [9, 0, 1, 2])  # differences 1, 2, 3
    assert res["test"] == "paired_t" and (res["n_baseline"], res["n_setting"], res["n_unmatched"]) == (3, 3, 1)
    assert res["mean_diff"] == pytest.approx(2.0) and res["statistic"] == pytest.approx(2.0 * math.sqrt(3))
    assert res["df"] == 2
    with pytest.raises(ValueError, match="method must be"):
        seed_test([1.0], [2.0], "anova")
    with pytest.raises(ValueError, match="needs baseline_seeds"):
        seed_test([1.0], [2.0], "paired")
    with pytest.raises(ValueError, match="the setting has a seed more than once"):
        seed_test([1.0, 2.0], [2.0, 3.0], "paired", [0, 1], [1, 1])  # pairing by seed would drop a run silently
    short = seed_test([1.0], [1.5, 2.0])
    assert math.isnan(short["p_value"]) and math.isnan(short["ci_low"])
