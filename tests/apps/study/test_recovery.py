"""Shortcut recovery per seed, against a hand computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monai_explain.apps.study.recovery import recovery_summary, shortcut_recovery


def _runs() -> pd.DataFrame:
    rows = []
    # (design, lambda, seed): (test bacc, test_shifted bacc, test auc, test_shifted auc)
    values = {
        ("none", 0.0, 0): (0.95, 0.50, 0.98, 0.60),
        ("none", 0.0, 1): (0.90, 0.60, 0.96, 0.70),
        ("dice", 3.0, 0): (0.94, 0.86, 0.99, 0.90),
        ("dice", 3.0, 1): (0.90, 0.63, 0.95, 0.71),
        ("dice", 3.0, 2): (0.90, 0.80, 0.95, 0.90),  # no baseline with seed 2: not scored
    }
    for (design, lam, seed), (t, s, ta, sa) in values.items():
        for split, metric, v in (("test", "balanced_accuracy", t), ("test_shifted", "balanced_accuracy", s),
                                 ("test", "auc", ta), ("test_shifted", "auc", sa), ("test", "accuracy", t)):  # fmt: skip
            rows.append({"design": design, "lambda": lam, "seed": seed, "split": split, "class": "Nodule/Mass",
                         "metric": metric, "value": v})  # fmt: skip
    return pd.DataFrame(rows)


def test_recovery_by_hand():
    per_seed = shortcut_recovery(_runs(), "test", "test_shifted")
    assert set(per_seed["metric"]) == {"balanced_accuracy", "auc"} and set(per_seed["seed"]) == {0, 1, 2}
    assert (per_seed["setting"] == "dice lambda=3").all()
    bacc = per_seed[per_seed["metric"] == "balanced_accuracy"].set_index("seed")
    # pooled baseline: reference 0.925, shifted 0.55, cost 0.375
    assert bacc.loc[0, "shortcut_cost"] == pytest.approx(0.375)
    assert bacc.loc[0, "recovery"] == pytest.approx(0.31 / 0.375)
    assert bacc.loc[1, "recovery"] == pytest.approx(0.08 / 0.375)
    assert bacc.loc[2, "recovery"] == pytest.approx(0.25 / 0.375)  # no same-seed baseline: scored against the pool
    assert bacc.loc[0, "reference_change"] == pytest.approx(0.94 - 0.925)
    # paired with the same seed's baseline: seed 0 (0.86 - 0.50) / 0.45, seed 1 (0.63 - 0.60) / 0.30, seed 2 none
    assert bacc.loc[0, "recovery_paired"] == pytest.approx(0.8) and bacc.loc[1, "recovery_paired"] == pytest.approx(0.1)
    assert np.isnan(bacc.loc[2, "recovery_paired"])
    summary = recovery_summary(per_seed).set_index("metric")
    assert summary.loc["balanced_accuracy", "n_seeds"] == 3
    assert summary.loc["balanced_accuracy", "mean_recovery"] == pytest.approx((0.31 + 0.08 + 0.25) / 3 / 0.375)
    assert summary.loc["balanced_accuracy", "min_recovery"] == pytest.approx(0.08 / 0.375)
    assert summary.loc["balanced_accuracy", "mean_recovery_paired"] == pytest.approx(0.45)
    assert summary.loc["balanced_accuracy", "min_recovery_paired"] == pytest.approx(0.1)
    # auc: pooled reference 0.97, shifted 0.65
    assert summary.loc["auc", "mean_recovery"] == pytest.approx((0.25 + 0.06 + 0.25) / 3 / 0.32)


def test_recovery_warns_without_same_seed_baseline_and_is_nan_without_a_cost(caplog):
    runs = _runs()
    with caplog.at_level("WARNING"):
        shortcut_recovery(runs, "test", "test_shifted")
    assert "without a lambda = 0 run of the same seed" in caplog.text
    flat = runs.copy()
    flat.loc[(flat["design"] == "none") & (flat["split"] == "test_shifted"), "value"] = 0.99  # no cost
    per_seed = shortcut_recovery(flat, "test", "test_shifted")
    assert per_seed["recovery"].isna().all() and per_seed["recovery_paired"].isna().all()
    assert not per_seed["recovered"].isna().any()
    assert shortcut_recovery(runs, "test", "external").empty


def test_no_ratio_over_a_cost_too_small_to_measure(caplog):
    """A pooled cost of 0.03 (below MIN_SHORTCUT_COST) gives NaN, logged, with the cost and values kept."""
    runs = _runs()
    base_shifted = (runs["design"] == "none") & (runs["split"] == "test_shifted")
    runs.loc[base_shifted & (runs["metric"] == "auc"), "value"] = [0.94, 0.94]  # pooled AUC cost 0.97 - 0.94
    with caplog.at_level("INFO", logger="monai_explain.apps.study.recovery"):
        per_seed = shortcut_recovery(runs, "test", "test_shifted")
    auc, bacc = (per_seed[per_seed["metric"] == m] for m in ("auc", "balanced_accuracy"))
    assert auc["recovery"].isna().all() and auc["recovery_paired"].isna().all()
    assert auc["shortcut_cost"].to_numpy() == pytest.approx([0.03] * 3) and not auc["recovered"].isna().any()
    assert not bacc["recovery"].isna().any(), "the balanced-accuracy cost (0.375) is kept"
    assert "no ratio for Nodule/Mass auc: the lambda = 0 cost 0.030 is below 0.05" in caplog.text
    assert not shortcut_recovery(runs, "test", "test_shifted", min_cost=0.01)["recovery"].isna().any()


def test_recovery_overview_puts_the_acceptance_quantities_side_by_side():
    from monai_explain.apps.study.recovery import recovery_overview

    per_seed = shortcut_recovery(_runs(), "test", "test_shifted")
    summary = pd.DataFrame([
        {"setting": "dice lambda=3", "class": "Nodule/Mass", "split": "test_shifted", "metric": m, "mean": v}
        for m, v in (("saliency_precision", 0.3), ("chance_level", 0.015))
    ])  # fmt: skip
    stats = pd.DataFrame([
        {"setting": "dice lambda=3", "class": "Nodule/Mass", "split": "test_shifted", "metric": "correct",
         "test": "wilcoxon", "p_holm": 1e-6},
        {"setting": "dice lambda=3", "class": "Nodule/Mass", "split": "test", "metric": "correct",
         "test": "wilcoxon", "p_holm": 0.5},
    ])  # fmt: skip
    row = recovery_overview(per_seed, summary, stats, "test", "test_shifted").iloc[0]
    assert row["bacc_recovery_mean"] == pytest.approx((0.31 + 0.08 + 0.25) / 3 / 0.375)
    assert row["auc_recovery_min"] == pytest.approx(0.06 / 0.32)
    assert row["reference_auc_change"] == pytest.approx(((0.99 - 0.97) + (0.95 - 0.97) + (0.95 - 0.97)) / 3)
    assert row["precision_over_chance"] == pytest.approx(20.0)
    assert row["p_correct_wilcoxon"] == pytest.approx(1e-6)  # the shifted split's test, not the reference's
    assert np.isnan(row["p_bacc_welch"])
