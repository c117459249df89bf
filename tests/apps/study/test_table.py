"""The study table: reading and validating per-image tables, macro rows, per-run metrics by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from monai_explain.apps.study import add_macro, metric_columns, read_per_image, run_metrics, validate_per_image

HEADER = "id,split,class,label,probability,threshold,decision,correct,saliency_precision\n"


def _write(path, rows):
    path.write_text(HEADER + "".join(rows))
    return path


def test_read_stacks_runs_and_computes_run_metrics_by_hand(tmp_path):
    a = _write(tmp_path / "a.csv", ["i1,test,A,1,0.9,0.5,1,1,0.4\n", "i2,test,A,0,0.6,0.5,1,0,\n",
                                    "i3,test,A,0,0.2,0.5,0,1,\n", "i4,test,A,1,0.3,0.5,0,0,0.2\n"])  # fmt: skip
    b = _write(tmp_path / "b.csv", ["i1,ext,A,1,0.8,0.5,1,1,0.6\n", "i2,ext,A,0,0.1,0.5,0,1,\n"])
    df = read_per_image({("none", 0.0, 0): [a], ("dice", 1.0, 0): b})
    assert len(df) == 6 and list(df.columns[:4]) == ["design", "lambda", "seed", "id"]
    assert metric_columns(df) == ["saliency_precision"]
    m = run_metrics(df).set_index(["design", "split", "metric"])["value"]
    assert m[("none", "test", "accuracy")] == 0.5
    assert m[("none", "test", "balanced_accuracy")] == 0.5  # sensitivity 1/2, specificity 1/2
    assert m[("none", "test", "auc")] == pytest.approx(0.75)  # positives 0.9, 0.3 vs negatives 0.6, 0.2: 3 of 4 pairs
    assert m[("none", "test", "saliency_precision")] == pytest.approx(0.3)  # over the annotated images only
    assert m[("dice", "ext", "auc")] == 1.0


def test_macro_rows_average_the_classes_of_each_image():
    df = pd.DataFrame({"design": "d", "lambda": 1.0, "seed": 0, "id": ["i", "i", "j", "j"], "split": "t",
                       "class": ["A", "B", "A", "B"], "label": [1, 0, 0, 1], "probability": [0.8, 0.4, 0.1, 0.3],
                       "threshold": 0.5, "decision": [1, 0, 0, 0], "correct": [1, 1, 1, 0],
                       "saliency_precision": [0.5, float("nan"), float("nan"), 0.1]})  # fmt: skip
    out = add_macro(validate_per_image(df)).set_index(["class", "id"])
    assert out.loc[("macro", "i"), "correct"] == 1.0 and out.loc[("macro", "j"), "correct"] == 0.5
    assert out.loc[("macro", "i"), "saliency_precision"] == 0.5  # NaN classes skipped
    metrics = run_metrics(validate_per_image(df)).set_index(["class", "metric"])["value"]
    assert metrics[("macro", "accuracy")] == pytest.approx((1.0 + 0.5) / 2)


@pytest.mark.parametrize(
    "row, match",
    [
        ("i1,test,A,2,0.9,0.5,1,1,0.4\n", "'label' must be 0 or 1"),
        ("i1,test,A,1,high,0.5,1,1,0.4\n", "column 'probability' holds 'high'"),
        ("i1,test,A,1,0.9,0.5,1,1,0.4\ni1,test,A,1,0.9,0.5,1,1,0.4\n", "has image 'i1' \\(test, A\\) twice"),
    ],
)
def test_bad_tables_are_named(tmp_path, row, match):
    path = _write(tmp_path / "bad.csv", [row])
    with pytest.raises(ValueError, match=match):
        read_per_image({("none", 0.0, 0): path})
    with pytest.raises(ValueError, match="missing column"):
        validate_per_image(pd.DataFrame({"id": ["x"]}))
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_per_image({("none", 0.0, 0): tmp_path / "nope.csv"})
