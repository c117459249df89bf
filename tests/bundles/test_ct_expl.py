"""The ct_expl bundle end to end through MONAI's ConfigWorkflow, on a tiny synthetic LUNA16-format CT set."""

from __future__ import annotations

import csv
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow

pytestmark = pytest.mark.slow

CONFIGS = Path(__file__).resolve().parents[2] / "bundles" / "ct_expl" / "configs"

# 6 train / 2 val / 2 test volumes (one positive, one negative in val and test), 2 test_shifted; coarse voxels so
# that the nodules (6 to 10 mm) are 3 to 6 voxels wide in the 40 x 40 x 16 grid, resized to 32 x 32 x 16
SYNTHETIC = {
    "n": 10,
    "n_test_shifted": 2,
    "shape": [40, 40, 16],
    "spacing": [1.6, 1.6, 4.0],
    "diameter_mm": [6.0, 10.0],
    "seed": 0,
}
TINY = {
    "image_size": [32, 32, 16],
    "batch_size": 3,
    "epochs": 1,
}


@pytest.fixture(scope="module")
def ct_dataset(tmp_path_factory) -> Path:
    """The tiny set, generated once with the bundle's own generator arguments (those of prepare_data.json)."""
    from monai_explain.apps.synthetic import generate_synthetic_ct

    root = tmp_path_factory.mktemp("synthetic_ct")
    defaults = ConfigParser.load_config_file(CONFIGS / "prepare_data.json")["synthetic"]
    return generate_synthetic_ct(root, **{**defaults, **SYNTHETIC})


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


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ct_dataset) -> Path:
    """One epoch of the train config (lambda 0.5), shared by the tests below; returns the bundle root."""
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)  # the bundle's own local store, whatever the environment says
    try:
        root = tmp_path_factory.mktemp("ct_bundle")
        wf = _workflow(root, ct_dataset, **{"lambda": 0.5})
        wf.initialize()
        assert wf.check_properties() == []
        wf.run()
        wf.finalize()
    finally:
        mp.undo()
    return root


def _prepare(bundle_root: Path) -> None:
    wf = ConfigWorkflow(
        config_file=str(CONFIGS / "prepare_data.json"), logging_file=False, workflow_type=None,
        bundle_root=str(bundle_root), **{f"synthetic#{k}": v for k, v in SYNTHETIC.items()},
    )  # fmt: skip
    wf.initialize()
    wf.run()
    wf.finalize()


def test_prepare_data_generates_the_set_then_reuses_it(tmp_path, ct_dataset):
    data_dir = tmp_path / "data" / "synthetic_ct"
    _prepare(tmp_path)
    for name in ("annotations.csv", "splits.json", "manifest.json"):
        assert (data_dir / name).read_bytes() == (ct_dataset / name).read_bytes(), name
    stamps = {p: p.stat().st_mtime_ns for p in data_dir.rglob("*")}
    _prepare(tmp_path)
    assert {p: p.stat().st_mtime_ns for p in data_dir.rglob("*")} == stamps, "the second run rewrites nothing"
    train = _workflow(tmp_path, data_dir)
    train.initialize()
    assert Path(train.parser.get_parsed_content("dataset_dir")) == data_dir, "train.json reads what was prepared"
    assert len(train.parser.get_parsed_content("train_datalist")) == 6


def test_preprocessing_puts_the_mask_on_the_nodules(tmp_path, ct_dataset):
    """World-mm LPS centres through the NIfTI RAS affine: every positive's mask covers bright (nodule) voxels."""
    wf = _workflow(tmp_path, ct_dataset)
    wf.initialize()
    items = [wf.parser.get_parsed_content("train#dataset")[i] for i in range(6)]
    assert sum(float(it["label"].item()) for it in items) == 3.0, "3 of the 6 train volumes are positive"
    for it in items:
        assert tuple(it["image"].shape) == (1, 32, 32, 16) and tuple(it["mask"].shape) == (1, 32, 32, 16)
        assert tuple(it["label"].shape) == (1,) and it["label"].dtype == torch.float32
        mask, image = it["mask"][0].numpy(), it["image"][0].numpy()
        if it["label"].item() == 0.0:
            assert mask.max() == 0.0, "a negative volume has an empty mask"
            continue
        core = mask > 0.5
        assert core.sum() > 0
        # nodules (about 0 HU -> 0.7 after the [-1000, 400] window) in air-like lung (about -850 HU -> 0.1)
        assert image[core].mean() > 0.45 > image[(mask == 0) & (image < 0.3)].mean()


