"""Saliency/annotation alignment metrics and faithfulness metrics, as MONAI cumulative metrics.

Each metric has a functional core (``compute_*``) and a thin :class:`monai.metrics.CumulativeIterationMetric`
wrapper called as ``metric(y_pred=saliency, y=mask)``, returning ``(B, C)`` per iteration; ``aggregate()`` skips
the NaN of empty annotations (``get_not_nans`` counts the rest). 2D and 3D share one code path.
"""

from __future__ import annotations

from .alignment import compute_alignment_metrics
from .base import SaliencyAlignmentMetric
from .binarize import (
    DEFAULT_NUM_BINS,
    DEFAULT_THRESHOLD,
    DEFAULT_TOPK_FRACTION,
    BinarizeMethod,
    binarize_saliency,
    fill_regions,
    otsu_threshold,
)
from .chance import ChanceLevel, compute_chance_level
from .confounder import ConfounderReliance, FillMode, compute_confounder_reliance, fill_region, region_mask
from .coverage import (
    DEFAULT_INSTANCE_THRESHOLD,
    SaliencyCoverage,
    compute_instance_coverage,
    compute_saliency_coverage,
    instance_masks,
)
from .faithfulness import (
    DeletionAUC,
    InsertionAUC,
    compute_deletion_auc,
    compute_insertion_auc,
    compute_perturbation_curve,
)
from .iou import EmptyPrediction, SaliencyIoU, compute_saliency_iou
from .pointing_game import PointingGame, compute_pointing_game
from .precision import PrecisionMode, SaliencyPrecision, compute_saliency_precision
from .utils import alignment_counts, prepare_saliency_and_mask

__all__ = [
    "DEFAULT_INSTANCE_THRESHOLD",
    "DEFAULT_NUM_BINS",
    "DEFAULT_THRESHOLD",
    "DEFAULT_TOPK_FRACTION",
    "BinarizeMethod",
    "ChanceLevel",
    "ConfounderReliance",
    "DeletionAUC",
    "EmptyPrediction",
    "FillMode",
    "InsertionAUC",
    "PointingGame",
    "PrecisionMode",
    "SaliencyAlignmentMetric",
    "SaliencyCoverage",
    "SaliencyIoU",
    "SaliencyPrecision",
    "alignment_counts",
    "binarize_saliency",
    "compute_alignment_metrics",
    "compute_chance_level",
    "compute_confounder_reliance",
    "compute_deletion_auc",
    "compute_insertion_auc",
    "compute_instance_coverage",
    "compute_perturbation_curve",
    "compute_pointing_game",
    "compute_saliency_coverage",
    "compute_saliency_iou",
    "compute_saliency_precision",
    "fill_region",
    "fill_regions",
    "instance_masks",
    "otsu_threshold",
    "prepare_saliency_and_mask",
    "region_mask",
]
