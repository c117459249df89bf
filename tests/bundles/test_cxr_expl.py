"""The cxr_expl bundle end to end through MONAI's ConfigWorkflow, on a tiny synthetic set."""

from __future__ import annotations

import csv
from pathlib import Path

import mlflow
import pytest
import torch
from ignite.engine import Events
from monai.bundle import ConfigWorkflow

from .conftest import CONFIGS, TINY

pytestmark = pytest.mark.slow


def _workflow(bundle_root: Path, dataset_dir: Path, configs=("train.json",), workflow_type="train", **override):
    return ConfigWorkflow(
        config_file=[str(CONFIGS / c) for c in configs],
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        workflow_type=workflow_type,
        bundle_root=str(bundle_root),
        dataset_dir=str(dataset_dir),
        **{**TINY, **override},
    )


def _mlflow_runs(bundle_root: Path, experiment: str = "cxr_expl"):
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{bundle_root}/eval/mlruns.db")
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id]) if exp else []


def test_model_selection_starts_once_lambda_is_at_full_strength(tmp_path, tiny_dataset, no_tracking_env):
    """With a 1-epoch warm-up, epoch 1 (lambda still rising) is never model.pt, whatever its validation AUC."""
    wf = _workflow(tmp_path, tiny_dataset, epochs=2, **{"lambda_schedule#warmup": "1", "log_model": False})
    wf.initialize()
    assert wf.parser.get_parsed_content("select_from_epoch") == 2
    wf.run()
    wf.finalize()
    state = torch.load(next((tmp_path / "models").glob("last_checkpoint_epoch=2.pt")), weights_only=True)
    assert state["best_model"]["best_metric_epoch"] == 2
    _, runs = _mlflow_runs(tmp_path)
    assert runs[0].data.params["select_from_epoch"] == "2"


def test_train_config_properties_outputs_and_mlflow(tmp_path, tiny_dataset, no_tracking_env):
    wf = _workflow(tmp_path, tiny_dataset, epochs=1, **{"lambda": 0.5})
    wf.initialize()
    assert wf.check_properties() == []
    wf.run()
    wf.finalize()

    assert (tmp_path / "models" / "model.pt").is_file(), "best checkpoint by val_auc"
    best = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert set(best) == {"model", "threshold"}, "the decision threshold is saved with the best model"
    assert best["threshold"]["threshold"].shape == (1,) and 0.0 < float(best["threshold"]["threshold"]) < 1.0
    last = list((tmp_path / "models").glob("last_checkpoint_epoch=*.pt"))
    assert [p.name for p in last] == ["last_checkpoint_epoch=1.pt"]
    state = torch.load(last[0], weights_only=True)
    assert set(state) == {"model", "optimizer", "trainer", "best_model", "mlflow"}
    assert state["best_model"]["best_metric_epoch"] == 1
    assert (tmp_path / "eval" / "overlays" / "overlay_epoch_001.png").stat().st_size > 1000

    client, runs = _mlflow_runs(tmp_path)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["design"] == "dice" and params["lambda"] == "0.5" and params["saliency"] == "cam"
    assert params["seed"] == "0" and "class_layers.relu" in params["saliency_kwargs"]
    assert params["select_from_epoch"] == "1", "the 4-epoch warm-up is longer than the run: its last epoch is eligible"
    for key in ("val_auc", "val_accuracy", "val_saliency_precision", "val_saliency_coverage", "val_chance_level"):
        assert key in run.data.metrics, key
    assert run.data.metrics["val_threshold"] == pytest.approx(float(best["threshold"]["threshold"]), abs=1e-6)
    assert 0.5 <= run.data.metrics["val_balanced_accuracy"] <= 1.0, "at the Youden threshold, on the split it chose"
    assert 0.0 < run.data.metrics["val_chance_level"] < 0.2
    for key in ("loss", "task_loss", "expl_loss", "lambda"):
        assert key in run.data.metrics, key
        assert f"epoch_{key}" in run.data.metrics, key  # the epoch means, on the epoch axis
    assert state["mlflow"] == {"run_id": run.info.run_id}, "the last checkpoint records its run"
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "overlays")]
    assert "overlays/overlay_epoch_001.png" in artifacts

    # the best model is logged with signature and input example, and loads with mlflow.pytorch
    import mlflow.pytorch
    import numpy as np
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(client.tracking_uri):  # restores the process's URI (and MLFLOW_TRACKING_URI) after
        model = mlflow.pytorch.load_model(f"runs:/{run.info.run_id}/model")
        info = mlflow.models.get_model_info(f"runs:/{run.info.run_id}/model")
    (logged,) = client.search_logged_models([run.info.experiment_id])
    assert logged.source_run_id == run.info.run_id
    assert list(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 1, 64, 64]
    image = np.random.default_rng(0).random((2, 1, 64, 64), dtype=np.float32)
    best = wf.parser.get_parsed_content("network_def")  # a fresh network with the best weights
    best.load_state_dict(torch.load(tmp_path / "models" / "model.pt", weights_only=True)["model"])
    with torch.no_grad():
        expected = best.eval()(torch.from_numpy(image))
        assert torch.allclose(model(torch.from_numpy(image)), expected, atol=1e-6)
    print("logged model:", info.model_uri, "signature", info.signature.inputs.to_dict(), "->",
          info.signature.outputs.to_dict())  # fmt: skip


