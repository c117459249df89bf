"""Command-line overrides reach the cxr_expl config strictly: 'false' is false, typos and bad values are errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from monai.bundle import ConfigWorkflow

from .conftest import CONFIGS, TINY

pytestmark = pytest.mark.slow


def _user_folder(tmp_path):
    """A user's own (VinDr-like) data set that must never be written into."""
    user = tmp_path / "my_vindr"
    (user / "train").mkdir(parents=True)
    (user / "train.csv").write_text("image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n")
    (user / "train" / "a.dicom").write_bytes(b"user bytes")
    return user


def _bundle(tmp_path, *args, config="train.json"):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", PYTHONPATH=os.getcwd())
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIGS / config)]
    cmd += ["--bundle_root", str(tmp_path / "bundle"), *args]
    return subprocess.run(cmd, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_mistyped_override_is_an_error_before_anything_runs(tmp_path):
    user = _user_folder(tmp_path)
    out = _bundle(tmp_path, "--dataset_dir", str(user), "--lamda", "0.3", "--generate_synthetic", "false")
    assert out.returncode != 0
    assert "unknown config override(s): 'lamda' (did you mean 'lambda'?)" in out.stderr, out.stderr[-3000:]
    assert "'generate_synthetic' (no similar id)" in out.stderr, "the old knob is gone: data preparation is separate"
    assert not (tmp_path / "bundle").exists(), "nothing was trained or written"
    assert sorted(p.name for p in user.rglob("*")) == ["a.dicom", "train", "train.csv"]


def test_unrecognised_boolean_on_the_command_line_is_an_error_naming_the_key(tmp_path, tiny_dataset):
    out = _bundle(tmp_path, "--dataset_dir", str(tiny_dataset), "--epochs", "1", "--amp", "flase")
    assert out.returncode != 0
    assert "config value 'amp' must be a boolean" in out.stderr, out.stderr[-3000:]
    assert not (tmp_path / "bundle" / "models").exists(), "nothing trained"


def test_data_preparation_refuses_the_users_folder(tmp_path):
    """The documented preparation command, pointed at the user's own data set, refuses and writes nothing."""
    user = _user_folder(tmp_path)
    out = _bundle(tmp_path, "--dataset_dir", str(user), config="prepare_data.json")
    assert out.returncode != 0
    assert "refusing to generate synthetic data into" in out.stderr and "train.csv" in out.stderr, out.stderr[-3000:]
    assert sorted(p.name for p in user.rglob("*")) == ["a.dicom", "train", "train.csv"], "user data untouched"
    assert (user / "train.csv").read_text().startswith("image_id,class_name")


def _workflow(tmp_path, dataset_dir, **override):
    return ConfigWorkflow(
        config_file=str(CONFIGS / "train.json"), meta_file=str(CONFIGS / "metadata.json"), logging_file=False,
        workflow_type="train", bundle_root=str(tmp_path / "bundle"), dataset_dir=str(dataset_dir),
        **{**TINY, **override},
    )  # fmt: skip


@pytest.mark.parametrize(
    "key, value, item",
    [("amp", "2", "train#trainer#amp"), ("amp", "nein", "validate#evaluator#amp"), ("epochs", "1.5", "train#trainer"),
     ("learning_rate", "1e-3x", "optimizer"), ("lambda", "nan", "lambda_schedule"),
     ("batch_size", "0", "train#dataloader"), ("resume", "nope", "train#handlers#2#_disabled_")],
)  # fmt: skip
def test_bad_values_are_errors_naming_the_key(tmp_path, tiny_dataset, key, value, item):
    wf = _workflow(tmp_path, tiny_dataset, **{key: value})
    wf.initialize()
    with pytest.raises(Exception) as err:
        wf.parser.get_parsed_content(item)
    chain, e = [], err.value
    while e is not None:
        chain.append(str(e))
        e = e.__cause__ or e.__context__
    assert any(f"config value {key!r}" in m for m in chain), chain


def test_string_false_is_false(tmp_path, tiny_dataset):
    """What Fire hands over for ``--resume false --amp false``: the strings."""
    user = _user_folder(tmp_path)
    wf = _workflow(tmp_path, user, resume="False", amp="false", epochs="2",
                   learning_rate="1e-3", **{"lambda": "0.5"})  # fmt: skip
    wf.initialize()
    assert sorted(p.name for p in user.rglob("*")) == ["a.dicom", "train", "train.csv"]
    assert wf.parser.get_parsed_content("train#trainer#amp") is False
    assert wf.parser.get_parsed_content("validate#evaluator#amp") is False
    assert wf.parser.get_parsed_content("train#trainer#max_epochs") == 2
    assert wf.parser.get_parsed_content("optimizer#lr") == 1e-3
    assert wf.parser.get_parsed_content("lambda_schedule#end") == 0.5
    assert wf.parser["train#handlers#2#_target_"].endswith("LastCheckpointLoader")
    assert wf.parser.get_parsed_content("train#handlers#2#_disabled_") is True, "resume 'False': no loader"


def test_data_preparation_marker_kind_and_shift_from_the_command_line(tmp_path):
    """Other shortcuts for robustness tables: marker kind and a reversed shift pass through ``--synthetic#...``."""
    data = tmp_path / "text_reversed"
    small = ["--synthetic#n_train", "8", "--synthetic#n_val", "2", "--synthetic#n_test", "2"]
    small += ["--synthetic#n_test_shifted", "4", "--synthetic#image_size", "64"]
    out = _bundle(
        tmp_path, "--dataset_dir", str(data), "--synthetic#marker_kind", "text", *small,
        "--synthetic#shifted_marker_prob", "[0.05, 0.95]", config="prepare_data.json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["parameters"]["marker_kind"] == "text"
    assert manifest["parameters"]["shifted_marker_prob"] == [0.05, 0.95]
    assert manifest["counts"]["test_shifted"]["marker_positive"] == 0  # round(0.05 * 2)
    assert manifest["counts"]["test_shifted"]["marker_negative"] == 2  # round(0.95 * 2)
    assert len((data / "confounder_boxes.csv").read_text().splitlines()) == 1 + 4 + 1 + 1 + 2
    bad = _bundle(tmp_path, "--dataset_dir", str(tmp_path / "bad"), "--synthetic#marker_kind", "rular", *small,
                  config="prepare_data.json")  # fmt: skip
    assert bad.returncode != 0 and "marker_kind must be one of ['corner', 'ruler', 'text'], got 'rular'" in bad.stderr
    assert not (tmp_path / "bad").exists()
