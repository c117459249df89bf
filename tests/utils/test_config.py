"""Strict config values (booleans, numbers) and override keys of ``python -m monai.bundle run``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from monai_explain.utils import as_bool, as_float, as_int, check_command_line_overrides, check_override_keys, config_ids

MAIN = "/venv/lib/python3.11/site-packages/monai/bundle/__main__.py"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("false", False), ("False", False), ("FALSE", False), ("0", False), ("no", False), ("off", False),
        (" Off ", False), (False, False), (0, False), (np.int64(0), False),
        ("true", True), ("True", True), ("1", True), ("yes", True), ("on", True), (True, True), (1, True),
    ],
)  # fmt: skip
def test_as_bool_accepts_the_usual_spellings(value, expected):
    assert as_bool(value, "resume") is expected


@pytest.mark.parametrize("value", ["flase", "", "2", "none", 2, -1, 0.5, None, [], "t"])
def test_as_bool_rejects_anything_else_naming_the_key(value):
    with pytest.raises(ValueError, match=r"'generate_synthetic' must be a boolean"):
        as_bool(value, "generate_synthetic")


@pytest.mark.parametrize("value, expected", [("12", 12), (" 3 ", 3), (7, 7), (4.0, 4), ("5.0", 5), ("-2", -2)])
def test_as_int(value, expected):
    out = as_int(value, "epochs")
    assert out == expected and type(out) is int


@pytest.mark.parametrize("value", ["12x", "1.5", 1.5, True, None, "nan", float("inf"), "", [3]])
def test_as_int_rejects_naming_the_key(value):
    with pytest.raises(ValueError, match=r"'epochs' must be an integer"):
        as_int(value, "epochs")


def test_as_int_minimum():
    assert as_int("1", "batch_size", minimum=1) == 1
    with pytest.raises(ValueError, match=r"'batch_size' must be >= 1, got '0'"):
        as_int("0", "batch_size", minimum=1)


@pytest.mark.parametrize("value, expected", [("1e-3", 1e-3), ("0.3", 0.3), (2, 2.0), (0.25, 0.25), ("-1", -1.0)])
def test_as_float(value, expected):
    out = as_float(value, "learning_rate")
    assert out == expected and type(out) is float


@pytest.mark.parametrize("value", ["0.3x", True, None, "nan", "inf", float("-inf"), "", "1,5"])
def test_as_float_rejects_naming_the_key(value):
    with pytest.raises(ValueError, match=r"'lambda' must be a (finite )?number"):
        as_float(value, "lambda")


def test_as_float_non_finite_allowed_on_request():
    assert math.isinf(as_float("inf", "x", finite=False))


def test_config_ids_addresses_nested_entries():
    assert config_ids({"a": 1, "b": {"c": [5, {"d": 0}]}}) == ["a", "b", "b#c", "b#c#0", "b#c#1", "b#c#1#d"]


@pytest.fixture()
def configs(tmp_path):
    train = tmp_path / "train.json"
    train.write_text(json.dumps({"lambda": 3.0, "resume": False, "synthetic": {"n_train": 4}, "run": []}))
    evaluate = tmp_path / "evaluate.json"
    evaluate.write_text(json.dumps({"test_split": "test"}))
    return train, evaluate


def test_check_override_keys_lists_close_matches(configs):
    train, evaluate = configs
    check_override_keys(train, ["lambda", "synthetic#n_train", "_meta_#version"])
    check_override_keys([train, evaluate], ["test_split"])
    with pytest.raises(ValueError, match=r"'lamda' \(did you mean 'lambda'\?\)"):
        check_override_keys(train, ["lamda"])
    with pytest.raises(ValueError, match=r"'synthetic#n_trian' \(did you mean 'synthetic#n_train'"):
        check_override_keys(train, ["synthetic#n_trian"])
    with pytest.raises(ValueError, match=r"'test_split' \(no similar id\)"):
        check_override_keys(train, ["test_split"])


def test_command_line_check_reads_fire_arguments(configs, tmp_path):
    train, evaluate = configs
    ok = [MAIN, "run", "--config_file", str(train), "--lambda", "0.3", "--resume=false", "--logging_file", "x.conf"]
    check_command_line_overrides(ok)
    check_command_line_overrides([MAIN, "run", "training", "--config_file", f"['{train}','{evaluate}']",
                                  "--test-split", "test_shifted", "--meta_file", "m.json"])  # fmt: skip
    check_command_line_overrides([MAIN, "run", "--config_file", str(train), "--tracking", "mlflow", "--run_name", "r"])
    with pytest.raises(ValueError, match=r"'lamda' \(did you mean 'lambda'\?\)"):
        check_command_line_overrides([MAIN, "run", "--config_file", str(train), "--lamda", "0.3"])
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"config_file": str(train), "resumee": True}))
    with pytest.raises(ValueError, match=r"'resumee' \(did you mean 'resume'\?\)"):
        check_command_line_overrides([MAIN, "run", "--args_file", str(args)])
    # not a ``monai.bundle run`` command line (pytest, a ConfigWorkflow built in Python, ckpt_export): no check
    check_command_line_overrides(["pytest", "run", "--config_file", str(train), "--lamda", "0.3"])
    check_command_line_overrides([MAIN, "ckpt_export", "--config_file", str(train), "--filepath", "m.ts"])
