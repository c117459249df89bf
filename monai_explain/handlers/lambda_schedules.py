"""Schedules of the explanation-loss strength lambda over training.

A schedule is a callable of the Ignite engine returning the lambda of the current iteration. It is stateless:
it reads ``engine.state.iteration`` / ``engine.state.epoch`` only, so a run resumed from a checkpoint (which
restores the engine state) continues the schedule exactly where it stopped.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

from monai.utils import StrEnum

__all__ = ["ConstantLambda", "LambdaSchedule", "LinearWarmupLambda", "StepLambda", "get_lambda_schedule"]


class _Unit(StrEnum):
    EPOCH = "epoch"
    ITERATION = "iteration"


class LambdaSchedule:
    """Base class: ``schedule(engine) -> float``; subclasses implement :meth:`value` of the step count.

    Args:
        unit: ``"epoch"`` (the step is ``engine.state.epoch - 1``, i.e. 0 during the first epoch, with a
            fractional part for the position inside the epoch) or ``"iteration"`` (the step is
            ``engine.state.iteration - 1``, 0 at the first iteration).
    """

    def __init__(self, unit: str = "epoch") -> None:
        self.unit = _Unit(unit)

    def step_of(self, engine: Any) -> float:
        """The schedule's position for the engine's current iteration (0-based)."""
        state = engine.state
        if self.unit == _Unit.ITERATION:
            return float(max(state.iteration - 1, 0))
        epoch_length = state.epoch_length or 1
        within = ((state.iteration - 1) % epoch_length) / epoch_length if state.iteration > 0 else 0.0
        return float(max(state.epoch - 1, 0)) + within

    def value(self, step: float) -> float:
        raise NotImplementedError

    def __call__(self, engine: Any) -> float:
        return float(self.value(self.step_of(engine)))


class ConstantLambda(LambdaSchedule):
    """Lambda fixed at ``value`` for the whole run."""

    def __init__(self, value: float, unit: str = "epoch") -> None:
        super().__init__(unit)
        if value < 0:
            raise ValueError(f"lambda must be non-negative, got {value}.")
        self.constant = float(value)

    def value(self, step: float) -> float:
        return self.constant


class LinearWarmupLambda(LambdaSchedule):
    """Lambda rising linearly from ``start`` to ``end`` over ``warmup`` steps (epochs or iterations), then ``end``.

    Example:
        ``LinearWarmupLambda(end=1.0, warmup=5)`` gives 0 at the start of epoch 1, 0.5 half-way through
        epoch 3, and 1.0 from epoch 6 on.
    """

    def __init__(self, end: float, warmup: float, start: float = 0.0, unit: str = "epoch") -> None:
        super().__init__(unit)
        if warmup <= 0:
            raise ValueError(f"warmup must be positive, got {warmup}.")
        if min(start, end) < 0:
            raise ValueError(f"lambda must be non-negative, got start={start}, end={end}.")
        self.start, self.end, self.warmup = float(start), float(end), float(warmup)

    def value(self, step: float) -> float:
        frac = min(max(step / self.warmup, 0.0), 1.0)
        return self.start + frac * (self.end - self.start)


class StepLambda(LambdaSchedule):
    """Piecewise-constant lambda: ``values[i]`` from ``milestones[i-1]`` (inclusive) on; ``values[0]`` before.

    Example:
        ``StepLambda(milestones=[2, 5], values=[0.0, 0.3, 1.0])``: 0 in epochs 1-2, 0.3 in epochs 3-5, then 1.
    """

    def __init__(self, milestones: Sequence[float], values: Sequence[float], unit: str = "epoch") -> None:
        super().__init__(unit)
        if len(values) != len(milestones) + 1:
            raise ValueError(
                f"StepLambda needs one more value than milestones, got {len(values)} values "
                f"and {len(milestones)} milestones."
            )
        if list(milestones) != sorted(milestones):
            raise ValueError(f"milestones must be increasing, got {list(milestones)}.")
        if min(values) < 0:
            raise ValueError(f"lambda must be non-negative, got {list(values)}.")
        self.milestones = [float(m) for m in milestones]
        self.values = [float(v) for v in values]

    def value(self, step: float) -> float:
        return self.values[bisect_right(self.milestones, step)]


_SCHEDULES: dict[str, type[LambdaSchedule]] = {
    "constant": ConstantLambda,
    "linear_warmup": LinearWarmupLambda,
    "step": StepLambda,
}


def get_lambda_schedule(spec: float | LambdaSchedule | Callable | dict) -> Callable[[Any], float]:
    """Build a schedule from a number (constant), a schedule object, any callable, or a config dict.

    Args:
        spec: e.g. ``0.3``, ``{"name": "linear_warmup", "end": 1.0, "warmup": 2}``,
            ``{"name": "step", "milestones": [2], "values": [0.0, 1.0]}``.

    Raises:
        ValueError: for an unknown schedule name.
    """
    if isinstance(spec, (int, float)):
        return ConstantLambda(float(spec))
    if isinstance(spec, dict):
        kwargs = dict(spec)
        name = str(kwargs.pop("name", "constant"))
        if name not in _SCHEDULES:
            raise ValueError(f"unknown lambda schedule {name!r}; choose one of {sorted(_SCHEDULES)}.")
        return _SCHEDULES[name](**kwargs)
    if callable(spec):
        return spec
    raise ValueError(f"cannot build a lambda schedule from {spec!r}.")
