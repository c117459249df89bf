from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from monai_explain.apps.study.comparisons import (
    apply_holm,
    baseline_runs,
    compare_per_image,
    compare_seeds,
    load_per_image,
    summarize_runs,
)
from monai_explain.apps.study.stats import SeedComparison, holm_bonferroni
from monai_explain.apps.study.tables import PerImageTable, group_runs, validate_runs

NAN = float("nan")


def _run(run_id, design, lam, seed, **metrics):
    return {"design": design, "lambda": lam, "seed": seed, "run_id": run_id, **metrics}


def test_baseline_own_and_pooled():
    runs = validate_runs([
        _run("e0s0", "energy", 0.0, 0), _run("e1s0", "energy", 1.0, 0),
        _run("n0s0", "none", 0.0, 0), _run("n0s1", "none", 0.0, 1), _run("a0s0", "aaa", 0.0, 0),
        _run("l1s0", "l1", 1.0, 0),
    ])  # fmt: skip
    groups = group_runs(runs)
    assert [r["run_id"] for r in baseline_runs(groups, "energy")] == ["e0s0"]  # its own lambda=0
    # pooled: one run per seed, the alphabetically first design wins seed 0
    assert [r["run_id"] for r in baseline_runs(groups, "l1")] == ["a0s0", "n0s1"]
    assert baseline_runs({("l1", 1.0): [runs[-1]]}, "l1") == []


def test_summarize_runs_by_hand():
    runs = [
        _run("a", "energy", 0.5, 0, accuracy=0.8, auc=None),
        _run("b", "energy", 0.5, 1, accuracy=0.9, auc=0.7),
        _run("c", "energy", 0.5, 2, accuracy=1.0, auc=0.9),
        _run("d", "energy", 0.0, 0, accuracy=0.6, auc=0.5),
    ]
    rows = summarize_runs(runs)
    assert [r["setting"] for r in rows] == ["energy lambda=0", "energy lambda=0.5"]
    r = rows[1]
    assert (r["n_runs"], r["seeds"], r["accuracy_n"], r["auc_n"]) == (3, "0;1;2", 3, 2)
    half = 4.302652729749462 * 0.1 / math.sqrt(3)
    assert r["accuracy_mean"] == pytest.approx(0.9) and r["accuracy_std"] == pytest.approx(0.1)
    assert (r["accuracy_ci_low"], r["accuracy_ci_high"]) == (pytest.approx(0.9 - half), pytest.approx(0.9 + half))
    assert r["auc_mean"] == pytest.approx(0.8)
    assert rows[0]["accuracy_mean"] == 0.6 and math.isnan(rows[0]["accuracy_ci_low"])


def _tiny_study():
    """energy: lambda 0 and 1, seeds 0 and 1, 4 images (d only in two of the tables)."""
    runs = [_run(f"e{lam}s{s}", "energy", float(lam), s) for lam in (0, 1) for s in (0, 1)]
    ids = ["a", "b", "c"]
    tables = {
        "e0s0": PerImageTable(ids, {"precision": [0.1, 0.2, NAN], "correct": [1, 0, 1]}),
        "e0s1": PerImageTable(ids, {"precision": [0.3, 0.2, NAN], "correct": [1, 1, 0]}),
        "e1s0": PerImageTable(ids + ["d"], {"precision": [0.5, 0.4, NAN, 0.9], "correct": [1, 1, 1, 1]}),
        "e1s1": PerImageTable(ids + ["d"], {"precision": [0.7, NAN, NAN, 0.9], "correct": [1, 1, 1, 0]}),
    }
    return runs, tables


