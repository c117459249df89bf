"""MONAI's ``MLFlowHandler`` made fault tolerant: tracking trouble costs warnings, never the training run."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

from monai.handlers import MLFlowHandler

__all__ = ["ResilientMLFlowHandler"]

logger = logging.getLogger(__name__)

# MLflow's HTTP client retries a failing request with exponential back-off for minutes by default. A training
# run should not stall that long on a server that is down: these defaults apply unless the user set them.
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def _guarded(name: str):
    def wrap(method):
        @functools.wraps(method)
        def call(self: ResilientMLFlowHandler, *args: Any, **kwargs: Any) -> Any:
            if self.disabled:
                return None
            try:
                return method(self, *args, **kwargs)
            except Exception as e:
                self.failures += 1
                self.disabled = self.disable_after is not None and self.failures >= self.disable_after
                logger.warning(
                    f"MLflow tracking failed in {name} ({type(e).__name__}: {e}); training goes on"
                    + (" and tracking is switched off for this run." if self.disabled else ".")
                )
                return None

        return call

    return wrap


class ResilientMLFlowHandler(MLFlowHandler):
    """:class:`monai.handlers.MLFlowHandler` whose failures are logged as warnings instead of raised.

    An unreachable tracking server, a server that goes down mid-run, or a locked / full local store must not
    cost a training run that may take days. Every tracking call is guarded: a failure logs a warning and
    training continues; after ``disable_after`` consecutive-or-not failures tracking is switched off for the
    rest of the run (one warning says so). All arguments are those of ``MLFlowHandler``.

    Args:
        disable_after: number of failures after which tracking stops trying (None: keep trying).
        args, kwargs: passed to :class:`monai.handlers.MLFlowHandler`.
    """

    def __init__(self, *args: Any, disable_after: int | None = 3, **kwargs: Any) -> None:
        for key, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        self.disabled = False
        self.failures = 0
        self.disable_after = disable_after
        super().__init__(*args, **kwargs)

    start = _guarded("start")(MLFlowHandler.start)
    iteration_completed = _guarded("iteration_completed")(MLFlowHandler.iteration_completed)
    epoch_completed = _guarded("epoch_completed")(MLFlowHandler.epoch_completed)
    complete = _guarded("complete")(MLFlowHandler.complete)
    close = _guarded("close")(MLFlowHandler.close)
