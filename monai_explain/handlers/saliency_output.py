"""Evaluator handler that puts each image's saliency map (and its annotation mask) into the engine output."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from monai.data import MetaTensor
from monai.engines.utils import IterationEvents
from monai.networks.utils import eval_mode
from monai.utils import CommonKeys as Keys
from monai.utils import IgniteInfo, convert_to_dst_type, min_version, optional_import

from monai_explain.handlers.engine_typing import workflow, workflow_state
from monai_explain.saliency.targets import (
    SaliencyMethodProtocol,
    TargetSpec,
    check_target_policy,
    explained_classes,
    saliency_target,
)

if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["SaliencyOutputHandler"]


class SaliencyOutputHandler:
    """Adds ``"saliency"``, ``"saliency_class"`` and ``"mask"`` to a MONAI evaluator's output.

    MONAI's ``SupervisedEvaluator`` runs its forward pass under ``torch.no_grad``, which leaves nothing to take a
    saliency map from. On ``IterationEvents.FORWARD_COMPLETED`` (before decollation) this handler runs the network
    once more in eval mode with gradients enabled, through the saliency method (hooks registered only for that
    forward), detaches the map, and stores it with the batch's mask and the class each map channel explains
    (:func:`monai_explain.saliency.targets.explained_classes`, ``(B, K)``), so that the alignment metrics, the
    faithfulness handler and the per-image table score the same (image, class) pairs. Decollation then gives each
    item its own entries, read by e.g. ``SaliencyPrecisionHandler(output_transform=from_engine(["saliency",
    "mask"]))``.

    Args:
        saliency_method: a saliency method on the evaluator's network (:class:`SaliencyMethodProtocol`).
        mask_key: key of the annotation mask in the collated batch; None when there is none (inference).
        target: the target policy (:mod:`monai_explain.saliency.targets`): ``"label"`` (the annotated classes),
            ``"pred"`` (the predicted class), ``"all"``, a class index or a callable ``f(label, logits)``.
        saliency_key: output key for the map (the explained classes go to ``<saliency_key>_class``).
    """

    def __init__(
        self,
        saliency_method: SaliencyMethodProtocol,
        mask_key: str | None = "mask",
        target: TargetSpec = "label",
        saliency_key: str = "saliency",
    ) -> None:
        self.saliency_method = saliency_method
        self.mask_key = mask_key
        self.target = check_target_policy(target)
        self.saliency_key = saliency_key

    def attach(self, engine: Engine) -> None:
        if not engine.has_event_handler(self, IterationEvents.FORWARD_COMPLETED):
            engine.add_event_handler(IterationEvents.FORWARD_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        state = workflow_state(engine)
        output, batch = state.output, state.batch
        if self.mask_key is not None and (not isinstance(batch, dict) or self.mask_key not in batch):
            keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
            raise KeyError(f"SaliencyOutputHandler: mask key {self.mask_key!r} not in the batch (keys: {keys}).")
        inputs = output[Keys.IMAGE]
        logits = output[Keys.PRED].detach()
        target = saliency_target(output.get(Keys.LABEL), logits, self.target)
        net = workflow(engine).network
        with eval_mode(net), torch.enable_grad():
            x = inputs.detach().requires_grad_(bool(getattr(self.saliency_method, "needs_input_grad", False)))
            saliency, _ = self.saliency_method(x, target)
        saliency = saliency.detach().float()
        if isinstance(inputs, MetaTensor):  # keep each image's meta (file name, affine) for savers downstream
            saliency = convert_to_dst_type(saliency, dst=inputs, dtype=torch.float32)[0]
        output[self.saliency_key] = saliency
        output[f"{self.saliency_key}_class"] = explained_classes(target, logits.shape[1]).to(logits.device)
        if self.mask_key is not None:
            output[self.mask_key] = torch.as_tensor(batch[self.mask_key]).to(inputs.device)
