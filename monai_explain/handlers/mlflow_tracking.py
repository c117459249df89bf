"""MONAI's ``MLFlowHandler`` with one run per training, resumable by run id, and fault tolerant tracking.

Run identity. MONAI's handler finds "its" run by ``run_name`` among the unfinished runs of the experiment: two
trainings with the same name mix their records, and a fresh training after a killed one logs into the killed run.
:class:`ResilientMLFlowHandler` never looks a run up by name: a training creates a new run (``run_name`` is only
its label) unless it resumes, and then it continues the run id recorded in its checkpoint (``state_dict()`` /
``load_state_dict()``, saved under the key ``"mlflow"`` of the last checkpoint). Other engines log into the same run
by reference: the validator's handler gets ``run_of=<the trainer's handler>``, the evaluation's handler gets the
training's run id (:func:`training_run_id` reads it from the checkpoint folder).

Metric names and step axes. MLflow has one step field per metric; iteration and epoch metrics are kept apart by
their names: ``loss``, ``task_loss``, ``expl_loss``, ``lambda``, ``lr_group_0`` have the iteration as step;
``epoch_<name>`` (the epoch means of those, with ``epoch_means=True``) and ``val_*`` have the epoch as step;
evaluation metrics carry their split as prefix (``metric_prefix``, e.g. ``test_auc``, ``test_shifted_auc``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import math
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from monai.handlers import MLFlowHandler
from monai.utils import IgniteInfo, min_version, optional_import, path_to_sqlite_uri

if TYPE_CHECKING:
    from mlflow.entities import Experiment, Run

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["EXPERIMENT_KIND", "EXPERIMENT_KIND_TAG", "ResilientMLFlowHandler", "training_run_id"]

logger = logging.getLogger(__name__)

# The experiment tag MLflow 3's UI reads to open an experiment on its machine-learning runs view instead of the
# GenAI traces view (see the ``mlflow.experimentKind`` tag in MLflow's UI bundle).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"

# Environment variables of MLflow's HTTP client set from the handler's arguments; a value the user set wins.
_TIMEOUT_ENV, _RETRIES_ENV = "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
_ENV_SET_HERE: dict[str, str] = {}


def _set_http_env(key: str, value: int) -> None:
    """Set ``key`` unless the user set it (a value this module wrote before may be replaced)."""
    current = os.environ.get(key)
    if current is None or _ENV_SET_HERE.get(key) == current:
        os.environ[key] = _ENV_SET_HERE[key] = str(int(value))


def _guarded(name: str):
    def wrap(method):
        @functools.wraps(method)
        def call(self: ResilientMLFlowHandler, *args: Any, **kwargs: Any) -> Any:
            if self.disabled:
                return None
            try:
                return method(self, *args, **kwargs)
            except Exception as e:  # noqa: BLE001 (any tracking failure is a warning)
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


def _is_rank0() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or (
        torch.distributed.get_rank() == 0
    )


def training_run_id(checkpoint: str | os.PathLike | None) -> str | None:
    """The MLflow run id a training recorded in its last checkpoint (key ``"mlflow"``), or None.

    Args:
        checkpoint: a last checkpoint file, or a folder: its newest ``last_checkpoint_epoch=<N>.pt`` is read
            (the folder of the evaluated ``model.pt`` is the training's checkpoint folder). None gives None.

    Returns:
        The run id, or None when there is no checkpoint or it holds no run id (a training without tracking);
        the reason is logged.
    """
    if checkpoint is None:
        return None
    from .checkpointing import find_last_checkpoint

    path = Path(checkpoint)
    found = find_last_checkpoint(path) if path.is_dir() else (str(path) if path.is_file() else None)
    if found is None:
        logger.warning(f"no last checkpoint in {path}: the training's MLflow run id is unknown")
        return None
    state = torch.load(found, map_location="cpu", weights_only=True)
    run_id = state.get("mlflow", {}).get("run_id") if isinstance(state, Mapping) else None
    if not run_id:
        logger.warning(f"{found} records no MLflow run id (the training was not tracked)")
        return None
    return str(run_id)


class ResilientMLFlowHandler(MLFlowHandler):
    """:class:`monai.handlers.MLFlowHandler` with one run per training, resumable, and fault tolerant.

    Runs. Without ``run_id`` / ``run_of`` the handler creates a NEW run when its engine starts (``run_name`` is only
    the run's label; MONAI's look-up of an unfinished run by name is not done). ``state_dict()`` holds the run id;
    put the handler in the checkpoint's ``save_dict`` (key ``"mlflow"``) and a resumed training continues its own
    run (the run is resolved at the first value logged, after the checkpoint loader has run at ``STARTED``).
    ``run_of=<another ResilientMLFlowHandler>`` logs into that handler's run (the validator into the trainer's);
    ``run_id=<id>`` logs into an existing run (an evaluation into its training run). Runs the handler did not
    create or resume are never marked finished by it. The experiment is created with the tag
    ``mlflow.experimentKind = custom_model_development`` so that MLflow 3 opens it on its runs view.

    Faults. An unreachable tracking server, a server that goes down mid-run or hangs, or a locked / full local store
    must not cost a training run that may take days. Every tracking call is guarded: a failure logs a warning and
    training continues; after ``disable_after`` failures tracking is switched off for the rest of the run (one
    warning says so). HTTP calls time out after ``request_timeout`` seconds with ``request_max_retries`` retries
    (MLflow's ``MLFLOW_HTTP_REQUEST_TIMEOUT`` / ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``; values set in the environment
    win), so a hung server costs seconds. A store that cannot be opened switches tracking off from the start, with a
    warning; a wrong argument (e.g. a plain path as ``tracking_uri``) still raises. Several runs may share one local
    SQLite store, also when they start together on a new one (its creation is serialized across processes).

    Only rank 0 of a distributed run tracks: on other ranks the handler is inert (no store is opened).

    ``--tracking mlflow``. MONAI's command-line option appends plain ``MLFlowHandler``s to the bundle's trainer and
    validator. On an engine that this handler tracks they would log every value a second time (and the loss again as
    ``train_loss``): when the engine starts, this handler detaches them and logs their artifacts (the executed
    config that option saves) in its own run, with an info message.

    Args:
        tracking_uri: as for :class:`monai.handlers.MLFlowHandler` (``MLFLOW_TRACKING_URI`` wins).
        args: passed to :class:`monai.handlers.MLFlowHandler`.
        disable_after: number of failures after which tracking stops trying (None: keep trying).
        run_id: log into this existing run instead of creating one (it is not marked finished here).
        run_of: log into the run of this handler (resolved when this handler's engine starts).
        metric_prefix: prepended to every metric name this handler logs (e.g. ``"test_"`` for an evaluation).
        epoch_means: also log, at each epoch end, the mean over the epoch's iterations of every iteration value
            (NaN values left out) as ``epoch_<name>`` with the epoch as step.
        request_timeout: seconds before an HTTP tracking call fails.
        request_max_retries: retries of a failed HTTP tracking call.
        kwargs: passed to :class:`monai.handlers.MLFlowHandler`.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        *args: Any,
        disable_after: int | None = 3,
        run_id: str | None = None,
        run_of: ResilientMLFlowHandler | None = None,
        metric_prefix: str = "",
        epoch_means: bool = False,
        request_timeout: int = 5,
        request_max_retries: int = 0,
        **kwargs: Any,
    ) -> None:
        if run_id is not None and run_of is not None:
            raise ValueError("give run_id or run_of, not both")
        _set_http_env(_TIMEOUT_ENV, request_timeout)
        _set_http_env(_RETRIES_ENV, request_max_retries)
        self.disabled = False
        self.failures = 0
        self.disable_after = disable_after
        self.run_id = run_id
        self.run_of = run_of
        self.metric_prefix = metric_prefix
        self.epoch_means = epoch_means
        self.owns_run = False  # created or resumed here: finished here
        self._engine_params: dict[str, Any] = {}
        self._epoch_values: dict[str, list[float]] = defaultdict(list)
        self.cur_run = None
        if not _is_rank0():
            self.disabled = True
            return
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

    # ------------------------------------------------------------------------------------------------ run identity
    def state_dict(self) -> dict[str, str | None]:
        """``{"run_id": <the run's id, or None when nothing was tracked>}``."""
        if self.run_id is None and not self.disabled:
            self._resolve_run_guarded()
        return {"run_id": self.run_id}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Continue the run recorded in ``state_dict`` (a resumed training); None: keep creating a new run."""
        if not isinstance(state_dict, Mapping) or "run_id" not in state_dict:
            raise KeyError(f"the MLflow handler's state needs the key 'run_id', got {state_dict!r}")
        run_id = state_dict["run_id"]
        if run_id is None:
            return
        if self.cur_run is not None and self.cur_run.info.run_id != run_id:
            raise RuntimeError(
                f"the MLflow handler already logs into run {self.cur_run.info.run_id}; load its state (run {run_id}) "
                "before the engine logs anything (CheckpointLoader at STARTED does)"
            )
        self.run_id, self.owns_run = str(run_id), True

    def _resolve_run(self) -> None:
        """Find or create the run (once): see the class docstring."""
        if self.cur_run is not None:
            return
        self._set_experiment()
        if self.run_of is not None:
            self.run_of._resolve_run_guarded()
            if self.run_of.run_id is None:
                raise RuntimeError("the handler given as run_of tracks no run (its tracking is off)")
            self.cur_run = self.client.get_run(self.run_of.run_id)
            self.run_id = self.run_of.run_id
        elif self.run_id is not None:
            run = self.client.get_run(self.run_id)
            if run.info.lifecycle_stage != "active":
                raise RuntimeError(f"MLflow run {self.run_id} is deleted")
            if self.owns_run and run.info.status != "RUNNING":  # a resumed training continues its run
                self.client.update_run(self.run_id, status="RUNNING")
            self.cur_run = run
            logger.info(f"MLflow: continuing run {self.run_id} ({run.info.run_name})")
        else:
            # MONAI types experiment / cur_run as None (its __init__ value); _set_experiment() above set it
            experiment = cast("Experiment", self.experiment)
            self.cur_run = run = self.client.create_run(experiment_id=experiment.experiment_id, run_name=self.run_name)
            self.run_id, self.owns_run = run.info.run_id, True
            logger.info(f"MLflow: new run {self.run_id} ({run.info.run_name})")
        params = dict(self.experiment_param or {})
        if self.owns_run:  # the engine's own attributes belong to the run's training
            params.update(self._engine_params)
        self._log_params(params)
        if self.dataset_logger:
            self.dataset_logger(self.dataset_dict)  # type: ignore[arg-type]  # as MONAI does: None included
        else:
            self._default_dataset_log(self.dataset_dict)

    def _resolve_run_guarded(self) -> None:
        _guarded("start")(ResilientMLFlowHandler._resolve_run)(self)

    def _log_params(self, params: dict[str, Any]) -> None:
        """Log the parameters the run does not have yet; a different value for one it has is kept (MLflow params
        cannot change) and named in a warning (e.g. a training resumed with another setting)."""
        if not params:
            return
        run = cast("Run", self.cur_run)  # _log_params runs once the run is resolved
        logged = self.client.get_run(run.info.run_id).data.params
        for key in sorted(set(params) & set(logged)):
            if str(params[key]) != logged[key]:
                logger.warning(
                    f"MLflow run {run.info.run_id} has param {key}={logged[key]!r}; the new value "
                    f"{str(params[key])!r} is not logged (MLflow params cannot change)"
                )
        new = {k: v for k, v in params.items() if k not in logged}
        if new:
            super()._log_params(new)

    def _set_experiment(self) -> None:
        """Find or create the experiment, tagged for MLflow 3's runs view; safe against another run creating it.

        MONAI retries a concurrent creation only when "RESOURCE_ALREADY_EXISTS" is in the error message, which a
        SQL store does not write there (it is the error's ``error_code``): here the existing experiment is used.
        """
        from mlflow.exceptions import MlflowException

        if self.experiment is not None:
            return
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            try:
                experiment_id = self.client.create_experiment(
                    self.experiment_name,
                    artifact_location=self.artifact_location,
                    tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
                )
                experiment = self.client.get_experiment(experiment_id)
            except MlflowException as e:
                if e.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                experiment = self.client.get_experiment_by_name(self.experiment_name)  # created meanwhile
        if experiment.lifecycle_stage != "active":
            raise ValueError(f"Cannot set a deleted experiment '{self.experiment_name}' as the active experiment")
        if EXPERIMENT_KIND_TAG not in experiment.tags:  # an experiment made elsewhere: a kind chosen there stays
            self.client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        self.experiment = experiment

    def run_page(self) -> str:
        """The run's page in the MLflow UI (for a local store: the path after the address of ``mlflow ui``).

        MLflow 3.17 chooses between its GenAI and machine-learning views with a UI switch kept in the browser
        (default GenAI); ``workflowType=machine_learning`` in the address opens the machine-learning view.
        """
        experiment = self.experiment.experiment_id if self.experiment is not None else "?"
        page = f"#/experiments/{experiment}/runs/{self.run_id}?workflowType=machine_learning"
        uri = str(getattr(self.client, "tracking_uri", "") or "")
        if uri.startswith(("http://", "https://")):
            return f"{uri.rstrip('/')}/{page}"
        return f"{page} (run `mlflow ui --backend-store-uri {uri}` and open this on its address)"

    # --------------------------------------------------------------------------------------------- engine events
    def attach(self, engine: Any) -> None:
        if self.disabled:  # the store could not be opened, or not rank 0: nothing to track
            return
        super().attach(engine)
        if self.epoch_means and not engine.has_event_handler(self._reset_epoch_values, Events.EPOCH_STARTED):
            engine.add_event_handler(Events.EPOCH_STARTED, self._reset_epoch_values)

    def _start(self, engine: Any) -> None:
        """At ``STARTED``: take over plain ``MLFlowHandler``s of the engine, find the experiment, note the engine's
        parameters. The run itself is resolved at the first value logged (after a checkpoint loader)."""
        self._take_over_plain_handlers(engine)
        self._engine_params = {attr: getattr(engine.state, attr, None) for attr in self.default_tracking_params}
        self._set_experiment()

    def _take_over_plain_handlers(self, engine: Any) -> None:
        """Detach every plain ``MLFlowHandler`` from ``engine`` (in place: also from the ``STARTED`` event being
        fired now) and adopt its artifacts."""

        def owner(func: Any) -> Any:
            parent = getattr(func, "_parent", None)  # Ignite's wrapper of a handler with an event filter
            return getattr(parent() if callable(parent) else func, "__self__", None)

        event_handlers: dict[Any, list[Any]] = getattr(engine, "_event_handlers", {})
        handler_lists = list(event_handlers.values())
        firing = event_handlers.get(Events.STARTED)
        others = {
            id(h): h
            for handlers in handler_lists
            for func, *_ in handlers
            if isinstance(h := owner(func), MLFlowHandler) and not isinstance(h, ResilientMLFlowHandler)
        }
        if not others:
            return
        for handlers in handler_lists:
            # entries up to this handler's own have run already in the event being fired: removing one there would
            # make Ignite's loop skip a handler
            mine = [i for i, entry in enumerate(handlers) if owner(entry[0]) is self] if handlers is firing else []
            keep = mine[0] + 1 if mine else 0
            handlers[keep:] = [entry for entry in handlers[keep:] if id(owner(entry[0])) not in others]
        for other in others.values():
            adopted = [a for a in other.artifacts if a and a not in self.artifacts]
            self.artifacts = tuple(self.artifacts) + tuple(adopted)
            logger.info(
                "MLflow: a plain MLFlowHandler on this engine (e.g. from --tracking mlflow) is detached; this "
                "engine is tracked once, by ResilientMLFlowHandler"
                + (f" (its artifacts {adopted} are logged in this run)" if adopted else "")
            )

    def _reset_epoch_values(self) -> None:
        self._epoch_values.clear()

    def _log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        self._resolve_run()
        if self.metric_prefix:
            metrics = {f"{self.metric_prefix}{k}": v for k, v in metrics.items()}
        super()._log_metrics(metrics, step)

    def _default_iteration_log(self, engine: Any) -> None:
        super()._default_iteration_log(engine)
        if self.epoch_means:
            values = self.output_transform(engine.state.output)
            if values is not None and not isinstance(values, dict):
                values = {self.tag_name: values}
            for key, value in (values or {}).items():
                self._epoch_values[key].append(float(value))

    def _default_epoch_log(self, engine: Any) -> None:
        self._resolve_run()
        super()._default_epoch_log(engine)
        if self.epoch_means and self._epoch_values:
            means = {}
            for key, values in self._epoch_values.items():
                finite = [v for v in values if not math.isnan(v)]
                means[f"epoch_{key}"] = sum(finite) / len(finite) if finite else math.nan
            self._log_metrics(means, step=self.global_epoch_transform(engine.state.epoch))
            self._epoch_values.clear()

    def _complete(self) -> None:
        if self.artifacts:
            self._resolve_run()
        super().complete()

    def _close(self) -> None:
        """Mark the run finished when it is this handler's own (created or resumed here); release the store."""
        try:
            if self.cur_run is not None and self.owns_run:
                self.client.set_terminated(self.cur_run.info.run_id, self.run_finish_status)
                logger.info(f"MLflow run page: {self.run_page()}")
        finally:
            self.cur_run = None
            self._dispose_sqlite_store()

    start = _guarded("start")(_start)
    iteration_completed = _guarded("iteration_completed")(MLFlowHandler.iteration_completed)
    epoch_completed = _guarded("epoch_completed")(MLFlowHandler.epoch_completed)
    complete = _guarded("complete")(_complete)
    close = _guarded("close")(_close)
