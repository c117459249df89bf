"""Schedules of the explanation-loss strength lambda over training.

A schedule is a callable of the Ignite engine returning the lambda of the current iteration. It is stateless:
it reads ``engine.state.iteration`` / ``engine.state.epoch`` only, so a run resumed from a checkpoint (which
restores the engine state) continues the schedule exactly where it stopped.

Every number a schedule is built from is checked at construction, naming the argument: a numeric string such as
``"0.3"`` (a value given on a command line) is read as a number; anything else that is not a real number (a bool,
a non-numeric string), and NaN or infinity, raises ``ValueError``; lambda values must be >= 0.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

from monai.utils import StrEnum

__all__ = [
    "ConstantLambda",
    "LambdaSchedule",
    "LinearWarmupLambda",
    "StepLambda",
    "as_finite_number",
    "first_settled_epoch",
    "get_lambda_schedule",
]


class _Unit(StrEnum):
    EPOCH = "epoch"
    ITERATION = "iteration"


def as_finite_number(name: str, value: Any) -> float:
    """``value`` as a finite float: numbers and numeric strings (``"0.3"``, from a command line) are accepted.

    Args:
        name: the argument's name, used in the error message.
        value: the value to convert.

    Raises:
        ValueError: a bool, a non-numeric string or object, NaN or infinity (naming ``name`` and the value).

    Example:
        >>> as_finite_number("lambda", "0.3")
        0.3
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got the bool {value!r}.")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__}).") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    return number


def _lambda_value(name: str, value: Any) -> float:
    number = as_finite_number(f"lambda {name}", value)
    if number < 0:
        raise ValueError(f"lambda {name} must be non-negative, got {value!r}.")
    return number


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

    @property
    def settled_step(self) -> float:
        """The step from which :meth:`value` no longer changes (0 for a constant schedule)."""
        raise NotImplementedError

    def __call__(self, engine: Any) -> float:
        return float(self.value(self.step_of(engine)))


class ConstantLambda(LambdaSchedule):
    """Lambda fixed at ``value`` for the whole run."""

    def __init__(self, value: float | str, unit: str = "epoch") -> None:
        super().__init__(unit)
        self.constant = _lambda_value("value", value)

    def value(self, step: float) -> float:
        return self.constant

    @property
    def settled_step(self) -> float:
        return 0.0


class LinearWarmupLambda(LambdaSchedule):
    """Lambda rising linearly from ``start`` to ``end`` over ``warmup`` steps (epochs or iterations), then ``end``.

    Example:
        ``LinearWarmupLambda(end=1.0, warmup=5)`` gives 0 at the start of epoch 1, 0.5 half-way through
        epoch 3, and 1.0 from epoch 6 on.
    """

    def __init__(self, end: float, warmup: float, start: float = 0.0, unit: str = "epoch") -> None:
        super().__init__(unit)
        self.start, self.end = _lambda_value("start", start), _lambda_value("end", end)
        self.warmup = as_finite_number("warmup", warmup)
        if self.warmup <= 0:
            raise ValueError(f"warmup must be positive, got {warmup!r}.")

    def value(self, step: float) -> float:
        frac = min(max(step / self.warmup, 0.0), 1.0)
        return self.start + frac * (self.end - self.start)

    @property
    def settled_step(self) -> float:
        return self.warmup


class StepLambda(LambdaSchedule):
    """Piecewise-constant lambda: ``values[i]`` from ``milestones[i-1]`` (inclusive) on; ``values[0]`` before.

    Example:
        ``StepLambda(milestones=[2, 5], values=[0.0, 0.3, 1.0])``: 0 in epochs 1-2, 0.3 in epochs 3-5, then 1.
    """

    def __init__(self, milestones: Sequence[float], values: Sequence[float], unit: str = "epoch") -> None:
        super().__init__(unit)
        if isinstance(milestones, (str, bytes)) or isinstance(values, (str, bytes)):
            raise ValueError(f"milestones and values must be sequences, got {milestones!r} and {values!r}.")
        if len(values) != len(milestones) + 1:
            raise ValueError(
                f"StepLambda needs one more value than milestones, got {len(values)} values "
                f"and {len(milestones)} milestones."
            )
        self.milestones = [as_finite_number(f"milestones[{i}]", m) for i, m in enumerate(milestones)]
        self.values = [_lambda_value(f"values[{i}]", v) for i, v in enumerate(values)]
        if self.milestones != sorted(self.milestones):
            raise ValueError(f"milestones must be increasing, got {list(milestones)}.")

    def value(self, step: float) -> float:
        return self.values[bisect_right(self.milestones, step)]

    @property
    def settled_step(self) -> float:
        return self.milestones[-1] if self.milestones else 0.0


