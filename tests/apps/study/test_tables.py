from __future__ import annotations

import math

import numpy as np
import pytest

from monai_explain.apps.study.tables import (
    PerImageTable,
    align_per_image,
    group_runs,
    metric_keys,
    read_csv,
    read_per_image_csv,
    setting_label,
    validate_runs,
    write_csv,
)


def _run(run_id, design="energy", lam=0.1, seed=0, **metrics):
    return {"design": design, "lambda": lam, "seed": seed, "run_id": run_id, **metrics}


def test_validate_runs_normalises():
    out = validate_runs([_run("a", lam=1, seed=2.0, accuracy=0.5)])
    assert out == [{"design": "energy", "lambda": 1.0, "seed": 2, "run_id": "a", "accuracy": 0.5}]
    assert isinstance(out[0]["seed"], int)


@pytest.mark.parametrize(
    "runs, match",
    [
        ([], "empty"),
        ([{"design": "e", "lambda": 0.1, "run_id": "a"}], r"lacks the key\(s\) \['seed'\]"),
        ([_run("a", lam=-1.0)], "run a: 'lambda' must be finite and >= 0"),
        ([_run("a", lam="big")], "run a: 'lambda' must be a number"),
        ([_run("a", seed=0.5)], "run a: 'seed' must be an integer"),
        ([_run("a"), _run("a", seed=1)], "run_id 'a' appears twice"),
        ([_run("a"), _run("b")], "runs 'a' and 'b' have the same design/lambda/seed"),
    ],
)
def test_validate_runs_errors(runs, match):
    with pytest.raises(ValueError, match=match):
        validate_runs(runs)


def test_metric_keys():
    runs = [_run("a", accuracy=0.5, path="x.csv", note=None), _run("b", seed=1, accuracy=None, auc=0.7)]
    assert metric_keys(runs) == ["accuracy", "auc"]
    with pytest.raises(ValueError, match="key 'accuracy' holds numbers"):
        metric_keys([_run("a", accuracy=0.5), _run("b", seed=1, accuracy="high")])


def test_group_runs_and_label():
    runs = validate_runs([_run("c", "l1", 0.0, 1), _run("b", "energy", 1.0, 1), _run("a", "energy", 1.0, 0)])
    groups = group_runs(runs)
    assert list(groups) == [("energy", 1.0), ("l1", 0.0)]
    assert [r["run_id"] for r in groups[("energy", 1.0)]] == ["a", "b"]
    assert setting_label(("energy", 0.01)) == "energy lambda=0.01"


def test_read_per_image_csv(tmp_path):
    p = tmp_path / "pi.csv"
    p.write_text("image_id,correct,precision\nimg1,1,0.5\nimg2,0,\nimg3,1,nan\n")
    t = read_per_image_csv(p)
    assert t.image_ids == ["img1", "img2", "img3"] and len(t) == 3
    np.testing.assert_array_equal(t.column("correct"), [1.0, 0.0, 1.0])
    assert t.column("precision")[0] == 0.5 and np.isnan(t.column("precision")[1:]).all()
    with pytest.raises(KeyError, match="no column 'coverage'"):
        t.column("coverage")


@pytest.mark.parametrize(
    "text, match",
    [
        ("id,correct\na,1\n", "no 'image_id' column"),
        ("image_id,correct\na,1\nb,yes\n", r"line 3, column 'correct': 'yes' is not a number"),
        ("image_id,correct\na,1\n,0\n", "line 3: empty 'image_id'"),
        ("image_id,correct\na,1\na,0\n", r"duplicated image id\(s\) \['a'\]"),
    ],
)
def test_read_per_image_csv_errors(tmp_path, text, match):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_per_image_csv(p)


def test_read_per_image_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_per_image_csv(tmp_path / "none.csv")


def test_per_image_table_length_check():
    with pytest.raises(ValueError, match="column 'x' has 2 values for 3 images"):
        PerImageTable(["a", "b", "c"], {"x": [1.0, 2.0]})


def test_align_per_image_counts_unmatched():
    t1 = PerImageTable(["a", "b", "c"], {"v": [1.0, 2.0, 3.0]}, source="t1")
    t2 = PerImageTable(["c", "a", "d"], {"v": [30.0, 10.0, 40.0]}, source="t2")
    ids, vals, n_unmatched = align_per_image([t1, t2], "v")
    assert ids == ["a", "c"] and n_unmatched == 2  # b and d
    np.testing.assert_array_equal(vals, [[1.0, 3.0], [10.0, 30.0]])
    with pytest.raises(ValueError, match="at least one table"):
        align_per_image([], "v")


def test_write_read_csv_roundtrip(tmp_path):
    rows = [{"a": 0.1 + 0.2, "b": None, "c": float("nan")}, {"a": 1, "d": "x", "e": True}]
    p = write_csv(rows, tmp_path / "sub" / "t.csv")
    back = read_csv(p)
    assert list(back[0]) == ["a", "b", "c", "d", "e"]
    assert float(back[0]["a"]) == 0.1 + 0.2 and back[0]["b"] == "" and math.isnan(float(back[0]["c"]))
    assert back[1] == {"a": "1", "b": "", "c": "", "d": "x", "e": "True"}
    with pytest.raises(ValueError, match=r"row #0 has keys \['z'\]"):
        write_csv([{"a": 1, "z": 2}], tmp_path / "u.csv", fieldnames=["a"])
