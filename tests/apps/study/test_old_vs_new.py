"""The pandas / scipy study gives the same statistics as the previous hand-written implementation on a fixed input.

``data/per_image_fixture.csv`` holds a fixed study in the per-image contract format; ``data/old_*.csv`` what the
previous code (commit bd0329f) wrote for it (see ``data/README.md``). Everything deterministic must agree to 1e-9;
bootstrap CIs (different resampling streams: hand-written vs ``scipy.stats.bootstrap``) within Monte-Carlo error.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from monai_explain.apps.study import (
    compare_per_image,
    compare_seeds,
    pareto,
    run_metrics,
    summarize,
    validate_per_image,
)

DATA = Path(__file__).parent / "data"
#: old per-run metric -> (split, metric) of the new long tables
RUN_METRICS = {"accuracy": ("test", "accuracy"), "accuracy_shifted": ("test_shifted", "accuracy"),
               "auc": ("test", "auc"), "auc_shifted": ("test_shifted", "auc"),
               "coverage": ("test", "saliency_coverage"), "precision": ("test", "saliency_precision"),
               "chance_level": ("test", "chance_level"), "deletion_auc": ("test", "deletion_auc")}  # fmt: skip
#: old per-image column -> (split, metric)
PER_IMAGE = {"correct": ("test", "correct"), "correct_shifted": ("test_shifted", "correct"),
             "probability": ("test", "probability"), "coverage": ("test", "saliency_coverage"),
             "precision": ("test", "saliency_precision"), "deletion_auc": ("test", "deletion_auc")}  # fmt: skip
EXACT = 1e-9
BOOTSTRAP = 0.02  # CI endpoints: about 4 Monte-Carlo standard errors at 4000 resamples


@pytest.fixture(scope="module")
def study():
    df = validate_per_image(pd.read_csv(DATA / "per_image_fixture.csv", dtype={"id": str, "class": str}))
    runs = run_metrics(df)
    return df, runs, summarize(runs)


@pytest.fixture(scope="module")
def old():
    return {n: pd.read_csv(DATA / f"old_{n}.csv") for n in ("summary", "stats", "pareto", "runs")}


def _pick(new: pd.DataFrame, **where) -> pd.Series:
    sel = new
    for k, v in where.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, (where, len(sel))
    return sel.iloc[0]


def test_run_metrics_equal(study, old):
    _, runs, _ = study
    for _, o in old["runs"].iterrows():
        for name, (split, metric) in RUN_METRICS.items():
            n = _pick(runs, design=o["design"], seed=o["seed"], split=split, metric=metric, **{"lambda": o["lambda"]})
            assert n["value"] == pytest.approx(o[name], abs=EXACT), (o["run_id"], name)


def test_summary_over_seeds_equal(study, old):
    _, _, summary = study
    assert len(old["summary"]) == 5
    for _, o in old["summary"].iterrows():
        for name, (split, metric) in RUN_METRICS.items():
            n = _pick(summary, setting=o["setting"], split=split, metric=metric)
            for stat in ("n", "mean", "std", "ci_low", "ci_high"):
                assert n[stat] == pytest.approx(o[f"{name}_{stat}"], abs=EXACT), (o["setting"], name, stat)


def test_per_image_wilcoxon_and_mcnemar_equal(study, old):
    df, _, _ = study
    new = compare_per_image(df, n_resamples=4000)
    wil = old["stats"][old["stats"]["test"] == "wilcoxon"]
    assert len(wil) == 24
    for _, o in wil.iterrows():
        split, metric = PER_IMAGE[o["metric"]]
        n = _pick(new, setting=o["setting"], split=split, metric=metric, test="wilcoxon")
        for col in ("n_pairs", "baseline_mean", "setting_mean", "mean_diff", "rank_biserial", "cohens_dz",
                    "statistic", "p_value", "p_holm"):  # fmt: skip
            assert n[col] == pytest.approx(o[col], abs=EXACT, nan_ok=True), (o["setting"], o["metric"], col)
        for col in ("ci_low", "ci_high"):
            assert n[col] == pytest.approx(o[col], abs=BOOTSTRAP), (o["setting"], o["metric"], col)
    mcn = old["stats"][old["stats"]["test"] == "mcnemar_exact"]
    assert len(mcn) == 12
    for _, o in mcn.iterrows():
        n = _pick(new, setting=o["setting"], split="test", metric="correct", test="mcnemar_exact", seed=o["seed"])
        for col in ("n_pairs", "n_baseline_only", "n_setting_only", "mean_diff", "p_value", "p_holm"):
            assert n[col] == pytest.approx(o[col], abs=EXACT), (o["setting"], o["seed"], col)


def test_across_seed_tests_equal(study, old):
    _, runs, _ = study
    new = compare_seeds(runs, ("accuracy", "auc"))
    welch = old["stats"][old["stats"]["test"] == "welch_t"]
    assert len(welch) == 16
    for _, o in welch.iterrows():
        split, metric = RUN_METRICS[o["metric"]]
        n = _pick(new, setting=o["setting"], split=split, metric=metric)
        for col in (
            "n_baseline",
            "n_setting",
            "mean_diff",
            "ci_low",
            "ci_high",
            "statistic",
            "df",
            "p_value",
            "p_holm",
        ):
            assert n[col] == pytest.approx(o[col], abs=EXACT), (o["setting"], o["metric"], col)


def test_pareto_front_equal(study, old):
    _, _, summary = study
    new = pareto(summary, ("test", "lesion", "accuracy"), ("test", "lesion", "saliency_precision"))
    o = old["pareto"]
    assert new["setting"].tolist() == o["setting"].tolist()
    assert new["on_front"].tolist() == o["on_front"].tolist()
    assert new["n_dominating"].tolist() == o["n_dominating"].tolist()
    assert new["x"].to_numpy() == pytest.approx(o["accuracy_mean"].to_numpy(), abs=EXACT)
    assert new["y"].to_numpy() == pytest.approx(o["precision_mean"].to_numpy(), abs=EXACT)
