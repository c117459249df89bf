from __future__ import annotations

import json

import pytest

from monai_explain.apps.synthetic import is_generated, normalize_parameters, write_manifest

PARAMS = {"seed": 0, "size": (4, 5), "name": "x"}


def test_normalize_parameters():
    assert normalize_parameters({"b": (1, 2), "a": 1.5}) == {"a": 1.5, "b": [1, 2]}


def test_no_manifest_means_not_generated(tmp_path):
    assert is_generated(tmp_path, "k", "1", PARAMS) is False


def test_round_trip_and_files(tmp_path):
    write_manifest(tmp_path, "k", "1", PARAMS, {"train": {"images": 3}})
    body = json.loads((tmp_path / "manifest.json").read_text())
    assert body == {"kind": "k", "version": "1", "parameters": {"name": "x", "seed": 0, "size": [4, 5]},
                    "counts": {"train": {"images": 3}}}  # fmt: skip
    assert is_generated(tmp_path, "k", "1", dict(PARAMS, size=[4, 5])) is True
    (tmp_path / "a.txt").write_text("a")
    assert is_generated(tmp_path, "k", "1", PARAMS, files=["a.txt"]) is True
    assert is_generated(tmp_path, "k", "1", PARAMS, files=["a.txt", "missing.txt"]) is False


@pytest.mark.parametrize(
    "kind, version, params, match",
    [
        ("k", "1", dict(PARAMS, seed=1), "differing: seed"),
        ("k", "2", PARAMS, "differing: version"),
        ("other", "1", PARAMS, "differing: kind"),
        ("k", "1", dict(PARAMS, size=(4, 6), name="y"), "differing: name, size"),
    ],
)
def test_differing_manifest_raises_or_regenerates(tmp_path, kind, version, params, match):
    write_manifest(tmp_path, "k", "1", PARAMS, {})
    with pytest.raises(ValueError, match=match):
        is_generated(tmp_path, kind, version, params)
    assert is_generated(tmp_path, kind, version, params, overwrite=True) is False


def test_corrupt_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        is_generated(tmp_path, "k", "1", PARAMS)
