"""Value checks on tensors that never synchronise an accelerator with the host.

A check such as ``bool(torch.isfinite(x).all())`` copies a result from the device to the host and waits for
every queued kernel: a few of them per training step stall the GPU pipeline. :func:`check_tensor` raises the
usual clear ``ValueError`` for a tensor on the CPU (where the check costs no synchronisation) and, on an
accelerator, enqueues an asynchronous device assertion (:func:`torch._assert_async`) that fails the next
synchronising call with the same message. :func:`value_checks` switches the checks off for a block (or
:func:`set_value_checks` globally), e.g. in a benchmarked or production training loop whose inputs are known good.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["check_tensor", "set_value_checks", "value_checks", "value_checks_enabled"]

_enabled = True


def value_checks_enabled() -> bool:
    """Whether :func:`check_tensor` checks anything (True unless switched off)."""
    return _enabled


def set_value_checks(enabled: bool) -> None:
    """Switch the value checks of :func:`check_tensor` on or off for the whole process."""
    global _enabled
    _enabled = bool(enabled)


@contextmanager
def value_checks(enabled: bool) -> Iterator[None]:
    """Context manager: value checks on or off inside the block, the previous setting restored afterwards."""
    previous = _enabled
    set_value_checks(enabled)
    try:
        yield
    finally:
        set_value_checks(previous)


def check_tensor(condition: torch.Tensor, message: str, error: type[Exception] = ValueError) -> None:
    """Require that every element of the boolean ``condition`` is True.

    Args:
        condition: bool tensor (any shape; reduced with ``all()``).
        message: the error message.
        error: exception type raised for a CPU tensor.

    Raises:
        error: on the CPU, when some element is False and checks are enabled. On an accelerator the check is an
            asynchronous device assertion (no host synchronisation); it surfaces as a ``RuntimeError`` carrying
            ``message`` at the next synchronisation.
    """
    if not _enabled:
        return
    cond = condition.all() if condition.numel() != 1 else condition.reshape(())
    if cond.device.type == "cpu":
        if not bool(cond):
            raise error(message)
        return
    torch._assert_async(cond, message)
