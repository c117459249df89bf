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
from .checkpointing import LAST_CHECKPOINT_PREFIX, attach_checkpointing, find_last_checkpoint
from .confounder import ConfounderRelianceHandler
from .epoch_seed import EpochSeedHandler
from .explanation_loss import ExplanationLossHandler, default_saliency_target, loss_terms
from .faithfulness import FaithfulnessHandler
from .lambda_schedules import ConstantLambda, LambdaSchedule, LinearWarmupLambda, StepLambda, get_lambda_schedule
from .mlflow_tracking import ResilientMLFlowHandler
from .overlay import SaliencyOverlayHandler, save_overlay_grid
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
    "LAST_CHECKPOINT_PREFIX",
    "BatchNormRecalibration",
    "ChanceLevelHandler",
    "ConfounderRelianceHandler",
    "ConstantLambda",
    "DecisionThreshold",
    "EpochSeedHandler",
    "ExplanationLossHandler",
    "FaithfulnessHandler",
    "LambdaSchedule",
    "LinearWarmupLambda",
    "PointingGameHandler",
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
    "get_lambda_schedule",
    "load_decision_threshold",
    "loss_terms",
    "recalibrate_batchnorm",
    "save_overlay_grid",
]
