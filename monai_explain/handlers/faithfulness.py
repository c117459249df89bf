"""Evaluator handler computing deletion / insertion AUC of each image's saliency map."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from monai.engines.utils import IterationEvents
from monai.metrics import Cumulative
from monai.networks.utils import eval_mode
from monai.utils import CommonKeys as Keys
from monai.utils import IgniteInfo, min_version, optional_import

from monai_explain.handlers.engine_typing import engine_output, workflow, workflow_state
from monai_explain.metrics import compute_deletion_auc, compute_insertion_auc
from monai_explain.saliency.targets import explained_classes, saliency_target

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["FaithfulnessHandler"]


class FaithfulnessHandler:
    """Deletion (or insertion) AUC of the saliency maps an evaluator produces, as an evaluator metric.

    Runs after :class:`~monai_explain.handlers.SaliencyOutputHandler` on ``IterationEvents.FORWARD_COMPLETED``
    and scores the same (image, class) pairs as the alignment metrics: channel ``k`` of the map is scored against
    the probability of the class it explains (``output["saliency_class"]``, see
    :func:`monai_explain.saliency.targets.explained_classes`), for the images whose mask channel ``k`` is not
    empty (others get NaN). It perturbs each image in the order of its own saliency map (see
    :func:`monai_explain.metrics.compute_deletion_auc`), with the network in eval mode and without gradients.
    Per-image values go to ``engine.state.output[name]`` (so they are decollated per item) and to
    ``engine.state.metric_details[name]`` (so ``MetricsSaver`` writes them); the mean over images, with
    ranks gathered under DDP, goes to ``engine.state.metrics[name]`` at ``EPOCH_COMPLETED``.

    Args:
        name: metric name, e.g. ``"deletion_auc"``.
        insertion: insertion AUC instead of deletion AUC.
        steps: perturbation steps.
        activation: ``"sigmoid"`` for multi-label / single-logit models, ``"softmax"`` for multi-class.
        baseline: what removed pixels become (default: the metric's own).
        batch_size: perturbed images per forward pass.
        saliency_key: key of the saliency maps in the engine output.
        mask_key: key of the annotation masks in the engine output: images without annotation get NaN (not
            computed), as in the alignment metrics.
    """

    def __init__(
        self,
        name: str = "deletion_auc",
        insertion: bool = False,
        steps: int = 20,
        activation: str = "sigmoid",
        baseline: str | None = None,
        batch_size: int = 64,
        saliency_key: str = "saliency",
        mask_key: str = "mask",
    ) -> None:
        self.name = name
        self.insertion = insertion
        self.kwargs: dict[str, Any] = {"steps": steps, "activation": activation, "batch_size": batch_size}
        if baseline is not None:
            self.kwargs["baseline"] = baseline
        self.compute = compute_insertion_auc if insertion else compute_deletion_auc
        self.buffer = Cumulative()  # type: ignore[abstract]  # a plain class at run time (no ABCMeta); aggregate() is unused
        self.saliency_key = saliency_key
        self.mask_key = mask_key

    def attach(self, engine: Engine) -> None:
        if not engine.has_event_handler(self.reset, Events.EPOCH_STARTED):
            engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
            engine.add_event_handler(IterationEvents.FORWARD_COMPLETED, self)
            engine.add_event_handler(Events.EPOCH_COMPLETED, self.completed)

    def reset(self, engine: Engine) -> None:
        self.buffer.reset()

    def __call__(self, engine: Engine) -> None:
        output = engine_output(engine)
        if self.saliency_key not in output:
            raise KeyError(
                f"FaithfulnessHandler: no {self.saliency_key!r} in the engine output; attach SaliencyOutputHandler "
                "before this handler."
            )
        logits = output[Keys.PRED]
        saliency = output[self.saliency_key]
        classes = output.get(f"{self.saliency_key}_class")
        if classes is None:  # maps made elsewhere: the same "label" policy as SaliencyOutputHandler's default
            classes = explained_classes(saliency_target(output[Keys.LABEL], logits), logits.shape[1])
        images = output[Keys.IMAGE].detach()
        classes = torch.as_tensor(classes, device=images.device).long()
        if classes.shape != saliency.shape[:2]:
            raise ValueError(
                f"FaithfulnessHandler: {classes.shape[1]} explained classes for saliency of shape "
                f"{tuple(saliency.shape)}."
            )
        mask = torch.as_tensor(output[self.mask_key]).to(images.device) if self.mask_key in output else None
        values = torch.full(tuple(saliency.shape[:2]), float("nan"), device=images.device)
        network = workflow(engine).network
        with eval_mode(network):
            for k in range(saliency.shape[1]):  # channel k explains class classes[:, k], scored against mask[:, k]
                keep = torch.ones(images.shape[0], dtype=torch.bool, device=images.device)
                if mask is not None:  # like the alignment metrics: only annotated (image, class) pairs count
                    m = mask[:, k] if mask.shape[1] == saliency.shape[1] else mask.amax(dim=1)
                    keep = m.flatten(1).amax(dim=1) > 0
                if bool(keep.any()):
                    sal = saliency[:, k : k + 1].to(images.device)[keep]
                    values[keep, k] = self.compute(network, images[keep], classes[keep, k], sal, **self.kwargs)[
                        :, 0
                    ].to(values.dtype)
        self.buffer.extend(values)
        output[self.name] = values

    def completed(self, engine: Engine) -> None:
        buffer = self.buffer.get_buffer()
        if buffer is None:
            return
        values = buffer.float()
        valid = ~torch.isnan(values)
        state = workflow_state(engine)
        state.metrics[self.name] = float(values[valid].mean()) if bool(valid.any()) else float("nan")
        if not hasattr(state, "metric_details") or state.metric_details is None:
            state.metric_details = {}
        state.metric_details[self.name] = values
