"""A second ``make run`` in the same bundle folder keeps the first run's files: the real command line, three times.

1. a fresh training writes ``models/model.pt`` and ``models/last_checkpoint_epoch=1.pt``;
2. a second fresh training (default ``resume=false``) moves them, byte-identical, to
   ``models/previous/<UTC time>/`` before it trains, says so in a WARNING, and writes its own;
3. ``--resume true`` (the string a person types) moves nothing and continues the second training.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from .conftest import CONFIGS, TINY

pytestmark = pytest.mark.slow


def _train(tmp_path, dataset_dir, *args):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", PYTHONPATH=os.getcwd())
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIGS / "train.json")]
    cmd += ["--bundle_root", str(tmp_path / "bundle"), "--dataset_dir", str(dataset_dir)]
    for key, value in TINY.items():
        cmd += [f"--{key}", str(value).replace(" ", "")]
    out = subprocess.run([*cmd, *args], check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    return out.stdout + out.stderr


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_second_fresh_run_archives_the_first_and_resume_archives_nothing(tmp_path, tiny_dataset):
    models = tmp_path / "bundle" / "models"
    log = _train(tmp_path, tiny_dataset, "--epochs", "1")
    first = _files(models)
    assert sorted(first) == ["last_checkpoint_epoch=1.pt", "model.pt"]
    assert "held files of an earlier training" not in log, "nothing to archive on the first run"
    assert not (models / "previous").exists()

    log = _train(tmp_path, tiny_dataset, "--epochs", "1", "--seed", "1")
    archives = sorted((models / "previous").iterdir())
    assert len(archives) == 1, archives
    assert _files(archives[0]) == first, "the first run's model.pt and last checkpoint, byte-identical"
    assert f"moved last_checkpoint_epoch=1.pt, model.pt to {archives[0]}" in log and "WARNING" in log, log[-3000:]
    second = _files(models)
    assert sorted(second) == ["last_checkpoint_epoch=1.pt", "model.pt"]
    assert second["model.pt"] != first["model.pt"], "the second run (another seed) wrote its own best model"

    log = _train(tmp_path, tiny_dataset, "--epochs", "2", "--seed", "1", "--resume", "true")
    assert "held files of an earlier training" not in log and "resuming training from" in log, log[-3000:]
    assert sorted((models / "previous").iterdir()) == archives and _files(archives[0]) == first
    assert sorted(_files(models)) == ["last_checkpoint_epoch=2.pt", "model.pt"]
    resumed = torch.load(models / "last_checkpoint_epoch=2.pt", weights_only=True)
    assert resumed["trainer"]["iteration"] == 2 * 3, "the second training continued (TINY: 3 iterations an epoch)"
