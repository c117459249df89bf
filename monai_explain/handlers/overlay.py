"""Saliency-over-image PNG grids with the annotation contour, written each epoch for a fixed set of images."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.data import list_data_collate
from monai.networks.utils import eval_mode
from monai.utils import IgniteInfo, min_version, optional_import

from .explanation_loss import default_saliency_target

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["SaliencyOverlayHandler", "save_overlay_grid"]

logger = logging.getLogger(__name__)


def _slice_index(mask: np.ndarray | None, shape: tuple[int, ...]) -> int | None:
    """For 3D items, the slice along the last axis to show: the one with the most annotated voxels (the middle
    one without annotation); None for 2D."""
    if len(shape) < 4:
        return None
    if mask is not None and mask[0].max() > 0:
        return int(np.argmax(mask[0].reshape(-1, shape[-1]).sum(axis=0)))
    return shape[-1] // 2


def _view(x: np.ndarray, index: int | None) -> np.ndarray:
    """A 2D view of a (C, *spatial) array: channel 0, slice ``index`` of the last axis for 3D."""
    x = x[0]
    return x if index is None else x[..., index]


def save_overlay_grid(
    images: np.ndarray,
    saliency: np.ndarray,
    masks: np.ndarray | None,
    path: str | os.PathLike,
    titles: Sequence[str] | None = None,
    alpha: float = 0.45,
) -> Path:
    """Write one PNG with a row of panels: each image in grey, its saliency in colour, the mask contour in green.

    Args:
        images: ``(N, C, *spatial)`` images (2D, or 3D shown at the slice of the last axis with the most
            annotated voxels, the middle slice without annotation).
        saliency: ``(N, K, *spatial)`` maps; channel 0 is shown.
        masks: ``(N, K, *spatial)`` annotation masks or None.
        path: output file (folders are created).
        titles: one title per panel.
        alpha: opacity of the saliency layer.

    Returns:
        The path written.

    Raises:
        OSError: when the file cannot be written (e.g. a full disk), with the path in the message and the original
            errno; a partly written file is removed.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.8), squeeze=False)
    for i, ax in enumerate(axes[0]):
        # MONAI readers put the image column on the first spatial axis: transpose for display (rows down).
        index = _slice_index(None if masks is None else masks[i], images[i].shape)
        img = _view(images[i], index).T
        sal = _view(saliency[i], index).T
        ax.imshow(img, cmap="gray")
        hi = float(sal.max())
        ax.imshow(sal / hi if hi > 0 else sal, cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0)
        if masks is not None:
            m = _view(masks[i], index).T
            if m.max() > 0:
                ax.contour(m, levels=[0.5], colors="lime", linewidths=1.0)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=80)
    except OSError as e:
        with contextlib.suppress(OSError):  # a truncated PNG must not stay behind (MLflow would log it as an artifact)
            path.unlink(missing_ok=True)
        if e.errno is None:
            raise OSError(f"could not write the saliency overlay {path}: {e}") from e
        raise OSError(e.errno, f"could not write the saliency overlay {path}: {e.strerror or e}") from e
    finally:
        plt.close(fig)
    return path