def test_evaluate_config_scores_checkpoint_on_test_split(tmp_path, tiny_dataset, no_tracking_env):
    train = _workflow(tmp_path, tiny_dataset, epochs=1)
    train.initialize()
    train.run()
    train.finalize()
    ev = _workflow(
        tmp_path, tiny_dataset, configs=("train.json", "evaluate.json"), workflow_type=None, test_split="test_shifted"
    )
    ev.initialize()
    ev.run()
    ev.finalize()
    out = tmp_path / "eval" / "test_shifted"
    with open(out / "metrics.csv") as f:
        metrics = {row[0]: float(row[1]) for row in csv.reader(f)}
    for key in ("auc", "accuracy", "saliency_precision", "saliency_coverage", "chance_level", "deletion_auc"):
        assert key in metrics, key
    saved = torch.load(tmp_path / "models" / "model.pt", weights_only=True)["threshold"]["threshold"]
    assert metrics["threshold"] == pytest.approx(float(saved), abs=1e-6), "scored at the saved threshold"
    with open(out / "predictions.csv") as f:
        probs = [float(r[1]) for r in csv.reader(f)]
    assert len(probs) == 8, "one prediction per test_shifted image"
    assert 0.0 <= metrics["balanced_accuracy"] <= 1.0
    # the synthetic data list has the marker boxes: the confounder reliance is logged, per image too
    assert 0.0 <= metrics["confounder_change"] <= 1.0 and 0.0 <= metrics["confounder_flip_rate"] <= 1.0
    with open(out / "per_image.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 8 and "confounder_change" in table[0], "one row per image with its confounder reliance"
    # the evaluation is logged into the training run (its id read from the last checkpoint), split-prefixed
    client, runs = _mlflow_runs(tmp_path)
    assert [r.info.run_name for r in runs] == ["dice_lambda10.0_seed0"]
    run = runs[0]
    assert run.info.status == "FINISHED"
    for key in ("auc", "accuracy", "saliency_precision", "saliency_coverage", "deletion_auc", "insertion_auc"):
        history = client.get_metric_history(run.info.run_id, f"test_shifted_{key}")
        assert len(history) == 1 and history[0].value == pytest.approx(metrics[key], nan_ok=True), key
    assert "auc" not in run.data.metrics
    assert run.data.params["test_shifted_checkpoint"] == str(tmp_path / "models" / "model.pt")


def test_resume_continues_epoch_optimizer_schedule_and_mlflow_run(tmp_path, tiny_dataset, no_tracking_env):
    """A run stopped (by a crash) after epoch 1 resumes at epoch 2 in the same MLflow run."""
    warmup = {"name": "linear_warmup", "start": 0.0, "end": 1.0, "warmup": 2}
    first = _workflow(tmp_path, tiny_dataset, epochs=2, lambda_schedule=warmup)
    first.initialize()
    trainer = first.parser.get_parsed_content("train#trainer")
    epoch_length = len(trainer.data_loader)

    def crash(engine):
        raise RuntimeError("simulated crash at the start of epoch 2")

    trainer.add_event_handler(Events.ITERATION_STARTED(once=epoch_length + 1), crash)
    with pytest.raises(RuntimeError, match="Failed to evaluate") as err:
        first.run()
    assert "simulated crash" in str(err.value.__cause__)
    ckpt = torch.load(tmp_path / "models" / "last_checkpoint_epoch=1.pt", weights_only=True)
    assert ckpt["trainer"]["iteration"] == epoch_length, "the checkpoint holds the state at the end of epoch 1"
    _, runs = _mlflow_runs(tmp_path)
    assert len(runs) == 1 and runs[0].info.status == "RUNNING"
    run_id = runs[0].info.run_id

    second = _workflow(tmp_path, tiny_dataset, epochs=2, lambda_schedule=warmup, resume=True)
    second.initialize()
    trainer2 = second.parser.get_parsed_content("train#trainer")
    lambdas = []
    trainer2.add_event_handler(Events.ITERATION_COMPLETED, lambda e: lambdas.append(e.state.output[0]["lambda"]))
    second.run()
    second.finalize()
    assert trainer2.state.epoch == 2
    assert len(lambdas) == epoch_length, "only epoch 2 is trained again"
    assert lambdas[0] == pytest.approx(0.5), "the warm-up continues at epoch 2, not from 0"
    optimizer = second.parser.get_parsed_content("optimizer")
    assert optimizer.state_dict()["state"], "optimizer moments restored and updated"

    client, runs = _mlflow_runs(tmp_path)
    assert [r.info.run_id for r in runs] == [run_id], "the same MLflow run continues"
    steps = sorted(m.step for m in client.get_metric_history(run_id, "val_auc"))
    assert steps == [1, 2]


def test_inference_config_writes_predictions_and_saliency_maps(tmp_path, tiny_dataset, no_tracking_env):
    import nibabel as nib

    train = _workflow(tmp_path, tiny_dataset, epochs=1)
    train.initialize()
    train.run()
    train.finalize()
    # input gradients: never all zero, unlike the ReLU'd CAM of a network trained for one epoch on 24 images
    inf = _workflow(
        tmp_path, tiny_dataset, configs=("train.json", "inference.json"), workflow_type=None,
        saliency="input_gradient", saliency_kwargs={},
    )  # fmt: skip
    inf.initialize()
    inf.run()
    inf.finalize()
    out = tmp_path / "eval" / "inference"
    with open(out / "predictions.csv") as f:
        table = list(csv.DictReader(f))
    assert list(table[0])[:8] == ["id", "split", "class", "label", "probability", "threshold", "decision", "correct"]
    assert list(table[0])[-1] == "saliency_empty", "a header, and whether each map is all zero"
    assert len(table) == 8 and all(0.0 <= float(r["probability"]) <= 1.0 for r in table)
    assert all(r["label"] == "" and r["correct"] == "" for r in table), "no reference labels at inference"
    threshold = float(torch.load(tmp_path / "models" / "model.pt", weights_only=True)["threshold"]["threshold"])
    for r in table:
        assert float(r["threshold"]) == pytest.approx(threshold, abs=1e-6), "the saved threshold"
        assert int(r["decision"]) == int(float(r["probability"]) >= threshold), "decisions at the saved threshold"
        assert r["saliency_empty"] == "0", "input gradients are never all zero"
    rows = [[r["id"]] for r in table]
    maps = sorted(out.glob("*_saliency.nii.gz"))
    assert [p.name.split("_saliency")[0] for p in maps] == sorted(r[0] for r in rows)
    img = nib.load(str(maps[0]))
    assert img.shape == (64, 64), "saliency saved in the original image grid"
    values = img.get_fdata()
    assert values.min() >= 0.0 and values.max() == pytest.approx(1.0), "each map scaled to [0, 1]"
