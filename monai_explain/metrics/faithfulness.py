"""Faithfulness of a saliency map to the model: deletion and insertion AUC (RISE, Petsiuk et al. 2018).

Pixels are removed (deletion) or revealed (insertion) in decreasing saliency order, in ``steps`` equal chunks;
after each chunk the model's probability of the target class is recorded and the curve is integrated over the
fraction of pixels changed with the trapezoid rule. A faithful map makes the probability fall fast when its most
salient pixels are deleted (low deletion AUC) and rise fast when they are inserted (high insertion AUC).

These are not ``(y_pred, y)`` metrics: they need the model and the images. The classes keep MONAI's cumulative
interface (buffer, :meth:`aggregate` with ``do_metric_reduction``, ``get_not_nans``) but are called as
``metric(images, target, saliency)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.metrics import Cumulative
from monai.metrics.utils import do_metric_reduction
from monai.networks.layers import GaussianFilter
from monai.utils import MetricReduction
from torch import nn

from monai_explain.utils import resize_saliency

__all__ = [
    "DeletionAUC",
    "InsertionAUC",
    "compute_deletion_auc",
    "compute_insertion_auc",
    "compute_perturbation_curve",
]

Baseline = str | float | torch.Tensor
Activation = str | Callable[[torch.Tensor], torch.Tensor] | None


def _baseline_images(images: torch.Tensor, baseline: Baseline, blur_sigma: float) -> torch.Tensor:
    if isinstance(baseline, torch.Tensor):
        base = baseline.to(device=images.device, dtype=images.dtype)
        try:
            return base.expand_as(images)
        except RuntimeError as e:
            raise ValueError(
                f"baseline tensor of shape {tuple(base.shape)} does not broadcast to images {tuple(images.shape)}."
            ) from e
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full_like(images, float(baseline))
    if baseline == "zero":
        return torch.zeros_like(images)
    if baseline == "mean":
        return images.mean(dim=tuple(range(2, images.ndim)), keepdim=True).expand_as(images)
    if baseline == "blur":
        return GaussianFilter(images.ndim - 2, sigma=blur_sigma).to(images.device)(images.float()).to(images.dtype)
    raise ValueError(f"baseline must be 'zero', 'mean', 'blur', a number or a tensor, got {baseline!r}.")


def _activate(logits: torch.Tensor, activation: Activation) -> torch.Tensor:
    if callable(activation):
        return activation(logits)
    if activation == "softmax":
        return torch.softmax(logits.float(), dim=1)
    if activation == "sigmoid":
        return torch.sigmoid(logits.float())
    if activation in (None, "none"):
        return logits.float()
    raise ValueError(f"activation must be 'softmax', 'sigmoid', 'none' or a callable, got {activation!r}.")


def _target_saliency(saliency: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if saliency.shape[1] == 1:
        return saliency
    if bool((target >= saliency.shape[1]).any()):
        raise ValueError(
            f"target class {int(target.max())} has no channel in saliency of shape {tuple(saliency.shape)}."
        )
    idx = target.view(-1, 1, *[1] * (saliency.ndim - 2)).expand(-1, 1, *saliency.shape[2:])
    return saliency.gather(1, idx)


def compute_perturbation_curve(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    target: torch.Tensor | int,
    saliency: torch.Tensor,
    insertion: bool = False,
    steps: int = 50,
    baseline: Baseline = "zero",
    activation: Activation = "softmax",
    batch_size: int = 32,
    blur_sigma: float = 5.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Target-class score as pixels are deleted (or inserted) in decreasing saliency order.

    Pixel order: decreasing saliency, ties by lowest flattened (row-major) index; all input channels of a pixel
    change together. Step ``i`` (``0..steps``) has the ``floor(i * N / steps)`` most salient pixels replaced by the
    baseline (deletion) or taken from the image over the baseline (insertion), so the curve runs from the image to
    the baseline (deletion) or back (insertion). All ``B * (steps + 1)`` perturbed images are evaluated in minibatches
    of ``batch_size`` under ``torch.no_grad()``; the model's train/eval mode is left as it is (put it in eval mode
    first for dropout / batch norm).

    Args:
        model: classifier mapping ``(b, C_in, *spatial)`` to logits ``(b, num_classes)``.
        images: ``(B, C_in, *spatial)`` inputs.
        target: ``(B,)`` class indices (or one int for all).
        saliency: ``(B, 1, *spatial_s)`` map of the target class, or ``(B, num_classes, *spatial_s)`` one map per
            class (the target's channel is used); resampled to the image grid if sizes differ.
        insertion: insertion instead of deletion.
        steps: number of chunks (at most the number of pixels).
        baseline: ``"zero"``, ``"mean"`` (per image and channel), ``"blur"`` (Gaussian of ``blur_sigma`` pixels), a
            number, or a tensor broadcastable to ``images``.
        activation: ``"softmax"`` (multi-class), ``"sigmoid"`` (multi-label), ``"none"`` (raw logits) or a callable
            on the logits.
        batch_size: perturbed images per forward pass.
        blur_sigma: Gaussian sigma of the ``"blur"`` baseline.

    Returns:
        ``(scores, fractions)``: ``(B, steps + 1)`` target scores and the ``(steps + 1,)`` fractions of pixels
        changed, from 0 to 1.

    Raises:
        ValueError: for mismatched shapes or a bad option.
    """
    if images.ndim < 3:
        raise ValueError(f"images must be (B, C, *spatial), got shape {tuple(images.shape)}.")
    b = images.shape[0]
    device = images.device
    target_t = torch.as_tensor(target, device=device).long().reshape(-1)
    if target_t.numel() == 1 and b > 1:
        target_t = target_t.expand(b)
    if target_t.numel() != b:
        raise ValueError(f"target must hold one class per image ({b}), got shape {tuple(target_t.shape)}.")
    if saliency.ndim != images.ndim or saliency.shape[0] != b:
        raise ValueError(
            f"saliency of shape {tuple(saliency.shape)} does not match images of shape {tuple(images.shape)}."
        )
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}.")
    sal = _target_saliency(saliency.detach().to(device), target_t)
    sal = resize_saliency(sal.float(), images.shape[2:])
    n = sal[0, 0].numel()
    steps = min(steps, n)
    order = torch.sort(sal.reshape(b, n), dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n, device=device).expand(b, n))
    rank = rank.view(b, 1, *images.shape[2:])
    counts = torch.div(torch.arange(steps + 1, device=device) * n, steps, rounding_mode="floor")

    with torch.no_grad():
        images_d = images.detach()
        base = _baseline_images(images_d, baseline, blur_sigma)
        first, second = (base, images_d) if insertion else (images_d, base)  # second = the changed pixels' source
        total = b * (steps + 1)
        scores = torch.empty(total, dtype=torch.float32, device=device)
        for start in range(0, total, batch_size):
            idx = torch.arange(start, min(start + batch_size, total), device=device)
            bi = torch.div(idx, steps + 1, rounding_mode="floor")
            si = idx % (steps + 1)
            changed = rank[bi] < counts[si].view(-1, *[1] * (images.ndim - 1))
            batch = torch.where(changed, second[bi], first[bi])
            prob = _activate(model(batch), activation)
            if prob.ndim != 2:
                raise ValueError(f"model output must be (batch, num_classes), got shape {tuple(prob.shape)}.")
            scores[start : start + idx.numel()] = prob.gather(1, target_t[bi][:, None])[:, 0].float()
    fractions = counts.to(torch.float32) / n
    return scores.view(b, steps + 1), fractions


