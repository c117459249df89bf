"""Log the trained network to the training's MLflow run as an MLflow model, loadable with ``mlflow.pytorch``."""

from __future__ import annotations

import copy
import logging
import os
from typing import Any

import numpy as np
import torch
from monai.utils import IgniteInfo, min_version, optional_import

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
Checkpoint, _ = optional_import("ignite.handlers", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Checkpoint")

__all__ = ["MLflowModelLogger"]

logger = logging.getLogger(__name__)


class MLflowModelLogger:
    """When training completes, logs the network with ``mlflow.pytorch.log_model`` into the training's run.

    The weights logged are those of ``checkpoint`` when the file exists (the best model by the validation key
    metric, the one evaluation scores), else the network's current weights. The model is logged under the name
    ``name`` with a signature (input ``float32 (-1, C, *spatial)``, output the logits ``(-1, num_classes)``) and an
    input example: ``input_example`` or, by default, the first two images of the engine's last batch (MLflow's
    default ``pt2`` format, ``torch.export``, keeps a batch dimension dynamic only when the example has two or more). It appears under
    "Logged models" of the run and loads with ``mlflow.pytorch.load_model(f"runs:/{run_id}/{name}")`` (the classes
    of the network must be importable, e.g. ``monai``). ``pip_requirements`` are given (torch, monai) so that MLflow
    does not spend time inferring them. Failures are warnings: a model that cannot be logged never costs the run.

    Args:
        tracking: the training's :class:`~monai_explain.handlers.ResilientMLFlowHandler` (its run receives the model).
        network: the trained network (a DDP wrapper is unwrapped).
        checkpoint: the best-model checkpoint to load into a copy of the network before logging, if it exists.
        input_example: an input batch ``(B, C, *spatial)``, B >= 2; default two images of the last batch.
        image_key: key of the images in the engine's batch.
        name: the model's name in MLflow.
    """

    def __init__(
        self,
        tracking: Any,
        network: torch.nn.Module,
        checkpoint: str | os.PathLike | None = None,
        input_example: np.ndarray | torch.Tensor | None = None,
        image_key: str = "image",
        name: str = "model",
    ) -> None:
        self.tracking = tracking
        self.network = network
        self.checkpoint = checkpoint
        self.input_example = input_example
        self.image_key = image_key
        self.name = name
        self.model_info: Any = None

    def attach(self, engine: Any) -> None:
        if self.tracking is None or getattr(self.tracking, "disabled", False):
            return
        if not engine.has_event_handler(self, Events.COMPLETED):
            engine.add_event_handler(Events.COMPLETED, self)

    def _example(self, engine: Any) -> np.ndarray:
        x = self.input_example
        if x is None:
            batch = engine.state.batch
            if isinstance(batch, (list, tuple)):  # MONAI decollates the batch after each iteration
                x = torch.stack([torch.as_tensor(item[self.image_key]) for item in batch[:2]])
            else:
                x = batch[self.image_key][:2]
        x = x.as_tensor() if hasattr(x, "as_tensor") else x
        x = torch.as_tensor(x).detach().float().cpu()
        if x.shape[0] == 1:  # MLflow exports a batch dimension of size 1 as static: give it two
            x = torch.cat([x, x])
        return np.ascontiguousarray(x.numpy())

    def _model(self) -> torch.nn.Module:
        net = (
            self.network.module if isinstance(self.network, torch.nn.parallel.DistributedDataParallel) else self.network
        )
        model = copy.deepcopy(net).cpu().eval()
        if self.checkpoint is not None and os.path.isfile(self.checkpoint):
            state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
            Checkpoint.load_objects(to_load={"model": model}, checkpoint=state)
        return model

    def __call__(self, engine: Any) -> None:
        if self.tracking.disabled or self.tracking.run_id is None:
            logger.warning("no MLflow run to log the model into (tracking is off)")
            return
        try:
            self.model_info = self._log(engine)
            logger.info(f"MLflow: model logged to run {self.tracking.run_id} as {self.model_info.model_uri}")
        except Exception as e:  # noqa: BLE001 (tracking trouble must not cost the training)
            logger.warning(f"could not log the model to MLflow run {self.tracking.run_id}: {type(e).__name__}: {e}")

    def _log(self, engine: Any) -> Any:
        import mlflow
        import mlflow.pytorch
        import monai
        from mlflow.models import infer_signature
        from mlflow.tracking._tracking_service.utils import _use_tracking_uri

        model = self._model()
        example = self._example(engine)
        with torch.no_grad():
            output = model(torch.from_numpy(example)).float().numpy()
        signature = infer_signature(example, output)
        # the fluent API files the logged model under the experiment of the active run: make the run active.
        # MLflow's URI switch also writes MLFLOW_TRACKING_URI, which later handlers would follow: restore it.
        env_uri = os.environ.get("MLFLOW_TRACKING_URI")
        nested = mlflow.active_run() is not None
        try:
            with (
                _use_tracking_uri(self.tracking.client.tracking_uri),
                mlflow.start_run(self.tracking.run_id, nested=nested),
            ):
                return mlflow.pytorch.log_model(
                    model,
                    name=self.name,
                    signature=signature,
                    input_example=example,
                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"monai=={monai.__version__}"],
                )
        finally:
            if env_uri is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = env_uri
