from __future__ import annotations

import pytest

from monai_explain.apps.study.pareto import dominance_counts, pareto_mask, pareto_table

NAN = float("nan")


@pytest.mark.parametrize(
    "x, y, maximize, counts",
    [
        # (2,2) dominates (2,1) (tie in x, better y) and (0,0); (1,3) dominates (0,0)
        ([1, 2, 2, 0], [3, 2, 1, 0], (True, True), [0, 0, 1, 3]),
        # exact duplicates do not dominate each other: both stay on the front
        ([1, 1, 0.5], [1, 1, 0.5], (True, True), [0, 0, 2]),
        # a single point is its own front
        ([0.3], [0.7], (True, True), [0]),
        # NaN objective: never on the front, and dominates nothing
        ([1, NAN, 0.5], [1, 5, 0.2], (True, True), [0, -1, 1]),
        # minimise y (e.g. deletion AUC): (1, 0.1) dominates (1, 0.2) and (0, 0.5)
        ([1, 1, 0, 2], [0.1, 0.2, 0.5, 0.9], (True, False), [0, 1, 2, 0]),
        # a strictly increasing trade-off: all on the front
        ([0.9, 0.8, 0.7], [0.1, 0.2, 0.3], (True, True), [0, 0, 0]),
    ],
)
def test_dominance_by_hand(x, y, maximize, counts):
    assert dominance_counts(x, y, maximize).tolist() == counts
    assert pareto_mask(x, y, maximize).tolist() == [c == 0 for c in counts]


@pytest.mark.parametrize(
    "x, y, maximize, match",
    [
        ([1, 2], [1], (True, True), "differ in length"),
        ([1, 2], [1, 2], (True,), "one flag per objective"),
    ],
)
def test_dominance_bad_input(x, y, maximize, match):
    with pytest.raises(ValueError, match=match):
        dominance_counts(x, y, maximize)


def test_pareto_table_order_and_flags():
    rows = [
        {"setting": "a", "design": "e", "lambda": 0.0, "accuracy_mean": 0.90, "precision_mean": 0.30},
        {"setting": "b", "design": "e", "lambda": 1.0, "accuracy_mean": 0.85, "precision_mean": 0.50},
        {"setting": "c", "design": "l1", "lambda": 1.0, "accuracy_mean": 0.80, "precision_mean": 0.40},
        {"setting": "d", "design": "l1", "lambda": 0.1, "accuracy_mean": None, "precision_mean": 0.90},
        {"setting": "e", "design": "l1", "lambda": 0.5, "accuracy_mean": 0.85, "precision_mean": 0.50},
    ]
    out = pareto_table(rows)
    assert [r["setting"] for r in out] == ["a", "b", "e", "c", "d"]
    assert [r["on_front"] for r in out] == [True, True, True, False, False]
    assert [r["n_dominating"] for r in out] == [0, 0, 0, 2, None]
    assert set(out[0]) == {"design", "lambda", "setting", "accuracy_mean", "precision_mean", "on_front", "n_dominating"}


def test_pareto_table_missing_key():
    with pytest.raises(KeyError, match="row #1 \\(b\\) has no 'precision_mean'"):
        pareto_table([{"setting": "a", "accuracy_mean": 1, "precision_mean": 1}, {"setting": "b", "accuracy_mean": 1}])
