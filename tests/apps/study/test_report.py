"""The study on a tiny multi-label example (two classes, split names other than test / test_shifted), through the
command line: per-class and macro summaries and tests, the report files; and the baseline rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monai_explain.apps.study import baseline_of, compare_per_image, markdown_table
from monai_explain.apps.study.__main__ import main

CLASSES = ["Nodule/Mass", "Pleural effusion"]


def _multilabel_study(n: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    labels = {s: rng.integers(0, 2, (n, 2)) for s in ("internal", "external")}
    rows = []
    for design, lam in (("none", 0.0), ("dice", 3.0)):
        for seed in (0, 1):
            for split, y in labels.items():
                for i in range(n):
                    for k, cls in enumerate(CLASSES):
                        skill = 1.0 + 0.6 * lam * (split == "external")
                        p = 1 / (1 + np.exp(-((2 * y[i, k] - 1) * skill + rng.normal(0, 1.2))))
                        prec = rng.uniform(0.1, 0.3) + 0.1 * lam if y[i, k] else np.nan
                        rows.append({"design": design, "lambda": lam, "seed": seed, "id": f"{split}{i}",
                                     "split": split, "class": cls, "label": y[i, k], "probability": p,
                                     "threshold": 0.4, "decision": int(p >= 0.4), "correct": int((p >= 0.4) == y[i, k]),
                                     "saliency_precision": prec})  # fmt: skip
    return pd.DataFrame(rows)


def test_multilabel_study_from_the_command_line(tmp_path, capsys):
    table = tmp_path / "study.csv"
    _multilabel_study().to_csv(table, index=False)
    out = tmp_path / "report"
    assert main(["report", "--table", str(table), "--out", str(out), "--n_resamples", "500"]) == 0
    assert "summary.md" in capsys.readouterr().out
    for name in ("per_image.csv", "runs.csv", "summary.csv", "stats.csv", "pareto.csv", "summary.md", "pareto.png",
                 "paired_differences.png", "tradeoff_external_accuracy.png"):  # fmt: skip
        assert (out / name).is_file(), name
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["class"]) == set(CLASSES) | {"macro"} and set(summary["split"]) == {"internal", "external"}
    runs = pd.read_csv(out / "runs.csv").set_index(["design", "seed", "split", "class", "metric"])["value"]
    for key in (("dice", 0, "external"), ("none", 1, "internal")):
        per_class = [runs[(*key, c, "accuracy")] for c in CLASSES]
        assert runs[(*key, "macro", "accuracy")] == pytest.approx(np.mean(per_class))
    stats = pd.read_csv(out / "stats.csv")
    wil = stats[(stats["test"] == "wilcoxon") & (stats["metric"] == "correct") & (stats["split"] == "external")]
    assert set(wil["class"]) == set(CLASSES) | {"macro"}
    assert (wil["mean_diff"] > 0).all()  # supervision helps on the external split in this example
    assert set(stats[stats["test"] == "mcnemar_exact"]["seed"]) == {0, 1}
    md = (out / "summary.md").read_text()
    assert "| external | Pleural effusion | dice lambda=3 |" in md and "## Tests vs lambda = 0" in md


def test_baseline_is_the_designs_own_lambda0_or_pooled_one_per_seed():
    df = pd.DataFrame({"design": ["a", "b", "b", "c"], "lambda": [0.0, 0.0, 0.0, 1.0], "seed": [0, 0, 1, 0]})
    assert baseline_of(df, "a")[["design", "seed"]].values.tolist() == [["a", 0]]
    assert baseline_of(df, "c")[["design", "seed"]].values.tolist() == [["a", 0], ["b", 1]]


def test_unmatched_images_are_counted():
    df = _multilabel_study(6)
    df = df[~((df["design"] == "dice") & (df["id"] == "internal0"))]
    res = compare_per_image(df, ["correct"], n_resamples=100)
    row = res[(res["test"] == "wilcoxon") & (res["split"] == "internal") & (res["class"] == CLASSES[0])].iloc[0]
    assert row["n_pairs"] == 5 and row["n_unmatched"] == 1  # internal0 has no partner


def test_markdown_table():
    md = markdown_table(pd.DataFrame({"a": ["x", "y"], "b": [0.12345, float("nan")]}))
    assert md.splitlines() == ["| a | b |", "|---|---|", "| x | 0.123 |", "| y | n/a |"]
