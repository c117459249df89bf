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

from .engine_typing import workflow
from .explanation_loss import default_saliency_target

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = [
    "DENSITY_VMAX",
    "OVERLAY_CMAP",
    "SaliencyOverlayHandler",
    "overlay_colormap",
    "positives_and_negatives",
    "saliency_density",
    "save_overlay_grid",
]

logger = logging.getLogger(__name__)

# The overlays' fixed colour scale: saliency density (saliency / its image mean) from 0 to DENSITY_VMAX.
DENSITY_VMAX = 10.0
OVERLAY_CMAP = "inferno"


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


def saliency_density(saliency: np.ndarray) -> np.ndarray | None:
    """A map on the overlays' fixed scale: the saliency (negative values as 0) divided by its mean over the image.

    1 is the image's average; a value of 10 marks ten times the average share of the saliency mass. The mean of
    the density over a region times the region's area fraction is the share of the saliency mass in the region
    (the mass-mode saliency precision for the annotated region). None for a map without positive values.
    """
    s = np.clip(np.asarray(saliency, dtype=np.float64), 0.0, None)
    mean = float(s.mean()) if s.size else 0.0
    return s / mean if mean > 0 and np.isfinite(mean) else None


def overlay_colormap(name: str, alpha: float) -> Any:
    """``name`` with an opacity ramp: transparent at 0, ``alpha`` from a quarter of the scale up."""
    import matplotlib
    from matplotlib.colors import ListedColormap

    colors = matplotlib.colormaps[name](np.linspace(0.0, 1.0, 256))
    colors[:, 3] = alpha * np.clip(np.linspace(0.0, 1.0, 256) / 0.25, 0.0, 1.0)
    return ListedColormap(colors, name=f"{name}_ramp")


