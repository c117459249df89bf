"""The study's saliency gallery: the same annotated test images under the lambda = 0 run and the best-aligned run.

The bundle is read through the study's contract (:data:`~monai_explain.apps.study.sweep.BUNDLE_CONTRACT`: the ids
of the evaluation dataset, the network and the saliency method); the maps explain the classes chosen by the one
target policy (:func:`monai_explain.saliency.saliency_target`, ``"label"``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser
from monai.networks.utils import eval_mode

from monai_explain.saliency.targets import saliency_target

from .plots import plot_saliency_gallery

__all__ = ["saliency_gallery"]

logger = logging.getLogger(__name__)


def _parser(configs: Sequence[Path], overrides: Mapping[str, Any]) -> ConfigParser:
    p = ConfigParser()
    p.read_config([str(c) for c in configs])
    p.update(dict(overrides))
    return p


def saliency_gallery(
    configs: Sequence[Path],
    runs: Mapping[str, Mapping[str, Any]],
    contract: Mapping[str, Any],
    split: str,
    path: Path,
    n_images: int = 6,
) -> Path | None:
    """Draw the maps of each run on the first ``n_images`` annotated images of ``split``.

    Args:
        configs: the bundle's train and evaluate configs.
        runs: row label -> the run's config overrides (checkpoint folder, design, lambda, seed, ...).
        contract: the bundle contract (ids ``dataset``, ``network``, ``saliency_method``, ``split``, ``ckpt_dir``).
        split: the split to take the images from.
        path: the PNG file.
        n_images: images per row.

    Returns:
        The path written, or None when the split has no annotated image (logged).
    """
    ids = contract["ids"]
    first = _parser(configs, {**next(iter(runs.values())), ids["split"]: split})
    dataset = first.get_parsed_content(ids["dataset"])
    items = [it for it in (dataset[i] for i in range(len(dataset))) if float(torch.as_tensor(it["mask"]).max()) > 0]
    items = items[:n_images]
    if not items:
        logger.warning(f"no annotated image in split {split!r}: no saliency gallery.")
        return None
    images = torch.stack([torch.as_tensor(it["image"]) for it in items]).float()
    labels = torch.stack([torch.as_tensor(it["label"]).reshape(-1) for it in items]).float()
    maps = {}
    for name, overrides in runs.items():
        p = _parser(configs, {**overrides, ids["split"]: split})
        net = p.get_parsed_content(ids["network"]).cpu()
        state = torch.load(Path(overrides[ids["ckpt_dir"]]) / "model.pt", map_location="cpu", weights_only=True)
        net.load_state_dict(state.get("model", state))  # a bare state dict, or {"model": ..., "threshold": ...}
        method = p.get_parsed_content(ids["saliency_method"])
        with eval_mode(net), torch.no_grad():
            target = saliency_target(labels.squeeze(1) if labels.shape[1] == 1 else labels, net(images))
        with eval_mode(net), torch.enable_grad():
            maps[name] = method(images, target)[0].detach().numpy()
    masks = torch.stack([torch.as_tensor(it["mask"]) for it in items]).numpy()
    titles = [str(it.get("id", i))[:8] for i, it in enumerate(items)]
    return plot_saliency_gallery(images.numpy(), maps, path, masks=masks, image_titles=titles)
