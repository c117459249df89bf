from __future__ import annotations

from types import SimpleNamespace

import pytest

from monai_explain.handlers import (
    ConstantLambda,
    LambdaSchedule,
    LinearWarmupLambda,
    StepLambda,
    first_settled_epoch,
    get_lambda_schedule,
)


def _engine(epoch: int, iteration: int, epoch_length: int = 10):
    return SimpleNamespace(state=SimpleNamespace(epoch=epoch, iteration=iteration, epoch_length=epoch_length))


@pytest.mark.parametrize(
    "schedule, epoch, iteration, expected",
    [
        (ConstantLambda(0.3), 1, 1, 0.3),
        (ConstantLambda(0.3), 7, 65, 0.3),
        # warm-up over 2 epochs of 10 iterations: step = (epoch - 1) + within-epoch fraction
        (LinearWarmupLambda(end=1.0, warmup=2), 1, 1, 0.0),
        (LinearWarmupLambda(end=1.0, warmup=2), 1, 6, 0.25),
        (LinearWarmupLambda(end=1.0, warmup=2), 2, 11, 0.5),
        (LinearWarmupLambda(end=1.0, warmup=2), 3, 21, 1.0),
        (LinearWarmupLambda(end=1.0, warmup=2), 9, 81, 1.0),
        (LinearWarmupLambda(start=0.2, end=0.6, warmup=4, unit="iteration"), 1, 3, 0.4),
        (StepLambda(milestones=[2, 5], values=[0.0, 0.3, 1.0]), 1, 1, 0.0),
        (StepLambda(milestones=[2, 5], values=[0.0, 0.3, 1.0]), 2, 19, 0.0),
        (StepLambda(milestones=[2, 5], values=[0.0, 0.3, 1.0]), 3, 21, 0.3),
        (StepLambda(milestones=[2, 5], values=[0.0, 0.3, 1.0]), 6, 51, 1.0),
    ],
)
def test_schedule_values(schedule, epoch, iteration, expected):
    assert schedule(_engine(epoch, iteration)) == pytest.approx(expected)


def test_schedule_is_a_function_of_the_engine_state_only():
    """A resumed run (engine state restored) continues the schedule where it stopped."""
    s = LinearWarmupLambda(end=2.0, warmup=3)
    first = [s(_engine(e, (e - 1) * 10 + 1)) for e in range(1, 5)]
    again = [LinearWarmupLambda(end=2.0, warmup=3)(_engine(e, (e - 1) * 10 + 1)) for e in range(1, 5)]
    assert first == again == pytest.approx([0.0, 2 / 3, 4 / 3, 2.0])


@pytest.mark.parametrize(
    "spec, expected_type",
    [
        (0.5, ConstantLambda),
        ({"name": "linear_warmup", "end": 1.0, "warmup": 2}, LinearWarmupLambda),
        ({"name": "step", "milestones": [1], "values": [0.0, 1.0]}, StepLambda),
    ],
)
def test_get_lambda_schedule(spec, expected_type):
    assert isinstance(get_lambda_schedule(spec), expected_type)


def test_get_lambda_schedule_callable_passthrough():
    f = lambda engine: 0.7
    assert get_lambda_schedule(f) is f


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: ConstantLambda(-1.0), "non-negative"),
        (lambda: LinearWarmupLambda(end=1.0, warmup=0), "warmup must be positive"),
        (lambda: StepLambda(milestones=[1, 2], values=[0.0, 1.0]), "one more value"),
        (lambda: StepLambda(milestones=[3, 2], values=[0.0, 1.0, 2.0]), "increasing"),
        (lambda: get_lambda_schedule({"name": "cosine"}), "unknown lambda schedule"),
        (lambda: get_lambda_schedule("fast"), "cannot build"),
    ],
)
def test_bad_schedules(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: get_lambda_schedule(float("nan")), r"lambda value must be a finite number, got nan"),
        (lambda: get_lambda_schedule(float("inf")), r"lambda value must be a finite number, got inf"),
        (lambda: get_lambda_schedule("nan"), r"from 'nan': lambda value must be a finite number"),
        (lambda: get_lambda_schedule(True), r"from the bool True"),
        (
            lambda: get_lambda_schedule({"name": "linear_warmup", "end": float("nan"), "warmup": 1}),
            r"'linear_warmup': lambda end must be a finite number, got nan",
        ),
        (
            lambda: get_lambda_schedule({"name": "linear_warmup", "end": 1.0, "warmup": "two"}),
            r"'linear_warmup': warmup must be a number, got 'two'",
        ),
        (
            lambda: get_lambda_schedule({"name": "step", "milestones": [1], "values": [0.0, float("inf")]}),
            r"'step': lambda values\[1\] must be a finite number, got inf",
        ),
        (lambda: get_lambda_schedule({"name": "step", "milestones": "12", "values": "012"}), r"must be sequences"),
        (
            lambda: get_lambda_schedule({"name": "linear_warmup", "ends": 1.0, "warmup": 1}),
            r"'linear_warmup'.*unexpected keyword argument 'ends'",
        ),
        (lambda: ConstantLambda("-0.5"), r"lambda value must be non-negative, got '-0.5'"),
    ],
)
def test_non_finite_or_non_numeric_lambda_is_refused_naming_the_argument(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("0.3", 0.3),  # e.g. `--lambda 0.3` reaching a schedule as text
        (" 2 ", 2.0),
        ({"name": "linear_warmup", "end": "0.8", "warmup": "2"}, 0.4),  # half-way through the warm-up
        ({"name": "step", "milestones": ["1"], "values": ["0", "0.6"]}, 0.6),
    ],
)
def test_numeric_strings_are_read_as_numbers(spec, expected):
    """Before, a string lambda failed with `TypeError: '<' not supported between 'str' and 'float'`."""
    assert get_lambda_schedule(spec)(_engine(2, 11)) == pytest.approx(expected)


@pytest.mark.parametrize(
    "spec, epoch_length, expected",
    [
        (10.0, None, 1),
        ({"name": "linear_warmup", "end": 10.0, "warmup": 4}, None, 5),
        ({"name": "linear_warmup", "end": 10.0, "warmup": 1.5}, None, 3),
        ({"name": "step", "milestones": [2, 5], "values": [0.0, 0.3, 1.0]}, None, 6),
        ({"name": "linear_warmup", "end": 1.0, "warmup": 25, "unit": "iteration"}, 10, 4),
        (lambda engine: 1.0, None, 1),
        (type("Custom", (LambdaSchedule,), {"value": lambda self, step: step})(), None, 1),
    ],
)
def test_first_settled_epoch_is_the_first_epoch_wholly_at_the_final_lambda(spec, epoch_length, expected):
    epoch = first_settled_epoch(spec, epoch_length)
    assert epoch == expected
    schedule = get_lambda_schedule(spec)
    if isinstance(schedule, (ConstantLambda, LinearWarmupLambda, StepLambda)):  # that epoch at the final value
        length = epoch_length or 7

        def at(iteration: int) -> float:
            return schedule(_engine((iteration - 1) // length + 1, iteration, length))

        final = at(10**6)
        assert all(at((epoch - 1) * length + i) == final for i in range(1, length + 1))
        if epoch > 1:
            assert any(at((epoch - 2) * length + i) != final for i in range(1, length + 1))


def test_first_settled_epoch_of_an_iteration_schedule_needs_the_epoch_length():
    with pytest.raises(ValueError, match="needs epoch_length"):
        first_settled_epoch({"name": "linear_warmup", "end": 1.0, "warmup": 25, "unit": "iteration"})