def test_compare_per_image_seed_average_by_hand():
    runs, tables = _tiny_study()
    res = compare_per_image(runs, tables, metrics=["precision", "correct"], n_resamples=200)
    wil = [r for r in res if r.test == "wilcoxon"]
    mcn = [r for r in res if r.test == "mcnemar_exact"]
    assert [r.metric for r in wil] == ["precision", "correct"]
    prec = wil[0]
    # seed means: baseline a 0.2, b 0.2, c NaN; setting a 0.6, b 0.4 (NaN-aware), c NaN; d only in the setting
    assert (prec.n_images, prec.n_pairs, prec.n_nan_dropped, prec.n_unmatched) == (3, 2, 1, 1)
    assert prec.baseline_mean == pytest.approx(0.2) and prec.setting_mean == pytest.approx(0.5)
    assert prec.mean_diff == pytest.approx(0.3)
    assert (prec.setting, prec.design, prec.lambda_, prec.baseline, prec.seed) == (
        "energy lambda=1",
        "energy",
        1.0,
        "energy lambda=0",
        None,
    )
    corr = wil[1]  # baseline means 1, 0.5, 0.5; setting 1, 1, 1 -> differences 0, 0.5, 0.5
    assert corr.mean_diff == pytest.approx(1 / 3) and corr.n_zero_diff == 1
    # McNemar per seed: seed 0: baseline 1,0,1 vs 1,1,1 -> setting-only 1; seed 1: 1,1,0 vs 1,1,1 -> 1
    assert [(r.seed, r.n_baseline_only, r.n_setting_only, r.p_value) for r in mcn] == [(0, 0, 1, 1.0), (1, 0, 1, 1.0)]
    assert mcn[0].baseline == "energy lambda=0"


def test_compare_per_image_holm_families():
    runs, tables = _tiny_study()
    runs.append(_run("e2s0", "energy", 2.0, 0))
    tables["e2s0"] = PerImageTable(["a", "b", "c"], {"precision": [0.9, 0.8, 0.7], "correct": [0, 0, 0]})
    res = compare_per_image(runs, tables, metrics=["precision"], mcnemar_metric=None, n_resamples=100)
    assert len(res) == 2 and all(r.test == "wilcoxon" for r in res)
    np.testing.assert_allclose([r.p_holm for r in res], holm_bonferroni([r.p_value for r in res]))


def test_compare_per_image_default_metrics_and_errors(tmp_path):
    runs, tables = _tiny_study()
    res = compare_per_image(runs, tables, n_resamples=50)  # defaults: those present in every table
    assert sorted({r.metric for r in res}) == ["correct", "precision"]
    with pytest.raises(KeyError, match="no column 'coverage'"):
        compare_per_image(runs, tables, metrics=["coverage"], n_resamples=50)
    with pytest.raises(ValueError, match=r"unknown run_id\(s\) \['zzz'\]"):
        load_per_image(validate_runs(runs), {"zzz": tables["e0s0"]})


def test_compare_per_image_missing_tables_skip_setting():
    runs, tables = _tiny_study()
    del tables["e1s0"], tables["e1s1"]
    assert compare_per_image(runs, tables, metrics=["precision"], n_resamples=50) == []


def test_compare_seeds_welch_and_paired():
    runs = [
        _run("b0", "energy", 0.0, 0, accuracy=0.80), _run("b1", "energy", 0.0, 1, accuracy=0.82),
        _run("b2", "energy", 0.0, 2, accuracy=0.78),
        _run("s0", "energy", 1.0, 0, accuracy=0.75), _run("s1", "energy", 1.0, 1, accuracy=0.79),
        _run("s2", "energy", 1.0, 2, accuracy=0.74),
    ]  # fmt: skip
    (w,) = compare_seeds(runs)
    direct = sps.ttest_ind([0.75, 0.79, 0.74], [0.80, 0.82, 0.78], equal_var=False)
    assert isinstance(w, SeedComparison) and w.test == "welch_t" and w.metric == "accuracy"
    assert w.p_value == pytest.approx(direct.pvalue) and w.p_holm == pytest.approx(direct.pvalue)
    assert w.mean_diff == pytest.approx(-0.04) and w.setting == "energy lambda=1"
    (p,) = compare_seeds(runs, method="paired")
    assert p.p_value == pytest.approx(sps.ttest_rel([0.75, 0.79, 0.74], [0.80, 0.82, 0.78]).pvalue)
    with pytest.raises(ValueError, match=r"metric\(s\) \['auc'\] are in no run"):
        compare_seeds(runs, metrics=["auc"])


def test_apply_holm_families():
    res = [
        SeedComparison("accuracy", "welch_t", 2, 2, 0, 0, 0, 0, 0, 0, 0, 0.01),
        SeedComparison("auc", "welch_t", 2, 2, 0, 0, 0, 0, 0, 0, 0, 0.04),
        SeedComparison("accuracy", "welch_t", 2, 2, 0, 0, 0, 0, 0, 0, 0, 0.04),
    ]
    assert [r.p_holm for r in apply_holm(res)] == pytest.approx([0.02, 0.04, 0.04])
