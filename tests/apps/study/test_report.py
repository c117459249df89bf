from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from monai_explain.apps.study.report import write_report
from monai_explain.apps.study.tables import read_csv

N_IMAGES = 24
RUN_METRICS = ("accuracy", "accuracy_shifted", "auc", "coverage", "precision", "chance_level", "deletion_auc")


def _study(tmp_path, with_paths=False):
    """2 designs x lambda {0, 1} x seeds {0, 1}; supervision raises precision/coverage per image."""
    rng = np.random.default_rng(7)
    negatives = np.arange(N_IMAGES) % 6 == 0  # no annotation: NaN alignment
    chance = 0.05 + 0.2 * rng.random(N_IMAGES)
    runs, per_image = [], {}
    for design, gain in (("energy", 0.25), ("l1", 0.1)):
        for lam in (0.0, 1.0):
            for seed in (0, 1):
                run_id = f"{design}-{lam:g}-s{seed}"
                prec = np.clip(0.3 + gain * lam + 0.05 * rng.standard_normal(N_IMAGES), 0, 1)
                cov = np.clip(0.5 + gain * lam / 2 + 0.05 * rng.standard_normal(N_IMAGES), 0, 1)
                prec[negatives], cov[negatives] = np.nan, np.nan
                correct = (rng.random(N_IMAGES) < 0.8).astype(int)
                dele = 0.4 - 0.1 * lam + 0.05 * rng.standard_normal(N_IMAGES)
                path = tmp_path / "runs" / f"{run_id}.csv"
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("w", newline="") as f:
                    w = csv.writer(f)
                    w.writerow(
                        ["image_id", "correct", "probability", "coverage", "precision", "chance_level", "deletion_auc"]
                    )
                    for i in range(N_IMAGES):
                        w.writerow(
                            [f"img{i:03d}", correct[i], f"{rng.random():.4f}", cov[i], prec[i], chance[i], dele[i]]
                        )
                run = {
                    "design": design, "lambda": lam, "seed": seed, "run_id": run_id,
                    "accuracy": float(correct.mean()), "accuracy_shifted": float(correct.mean()) - 0.1 - 0.01 * seed,
                    "auc": 0.85 + 0.01 * seed + 0.02 * lam, "coverage": float(np.nanmean(cov)),
                    "precision": float(np.nanmean(prec)), "chance_level": float(chance[~negatives].mean()),
                    "deletion_auc": float(dele.mean()), "train_time": 10.0 + seed,
                }  # fmt: skip
                if with_paths:
                    run["per_image_csv"] = str(path)
                runs.append(run)
                per_image[run_id] = path
    return runs, per_image


def test_write_report_files_and_numbers(tmp_path):
    runs, per_image = _study(tmp_path)
    rng = np.random.default_rng(1)
    images = rng.random((2, 1, 16, 16))
    masks = np.zeros((2, 1, 16, 16))
    masks[:, :, 4:10, 3:9] = 1.0
    gallery = {
        "images": images,
        "masks": masks,
        "image_titles": ["img000", "img001"],
        "saliency": {"lambda=0": rng.random((2, 1, 16, 16)), "energy lambda=1": rng.random((2, 1, 16, 16))},
    }
    out = tmp_path / "report"
    md_path = write_report(runs, out, per_image, n_resamples=300, seed=3, gallery=gallery)
    assert md_path == out / "summary.md"

    expected = {
        "runs.csv",
        "summary.csv",
        "stats.csv",
        "pareto.csv",
        "pareto.png",
        "paired_differences.png",
        "gallery.png",
        "summary.md",
    } | {
        f"tradeoff_{m}.png"
        for m in ("accuracy", "accuracy_shifted", "precision", "coverage", "chance_level", "deletion_auc")
    }
    assert {p.name for p in out.iterdir()} == expected
    for name in expected:
        assert (out / name).stat().st_size > 0
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert len(read_csv(out / "runs.csv")) == 8

    # summary.csv: one row per setting, means over seeds equal to the runs' means computed here
    summary = read_csv(out / "summary.csv")
    assert [(r["design"], float(r["lambda"])) for r in summary] == [
        ("energy", 0.0),
        ("energy", 1.0),
        ("l1", 0.0),
        ("l1", 1.0),
    ]
    for row in summary:
        mine = [r for r in runs if r["design"] == row["design"] and r["lambda"] == float(row["lambda"])]
        assert int(row["n_runs"]) == 2 and row["seeds"] == "0;1"
        for m in RUN_METRICS + ("train_time",):
            values = np.array([r[m] for r in mine])
            assert float(row[f"{m}_mean"]) == pytest.approx(values.mean(), rel=1e-12, abs=1e-15)
            assert float(row[f"{m}_std"]) == pytest.approx(values.std(ddof=1), rel=1e-9, abs=1e-15)
            half = 12.706204736174694 * values.std(ddof=1) / math.sqrt(2)  # t quantile 0.975, 1 df
            assert float(row[f"{m}_ci_low"]) == pytest.approx(values.mean() - half, abs=1e-12)

    # stats.csv: 2 supervised settings x 5 per-image metrics (Wilcoxon) + 2 x 2 seeds (McNemar) + 2 x 3 (Welch)
    stats = read_csv(out / "stats.csv")
    tests = [r["test"] for r in stats]
    assert tests.count("wilcoxon") == 10 and tests.count("mcnemar_exact") == 4 and tests.count("welch_t") == 6
    prec = next(r for r in stats if r["setting"] == "energy lambda=1" and r["metric"] == "precision")
    assert int(prec["n_nan_dropped"]) == 4 and int(prec["n_pairs"]) == N_IMAGES - 4
    assert float(prec["ci_low"]) > 0 and float(prec["p_holm"]) < 0.05
    for r in stats:
        if r["p_value"] not in ("", "nan"):
            assert float(r["p_holm"]) >= float(r["p_value"]) - 1e-15

    pareto = read_csv(out / "pareto.csv")
    assert len(pareto) == 4 and any(r["on_front"] == "True" for r in pareto)

    md = md_path.read_text()
    for section in (
        "## Headline",
        "## Pareto front",
        "## Paired per-image tests",
        "## Across-seed tests",
        "## Files",
        "## Reading",
        "`gallery.png`",
        "`tradeoff_precision.png`",
    ):
        assert section in md
    assert "The best mean precision among supervised settings is energy lambda=1" in md
    assert "only 2 seed(s)" in md


def test_write_report_paths_from_runs_and_no_baseline(tmp_path):
    runs, _ = _study(tmp_path, with_paths=True)
    md = write_report(runs, tmp_path / "r1", n_resamples=100).read_text()
    assert "McNemar exact test" in md
    assert "per_image_csv" in (tmp_path / "r1" / "runs.csv").read_text().splitlines()[0]

    supervised_only = [r for r in runs if r["lambda"] > 0]
    md = write_report(supervised_only, tmp_path / "r2", n_resamples=100).read_text()
    assert "no lambda = 0 run" in md
    assert len(read_csv(tmp_path / "r2" / "stats.csv")) == 0
    assert not (tmp_path / "r2" / "paired_differences.png").exists()


def test_write_report_bad_runs(tmp_path):
    runs, per_image = _study(tmp_path)
    runs[3] = {k: v for k, v in runs[3].items() if k != "seed"}
    with pytest.raises(ValueError, match=r"lacks the key\(s\) \['seed'\]"):
        write_report(runs, tmp_path / "r", per_image)
