"""Ignite metric handlers for the saliency/annotation alignment metrics, wrapping them as MONAI's ``MeanDice`` wraps
``DiceMetric``.

Every handler reads ``(saliency, mask)`` from the engine output. The default ``output_transform`` is
``from_engine(["saliency", "mask"])``: it reads the keys ``"saliency"`` and ``"mask"`` from each decollated item of a
MONAI evaluator's output (as :class:`monai_explain.handlers.SaliencyOutputHandler` writes them) or from an output
dict holding batch tensors. Pass another ``output_transform`` for other keys.

Example:
    .. code-block:: python

        evaluator = SupervisedEvaluator(
            ...,
            key_val_metric={"val_precision": SaliencyPrecisionHandler()},
            additional_metrics={"val_coverage": SaliencyCoverageHandler(), "val_chance": ChanceLevelHandler()},
            val_handlers=[SaliencyOutputHandler(GradCAM(net, "features"))],
        )
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from monai.handlers.ignite_metric import IgniteMetricHandler
from monai.handlers.utils import from_engine
from monai.utils import MetricReduction

from monai_explain.metrics import (
    DEFAULT_INSTANCE_THRESHOLD,
    DEFAULT_NUM_BINS,
    DEFAULT_THRESHOLD,
    DEFAULT_TOPK_FRACTION,
    BinarizeMethod,
    ChanceLevel,
    PointingGame,
    PrecisionMode,
    SaliencyCoverage,
    SaliencyIoU,
    SaliencyPrecision,
)
from monai_explain.metrics.base import SaliencyAlignmentMetric

__all__ = [
    "SALIENCY_OUTPUT_TRANSFORM",
    "ChanceLevelHandler",
    "PointingGameHandler",
    "SaliencyCoverageHandler",
    "SaliencyIoUHandler",
    "SaliencyPrecisionHandler",
]

#: Default ``output_transform`` of the alignment handlers: ``(saliency, mask)`` from the engine output.
SALIENCY_OUTPUT_TRANSFORM = from_engine(["saliency", "mask"])

logger = logging.getLogger(__name__)

_OVER_ALL = (MetricReduction.MEAN, MetricReduction.SUM)
_PER_CHANNEL = (MetricReduction.MEAN_BATCH, MetricReduction.SUM_BATCH)
_PER_SAMPLE = (MetricReduction.MEAN_CHANNEL, MetricReduction.SUM_CHANNEL)


class _AlignmentMetricHandler(IgniteMetricHandler):
    """``IgniteMetricHandler`` whose value is NaN, not 0, when no image of the epoch has an annotation.

    MONAI's ``do_metric_reduction`` turns an all-NaN buffer (every mask empty, e.g. a split of negatives only) into
    0, which reads as "the saliency never hits the annotation". Here a reduced value with no annotated image behind
    it is NaN, and the number of annotated images is logged at every computation (a warning when it is 0).
    """

    metric_fn: SaliencyAlignmentMetric  # every subclass wraps one (it has a ``reduction``)

    def compute(self) -> Any:
        buffer = self.metric_fn.get_buffer()
        result = super().compute()
        if not isinstance(buffer, torch.Tensor) or buffer.ndim != 2:
            return result
        annotated = ~torch.isnan(buffer)  # (images, channels): False where the mask is empty
        n_images, n_annotated = buffer.shape[0], int(annotated.any(dim=1).sum())
        name = self._name or type(self).__name__
        reduction = MetricReduction(self.metric_fn.reduction)
        if reduction in _OVER_ALL:
            empty = ~annotated.any().reshape(1)
        elif reduction in _PER_CHANNEL:
            empty = ~annotated.any(dim=0)
        elif reduction in _PER_SAMPLE:
            empty = ~annotated.any(dim=1)
        else:  # "none": the per-image values, NaN where empty already
            empty = None
        if n_annotated == 0:
            logger.warning(
                "%s: none of the %d images has an annotation (all masks empty): the metric is NaN, not 0.",
                name,
                n_images,
            )
        else:
            logger.info(
                "%s: computed over %d of %d images (the others have no annotation).", name, n_annotated, n_images
            )
        if empty is None or not bool(empty.any()):
            return result
        value = torch.as_tensor(result, dtype=torch.float32).reshape(empty.shape).clone()
        value[empty] = float("nan")
        value = value.squeeze()
        return value.item() if value.ndim == 0 else value


class SaliencyCoverageHandler(_AlignmentMetricHandler):
    """Annotation coverage ``|B and A| / |A|`` (or the fraction of instances found), averaged over non-empty masks.

    Args:
        per_instance: read the mask as instances and count the fraction found.
        instance_threshold: share of an instance's pixels that must be salient (``per_instance`` only).
        binarize: ``"topk"`` (default), ``"threshold"`` or ``"otsu"``.
        fraction: top-k fraction (default 0.1) or ``"mask"``.
        threshold: threshold of the ``"threshold"`` method.
        num_bins: Otsu histogram bins.
        mask_threshold: a pixel is annotated where ``mask > mask_threshold``.
        reduction: a :class:`monai.utils.MetricReduction` value.
        output_transform: callable giving ``(saliency, mask)`` from ``engine.state.output``; default
            ``from_engine(["saliency", "mask"])``.
        save_details: whether to save the per-image values to ``engine.state.metric_details``.

    See also:
        :py:class:`monai_explain.metrics.SaliencyCoverage`
    """

    def __init__(
        self,
        per_instance: bool = False,
        instance_threshold: float = DEFAULT_INSTANCE_THRESHOLD,
        binarize: BinarizeMethod | str = BinarizeMethod.TOPK,
        fraction: float | str = DEFAULT_TOPK_FRACTION,
        threshold: float = DEFAULT_THRESHOLD,
        num_bins: int = DEFAULT_NUM_BINS,
        mask_threshold: float = 0.5,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = SALIENCY_OUTPUT_TRANSFORM,
        save_details: bool = True,
    ) -> None:
        metric_fn = SaliencyCoverage(
            per_instance=per_instance,
            instance_threshold=instance_threshold,
            binarize=binarize,
            fraction=fraction,
            threshold=threshold,
            num_bins=num_bins,
            mask_threshold=mask_threshold,
            reduction=reduction,
        )
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)


class SaliencyPrecisionHandler(_AlignmentMetricHandler):
    """Saliency precision (``|B and A| / |B|`` or ``sum(S * A) / sum(S)``), averaged over non-empty masks.

    Args:
        mode: ``"binary"`` (default) or ``"mass"``.
        binarize: ``"topk"`` (default), ``"threshold"`` or ``"otsu"``.
        fraction: top-k fraction (default 0.1) or ``"mask"``.
        threshold: threshold of the ``"threshold"`` method.
        num_bins: Otsu histogram bins.
        mask_threshold: a pixel is annotated where ``mask > mask_threshold``.
        reduction: a :class:`monai.utils.MetricReduction` value.
        output_transform: callable giving ``(saliency, mask)``; default ``from_engine(["saliency", "mask"])``.
        save_details: whether to save the per-image values to ``engine.state.metric_details``.

    See also:
        :py:class:`monai_explain.metrics.SaliencyPrecision`; log :class:`ChanceLevelHandler` beside it.
    """

    def __init__(
        self,
        mode: PrecisionMode | str = PrecisionMode.BINARY,
        binarize: BinarizeMethod | str = BinarizeMethod.TOPK,
        fraction: float | str = DEFAULT_TOPK_FRACTION,
        threshold: float = DEFAULT_THRESHOLD,
        num_bins: int = DEFAULT_NUM_BINS,
        mask_threshold: float = 0.5,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = SALIENCY_OUTPUT_TRANSFORM,
        save_details: bool = True,
    ) -> None:
        metric_fn = SaliencyPrecision(
            mode=mode,
            binarize=binarize,
            fraction=fraction,
            threshold=threshold,
            num_bins=num_bins,
            mask_threshold=mask_threshold,
            reduction=reduction,
        )
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)


class ChanceLevelHandler(_AlignmentMetricHandler):
    """Chance level of saliency precision, the annotated fraction ``|A| / N``, averaged over non-empty masks.

    Reads the same ``(saliency, mask)`` pair as the other handlers (the saliency only sets the channel layout), so
    it averages over exactly the items the precision handler averages over.

    Args:
        mask_threshold: a pixel is annotated where ``mask > mask_threshold``.
        reduction: a :class:`monai.utils.MetricReduction` value.
        output_transform: callable giving ``(saliency, mask)``; default ``from_engine(["saliency", "mask"])``.
        save_details: whether to save the per-image values to ``engine.state.metric_details``.

    See also:
        :py:class:`monai_explain.metrics.ChanceLevel`
    """

    def __init__(
        self,
        mask_threshold: float = 0.5,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = SALIENCY_OUTPUT_TRANSFORM,
        save_details: bool = True,
    ) -> None:
        metric_fn = ChanceLevel(mask_threshold=mask_threshold, reduction=reduction)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)


class PointingGameHandler(_AlignmentMetricHandler):
    """Pointing-game hit rate (maximum of the saliency inside the annotation) over non-empty masks.

    Args:
        tolerance: hit tolerance in pixels (Chebyshev distance), 0 for the exact rule.
        mask_threshold: a pixel is annotated where ``mask > mask_threshold``.
        reduction: a :class:`monai.utils.MetricReduction` value.
        output_transform: callable giving ``(saliency, mask)``; default ``from_engine(["saliency", "mask"])``.
        save_details: whether to save the per-image values to ``engine.state.metric_details``.

    See also:
        :py:class:`monai_explain.metrics.PointingGame`
    """

    def __init__(
        self,
        tolerance: int = 0,
        mask_threshold: float = 0.5,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = SALIENCY_OUTPUT_TRANSFORM,
        save_details: bool = True,
    ) -> None:
        metric_fn = PointingGame(tolerance=tolerance, mask_threshold=mask_threshold, reduction=reduction)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)


class SaliencyIoUHandler(_AlignmentMetricHandler):
    """IoU of the binarised saliency (Otsu by default, CheXlocalize) and the annotation, over non-empty masks.

    Args:
        binarize: ``"otsu"`` (default), ``"threshold"`` or ``"topk"``.
        fraction: top-k fraction or ``"mask"``.
        threshold: threshold of the ``"threshold"`` method.
        num_bins: Otsu histogram bins.
        mask_threshold: a pixel is annotated where ``mask > mask_threshold``.
        reduction: a :class:`monai.utils.MetricReduction` value.
        output_transform: callable giving ``(saliency, mask)``; default ``from_engine(["saliency", "mask"])``.
        save_details: whether to save the per-image values to ``engine.state.metric_details``.

    See also:
        :py:class:`monai_explain.metrics.SaliencyIoU`
    """

    def __init__(
        self,
        binarize: BinarizeMethod | str = BinarizeMethod.OTSU,
        fraction: float | str = DEFAULT_TOPK_FRACTION,
        threshold: float = DEFAULT_THRESHOLD,
        num_bins: int = DEFAULT_NUM_BINS,
        mask_threshold: float = 0.5,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = SALIENCY_OUTPUT_TRANSFORM,
        save_details: bool = True,
    ) -> None:
        metric_fn = SaliencyIoU(
            binarize=binarize,
            fraction=fraction,
            threshold=threshold,
            num_bins=num_bins,
            mask_threshold=mask_threshold,
            reduction=reduction,
        )
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)