_SCHEDULES: dict[str, type[LambdaSchedule]] = {
    "constant": ConstantLambda,
    "linear_warmup": LinearWarmupLambda,
    "step": StepLambda,
}


def get_lambda_schedule(spec: float | str | LambdaSchedule | Callable | dict) -> Callable[[Any], float]:
    """Build a schedule from a number (constant), a schedule object, any callable, or a config dict.

    Args:
        spec: e.g. ``0.3`` (or ``"0.3"``), ``{"name": "linear_warmup", "end": 1.0, "warmup": 2}``,
            ``{"name": "step", "milestones": [2], "values": [0.0, 1.0]}``.

    Raises:
        ValueError: for an unknown schedule name, an unknown or missing argument of the schedule, or a value that
            is not a finite number (the argument is named).
    """
    if isinstance(spec, bool):
        raise ValueError(f"cannot build a lambda schedule from the bool {spec!r}.")
    if isinstance(spec, (int, float)):
        return ConstantLambda(spec)
    if isinstance(spec, str):
        try:
            return ConstantLambda(spec)
        except ValueError as e:
            raise ValueError(f"cannot build a lambda schedule from {spec!r}: {e}") from None
    if isinstance(spec, dict):
        kwargs = dict(spec)
        name = str(kwargs.pop("name", "constant"))
        if name not in _SCHEDULES:
            raise ValueError(f"unknown lambda schedule {name!r}; choose one of {sorted(_SCHEDULES)}.")
        try:
            return _SCHEDULES[name](**kwargs)
        except (TypeError, ValueError) as e:  # an unknown or missing keyword, a bad value
            raise ValueError(f"lambda schedule {name!r}: {e}") from None
    if callable(spec):
        return spec
    raise ValueError(f"cannot build a lambda schedule from {spec!r}.")


def first_settled_epoch(spec: Any, epoch_length: int | None = None) -> int:
    """The first epoch (1-based) trained entirely at the schedule's final lambda.

    Used to start model selection once the explanation term has its full strength: before that the loss being
    minimised is not the supervised objective, and an in-distribution validation split (where a shortcut still
    predicts the label) cannot tell a half-supervised model from a supervised one.

    Args:
        spec: anything :func:`get_lambda_schedule` accepts. A plain callable, or a :class:`LambdaSchedule` subclass
            without :attr:`~LambdaSchedule.settled_step`, cannot be analysed: 1 is returned.
        epoch_length: iterations per epoch; needed only for a schedule counted in iterations.

    Raises:
        ValueError: an iteration-based schedule without ``epoch_length``, or what :func:`get_lambda_schedule`
            raises for ``spec``.

    Example:
        >>> first_settled_epoch({"name": "linear_warmup", "end": 10.0, "warmup": 4})
        5
    """
    schedule = get_lambda_schedule(spec)
    if not isinstance(schedule, LambdaSchedule):
        return 1
    try:
        steps = schedule.settled_step
    except NotImplementedError:  # a user's subclass that does not say when it settles
        return 1
    if schedule.unit == _Unit.ITERATION:
        if not epoch_length or int(epoch_length) < 1:
            raise ValueError(f"an iteration-based lambda schedule needs epoch_length >= 1, got {epoch_length!r}.")
        steps = steps / int(epoch_length)
    return math.ceil(steps) + 1