class SaliencyOverlayHandler:
    """Each epoch, draws the saliency of a fixed set of validation images with their annotation contour.

    Attach it to the evaluator (or trainer). At every ``EPOCH_COMPLETED`` it runs the saliency method on the
    fixed items in eval mode, writes ``<output_dir>/overlay_epoch_<NNN>.png`` and, when a TensorBoard
    ``summary_writer`` is given, adds the grid as an image. To send the PNGs to MLflow, give the same folder to
    MONAI's ``MLFlowHandler(artifacts=[output_dir])`` (it logs the folder when training completes), or pass
    ``mlflow_handler`` to log each new file as soon as it is written.

    Args:
        saliency_method: a :class:`monai_explain.saliency.SaliencyMethod` on the network.
        items: the fixed items: transformed data dicts with ``image_key``, ``label_key`` and ``mask_key``.
        output_dir: where the PNG files go.
        network: the network to explain; default the engine's ``network``.
        image_key, label_key, mask_key: keys in the items.
        target_fn: ``f(label, logits)`` -> saliency target; default explains the annotated class.
        summary_writer: optional ``torch.utils.tensorboard.SummaryWriter``.
        mlflow_handler: optional ``monai.handlers.MLFlowHandler`` whose run receives each PNG.
        global_epoch_transform: maps the engine to the epoch number written in the name; default the
            engine's epoch (give ``lambda e: trainer.state.epoch`` when attached to an evaluator).
    """

    def __init__(
        self,
        saliency_method: Any,
        items: Sequence[dict],
        output_dir: str | os.PathLike,
        network: torch.nn.Module | None = None,
        image_key: str = "image",
        label_key: str = "label",
        mask_key: str = "mask",
        target_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = default_saliency_target,
        summary_writer: Any = None,
        mlflow_handler: Any = None,
        global_epoch_transform: Callable[[Any], int] | None = None,
    ) -> None:
        if len(items) == 0:
            raise ValueError("SaliencyOverlayHandler needs at least one item to draw.")
        self.saliency_method = saliency_method
        self.items = list(items)
        self.output_dir = Path(output_dir)
        self.network = network
        self.image_key, self.label_key, self.mask_key = image_key, label_key, mask_key
        self.target_fn = target_fn
        self.summary_writer = summary_writer
        self.mlflow_handler = mlflow_handler
        self.global_epoch_transform = global_epoch_transform
        self.written: list[Path] = []

    def attach(self, engine: Engine) -> None:
        if not engine.has_event_handler(self, Events.EPOCH_COMPLETED):
            engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        net = self.network if self.network is not None else engine.network
        # Under DDP only rank 0 draws: run the wrapped module itself, so that no collective call (buffer
        # broadcast) waits for the other ranks. The saliency hooks sit on the same sub-modules.
        net = net.module if isinstance(net, torch.nn.parallel.DistributedDataParallel) else net
        device = next(net.parameters()).device
        batch = list_data_collate([{k: it[k] for k in (self.image_key, self.label_key, self.mask_key)} for it in self.items])
        images = torch.as_tensor(batch[self.image_key]).to(device)
        labels = torch.as_tensor(batch[self.label_key]).to(device)
        masks = torch.as_tensor(batch[self.mask_key])
        with eval_mode(net), torch.enable_grad():
            x = images.detach().requires_grad_(bool(getattr(self.saliency_method, "needs_input_grad", False)))
            with self.saliency_method.recording():
                logits = net(x)
                target = self.target_fn(labels, logits.detach())
                saliency = self.saliency_method.compute(logits, target, inputs=x, spatial_size=masks.shape[2:])
            probs = torch.softmax(logits, 1) if logits.shape[1] > 1 else torch.sigmoid(logits)
        epoch = self.global_epoch_transform(engine) if self.global_epoch_transform else engine.state.epoch
        titles = [f"y={_fmt(labels[i])} p={float(probs[i].detach().max()):.2f}" for i in range(len(self.items))]
        path = save_overlay_grid(
            images.detach().float().cpu().numpy(),
            saliency.detach().float().cpu().numpy(),
            masks.float().cpu().numpy(),
            self.output_dir / f"overlay_epoch_{int(epoch):03d}.png",
            titles=titles,
        )
        self.written.append(path)
        if self.summary_writer is not None:
            self._to_tensorboard(path, int(epoch))
        if self.mlflow_handler is not None and getattr(self.mlflow_handler, "cur_run", None) is not None:
            try:
                self.mlflow_handler.client.log_artifact(
                    self.mlflow_handler.cur_run.info.run_id, str(path), artifact_path="overlays"
                )
            except Exception as e:  # tracking trouble must not stop training
                logger.warning(f"could not log {path} to MLflow: {e}")

    def _to_tensorboard(self, path: Path, epoch: int) -> None:
        import matplotlib.image as mpimg

        img = mpimg.imread(str(path))[..., :3]
        self.summary_writer.add_image("saliency_overlay", img, global_step=epoch, dataformats="HWC")


def _fmt(label: torch.Tensor) -> str:
    flat = label.flatten()
    return str(int(flat[0])) if flat.numel() == 1 else "".join(str(int(v)) for v in flat)