def _auc(scores: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
    return torch.trapezoid(scores, fractions, dim=1)[:, None]


def compute_deletion_auc(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    target: torch.Tensor | int,
    saliency: torch.Tensor,
    steps: int = 50,
    baseline: Baseline = "zero",
    activation: Activation = "softmax",
    batch_size: int = 32,
    blur_sigma: float = 5.0,
) -> torch.Tensor:
    """Deletion AUC per image, ``(B, 1)``: lower is more faithful.

    The most salient pixels are replaced by the baseline first (default ``"zero"``, as RISE); see
    :func:`compute_perturbation_curve` for the options.

    Example:
        >>> class Sum(torch.nn.Module):
        ...     def forward(self, x):
        ...         return x.flatten(1).sum(1, keepdim=True)
        >>> img = torch.ones(1, 1, 2, 2)
        >>> sal = torch.tensor([[[[4.0, 3.0], [2.0, 1.0]]]])
        >>> compute_deletion_auc(Sum(), img, 0, sal, steps=4, activation="none").tolist()
        [[2.0]]
    """
    return _auc(
        *compute_perturbation_curve(
            model, images, target, saliency, False, steps, baseline, activation, batch_size, blur_sigma
        )
    )


def compute_insertion_auc(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    target: torch.Tensor | int,
    saliency: torch.Tensor,
    steps: int = 50,
    baseline: Baseline = "blur",
    activation: Activation = "softmax",
    batch_size: int = 32,
    blur_sigma: float = 5.0,
) -> torch.Tensor:
    """Insertion AUC per image, ``(B, 1)``: higher is more faithful.

    The most salient pixels are revealed first over the baseline (default ``"blur"``, as RISE); see
    :func:`compute_perturbation_curve` for the options.
    """
    return _auc(
        *compute_perturbation_curve(
            model, images, target, saliency, True, steps, baseline, activation, batch_size, blur_sigma
        )
    )


class _PerturbationAUC(Cumulative):
    insertion = False
    default_baseline: Baseline = "zero"

    def __init__(
        self,
        model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
        steps: int = 50,
        baseline: Baseline | None = None,
        activation: Activation = "softmax",
        batch_size: int = 32,
        blur_sigma: float = 5.0,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.steps = steps
        self.baseline = self.default_baseline if baseline is None else baseline
        self.activation = activation
        self.batch_size = batch_size
        self.blur_sigma = blur_sigma
        self.reduction = reduction
        self.get_not_nans = get_not_nans

    def __call__(self, images: torch.Tensor, target: torch.Tensor | int, saliency: torch.Tensor) -> torch.Tensor:
        """Compute the ``(B, 1)`` AUCs of a batch, add them to the buffer and return them."""
        scores, fractions = compute_perturbation_curve(
            self.model,
            images,
            target,
            saliency,
            self.insertion,
            self.steps,
            self.baseline,
            self.activation,
            self.batch_size,
            self.blur_sigma,
        )
        auc = _auc(scores, fractions)
        self.extend(auc)
        return auc

    def aggregate(self, reduction: MetricReduction | str | None = None) -> Any:
        """Reduce the buffered ``(N, 1)`` AUCs (``do_metric_reduction``); ``(value, not_nans)`` with
        ``get_not_nans``.

        Raises:
            ValueError: when nothing has been buffered yet.
        """
        data = self.get_buffer()
        if data is None:
            raise ValueError(f"{self.__class__.__name__}: nothing to aggregate, call the metric on data first.")
        f, not_nans = do_metric_reduction(data, reduction or self.reduction)
        return (f, not_nans) if self.get_not_nans else f


class DeletionAUC(_PerturbationAUC):
    """Cumulative deletion AUC (lower is more faithful): ``metric(images, target, saliency)`` returns ``(B, 1)``.

    Args:
        model: the classifier (its train/eval mode is left as it is).
        steps: number of deletion chunks.
        baseline: what deleted pixels become; default ``"zero"``.
        activation: ``"softmax"``, ``"sigmoid"``, ``"none"`` or a callable on the logits.
        batch_size: perturbed images per forward pass.
        blur_sigma: sigma of the ``"blur"`` baseline.
        reduction: a :class:`monai.utils.MetricReduction` value for :meth:`aggregate`.
        get_not_nans: whether :meth:`aggregate` also returns the count of non-NaN values.

    Example:
        >>> metric = DeletionAUC(model.eval(), steps=20)  # doctest: +SKIP
        >>> for images, labels in loader:  # doctest: +SKIP
        ...     saliency, _ = gradcam(images, labels)
        ...     metric(images, labels, saliency)
        >>> metric.aggregate()  # doctest: +SKIP
    """

    insertion = False
    default_baseline = "zero"


class InsertionAUC(_PerturbationAUC):
    """Cumulative insertion AUC (higher is more faithful): ``metric(images, target, saliency)`` returns ``(B, 1)``.

    Same arguments as :class:`DeletionAUC`; the default baseline is ``"blur"`` (RISE's blurred image).
    """

    insertion = True
    default_baseline = "blur"
