"""Ignite handlers for MONAI engines: explanation supervision, lambda schedules, saliency outputs and overlays,
and the alignment metric handlers."""

from __future__ import annotations

from .alignment_metrics import (
    ChanceLevelHandler,
    PointingGameHandler,
    SaliencyCoverageHandler,
    SaliencyIoUHandler,
    SaliencyPrecisionHandler,
)
from .batchnorm_recalibration import BatchNormRecalibration, recalibrate_batchnorm
from .best_metric import NaNSafeBestMetric, nan_safe_metric_cmp
from .checkpointing import (
    LAST_CHECKPOINT_PREFIX,
    PREVIOUS_RUNS_FOLDER,
    BestModelSaver,
    LastCheckpointLoader,
    LastCheckpointSaver,
    PreviousRunArchiver,
    attach_checkpointing,
    find_last_checkpoint,
    selection_start_epoch,
)
from .confounder import ConfounderRelianceHandler
from .epoch_seed import EpochSeedHandler
from .explanation_loss import ExplanationLossHandler, default_saliency_target, loss_terms
from .faithfulness import FaithfulnessHandler
from .lambda_schedules import (
    ConstantLambda,
    LambdaSchedule,
    LinearWarmupLambda,
    StepLambda,
    first_settled_epoch,
    get_lambda_schedule,
)
from .mlflow_model import MLflowModelLogger
from .mlflow_tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, ResilientMLFlowHandler, training_run_id
from .output_lock import OutputFolderLock
from .overlay import SaliencyOverlayHandler, save_overlay_grid
from .per_image_results import PER_IMAGE_COLUMNS, PER_IMAGE_FILE, PerImageResultsWriter, resolve_threshold
from .progress import ProgressBarHandler
from .saliency_output import SaliencyOutputHandler
from .threshold import (
    DEFAULT_DECISION_THRESHOLD,
    DecisionThreshold,
    ThresholdRule,
    apply_threshold,
    choose_threshold,
    decision_metrics,
    load_decision_threshold,
)

__all__ = [
    "DEFAULT_DECISION_THRESHOLD",
    "EXPERIMENT_KIND",
    "EXPERIMENT_KIND_TAG",
    "LAST_CHECKPOINT_PREFIX",
    "PER_IMAGE_COLUMNS",
    "PER_IMAGE_FILE",
    "PREVIOUS_RUNS_FOLDER",
    "BatchNormRecalibration",
    "BestModelSaver",
    "ChanceLevelHandler",
    "ConfounderRelianceHandler",
    "ConstantLambda",
    "DecisionThreshold",
    "EpochSeedHandler",
    "ExplanationLossHandler",
    "FaithfulnessHandler",
    "LambdaSchedule",
    "LastCheckpointLoader",
    "LastCheckpointSaver",
    "LinearWarmupLambda",
    "MLflowModelLogger",
    "NaNSafeBestMetric",
    "OutputFolderLock",
    "PerImageResultsWriter",
    "PointingGameHandler",
    "PreviousRunArchiver",
    "ProgressBarHandler",
    "ResilientMLFlowHandler",
    "SaliencyCoverageHandler",
    "SaliencyIoUHandler",
    "SaliencyOutputHandler",
    "SaliencyOverlayHandler",
    "SaliencyPrecisionHandler",
    "StepLambda",
    "ThresholdRule",
    "apply_threshold",
    "attach_checkpointing",
    "choose_threshold",
    "decision_metrics",
    "default_saliency_target",
    "find_last_checkpoint",
    "first_settled_epoch",
    "get_lambda_schedule",
    "load_decision_threshold",
    "loss_terms",
    "nan_safe_metric_cmp",
    "recalibrate_batchnorm",
    "resolve_threshold",
    "save_overlay_grid",
    "selection_start_epoch",
    "training_run_id",
]
