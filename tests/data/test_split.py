"""split_data_list: by field, by ratios (MONAI's partition_dataset), stratified."""

from __future__ import annotations

import numpy as np
import pytest
from monai.data import partition_dataset

from monai_explain.data import split_data_list


def _data(n=10):
    return [{"id": i, "label": i % 2, "split": ["train", "val", "test"][i % 3]} for i in range(n)]


def test_by_field_keeps_order():
    parts = split_data_list(_data(), by="split")
    assert list(parts) == ["train", "val", "test"]
    assert {k: [d["id"] for d in v] for k, v in parts.items()} == {
        "train": [0, 3, 6, 9],
        "val": [1, 4, 7],
        "test": [2, 5, 8],
    }


def test_ratios_match_partition_dataset():
    data = _data()
    parts = split_data_list(data, ratios=[0.6, 0.2, 0.2], seed=3)
    assert parts == partition_dataset(data, ratios=[0.6, 0.2, 0.2], shuffle=True, seed=3)
    assert [len(p) for p in parts] == [6, 2, 2]
    assert sorted(d["id"] for p in parts for d in p) == list(range(10))
    unshuffled = split_data_list(data, ratios=[0.5, 0.5], shuffle=False)
    assert [[d["id"] for d in p] for p in unshuffled] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]


@pytest.mark.parametrize("as_array", [False, True])
def test_stratified_multi_hot(as_array):
    # 4 records with label [1, 0] and 4 with [0, 1]: a 50/50 split keeps 2 of each stratum per part
    data = [{"id": i, "label": [1.0, 0.0] if i < 4 else [0.0, 1.0]} for i in range(8)]
    if as_array:
        for d in data:
            d["label"] = np.asarray(d["label"])
    parts = split_data_list(data, ratios=[1, 1], stratify_by="label", seed=0)
    for part in parts:
        assert sorted(tuple(np.asarray(d["label"]).tolist()) for d in part) == [(0.0, 1.0)] * 2 + [(1.0, 0.0)] * 2


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({}, "exactly one of ratios and by"),
        ({"ratios": [1], "by": "split"}, "exactly one of ratios and by"),
        ({"ratios": [1, -1]}, "non-negative"),
        ({"ratios": [0, 0]}, "positive sum"),
        ({"by": "fold"}, r"record 0 \(id 0\) has no field 'fold'"),
        ({"ratios": [1, 1], "stratify_by": "fold"}, "has no field 'fold'"),
    ],
)
def test_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        split_data_list(_data(), **kwargs)
