"""The per-image results table of an evaluation: one row per image and class (the results contract).

``<output_dir>/per_image.csv`` (:data:`PER_IMAGE_FILE`), long format, columns :data:`PER_IMAGE_COLUMNS` then one
column per per-image metric the evaluator has:

============== ===============================================================================================
``id``         the image id (``batch[id_key]``)
``split``      the data split evaluated (any name: ``test``, ``test_shifted``, ``external``, ...)
``class``      the class name
``label``      the reference label of that class, 0/1
``probability`` the model's probability of that class (the evaluator's post-processed ``pred``)
``threshold``  the decision threshold of that class: the checkpoint's ``"threshold"`` when present, else 0.5
``decision``   ``probability >= threshold``, 0/1
``correct``    ``decision == label``, 0/1
``saliency_empty`` (with ``saliency_key``) 1 when the image's saliency map of that class is all zero, else 0
``<metric>``   every per-item value in ``engine.state.metric_details`` (alignment metrics, deletion /
               insertion AUC, confounder reliance, ...): empty where the metric was not computed for that
               (image, class), e.g. images without an annotation of the class
============== ===============================================================================================

Metric values are attributed to classes through ``output["saliency_class"]`` (the class each saliency channel
explains, written by :class:`~monai_explain.handlers.SaliencyOutputHandler`), so all metrics of one row refer to
the same (image, class) pair. The applications (:mod:`monai_explain.apps.study`) read only this table.

Without labels (inference) ``label`` and ``correct`` are empty; the same writer then gives the inference table
(``predictions.csv`` of the bundles' ``inference.json``).
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.utils import IgniteInfo, evenly_divisible_all_gather, min_version, optional_import, string_list_all_gather

from .engine_typing import workflow_state
from .threshold import load_decision_threshold

idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")
Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["PER_IMAGE_COLUMNS", "PER_IMAGE_FILE", "PerImageResultsWriter", "resolve_threshold"]

logger = logging.getLogger(__name__)

#: file name of the per-image table in an evaluation folder (the one name the applications rely on).
PER_IMAGE_FILE = "per_image.csv"
#: the fixed leading columns of the per-image table.
PER_IMAGE_COLUMNS: tuple[str, ...] = (
    "id",
    "split",
    "class",
    "label",
    "probability",
    "threshold",
    "decision",
    "correct",
)


def resolve_threshold(threshold: Any, num_classes: int, checkpoint: str | os.PathLike | None = None) -> torch.Tensor:
    """The per-class decision threshold: ``threshold`` if given, else the checkpoint's ``"threshold"``, else 0.5.

    Args:
        threshold: None, a number, one number per class, or an object whose ``state_dict()`` holds ``"threshold"``
            (e.g. ``monai_explain.handlers.DecisionThreshold`` after a ``CheckpointLoader``).
        num_classes: C.
        checkpoint: a checkpoint file (``torch.save`` of a dict) that may hold the key ``"threshold"``.

    Returns:
        ``(C,)`` float64 tensor.

    Raises:
        ValueError: a threshold whose length is neither 1 nor C, or outside [0, 1] (the source is named).
    """
    source = "argument"
    if threshold is not None and hasattr(threshold, "state_dict"):
        threshold, source = threshold.state_dict().get("threshold"), type(threshold).__name__
    if threshold is None and checkpoint is not None and Path(checkpoint).is_file():
        threshold, source = load_decision_threshold(checkpoint, num_classes), f"{checkpoint} ['threshold']"
    if threshold is None:
        threshold, source = 0.5, "default"
    t = torch.as_tensor(threshold, dtype=torch.float64).detach().cpu().reshape(-1)
    if t.numel() == 1:
        t = t.expand(num_classes).clone()
    if t.numel() != num_classes or bool(((t < 0) | (t > 1) | t.isnan()).any()):
        raise ValueError(
            f"decision threshold from {source} must be C={num_classes} values in [0, 1], got {t.tolist()}."
        )
    return t


def _cell(v: float, flag: bool = False) -> str:
    if math.isnan(v):
        return ""
    return str(int(v)) if flag else repr(float(v))


class PerImageResultsWriter:
    """Writes :data:`PER_IMAGE_FILE` at the end of an evaluation (table layout in the module docstring).

    Attach it to a ``SupervisedEvaluator`` after the handlers whose per-item values it reads (metric handlers,
    :class:`~monai_explain.handlers.FaithfulnessHandler`) and before ``MetricsSaver``: it also puts the per-image
    correctness ``(N, C)`` 0/1 into ``engine.state.metric_details["correct"]``, so that ``MetricsSaver`` writes
    ``correct_raw.csv`` with one 0/1 per image and class. Under DDP the rows are gathered and rank 0 writes.

    Args:
        output_dir: the evaluation folder.
        split: the split name written in every row.
        class_names: one name per class (default ``"0"``, ``"1"``, ...).
        threshold: a number, one per class, or an object with ``state_dict()["threshold"]``; default the
            checkpoint's ``"threshold"``, else 0.5 (see :func:`resolve_threshold`).
        checkpoint: the checkpoint file to read ``"threshold"`` from.
        metrics: names in ``engine.state.metric_details`` to write; default every per-item entry of shape
            ``(N, K)`` (other entries, e.g. confusion vectors, are left out and logged).
        id_key, pred_key, label_key: batch key of the image ids; output keys of the probabilities and labels.
        class_key: output key of the class each saliency channel explains.
        filename: the table's file name.
        saliency_key: output key of the saliency maps; when given, a ``saliency_empty`` column says which maps are
            all zero (e.g. a ReLU'd CAM of an image the model scores as negative), and their count is logged.

    Example::

        PerImageResultsWriter("eval/test", split="test", class_names=["Nodule/Mass"], checkpoint="models/model.pt")
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        split: str = "test",
        class_names: Sequence[str] | None = None,
        threshold: Any = None,
        checkpoint: str | os.PathLike | None = None,
        metrics: Sequence[str] | None = None,
        id_key: str = "id",
        pred_key: str = "pred",
        label_key: str = "label",
        class_key: str = "saliency_class",
        filename: str = PER_IMAGE_FILE,
        saliency_key: str | None = None,
    ) -> None:
        self.path = Path(output_dir) / filename
        self.split = str(split)
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        self.threshold, self.checkpoint = threshold, checkpoint
        self.metrics = None if metrics is None else list(metrics)
        self.id_key, self.pred_key, self.label_key, self.class_key = id_key, pred_key, label_key, class_key
        self.saliency_key = saliency_key
        self._reset()

    def _reset(self, engine: Engine | None = None) -> None:
        self._ids: list[str] = []
        self._probs: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        self._classes: list[torch.Tensor] = []
        self._empty: list[torch.Tensor] = []

    def attach(self, engine: Engine) -> None:
        if not engine.has_event_handler(self._reset, Events.EPOCH_STARTED):
            engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
            engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
            engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _collect(self, engine: Engine) -> None:
        state = workflow_state(engine)
        batch, output = state.batch, state.output
        rows = batch if isinstance(batch, list) else [batch]  # decollated items, or one collated batch
        missing = [r for r in rows if not isinstance(r, Mapping) or self.id_key not in r]
        if missing:
            keys = sorted(missing[0]) if isinstance(missing[0], Mapping) else type(missing[0]).__name__
            raise KeyError(f"PerImageResultsWriter: no image id key {self.id_key!r} in the batch (keys: {keys}).")
        batch_ids = [i for r in rows for i in (r[self.id_key] if isinstance(batch, Mapping) else [r[self.id_key]])]
        items = output if isinstance(output, list) else [output]
        probs = torch.stack([torch.as_tensor(o[self.pred_key]).detach().float().cpu().reshape(-1) for o in items])
        c = probs.shape[1]
        labels = [
            torch.as_tensor(o[self.label_key]).detach().float().cpu().reshape(-1)
            if o.get(self.label_key) is not None
            else torch.full((c,), float("nan"))  # no reference label (inference)
            for o in items
        ]
        onehot = [torch.nn.functional.one_hot(v.long(), c).float() if v.numel() == 1 and c > 1 else v for v in labels]
        self._ids += [str(i) for i in batch_ids]
        self._probs.append(probs)
        self._labels.append(torch.stack(onehot))
        if all(self.class_key in o for o in items):
            self._classes.append(torch.stack([torch.as_tensor(o[self.class_key]).long().cpu() for o in items]))
        if self.saliency_key is not None:
            maps = [torch.as_tensor(o[self.saliency_key]).detach() for o in items]  # each (K, *spatial)
            self._empty.append(torch.stack([(m.reshape(m.shape[0], -1) == 0).all(dim=1).double().cpu() for m in maps]))

    def _gather(self, x: torch.Tensor) -> torch.Tensor:
        return evenly_divisible_all_gather(x, concat=True) if idist.get_world_size() > 1 else x

    def __call__(self, engine: Engine) -> None:
        if not self._probs:
            logger.warning(f"PerImageResultsWriter: no iteration ran; {self.path} not written.")
            return
        ids = string_list_all_gather(self._ids) if idist.get_world_size() > 1 else self._ids
        probs, labels = self._gather(torch.cat(self._probs)), self._gather(torch.cat(self._labels))
        n, c = probs.shape
        classes = self._gather(torch.cat(self._classes)) if len(self._classes) == len(self._probs) else None
        names = self.class_names or [str(k) for k in range(c)]
        if len(names) != c or len(ids) != n:
            raise ValueError(
                f"PerImageResultsWriter: {len(names)} class names and {len(ids)} ids for predictions of shape {(n, c)}."
            )
        thr = resolve_threshold(self.threshold, c, self.checkpoint)
        decision = (probs.double() >= thr).float()
        correct = (decision == (labels > 0.5).float()).float()
        correct[labels.isnan()] = float("nan")
        details = getattr(engine.state, "metric_details", None)
        if details is None:
            workflow_state(engine).metric_details = details = {}
        columns = self._metric_columns(details, n, c, classes)
        if self.saliency_key is not None:
            table = self._per_class(self._gather(torch.cat(self._empty)), n, c, classes)
            if table is None:
                raise ValueError(f"PerImageResultsWriter: saliency maps do not match {c} classes ({self.path}).")
            columns["saliency_empty"] = table
            empty = int(torch.nan_to_num(columns["saliency_empty"]).sum())
            if empty:
                logger.warning(
                    f"{empty} of {int((~columns['saliency_empty'].isnan()).sum())} saliency maps are all zero (column "
                    f"saliency_empty of {self.path}): the method found no positive evidence for that class there."
                )
        details["correct"] = correct  # per-image 0/1 for MetricsSaver (correct_raw.csv)
        if idist.get_rank() != 0:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(list(PER_IMAGE_COLUMNS) + list(columns))
            for i in range(n):
                for k in range(c):
                    label = "" if labels[i, k].isnan() else int(labels[i, k] > 0.5)
                    right = "" if correct[i, k].isnan() else int(correct[i, k])
                    row = [ids[i], self.split, names[k], label, repr(float(probs[i, k])), repr(float(thr[k])),
                           int(decision[i, k]), right]  # fmt: skip
                    w.writerow(row + [_cell(float(v[i, k]), name == "saliency_empty") for name, v in columns.items()])
        logger.info(f"per-image results: {n} images x {c} classes -> {self.path}")

    @staticmethod
    def _per_class(v: torch.Tensor, n: int, c: int, classes: torch.Tensor | None) -> torch.Tensor | None:
        """Per-channel values ``(N, K)`` as ``(N, C)`` per class (NaN where no channel explains it), or None."""
        if classes is not None and classes.shape == v.shape:
            table = torch.full((n, c), float("nan"), dtype=torch.float64)
            return table.scatter_(1, classes.clamp(0, c - 1), v.double())  # channel k explains class classes[i, k]
        return v.double() if v.shape[1] == c else None

    def _metric_columns(
        self, details: Mapping[str, Any], n: int, c: int, classes: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """``name -> (N, C)`` values per (image, class) from per-item metric details ``(N, K)``."""
        names = self.metrics if self.metrics is not None else [k for k in details if k != "correct"]
        out, skipped = {}, []
        for name in names:
            if name not in details:
                raise KeyError(f"PerImageResultsWriter: no per-item values {name!r} (available: {sorted(details)}).")
            v = torch.as_tensor(details[name]).detach().double().cpu()
            if v.ndim == 1:
                v = v[:, None]
            if v.ndim != 2 or v.shape[0] != n:
                skipped.append(f"{name} {tuple(v.shape)}")
                continue
            table = self._per_class(v, n, c, classes)
            if table is None:
                skipped.append(f"{name} {tuple(v.shape)}")
                continue
            out[name] = table
        if skipped:
            logger.info(
                f"PerImageResultsWriter: {len(skipped)} metric detail(s) are not per (image, class): {skipped}."
            )
        return out
