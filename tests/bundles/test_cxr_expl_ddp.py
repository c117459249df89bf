"""2-process DDP (gloo on CPU) through torchrun: training runs, and the reduced evaluation metrics equal a
single-process evaluation of the same images."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from .conftest import CONFIGS, TINY

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bundle_cmd(configs, bundle_root: Path, dataset_dir: Path, nproc: int, **override) -> list[str]:
    files = "[" + ",".join(f"'{CONFIGS / c}'" for c in configs) + "]"
    launcher = [sys.executable, "-m", "monai.bundle"]
    if nproc > 1:
        launcher = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={nproc}",
            f"--master_port={_free_port()}", "-m", "monai.bundle",
        ]  # fmt: skip
    args = [
        *launcher,
        "run",
        "--config_file",
        files,
        "--bundle_root",
        str(bundle_root),
        "--dataset_dir",
        str(dataset_dir),
    ]
    for key, value in {**TINY, **override}.items():
        args += [f"--{key}", str(value).replace(" ", "")]
    return args


def _run(cmd, cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(cmd, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _metrics(folder: Path) -> dict[str, float]:
    with open(folder / "metrics.csv") as f:
        return {row[0]: float(row[1]) for row in csv.reader(f)}


def test_ddp_training_and_reduced_metrics_equal_single_process(tmp_path, tiny_dataset):
    root = tmp_path / "bundle"
    # 2-process DDP training, one epoch
    _run(_bundle_cmd(["train.json", "multi_gpu_train.json"], root, tiny_dataset, nproc=2, epochs=1), tmp_path)
    assert (root / "models" / "model.pt").is_file()
    assert (root / "models" / "last_checkpoint_epoch=1.pt").is_file()
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root}/eval/mlruns.db")
    runs = client.search_runs([client.get_experiment_by_name("cxr_expl").experiment_id])
    assert len(runs) == 1, "only rank 0 tracks"

    # the same checkpoint scored by one process and by two (DistributedSampler, metrics gathered across ranks)
    single, double = tmp_path / "eval1", tmp_path / "eval2"
    evaluate = ["train.json", "evaluate.json"]
    _run(_bundle_cmd(evaluate, root, tiny_dataset, nproc=1, eval_dir=str(single)), tmp_path)
    _run(_bundle_cmd([*evaluate, "multi_gpu_train.json"], root, tiny_dataset, nproc=2, eval_dir=str(double)), tmp_path)
    m1, m2 = _metrics(single), _metrics(double)
    for key in ("saliency_precision", "saliency_coverage", "chance_level", "auc", "accuracy", "deletion_auc"):
        assert m2[key] == pytest.approx(m1[key], abs=1e-5), key
    with open(single / "per_image.csv") as f1, open(double / "per_image.csv") as f2:
        rows1 = sorted(csv.DictReader(f1), key=lambda r: r["id"])
        rows2 = sorted(csv.DictReader(f2), key=lambda r: r["id"])
    assert len(rows1) == len(rows2) == 8 and [r["id"] for r in rows1] == [r["id"] for r in rows2], "every image once"
    for r1, r2 in zip(rows1, rows2):  # the per-image table gathered across ranks: same rows as one process
        assert (r1["label"], r1["correct"]) == (r2["label"], r2["correct"])
        assert float(r1["probability"]) == pytest.approx(float(r2["probability"]), abs=1e-5)
        assert (r1["saliency_precision"] == "") == (r2["saliency_precision"] == "")
