"""The bundle contract of the study: which config files it runs, which config ids it sets, which splits it evaluates
and which files an evaluation writes. A bundle changes any entry in its ``configs/metadata.json`` under the key
``"monai_explain_study"``; no other knowledge of a bundle is in the study."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from monai_explain.handlers.per_image_results import PER_IMAGE_FILE

__all__ = ["BUNDLE_CONTRACT", "bundle_contract"]

#: How the study drives a bundle: config files, the config ids it overrides (role -> id), the splits evaluated by
#: default, the per-image file name and the saliency figure an evaluation writes (the report's gallery). Override
#: per bundle in metadata.json: ``{"monai_explain_study": {...}}``.
BUNDLE_CONTRACT: dict[str, Any] = {
    "prepare_config": None,
    "train_config": "train.json",
    "evaluate_config": "evaluate.json",
    "splits": ["test", "test_shifted"],
    "recovery_splits": ["test", "test_shifted"],
    "per_image_file": PER_IMAGE_FILE,
    "overlay_file": "saliency_overlay.png",
    "design_when_lambda0": "energy",
    "ids": {"design": "loss_design", "lambda": "lambda", "seed": "seed", "ckpt_dir": "ckpt_dir",
            "output_dir": "output_dir", "split": "test_split", "eval_dir": "eval_dir", "tracking_uri": "tracking_uri",
            "experiment_name": "experiment_name", "run_name": "run_name"},
}  # fmt: skip


def bundle_contract(bundle: str | os.PathLike) -> dict[str, Any]:
    """:data:`BUNDLE_CONTRACT` updated with the bundle's ``configs/metadata.json`` ``"monai_explain_study"`` entry."""
    meta_path = Path(bundle) / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text()).get("monai_explain_study", {}) if meta_path.is_file() else {}
    unknown = sorted(set(meta) - set(BUNDLE_CONTRACT))
    if unknown:
        raise ValueError(
            f"{meta_path}: unknown 'monai_explain_study' key(s) {unknown} (known: {sorted(BUNDLE_CONTRACT)})."
        )
    return {**BUNDLE_CONTRACT, **meta, "ids": {**BUNDLE_CONTRACT["ids"], **meta.get("ids", {})}}