def save_overlay_grid(
    images: np.ndarray,
    saliency: np.ndarray,
    masks: np.ndarray | None,
    path: str | os.PathLike,
    titles: Sequence[str] | None = None,
    alpha: float = 0.75,
    *,
    labels: Sequence[float] | None = None,
    probabilities: Sequence[float] | None = None,
    title: str | None = None,
    class_name: str | None = None,
    vmax: float = DENSITY_VMAX,
    cmap: str = OVERLAY_CMAP,
    annotation_label: str = "annotation",
) -> Path:
    """Write one PNG: each image in grey, its saliency in colour on a fixed scale, the annotation contour in green.

    The colour shows :func:`saliency_density` (saliency / its image mean) on ``[0, vmax]`` with the perceptually
    uniform colormap ``cmap`` (values above ``vmax`` take its top colour; a colour bar shows the scale), fading to
    transparent towards 0 so the anatomy stays visible. Every figure uses the same scale, so panels and epochs
    compare directly (no per-panel normalisation). A legend names the green contour (``annotation_label``). With
    ``labels``, positives (label > 0) form the first row and negatives the second, each row labelled; each panel
    shows its label and probability (``titles`` replaces that text).

    Args:
        images: ``(N, C, *spatial)`` images (2D, or 3D shown at the slice of the last axis with the most
            annotated voxels, the middle slice without annotation).
        saliency: ``(N, K, *spatial)`` maps; channel 0 is shown.
        masks: ``(N, K, *spatial)`` annotation masks or None.
        path: output file (folders are created).
        titles: one text per panel (default: label and probability when given).
        alpha: opacity of the saliency colours at the top of the scale.
        labels: the label of the class shown, per panel (splits positives from negatives).
        probabilities: the predicted probability of the class shown, per panel.
        title: the figure's title (e.g. epoch, method, design, lambda, class).
        class_name: the class shown, used in the panel texts.
        vmax: top of the colour scale, in multiples of the image-average saliency density.
        cmap: a matplotlib colormap name (perceptually uniform: ``inferno``, ``viridis``, ``magma``...).
        annotation_label: legend text of the contour.

    Returns:
        The path written.

    Raises:
        ValueError: when the per-panel sequences do not have one entry per image.
        OSError: when the file cannot be written (e.g. a full disk), with the path in the message and the original
            errno; a partly written file is removed.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D

    n = len(images)
    for name, seq in (("titles", titles), ("labels", labels), ("probabilities", probabilities)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"save_overlay_grid: {name} has {len(seq)} entries for {n} images")
    if labels is not None:
        pos = [i for i in range(n) if float(labels[i]) > 0]
        neg = [i for i in range(n) if float(labels[i]) <= 0]
        rows = [(f"positives ({class_name})" if class_name else "positives", pos), ("negatives", neg)]
        rows = [r for r in rows if r[1]]
    else:
        rows = [("", list(range(n)))]
    ncols = max(len(r[1]) for r in rows)
    fig, axes = plt.subplots(
        len(rows), ncols, figsize=(2.3 * ncols + 1.3, 2.45 * len(rows) + 1.0), squeeze=False, layout="constrained"
    )
    overlay = overlay_colormap(cmap, alpha)
    norm = Normalize(vmin=0.0, vmax=vmax)
    for r, (row_name, indices) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(indices):
                ax.axis("off")
                continue
            i = indices[c]
            # MONAI readers put the image column on the first spatial axis: transpose for display (rows down).
            index = _slice_index(None if masks is None else masks[i], images[i].shape)
            ax.imshow(_view(images[i], index).T, cmap="gray")
            density = saliency_density(_view(saliency[i], index).T)
            if density is not None:
                ax.imshow(density, cmap=overlay, norm=norm, interpolation="bilinear")
            if masks is not None:
                m = _view(masks[i], index).T
                if m.max() > 0:
                    ax.contour(m, levels=[0.5], colors="lime", linewidths=1.2)
            text = _panel_text(i, titles, labels, probabilities, class_name)
            if density is None:
                text += "\n(saliency all zero)"
            ax.set_title(text, fontsize=8)
            if c == 0 and row_name:
                ax.set_ylabel(row_name, fontsize=9)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, extend="max", shrink=0.9, pad=0.02)
    bar.set_label("saliency density (x image average)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    if masks is not None:
        fig.legend(
            handles=[Line2D([], [], color="lime", linewidth=1.5, label=annotation_label)],
            loc="outside lower center",
            fontsize=8,
            frameon=False,
        )
    if title:
        fig.suptitle(title, fontsize=9)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=90)
    except OSError as e:
        with contextlib.suppress(OSError):  # a truncated PNG must not stay behind (MLflow would log it as an artifact)
            path.unlink(missing_ok=True)
        if e.errno is None:
            raise OSError(f"could not write the saliency overlay {path}: {e}") from e
        raise OSError(e.errno, f"could not write the saliency overlay {path}: {e.strerror or e}") from e
    finally:
        plt.close(fig)
    return path


def _panel_text(
    i: int,
    titles: Sequence[str] | None,
    labels: Sequence[float] | None,
    probabilities: Sequence[float] | None,
    class_name: str | None,
) -> str:
    if titles is not None:
        return str(titles[i])
    parts = []
    if labels is not None:
        parts.append(f"label {float(labels[i]):g}")
    if probabilities is not None:
        parts.append(f"p({class_name or 'class'}) = {float(probabilities[i]):.2f}")
    return ", ".join(parts)


def positives_and_negatives(data: Sequence[dict], n_each: int, label_key: str = "label") -> list[int]:
    """Indices of the first ``n_each`` records with a positive label, then of the first ``n_each`` negatives.

    Fewer are returned when a split has fewer of one kind (the overlays then show what there is).
    """
    pos = [i for i, rec in enumerate(data) if np.any(np.asarray(rec[label_key], dtype=np.float32) > 0)]
    chosen = set(pos)
    neg = [i for i in range(len(data)) if i not in chosen]
    return pos[: int(n_each)] + neg[: int(n_each)]


class SaliencyOverlayHandler:
    """Each epoch, draws the saliency of a fixed set of validation images with their annotation contour.

    Attach it to the evaluator (or trainer). At every ``EPOCH_COMPLETED`` it runs the saliency method on the
    fixed items in eval mode and writes ``<output_dir>/overlay_epoch_<NNN>.png`` (or ``<output_dir>/<filename>``)
    with :func:`save_overlay_grid`:
    positives and negatives in two rows, the saliency density on the fixed colour scale with its colour bar, the
    annotation contour named in a legend, a title (epoch, saliency method, ``title`` e.g. design and lambda, class)
    and per panel the label and predicted probability of the class shown. With ``mlflow_handler`` (the run's
    :class:`~monai_explain.handlers.ResilientMLFlowHandler`, or a MONAI ``MLFlowHandler``) each PNG is logged to
    the run under ``overlays/`` as soon as it is written; with ``summary_writer`` it goes to TensorBoard too.

    Args:
        saliency_method: a :class:`monai_explain.saliency.SaliencyMethod` on the network.
        items: the fixed items: transformed data dicts with ``image_key``, ``label_key`` and ``mask_key``
            (:func:`positives_and_negatives` picks some of each from a data list).
        output_dir: where the PNG files go.
        network: the network to explain; default the engine's ``network``.
        image_key, label_key, mask_key: keys in the items.
        target_fn: ``f(label, logits)`` -> saliency target; default explains the annotated class.
        summary_writer: optional ``torch.utils.tensorboard.SummaryWriter``.
        mlflow_handler: optional MLflow handler whose run receives each PNG.
        global_epoch_transform: maps the engine to the epoch number written in the name; default the
            engine's epoch (give ``lambda e: trainer.state.epoch`` when attached to an evaluator).
        title: text added to the figure title (e.g. ``"design energy, lambda 3.0"``).
        class_names: names of the network's output classes (for the title and panel texts).
        method_name: the saliency method's name in the title; default its class name.
        annotation_label: legend text of the contour.
        filename: a fixed file name for a one-off evaluation of a checkpoint (e.g. ``"saliency_overlay.png"``, as
            in the bundles' ``evaluate.json``): the figure is overwritten at each epoch and its title names no
            epoch. Default: one ``overlay_epoch_<NNN>.png`` per epoch.
        artifact_path: the folder of the MLflow run the PNGs go to; give each evaluation its own (e.g.
            ``"overlays/test_shifted"``) when several evaluations with one ``filename`` log to the same run.
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
        title: str | None = None,
        class_names: Sequence[str] | None = None,
        method_name: str | None = None,
        annotation_label: str = "annotation",
        filename: str | None = None,
        artifact_path: str = "overlays",
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
        self.title = title
        self.class_names = list(class_names) if class_names is not None else None
        self.method_name = method_name or type(saliency_method).__name__
        self.annotation_label = annotation_label
        self.filename = filename
        self.artifact_path = artifact_path
        self.written: list[Path] = []

    def attach(self, engine: Engine) -> None:
        if not engine.has_event_handler(self, Events.EPOCH_COMPLETED):
            engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        net = self.network if self.network is not None else workflow(engine).network
        # Under DDP only rank 0 draws: run the wrapped module itself, so that no collective call (buffer
        # broadcast) waits for the other ranks. The saliency hooks sit on the same sub-modules.
        net = net.module if isinstance(net, torch.nn.parallel.DistributedDataParallel) else net
        device = next(net.parameters()).device
        batch = list_data_collate(
            [{k: it[k] for k in (self.image_key, self.label_key, self.mask_key)} for it in self.items]
        )
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
        # the class of the map shown (channel 0): the target index, or class 0 of a multi-hot target
        shown = target.long() if target.ndim == 1 else torch.zeros(len(self.items), dtype=torch.long)
        shown = shown.to(probs.device)
        rows = torch.arange(len(self.items), device=probs.device)
        flat_labels = labels.reshape(len(self.items), -1).float()
        if probs.shape[1] > 1 and flat_labels.shape[1] == probs.shape[1]:  # multi-hot labels
            panel_labels = flat_labels[rows, shown]
        elif probs.shape[1] > 1:  # a class index per sample
            panel_labels = (flat_labels[:, 0].long() == shown).float()
        else:  # one binary output
            panel_labels = flat_labels[:, 0]
        panel_probs = probs.detach()[rows, shown]
        classes = sorted({int(k) for k in shown.tolist()})
        class_name = " / ".join(self._class_name(k) for k in classes)
        when = None if self.filename else f"epoch {int(epoch)}"
        title = " | ".join(t for t in (when, f"{self.method_name} saliency", self.title, f"class {class_name}") if t)
        path = save_overlay_grid(
            images.detach().float().cpu().numpy(),
            saliency.detach().float().cpu().numpy(),
            masks.float().cpu().numpy(),
            self.output_dir / (self.filename or f"overlay_epoch_{int(epoch):03d}.png"),
            labels=panel_labels.cpu().tolist(),
            probabilities=panel_probs.cpu().tolist(),
            title=title,
            class_name=class_name,
            annotation_label=self.annotation_label,
        )
        self.written.append(path)
        if self.summary_writer is not None:
            self._to_tensorboard(path, int(epoch))
        if self.mlflow_handler is not None:
            self._to_mlflow(path)

    def _class_name(self, k: int) -> str:
        return self.class_names[k] if self.class_names is not None and k < len(self.class_names) else str(k)

    def _to_mlflow(self, path: Path) -> None:
        handler = self.mlflow_handler
        if getattr(handler, "disabled", False):
            return
        try:
            resolve = getattr(handler, "_resolve_run", None)
            if resolve is not None:
                resolve()
            if getattr(handler, "cur_run", None) is None:
                return
            handler.client.log_artifact(handler.cur_run.info.run_id, str(path), artifact_path=self.artifact_path)
        except Exception as e:  # noqa: BLE001 (tracking trouble must not stop training)
            logger.warning(f"could not log {path} to MLflow: {e}")

    def _to_tensorboard(self, path: Path, epoch: int) -> None:
        import matplotlib.image as mpimg

        img = mpimg.imread(str(path))[..., :3]
        self.summary_writer.add_image("saliency_overlay", img, global_step=epoch, dataformats="HWC")