def test_train_config_outputs_and_mlflow(trained):
    models = trained / "models"
    assert (models / "model.pt").is_file(), "best checkpoint by val_auc"
    last = sorted(p.name for p in models.glob("last_checkpoint_epoch=*.pt"))
    assert last == ["last_checkpoint_epoch=1.pt"]
    state = torch.load(models / last[0], weights_only=True)
    assert set(state) == {"model", "optimizer", "trainer", "best_model", "mlflow"}
    assert "features.conv0.weight" in state["model"] and state["model"]["features.conv0.weight"].ndim == 5
    assert (trained / "eval" / "overlays" / "overlay_epoch_001.png").stat().st_size > 1000

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{trained}/eval/mlruns.db")
    exp = client.get_experiment_by_name("ct_expl")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "energy_lambda0.5_seed0"
    params = run.data.params
    assert params["design"] == "energy" and params["lambda"] == "0.5" and params["saliency"] == "cam"
    assert params["dataset"] == "luna16" and params["classes"] == "nodule" and params["image_size"] == "[32, 32, 16]"
    assert "class_layers.relu" in params["saliency_kwargs"]
    metrics = run.data.metrics
    for key in ("val_auc", "val_accuracy", "val_saliency_precision", "val_saliency_coverage", "val_chance_level"):
        assert np.isfinite(metrics[key]), key
    assert 0.0 < metrics["val_chance_level"] < 0.05, "nodules fill a small fraction of the volume"
    for key in ("loss", "task_loss", "expl_loss", "lambda"):
        assert key in metrics, key
    assert state["mlflow"] == {"run_id": run.info.run_id}
    assert "overlays/overlay_epoch_001.png" in [a.path for a in client.list_artifacts(run.info.run_id, "overlays")]


def test_evaluate_config_scores_the_checkpoint_on_the_test_split(trained, ct_dataset, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    ev = _workflow(trained, ct_dataset, configs=("train.json", "evaluate.json"), workflow_type=None, **{"lambda": 0.5})
    ev.initialize()
    ev.run()
    ev.finalize()
    out = trained / "eval" / "test"
    with open(out / "metrics.csv") as f:
        metrics = {row[0]: float(row[1]) for row in csv.reader(f)}
    for key in ("auc", "accuracy", "saliency_precision", "saliency_coverage", "chance_level", "deletion_auc"):
        assert key in metrics, key
    assert 0.0 <= metrics["saliency_precision"] <= 1.0 and 0.0 < metrics["chance_level"] < 0.05
    with open(out / "predictions.csv") as f:
        assert len(list(csv.reader(f))) == 2, "one prediction per test volume"
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{trained}/eval/mlruns.db")
    runs = client.search_runs([client.get_experiment_by_name("ct_expl").experiment_id])
    assert [r.info.run_name for r in runs] == ["energy_lambda0.5_seed0"], "logged into the training run"
    assert runs[0].data.metrics["test_auc"] == pytest.approx(metrics["auc"], nan_ok=True)


def test_study_sweep_runs_on_this_bundle(tmp_path, monkeypatch):
    """The docs point 3D users at the study: its contract in metadata.json drives a sweep of this bundle too."""
    import pandas as pd

    from monai_explain.apps.study import run_sweep

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    overrides = {"dataset_dir": str(tmp_path / "data"), **{f"synthetic#{k}": v for k, v in SYNTHETIC.items()}, **TINY}
    summary = run_sweep(
        CONFIGS.parent, ["energy"], [0, 1], [0], tmp_path / "sweep", overrides, n_resamples=50, gallery=False
    )
    per_image = pd.read_csv(summary.parent / "per_image.csv")
    assert set(per_image["split"]) == {"test", "test_shifted"} and set(per_image["class"]) == {"nodule"}
    assert set(per_image["lambda"]) == {0.0, 1.0}
    assert per_image["probability"].between(0, 1).all() and per_image["saliency_precision"].notna().any()
    assert "none lambda=0" in summary.read_text() and "energy lambda=1" in summary.read_text()
