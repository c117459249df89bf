"""Typed views of the MONAI workflow attributes that Ignite's stubs do not declare.

Ignite declares ``State.output`` as ``int | None`` and knows nothing of the attributes MONAI workflows add at run
time (``Engine.network``, ``Engine.prepare_batch``, ``State.metric_details``, ``State.best_metric``, ...). These
helpers only narrow the static type (``typing.cast``); they neither check nor change anything at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

import torch

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["WorkflowEngine", "WorkflowState", "engine_output", "workflow", "workflow_state"]


class WorkflowState(Protocol):
    """``engine.state`` of a MONAI workflow: Ignite's state plus the attributes MONAI sets on it."""

    output: Any
    batch: Any
    epoch: int
    iteration: int
    metrics: dict[str, Any]
    metric_details: dict[str, Any]
    best_metric: float
    best_metric_epoch: int
    key_metric_name: str | None


class WorkflowEngine(Protocol):
    """A MONAI supervised trainer or evaluator, as the handlers use it."""

    network: torch.nn.Module
    prepare_batch: Callable[..., Any]

    @property
    def state(self) -> WorkflowState: ...


def workflow(engine: Engine) -> WorkflowEngine:
    """``engine`` typed as a MONAI supervised workflow (it has ``network`` and ``prepare_batch``)."""
    return cast("WorkflowEngine", engine)


def workflow_state(engine: Engine) -> WorkflowState:
    """``engine.state`` typed with the attributes MONAI workflows set on it."""
    return cast("WorkflowState", engine.state)


def engine_output(engine: Engine) -> dict[str, Any]:
    """``engine.state.output`` of a MONAI workflow: the dictionary its iteration returns."""
    return cast("dict[str, Any]", engine.state.output)
