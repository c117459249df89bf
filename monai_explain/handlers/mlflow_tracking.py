"""MONAI's ``MLFlowHandler`` made fault tolerant: tracking trouble costs warnings, never the training run."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from typing import Any

from monai.handlers import MLFlowHandler
from monai.utils import path_to_sqlite_uri

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


@contextlib.contextmanager
def _store_creation_lock(tracking_uri: str) -> Iterator[None]:
    """Holds an exclusive inter-process lock while a local SQLite tracking store is opened.

    Opening a fresh SQLite store creates its tables and runs MLflow's schema migrations, and MLflow's tracking
    store does that without a lock: two runs starting together on one new store both migrate it and both crash
    (alembic "Online migration expected to match one row", "table _alembic_tmp_tags already exists"). The lock
    (a file in the temporary folder named after the URI) makes the second wait and find the tables made.
    """
    if not tracking_uri.startswith("sqlite:") or os.name == "nt":  # no fcntl on Windows (MLflow skips it too)
        yield
        return
    import fcntl

    digest = hashlib.md5(tracking_uri.encode("utf-8"), usedforsecurity=False).hexdigest()
    with open(os.path.join(tempfile.gettempdir(), f"monai_explain_mlflow_store-{digest}.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class ResilientMLFlowHandler(MLFlowHandler):
    """:class:`monai.handlers.MLFlowHandler` whose failures are logged as warnings instead of raised.

    An unreachable tracking server, a server that goes down mid-run, or a locked / full local store must not
    cost a training run that may take days. Every tracking call is guarded: a failure logs a warning and
    training continues; after ``disable_after`` consecutive-or-not failures tracking is switched off for the
    rest of the run (one warning says so). A store that cannot be opened at all (the client is created in
    ``__init__``) switches tracking off from the start, with a warning; a wrong argument (e.g. a plain path as
    ``tracking_uri``) still raises. Several runs may share one local SQLite store, also when they start together
    on a new one (its creation is serialized across processes). All arguments are those of ``MLFlowHandler``.

    Args:
        tracking_uri: as for :class:`monai.handlers.MLFlowHandler`.
        disable_after: number of failures after which tracking stops trying (None: keep trying).
        args, kwargs: passed to :class:`monai.handlers.MLFlowHandler`.
    """

    def __init__(
        self, tracking_uri: str | None = None, *args: Any, disable_after: int | None = 3, **kwargs: Any
    ) -> None:
        for key, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        self.disabled = False
        self.failures = 0
        self.disable_after = disable_after
        # the URI MLFlowHandler resolves: the environment variable first, then the argument, then ./mlruns.db
        effective_uri = (
            os.environ.get("MLFLOW_TRACKING_URI")
            or tracking_uri
            or path_to_sqlite_uri(os.path.join(os.getcwd(), "mlruns.db"))
        )
        try:
            with _store_creation_lock(effective_uri):
                super().__init__(tracking_uri, *args, **kwargs)
        except (ValueError, TypeError, ImportError):
            raise  # a configuration or installation error, not tracking trouble
        except Exception as e:  # noqa: BLE001 (any store failure is tracking trouble)
            self.disabled = True
            logger.warning(
                f"MLflow tracking could not open {effective_uri} ({type(e).__name__}: {e}); training goes on "
                "and tracking is switched off for this run."
            )

    def attach(self, engine: Any) -> None:
        if self.disabled:  # the store could not be opened: nothing to track
            return
        super().attach(engine)

    def _set_experiment(self) -> None:
        """``MLFlowHandler._set_experiment``, safe against another run creating the experiment at the same time.

        MONAI retries a concurrent creation only when "RESOURCE_ALREADY_EXISTS" is in the error message, which a
        SQL store does not write there (it is the error's ``error_code``): the second of two runs starting together
        on a new experiment failed in ``start`` and lost all its tracking. Here the existing experiment is used.
        """
        from mlflow.exceptions import MlflowException

        try:
            super()._set_experiment()
        except MlflowException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            super()._set_experiment()  # created by the other run meanwhile: now found by name

    start = _guarded("start")(MLFlowHandler.start)
    iteration_completed = _guarded("iteration_completed")(MLFlowHandler.iteration_completed)
    epoch_completed = _guarded("epoch_completed")(MLFlowHandler.epoch_completed)
    complete = _guarded("complete")(MLFlowHandler.complete)
    close = _guarded("close")(MLFlowHandler.close)
