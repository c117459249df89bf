"""Which class maps to explain: ONE target policy for the loss handler, the evaluator handlers and the metrics.

A policy turns the batch label and the network's ``(B, C)`` logits into the target of a saliency method
(:meth:`monai_explain.saliency.SaliencyMethod.compute`): ``(B,)`` class indices (one map per sample, ``K = 1``) or
a multi-hot ``(B, C)`` tensor (one map per class, ``K = C``).

=============== ============================================================================================
policy          target
=============== ============================================================================================
``"label"``     the annotated class: a multi-label float label ``(B, C)`` (C > 1) -> multi-hot, one map per
                class; a class-index label ``(B,)`` / ``(B, 1)`` -> that index; a single-logit model -> 0
``"pred"``      the predicted class: ``argmax`` of the logits (C > 1); a single-logit model -> 0; with a
                multi-label label (same shape as the logits) the classes whose logit is > 0 (multi-hot)
``"all"``       every class: multi-hot of ones, one map per class
an ``int`` k    class ``k`` for every sample
a callable      ``f(label, logits)`` returning either form
=============== ============================================================================================

:func:`explained_classes` then says which class each of the ``K`` saliency channels explains, so that every
metric (alignment, deletion / insertion AUC, the per-image table) scores the same (image, class) pairs: channel
``k`` of the map is compared with channel ``k`` of the mask and perturbed against the probability of class
``explained_classes(...)[:, k]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from monai.utils import StrEnum

__all__ = [
    "HookedSaliencyMethod",
    "SaliencyMethodProtocol",
    "TargetPolicy",
    "TargetSpec",
    "check_target_policy",
    "explained_classes",
    "saliency_target",
]


class TargetPolicy(StrEnum):
    """The named target policies (see the module docstring)."""

    LABEL = "label"
    PRED = "pred"
    ALL = "all"


#: what a handler's ``target`` argument accepts.
TargetSpec = str | int | Callable[[torch.Tensor | None, torch.Tensor], torch.Tensor]


@runtime_checkable
class SaliencyMethodProtocol(Protocol):
    """What handlers need of a saliency method: ``method(inputs, target) -> (saliency, logits)``.

    :class:`monai_explain.saliency.SaliencyMethod` and its subclasses satisfy it; any callable with this
    signature (and optionally a ``needs_input_grad`` attribute) can be used instead.
    """

    def __call__(self, inputs: torch.Tensor, target: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]: ...


@runtime_checkable
class HookedSaliencyMethod(SaliencyMethodProtocol, Protocol):
    """What :class:`ExplanationLossHandler` needs of a saliency method: hooks it installs for the run (``register``
    / ``remove``) and maps of the forward pass the trainer already made (``compute``), as
    :class:`monai_explain.saliency.SaliencyMethod` provides."""

    def register(self) -> Any: ...

    def remove(self) -> Any: ...

    def compute(
        self,
        logits: torch.Tensor,
        target: torch.Tensor | int,
        inputs: torch.Tensor | None = None,
        spatial_size: Sequence[int] | None = None,
    ) -> torch.Tensor: ...


def check_target_policy(policy: TargetSpec) -> TargetSpec:
    """Validate a target policy (a :class:`TargetPolicy` name, a class index or a callable) and return it.

    Raises:
        ValueError: anything else (the message lists the choices).
    """
    if callable(policy) or (isinstance(policy, int) and not isinstance(policy, bool)):
        return policy
    if isinstance(policy, str) and policy in TargetPolicy.__members__.values():
        return TargetPolicy(policy)
    raise ValueError(
        f"target policy must be one of {[p.value for p in TargetPolicy]}, a class index (int) or a callable "
        f"f(label, logits), got {policy!r}."
    )


def saliency_target(label: torch.Tensor | None, logits: torch.Tensor, policy: TargetSpec = "label") -> torch.Tensor:
    """The saliency target of a batch under ``policy`` (see the module docstring).

    Args:
        label: the batch label: class indices ``(B,)`` / ``(B, 1)`` or a multi-hot ``(B, C)`` float tensor; None
            without labels (inference: ``"pred"``, ``"all"`` or an index then).
        logits: the network output ``(B, C)``.
        policy: ``"label"``, ``"pred"``, ``"all"``, a class index or a callable ``f(label, logits)``.

    Returns:
        ``(B,)`` long class indices or a ``(B, C)`` multi-hot tensor, on the logits' device.

    Raises:
        ValueError: an unknown policy, logits that are not ``(B, C)``, or a class index outside ``[0, C)``.

    Example:
        >>> saliency_target(torch.tensor([[1.0, 0.0, 1.0]]), torch.zeros(1, 3)).tolist()
        [[1.0, 0.0, 1.0]]
    """
    policy = check_target_policy(policy)
    if logits.ndim != 2:
        raise ValueError(f"logits must be (B, C), got shape {tuple(logits.shape)}.")
    b, c = logits.shape
    label = None if label is None else torch.as_tensor(label)
    multi_label = label is not None and c > 1 and tuple(label.shape) == (b, c) and label.is_floating_point()
    if callable(policy):
        return policy(label, logits)
    if isinstance(policy, int):
        if not 0 <= policy < c:
            raise ValueError(f"target class index {policy} is outside [0, {c}) for logits of shape {(b, c)}.")
        return torch.full((b,), policy, dtype=torch.long, device=logits.device)
    if policy == TargetPolicy.ALL:
        return torch.ones(b, c, dtype=logits.dtype, device=logits.device)
    if c == 1:
        return torch.zeros(b, dtype=torch.long, device=logits.device)
    if policy == TargetPolicy.PRED:
        if multi_label:
            return (logits.detach() > 0).to(logits.dtype)
        return logits.detach().argmax(dim=1)
    if label is None:
        raise ValueError(
            "the 'label' target policy needs a label; without one (inference) use 'pred', 'all' or an index."
        )
    if multi_label:
        return label.to(logits.device)
    return label.reshape(b, -1)[:, 0].long().to(logits.device)


def explained_classes(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The class explained by each channel of the maps a saliency method returns for ``target``.

    Args:
        target: ``(B,)`` class indices (maps have one channel) or multi-hot ``(B, C)`` (one channel per class).
        num_classes: C, the number of logits.

    Returns:
        ``(B, K)`` long tensor: ``target[:, None]`` for indices, ``arange(C)`` per sample for multi-hot.

    Raises:
        ValueError: a target of another shape.
    """
    if target.ndim == 2 and target.shape[1] == num_classes and num_classes > 1:
        return torch.arange(num_classes, device=target.device).expand(target.shape[0], -1)
    if target.ndim == 2 and target.shape[1] == 1:
        target = target[:, 0]
    if target.ndim != 1:
        raise ValueError(f"target of shape {tuple(target.shape)} is neither (B,) indices nor (B, {num_classes}).")
    return target.long()[:, None]
