from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch
from monai.networks.nets import DenseNet

from monai_explain.handlers import SaliencyOverlayHandler, save_overlay_grid
from monai_explain.handlers.overlay import _slice_index
from monai_explain.saliency import CAM


def test_slice_index_follows_the_annotation_in_3d():
    mask = np.zeros((1, 8, 8, 10), np.float32)
    mask[0, 2:4, 2:4, 7] = 1.0
    mask[0, 2:3, 2:3, 3] = 1.0
    assert _slice_index(mask, mask.shape) == 7, "the slice with the most annotated voxels"
    assert _slice_index(np.zeros_like(mask), mask.shape) == 5, "middle slice without annotation"
    assert _slice_index(None, (1, 8, 8)) is None, "2D items are shown whole"


@pytest.mark.parametrize("shape", [(2, 1, 16, 12), (2, 1, 12, 12, 6)])
def test_save_overlay_grid_writes_a_png(tmp_path, shape):
    rng = np.random.default_rng(0)
    images, saliency = rng.random(shape, dtype=np.float32), rng.random(shape, dtype=np.float32)
    masks = np.zeros(shape, np.float32)
    masks[0, 0, 2:6, 3:7] = 1.0
    path = save_overlay_grid(images, saliency, masks, tmp_path / "sub" / "grid.png", titles=["a", "b"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000


def test_overlay_handler_draws_each_epoch_without_touching_mode_or_hooks(tmp_path):
    net = DenseNet(2, 1, 1, init_features=8, growth_rate=4, block_config=(2, 2)).train()
    g = torch.Generator().manual_seed(0)
    items = [
        {
            "image": torch.rand(1, 32, 32, generator=g),
            "label": torch.tensor([float(i % 2)]),
            "mask": torch.zeros(1, 32, 32),
        }
        for i in range(3)
    ]
    items[1]["mask"][0, 4:12, 8:16] = 1.0
    handler = SaliencyOverlayHandler(CAM(net), items, tmp_path, network=net)

    class _Engine:
        class state:
            epoch = 3

    handler(_Engine())
    assert handler.written == [tmp_path / "overlay_epoch_003.png"]
    assert handler.written[0].stat().st_size > 1000
    assert net.training, "the network's mode is restored"
    assert not net.class_layers.relu._forward_hooks, "no hooks left behind"
    assert all(p.grad is None for p in net.parameters()), "no parameter gradient written"


def test_overlay_figure_reads_on_a_fixed_scale(tmp_path):
    """Colour bar on the fixed density scale, legend, title, label + probability per panel, positives and
    negatives in separate rows; the same map drawn twice at 10x intensity looks identical (no per-panel scaling
    is needed because density is scale free), and a map twice as concentrated is brighter."""
    import matplotlib.image as mpimg

    from monai_explain.handlers.overlay import DENSITY_VMAX, saliency_density

    rng = np.random.default_rng(0)
    images = rng.random((4, 1, 32, 32), dtype=np.float32)
    saliency = rng.random((4, 1, 32, 32), dtype=np.float32) * 0.1
    saliency[:, 0, 8:16, 8:16] += 1.0
    saliency[3] = 0.0  # an all-zero map is said so
    masks = np.zeros((4, 1, 32, 32), np.float32)
    masks[:2, 0, 8:16, 8:16] = 1.0
    path = save_overlay_grid(
        images, saliency, masks, tmp_path / "grid.png", labels=[1, 1, 0, 0], probabilities=[0.9, 0.6, 0.3, 0.1],
        title="epoch 2 | CAM saliency | design energy, lambda 3 | class Nodule", class_name="Nodule",
    )  # fmt: skip
    png = mpimg.imread(str(path))
    assert png.shape[0] > 300 and png.shape[1] > 300
    assert saliency_density(saliency[0, 0]).mean() == pytest.approx(1.0)
    assert saliency_density(saliency[0, 0] * 10) == pytest.approx(saliency_density(saliency[0, 0]))
    assert saliency_density(saliency[3, 0]) is None and DENSITY_VMAX == 10.0
    with pytest.raises(ValueError, match="labels has 3 entries for 4 images"):
        save_overlay_grid(images, saliency, masks, tmp_path / "x.png", labels=[1, 0, 0])


def test_overlay_handler_texts_and_mlflow_upload(tmp_path, monkeypatch):
    """The handler passes label, probability, class and title to the figure and logs each PNG to the run."""
    from monai_explain.handlers import overlay

    net = DenseNet(2, 1, 1, init_features=8, growth_rate=4, block_config=(2, 2))
    g = torch.Generator().manual_seed(1)
    items = [
        {
            "image": torch.rand(1, 32, 32, generator=g),
            "label": torch.tensor([float(i < 2)]),
            "mask": torch.zeros(1, 32, 32),
        }
        for i in range(4)
    ]
    seen = {}
    real = overlay.save_overlay_grid
    monkeypatch.setattr(overlay, "save_overlay_grid", lambda *a, **k: (seen.update(k), real(*a, **k))[1])

    class _Run:
        class info:
            run_id = "abc"

    class _Client:
        logged: ClassVar[list] = []

        def log_artifact(self, run_id, path, artifact_path=None):
            self.logged.append((run_id, path, artifact_path))

    class _Tracking:
        disabled, cur_run, client = False, _Run(), _Client()

    handler = SaliencyOverlayHandler(
        CAM(net), items, tmp_path, network=net, title="design energy, lambda 3.0", class_names=["Nodule/Mass"],
        mlflow_handler=_Tracking(),
    )  # fmt: skip

    class _Engine:
        class state:
            epoch = 2

    handler(_Engine())
    assert seen["labels"] == [1.0, 1.0, 0.0, 0.0]
    assert all(0.0 < p < 1.0 for p in seen["probabilities"])
    assert seen["title"] == "epoch 2 | CAM saliency | design energy, lambda 3.0 | class Nodule/Mass"
    assert _Client.logged == [("abc", str(tmp_path / "overlay_epoch_002.png"), "overlays")]


def test_overlay_handler_with_a_fixed_filename_names_no_epoch(tmp_path, monkeypatch):
    """One figure of a checkpoint (the bundles' evaluate.json): a fixed name, rewritten, and no epoch in the title."""
    from monai_explain.handlers import overlay

    net = DenseNet(2, 1, 1, init_features=8, growth_rate=4, block_config=(2, 2))
    g = torch.Generator().manual_seed(2)
    items = [{"image": torch.rand(1, 32, 32, generator=g), "label": torch.tensor([float(i)]),
              "mask": torch.zeros(1, 32, 32)} for i in range(2)]  # fmt: skip
    items[0]["mask"][0, 2:9, 3:12] = 1.0
    seen = {}
    real = overlay.save_overlay_grid
    monkeypatch.setattr(overlay, "save_overlay_grid", lambda *a, **k: (seen.update(k), real(*a, **k))[1])
    logged = []

    class _Tracking:
        disabled = False

        class cur_run:
            class info:
                run_id = "abc"

        class client:
            @staticmethod
            def log_artifact(run_id, path, artifact_path=None):
                logged.append((run_id, path, artifact_path))

    handler = SaliencyOverlayHandler(CAM(net), items, tmp_path, network=net, title="test split", filename="o.png",
                                     mlflow_handler=_Tracking(), artifact_path="overlays/test")  # fmt: skip

    class _Engine:
        class state:
            epoch = 1

    handler(_Engine())
    handler(_Engine())
    assert handler.written == [tmp_path / "o.png"] * 2 and sorted(p.name for p in tmp_path.iterdir()) == ["o.png"]
    assert seen["title"] == "CAM saliency | test split | class 0"
    assert logged == [("abc", str(tmp_path / "o.png"), "overlays/test")] * 2, "each split in its own MLflow folder"
