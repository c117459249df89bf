"""SIGKILL a tiny cxr_expl training mid-epoch and during validation, resume it, and compare with an uninterrupted
run: the last checkpoint, the best model ``models/model.pt`` and the evaluation of ``model.pt`` must be identical.

Every run trains in a spawned child process on the CPU with one thread (bit-reproducible). The victims stall at a
chosen point (a handler writes a marker file and sleeps) and are killed there with SIGKILL:

- ``mid-epoch``: after the 2nd iteration of epoch 2 (the epoch-1 checkpoint is complete, epoch 2 is half trained);
- ``validation``: at the end of epoch 2's validation, after the best-model saver ran and before the epoch-2 last
  checkpoint is written: ``model.pt`` may already hold epoch 2 while the last checkpoint still says epoch 1.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from .conftest import CONFIGS, TINY

pytestmark = pytest.mark.slow

EPOCHS = 2
EPOCH_LENGTH = 3  # TINY: 24 training images / batch 8


def _train(bundle_root: str, dataset_dir: str, resume: bool, stall_at: str | None, marker: str | None) -> None:
    """Child process: one training run of the bundle (stalling forever at ``stall_at``, if given)."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    torch.set_num_threads(1)
    from ignite.engine import Events
    from monai.bundle import ConfigWorkflow

    wf = ConfigWorkflow(
        config_file=str(CONFIGS / "train.json"), meta_file=str(CONFIGS / "metadata.json"), logging_file=False,
        workflow_type="train", bundle_root=bundle_root, dataset_dir=dataset_dir, epochs=EPOCHS, resume=resume,
        select_from_epoch=1, **TINY,
    )  # fmt: skip  # epoch 1 eligible: the killed run leaves a best model whose tracker the resumed run must keep
    wf.initialize()

    def stall(engine) -> None:
        Path(marker).write_text(f"{engine.state.epoch} {engine.state.iteration}")
        time.sleep(600)

    if stall_at == "mid-epoch":
        trainer = wf.parser.get_parsed_content("train#trainer")
        trainer.add_event_handler(Events.ITERATION_COMPLETED(once=EPOCH_LENGTH + 2), stall)
    elif stall_at == "validation":
        evaluator = wf.parser.get_parsed_content("validate#evaluator")  # attached after the best-model saver
        evaluator.add_event_handler(Events.EPOCH_COMPLETED, lambda e: stall(e) if e.state.epoch == 2 else None)
    wf.run()
    wf.finalize()


def _evaluate(bundle_root: str, dataset_dir: str) -> None:
    """Child process: evaluate.json on ``<bundle_root>/models/model.pt`` (split ``test``)."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    torch.set_num_threads(1)
    from monai.bundle import ConfigWorkflow

    wf = ConfigWorkflow(
        config_file=[str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")],
        meta_file=str(CONFIGS / "metadata.json"), logging_file=False, workflow_type=None, bundle_root=bundle_root,
        dataset_dir=dataset_dir, **TINY,
    )  # fmt: skip
    wf.initialize()
    wf.run()
    wf.finalize()


_CTX = multiprocessing.get_context("spawn")


def _start(target, *args) -> multiprocessing.Process:
    proc = _CTX.Process(target=target, args=args, daemon=True)
    proc.start()
    return proc


def _join_ok(proc: multiprocessing.Process, timeout: float = 600) -> None:
    proc.join(timeout=timeout)
    assert proc.exitcode == 0, f"child exit code {proc.exitcode}"


@pytest.fixture()
def one_thread_children(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _without_tracking_state(path: Path) -> bytes:
    """The checkpoint's bytes as torch writes them, without the MLflow run id (each run has its own)."""
    state = torch.load(path, weights_only=True)
    state.pop("mlflow", None)
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _metrics(root: Path) -> dict[str, str]:
    with open(root / "eval" / "test" / "metrics.csv") as f:
        return {row[0]: row[1] for row in csv.reader(f)}


def test_sigkill_mid_epoch_and_during_validation_then_resume_equals_uninterrupted(
    tmp_path, tiny_dataset, one_thread_children
):
    roots = {name: tmp_path / name for name in ("reference", "mid-epoch", "validation")}
    reference = _start(_train, str(roots["reference"]), str(tiny_dataset), False, None, None)
    for where in ("mid-epoch", "validation"):
        marker = tmp_path / f"{where}.stalled"
        victim = _start(_train, str(roots[where]), str(tiny_dataset), False, where, str(marker))
        end = time.monotonic() + 600
        while not marker.exists():
            assert victim.is_alive(), f"the {where} victim ended (exit code {victim.exitcode}) before its stall point"
            assert time.monotonic() < end, f"timed out waiting for the {where} stall point"
            time.sleep(0.05)
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(timeout=60)
        assert victim.exitcode == -signal.SIGKILL
        models = roots[where] / "models"
        assert sorted(p.name for p in models.iterdir()) == ["last_checkpoint_epoch=1.pt", "model.pt"], where
        killed = torch.load(models / "last_checkpoint_epoch=1.pt", weights_only=True)
        assert killed["trainer"]["iteration"] == EPOCH_LENGTH
        # resume: the same run with resume=True
        _join_ok(_start(_train, str(roots[where]), str(tiny_dataset), True, None, None))
    _join_ok(reference)

    ref_models = roots["reference"] / "models"
    ref_last = ref_models / f"last_checkpoint_epoch={EPOCHS}.pt"
    ref_state = torch.load(ref_last, weights_only=True)
    best = ref_state["best_model"]
    assert 1 <= best["best_metric_epoch"] <= EPOCHS and 0.0 <= best["best_metric"] <= 1.0
    for where in ("mid-epoch", "validation"):
        models = roots[where] / "models"
        assert sorted(p.name for p in models.iterdir()) == [f"last_checkpoint_epoch={EPOCHS}.pt", "model.pt"]
        assert (models / "model.pt").read_bytes() == (ref_models / "model.pt").read_bytes(), f"{where}: model.pt"
        last = models / f"last_checkpoint_epoch={EPOCHS}.pt"
        if "mlflow" not in ref_state:
            assert last.read_bytes() == ref_last.read_bytes(), f"{where}: last checkpoint"
        assert _without_tracking_state(last) == _without_tracking_state(ref_last), f"{where}: last checkpoint"
        assert torch.load(last, weights_only=True)["best_model"] == best

    # the evaluations of the three model.pt files agree exactly
    evaluations = [_start(_evaluate, str(root), str(tiny_dataset)) for root in roots.values()]
    for proc in evaluations:
        _join_ok(proc)
    ref_metrics = _metrics(roots["reference"])
    assert {"auc", "accuracy", "saliency_precision", "deletion_auc"} <= set(ref_metrics)
    for where in ("mid-epoch", "validation"):
        assert _metrics(roots[where]) == ref_metrics, where
        for name in ("predictions.csv",):
            ours = (roots[where] / "eval" / "test" / name).read_bytes()
            assert ours == (roots["reference"] / "eval" / "test" / name).read_bytes(), (where, name)
    print(f"best epoch {best['best_metric_epoch']} of {EPOCHS}, val AUC {best['best_metric']:.4f}, test {ref_metrics}")
