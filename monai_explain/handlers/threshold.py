"""The decision threshold of a classifier, chosen on the validation split and saved with the model.

A sigmoid classifier's AUC does not depend on a threshold, but its decisions do: a fixed 0.5 turns a model with
AUC 0.95 into accuracy 0.50 when every score sits on one side of 0.5 (a shifted logit offset, which BatchNorm
statistics or a class-imbalanced batch easily produce). :class:`DecisionThreshold` is attached to the validation
evaluator: at the end of every validation it chooses one threshold per class on the validation predictions by a
documented rule, publishes it and the accuracy / balanced accuracy at it in ``engine.state.metrics``, and, being
state-dict-able, is saved in the best-model checkpoint next to the network (``save_dict={"model": net,
"threshold": decision_threshold}``). Readers (``evaluate.json``, ``inference.json``, the per-image table) get it
back with :func:`load_decision_threshold` (0.5 per class when the checkpoint has none, logged).

Rules (one threshold per class, a prediction is positive when ``probability >= threshold``):

- ``"youden"`` (default): maximise Youden's J = sensitivity + specificity - 1, i.e. the balanced accuracy
  ``(sensitivity + specificity) / 2``. Insensitive to the class balance of the validation split.
- ``"f1"``: maximise the F1 score of the positive class (for rare findings where false positives cost).
- ``None``: keep the given threshold (evaluation: report accuracy and balanced accuracy at the saved one).

Candidates are the midpoints between consecutive distinct validation scores (a threshold never sits on a score,
so a small shift of the scores does not flip the decisions of the validation images). Among candidates with the
same best value, the one closest to ``default`` (0.5) wins, then the lower one. A class whose validation split
has no positive or no negative image, or where no candidate beats the trivial rule (J <= 0), keeps its previous
threshold (initially ``default``); this is logged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.handlers.utils import from_engine
from monai.metrics import Cumulative
from monai.utils import IgniteInfo, StrEnum, look_up_option, min_version, optional_import

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = [
    "DEFAULT_DECISION_THRESHOLD",
    "DecisionThreshold",
    "ThresholdRule",
    "apply_threshold",
    "choose_threshold",
    "decision_metrics",
    "load_decision_threshold",
]

logger = logging.getLogger(__name__)

#: The threshold used when none was chosen (per class).
DEFAULT_DECISION_THRESHOLD = 0.5
_TIE_TOL = 1e-12


class ThresholdRule(StrEnum):
    """How :func:`choose_threshold` picks a class's threshold on validation scores.

    - ``youden``: maximise sensitivity + specificity - 1 (the balanced accuracy).
    - ``f1``: maximise the F1 score of the positive class.
    """

    YOUDEN = "youden"
    F1 = "f1"


def choose_threshold(
    scores: Sequence[float] | np.ndarray | torch.Tensor,
    labels: Sequence[float] | np.ndarray | torch.Tensor,
    rule: ThresholdRule | str = ThresholdRule.YOUDEN,
    default: float = DEFAULT_DECISION_THRESHOLD,
) -> float | None:
    """The threshold of one class maximising ``rule`` on ``(scores, labels)``, or ``None`` when undefined.

    Args:
        scores: (N,) predicted probabilities (any real scores work).
        labels: (N,) 0/1 truth.
        rule: a :class:`ThresholdRule`.
        default: the tie-break anchor: among equally good candidates the one closest to it wins.

    Returns:
        the threshold (a midpoint between two consecutive distinct scores), or ``None`` when the labels hold a
        single class, the scores a single value, or no candidate beats the trivial rule (J <= 0 / F1 = 0).

    Raises:
        ValueError: shapes differ, or a label other than 0/1, or a non-finite score.

    Example:
        >>> choose_threshold([0.1, 0.3, 0.6, 0.8], [0, 0, 1, 1])
        0.45
    """
    rule = look_up_option(rule, ThresholdRule)
    s = np.asarray(torch.as_tensor(scores).detach().cpu().double().reshape(-1))
    y = np.asarray(torch.as_tensor(labels).detach().cpu().double().reshape(-1))
    if s.shape != y.shape:
        raise ValueError(f"scores and labels must have the same length, got {s.shape[0]} and {y.shape[0]}.")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite (a NaN or inf prediction).")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError(f"labels must be 0 or 1, got values {sorted(set(y.tolist()) - {0.0, 1.0})[:5]}.")
    n_pos, n_neg = float(y.sum()), float((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp, fp = np.cumsum(y_sorted), np.cumsum(1 - y_sorted)
    cut = np.flatnonzero(s_sorted[:-1] > s_sorted[1:])  # positives = the first cut + 1 sorted scores
    if cut.size == 0:
        return None
    thresholds = (s_sorted[cut] + s_sorted[cut + 1]) / 2
    tp_c, fp_c = tp[cut], fp[cut]
    if rule == ThresholdRule.YOUDEN:
        value = tp_c / n_pos - fp_c / n_neg
    else:
        value = 2 * tp_c / (2 * tp_c + fp_c + (n_pos - tp_c))
    best = float(value.max())
    if best <= 0:
        return None
    tied = np.flatnonzero(value >= best - _TIE_TOL)
    distance = np.abs(thresholds[tied] - default)
    pick = tied[np.lexsort((thresholds[tied], distance))[0]]
    return float(thresholds[pick])


def decision_metrics(
    probabilities: torch.Tensor, labels: torch.Tensor, threshold: torch.Tensor | float | Sequence[float]
) -> dict[str, torch.Tensor]:
    """Per-class accuracy and balanced accuracy of ``probabilities >= threshold``.

    Args:
        probabilities: (N, C) scores.
        labels: (N, C) 0/1 truth.
        threshold: a float or (C,) thresholds.

    Returns:
        ``{"accuracy": (C,), "balanced_accuracy": (C,), "sensitivity": (C,), "specificity": (C,)}``; a rate whose
        denominator is 0 (no positive / negative image of the class) is NaN, and so is the balanced accuracy then.
    """
    p = torch.as_tensor(probabilities).detach().float()
    y = torch.as_tensor(labels).detach().float().to(p.device)
    if p.ndim == 1:
        p, y = p[:, None], y.reshape(-1, 1)
    t = torch.as_tensor(threshold, dtype=p.dtype, device=p.device).reshape(-1)
    decision = (p >= t).float()
    n_pos, n_neg = y.sum(0), (1 - y).sum(0)
    tp, tn = (decision * y).sum(0), ((1 - decision) * (1 - y)).sum(0)
    nan = torch.full_like(tp, float("nan"))
    sens = torch.where(n_pos > 0, tp / n_pos.clamp(min=1), nan)
    spec = torch.where(n_neg > 0, tn / n_neg.clamp(min=1), nan)
    return {
        "accuracy": (decision == y).float().mean(0),
        "balanced_accuracy": (sens + spec) / 2,
        "sensitivity": sens,
        "specificity": spec,
    }


def _threshold_of(threshold: Any) -> torch.Tensor:
    if isinstance(threshold, DecisionThreshold):  # before its first choice: its default
        return threshold.threshold if threshold.threshold.numel() else torch.tensor([threshold.default])
    return torch.as_tensor(threshold, dtype=torch.float32).reshape(-1)


def apply_threshold(
    probabilities: torch.Tensor, threshold: DecisionThreshold | torch.Tensor | float, channel_dim: int = 0
) -> torch.Tensor:
    """Decisions ``probabilities >= threshold`` as 0/1 floats of the input's shape, e.g. in a postprocessing ``Lambdad``.

    Args:
        probabilities: one item's probabilities, channel first ``(C, ...)`` (``channel_dim=0``, the decollated
            items of a MONAI engine), or a batch ``(B, C)`` with ``channel_dim=1``.
        threshold: a :class:`DecisionThreshold` (its current value is read at call time), a float or (C,) values.
        channel_dim: the class axis of ``probabilities``.

    Example:
        ``{"_target_": "Lambdad", "keys": "pred_bin", "func": "$lambda p: monai_explain.handlers.apply_threshold(p,
        @validate#threshold)"}``
    """
    p = torch.as_tensor(probabilities)
    dtype = p.dtype if p.is_floating_point() else torch.float32
    t = _threshold_of(threshold).to(device=p.device, dtype=dtype)
    if t.numel() > 1:
        t = t.reshape([-1 if i == channel_dim % p.ndim else 1 for i in range(p.ndim)])
    return (p >= t).to(dtype)


def load_decision_threshold(
    checkpoint: str | os.PathLike | Mapping,
    num_classes: int,
    key: str = "threshold",
    default: float = DEFAULT_DECISION_THRESHOLD,
    map_location: Any = "cpu",
) -> torch.Tensor:
    """The per-class decision threshold saved in a checkpoint, or ``default`` per class when it has none (logged).

    Reads ``checkpoint[key]``: a :class:`DecisionThreshold` state dict (``{"threshold": tensor}``) or a tensor. A
    missing file is an error; a checkpoint without the key (an older ``model.pt``, a bare state dict) falls back to
    ``default`` with a warning.

    Args:
        checkpoint: path of a ``torch.save`` file or an already loaded dict.
        num_classes: the number of classes (a one-value threshold is broadcast to it).
        key: the checkpoint key.
        default: the fallback per class.
        map_location: for ``torch.load``.

    Returns:
        float32 tensor (num_classes,).

    Raises:
        FileNotFoundError: no such checkpoint file.
        ValueError: a saved threshold with another number of classes, or a non-finite value.
    """
    name = "<dict>"
    if not isinstance(checkpoint, Mapping):
        name = os.fspath(checkpoint)
        if not os.path.isfile(name):
            raise FileNotFoundError(f"checkpoint {name} not found.")
        checkpoint = torch.load(name, map_location=map_location, weights_only=True)
    value = checkpoint.get(key) if isinstance(checkpoint, Mapping) else None
    if isinstance(value, Mapping):
        value = value.get("threshold")
    if value is None:
        logger.warning(f"{name}: no decision threshold saved (key {key!r}); using {default} for every class.")
        return torch.full((int(num_classes),), float(default))
    t = torch.as_tensor(value, dtype=torch.float32).reshape(-1).cpu()
    if t.numel() == 1:
        t = t.expand(int(num_classes)).clone()
    if t.numel() != int(num_classes) or not bool(torch.isfinite(t).all()):
        raise ValueError(
            f"{name}: saved threshold {t.tolist()} does not give one finite value for {num_classes} classes."
        )
    logger.info(f"{name}: decision threshold {[round(v, 4) for v in t.tolist()]} (chosen on the validation split).")
    return t


class DecisionThreshold:
    """Choose (or keep) the per-class decision threshold at every evaluator run; report decisions at it.

    Attach it to the validation evaluator (first among its handlers, so that checkpoint savers, stats and MLflow
    handlers that run at ``EPOCH_COMPLETED`` see its values). It collects ``(probabilities, labels)`` at every
    iteration (ranks gathered under DDP) and at ``EPOCH_COMPLETED``:

    1. with a ``rule``, sets :attr:`threshold` per class by :func:`choose_threshold` on that run's predictions;
    2. writes ``<prefix>threshold`` (one class) or ``<prefix>threshold_<i>`` (several), ``<prefix>accuracy`` and
       ``<prefix>balanced_accuracy`` (means over classes, NaN classes left out) into ``engine.state.metrics``.

    The accuracy reported on the split the threshold was chosen on is optimistic by construction; the test splits
    are scored at the saved threshold (``rule=None``).

    Args:
        rule: ``"youden"`` (default), ``"f1"`` (see :class:`ThresholdRule`) or ``None`` to keep ``threshold``.
        threshold: initial threshold, a float or one value per class (``None`` = ``default`` per class, sized at
            the first prediction).
        default: threshold used before any choice and for classes where the rule is undefined.
        metric_prefix: prefix of the metric names (``"val_"`` in training; ``""`` in evaluation).
        output_transform: ``engine.state.output`` -> ``(probabilities, labels)``; default
            ``from_engine(["pred", "label"])`` (post-sigmoid ``pred`` of a MONAI evaluator).

    Attributes:
        threshold: float32 tensor (C,) - what :meth:`state_dict` saves.

    Example:
        .. code-block:: python

            threshold = DecisionThreshold(rule="youden")
            evaluator = SupervisedEvaluator(..., val_handlers=[threshold, CheckpointSaver(
                save_dir, {"model": net, "threshold": threshold}, save_key_metric=True)])
    """

    def __init__(
        self,
        rule: ThresholdRule | str | None = ThresholdRule.YOUDEN,
        threshold: float | Sequence[float] | torch.Tensor | None = None,
        default: float = DEFAULT_DECISION_THRESHOLD,
        metric_prefix: str = "val_",
        output_transform: Callable = from_engine(["pred", "label"]),  # noqa: B008 (MONAI style)
    ) -> None:
        self.rule = None if rule is None else look_up_option(rule, ThresholdRule)
        self.default = float(default)
        self.threshold = (
            torch.empty(0) if threshold is None else torch.as_tensor(threshold, dtype=torch.float32).reshape(-1).clone()
        )
        self.metric_prefix = metric_prefix
        self.output_transform = output_transform
        self._buffer = Cumulative()  # type: ignore[abstract]  # a plain class at run time (no ABCMeta); aggregate() is unused

    # -- state dict (saved by CheckpointSaver) ------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        """``{"threshold": (C,) float32 tensor}``."""
        return {"threshold": self.threshold.detach().clone()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore :attr:`threshold` from :meth:`state_dict`'s output.

        Raises:
            KeyError: no ``"threshold"`` entry.
        """
        if "threshold" not in state_dict:
            raise KeyError(f"DecisionThreshold state dict needs a 'threshold' entry, got keys {sorted(state_dict)}.")
        self.threshold = torch.as_tensor(state_dict["threshold"], dtype=torch.float32).reshape(-1).clone()

    # -- ignite -------------------------------------------------------------------------------------------------
    def attach(self, engine: Engine) -> None:
        """Collect at ``ITERATION_COMPLETED``, choose and report at ``EPOCH_COMPLETED``."""
        if not engine.has_event_handler(self.reset, Events.EPOCH_STARTED):
            engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
            engine.add_event_handler(Events.ITERATION_COMPLETED, self)
            engine.add_event_handler(Events.EPOCH_COMPLETED, self.completed)

    def reset(self, engine: Engine | None = None) -> None:
        """Empty the collected predictions."""
        self._buffer.reset()

    def __call__(self, engine: Engine) -> None:
        """Collect one iteration's ``(probabilities, labels)``."""
        probs, labels = self.output_transform(engine.state.output)
        probs = torch.stack([torch.as_tensor(p) for p in probs]) if isinstance(probs, (list, tuple)) else probs
        labels = torch.stack([torch.as_tensor(y) for y in labels]) if isinstance(labels, (list, tuple)) else labels
        probs = torch.as_tensor(probs).detach().float()
        labels = torch.as_tensor(labels).detach().float().to(probs.device)
        if probs.ndim == 1:
            probs = probs[:, None]
        self._buffer.extend(probs.reshape(probs.shape[0], -1), labels.reshape(probs.shape[0], -1))

    def update(self, probabilities: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Choose the threshold on ``(probabilities, labels)`` ((N, C) each) by :attr:`rule`; return it.

        Classes where the rule is undefined keep their current threshold (logged).
        """
        p = torch.as_tensor(probabilities).detach().float().cpu()
        y = torch.as_tensor(labels).detach().float().cpu()
        if p.ndim == 1:
            p, y = p[:, None], y.reshape(-1, 1)
        num_classes = p.shape[1]
        if self.threshold.numel() == 0:
            self.threshold = torch.full((num_classes,), self.default)
        elif self.threshold.numel() == 1 and num_classes > 1:
            self.threshold = self.threshold.expand(num_classes).clone()
        if self.threshold.numel() != num_classes:
            raise ValueError(
                f"DecisionThreshold holds {self.threshold.numel()} thresholds, predictions have {num_classes} classes."
            )
        if self.rule is None:
            return self.threshold
        new = self.threshold.clone()
        for c in range(num_classes):
            t = choose_threshold(p[:, c], y[:, c], self.rule, self.default)
            if t is None:
                logger.warning(
                    f"DecisionThreshold: class {c}: rule {self.rule!s} undefined on {p.shape[0]} predictions "
                    f"({int(y[:, c].sum())} positive, or no informative cut); keeping {float(new[c]):.4f}."
                )
                continue
            new[c] = t
        self.threshold = new
        return self.threshold

    def completed(self, engine: Engine) -> None:
        """Choose the threshold on the collected predictions and write the metrics."""
        buffers = self._buffer.get_buffer()
        if buffers is None or len(buffers) != 2 or buffers[0].numel() == 0:
            logger.warning("DecisionThreshold: no predictions collected in this run; threshold unchanged.")
            return
        probs, labels = buffers
        threshold = self.update(probs, labels)
        stats = decision_metrics(probs, labels, threshold)
        metrics = engine.state.metrics
        if threshold.numel() == 1:
            metrics[f"{self.metric_prefix}threshold"] = float(threshold[0])
        else:
            for c, t in enumerate(threshold.tolist()):
                metrics[f"{self.metric_prefix}threshold_{c}"] = float(t)
        for name in ("accuracy", "balanced_accuracy"):
            v = stats[name]
            valid = ~torch.isnan(v)
            metrics[f"{self.metric_prefix}{name}"] = float(v[valid].mean()) if bool(valid.any()) else float("nan")
