"""The study's figures: PNG files drawn from its DataFrames (and clear errors for tables they cannot draw)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monai_explain.apps.study.plots import plot_paired_differences, plot_pareto, plot_tradeoff, stack_figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 1024


def _summary() -> pd.DataFrame:
    rows = []
    for design, slope in (("energy", 0.2), ("l1", 0.1)):
        for lam in (0.0, 0.1, 1.0):
            m = 0.3 + slope * lam
            rows.append({"design": design, "lambda": lam, "mean": m, "ci_low": m - 0.05, "ci_high": m + 0.05})
    out = pd.DataFrame(rows)
    out.loc[len(out) - 1, "ci_low"] = np.nan  # one setting without a CI (single seed)
    return out


def test_plot_tradeoff(tmp_path):
    _assert_png(plot_tradeoff(_summary(), tmp_path / "a" / "t.png", "precision", "precision vs lambda"))
    one_base = pd.concat([_summary()[_summary()["lambda"] > 0], _summary().iloc[:1]])  # a single lambda = 0 row
    _assert_png(plot_tradeoff(one_base, tmp_path / "t2.png"))
    with pytest.raises(ValueError, match="no rows"):
        plot_tradeoff(_summary().iloc[:0], tmp_path / "x.png")
    with pytest.raises(KeyError, match="ci_high"):
        plot_tradeoff(_summary().drop(columns="ci_high"), tmp_path / "x.png")


def test_plot_pareto(tmp_path):
    front = _summary().rename(columns={"mean": "y"}).assign(x=lambda t: 0.9 - 0.05 * t["lambda"], on_front=False)
    front.loc[[0, 2], "on_front"] = True
    _assert_png(plot_pareto(front, tmp_path / "p.png", "accuracy", "precision"))


def test_plot_paired_differences(tmp_path):
    rows = [
        {"test": "wilcoxon", "metric": m, "setting": s, "mean_diff": d, "ci_low": d - 0.1, "ci_high": d + 0.1,
         "p_holm": p}
        for m in ("precision", "coverage", "correct", "deletion_auc")
        for s, d, p in (("energy lambda=1", 0.2, 0.001), ("l1 lambda=1", 0.05, 0.4))
    ] + [{"test": "mcnemar_exact", "metric": "correct", "setting": "x"}]  # fmt: skip
    _assert_png(plot_paired_differences(pd.DataFrame(rows), tmp_path / "f.png"))
    with pytest.raises(ValueError, match="no rows"):
        plot_paired_differences(pd.DataFrame(rows[-1:]), tmp_path / "f.png")


def test_stack_figures_puts_figures_one_above_the_other(tmp_path):
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    for name, shape in (("a.png", (30, 60, 3)), ("b.png", (40, 60, 3))):
        plt.imsave(tmp_path / name, rng.random(shape))
    path = stack_figures({"lambda=0": tmp_path / "a.png", "energy lambda=1": tmp_path / "b.png"}, tmp_path / "g.png")
    _assert_png(path)
    out = plt.imread(path)
    assert out.shape[0] > out.shape[1] * 0.9, "two panels stacked vertically, each 1:2, make a roughly square figure"
    with pytest.raises(FileNotFoundError, match="c.png of 'x'"):
        stack_figures({"x": tmp_path / "c.png"}, tmp_path / "h.png")
    with pytest.raises(ValueError, match="at least one figure"):
        stack_figures({}, tmp_path / "h.png")
