"""Confounder reliance: how much a classifier's output depends on a region that should not matter.

Given a region a user suspects of carrying a shortcut (a laterality marker, a text tag, a tube, a ruler), the
region is replaced by a neutral fill and the image is classified again. Two values per image and class:

- ``change``: ``|p(filled) - p(original)|``, the absolute change of the predicted probability;
- ``flipped``: 1 when the decision ``p >= threshold`` differs between the two, else 0.

A model that is right for the right reasons barely moves (change near 0, no flips); a model that learned the
shortcut drops its score when the marker disappears. Unlike saliency alignment this measures the model's
behaviour directly, without trusting any explanation method.

Fill options (``fill``):

- ``"mean"`` (default): the image's mean intensity (per image and channel). Simple; for a bright marker on a
  dark corner it puts mid-grey there, itself an unusual pattern.
- ``"local"``: the mean of the pixels in a band of ``margin`` pixels around the region (outside it), per image
  and channel: the region blends with its surroundings (falls back to the image mean when the region leaves no
  band, e.g. covers the whole image).
- ``"constant"``: the number ``value`` (e.g. the background level after intensity scaling).

Images without a region (an empty mask / no box) get NaN, left out of the means and counted through
``get_not_nans`` as in the alignment metrics. 2D and 3D share one code path.

The region comes as a mask ``(B, K, *spatial)`` in the image's grid (non-zero = region; several channels are
merged) - what :class:`monai_explain.transforms.BoxesToMaskd` makes from a data list's ``"confounder_boxes"`` -
or as one array of boxes ``(N, 2 * dims)`` per image in the array's own axis order (MONAI ``StandardMode``:
``xyxy`` / ``xyzxyz`` with x = the first spatial axis), rasterised with
:class:`monai_explain.transforms.BoxesToMask`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction
from monai.networks.utils import eval_mode
from monai.utils import MetricReduction, StrEnum, look_up_option
from torch import nn

from monai_explain.transforms import BoxesToMask

__all__ = [
    "ConfounderReliance",
    "FillMode",
    "compute_confounder_reliance",
    "fill_region",
    "region_mask",
]

Activation = str | Callable[[torch.Tensor], torch.Tensor] | None


class FillMode(StrEnum):
    """What replaces the confounder region: see the module docstring."""

    MEAN = "mean"
    LOCAL = "local"
    CONSTANT = "constant"


def region_mask(region: torch.Tensor | Sequence[Any], images: torch.Tensor) -> torch.Tensor:
    """The region as a boolean mask ``(B, 1, *spatial)`` matching ``images`` ``(B, C, *spatial)``.

    Args:
        region: a mask ``(B, K, *spatial)`` (non-zero = region, channels merged) or a sequence of ``B`` box arrays
            ``(N, 2 * dims)`` in the array's axis order (StandardMode); an empty array = no region.
        images: the batch the region belongs to.

    Raises:
        ValueError: a mask whose batch or spatial size differs from the images', or a box list of another length.
    """
    spatial = tuple(images.shape[2:])
    if isinstance(region, torch.Tensor):
        if region.ndim != images.ndim or region.shape[0] != images.shape[0] or tuple(region.shape[2:]) != spatial:
            raise ValueError(
                f"region mask of shape {tuple(region.shape)} does not match images {tuple(images.shape)} "
                "(expected (B, K, *spatial) with the same B and spatial size)."
            )
        return (region.to(images.device) != 0).any(dim=1, keepdim=True)
    if len(region) != images.shape[0]:
        raise ValueError(f"got {len(region)} box arrays for a batch of {images.shape[0]} images.")
    to_mask = BoxesToMask()
    masks = [torch.as_tensor(to_mask(b, spatial_size=spatial)) for b in region]
    return torch.stack(masks).to(images.device).any(dim=1, keepdim=True)


def fill_region(
    images: torch.Tensor,
    mask: torch.Tensor,
    fill: FillMode | str = FillMode.MEAN,
    value: float = 0.0,
    margin: int = 4,
) -> torch.Tensor:
    """``images`` with the pixels where ``mask`` is True replaced by the ``fill``.

    Args:
        images: ``(B, C, *spatial)``.
        mask: boolean ``(B, 1, *spatial)`` (see :func:`region_mask`).
        fill: a :class:`FillMode`.
        value: the ``"constant"`` fill.
        margin: width in pixels of the band around the region whose mean is the ``"local"`` fill.

    Returns:
        a new tensor like ``images``.
    """
    fill = look_up_option(fill, FillMode)
    x = images.float()
    dims = tuple(range(2, x.ndim))
    if fill == FillMode.CONSTANT:
        filler = torch.full_like(x, float(value))
    else:
        mean = x.mean(dim=dims, keepdim=True)
        if fill == FillMode.LOCAL:
            if int(margin) < 1:
                raise ValueError(f"margin must be >= 1 pixel for the 'local' fill, got {margin}.")
            pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[x.ndim - 2]
            m = int(margin)
            grown = pool(mask.float(), kernel_size=2 * m + 1, stride=1, padding=m) > 0
            band = (grown & ~mask).float()
            n = band.sum(dim=dims, keepdim=True)
            local = (x * band).sum(dim=dims, keepdim=True) / n.clamp(min=1)
            mean = torch.where(n > 0, local, mean)
        filler = mean.expand_as(x)
    return torch.where(mask, filler, x).to(images.dtype)


def _activate(logits: torch.Tensor, activation: Activation) -> torch.Tensor:
    if callable(activation):
        return activation(logits)
    if activation is None:
        return logits
    if activation == "sigmoid":
        return torch.sigmoid(logits)
    if activation == "softmax":
        return torch.softmax(logits, dim=1)
    raise ValueError(f"activation must be 'sigmoid', 'softmax', None or a callable, got {activation!r}.")


def _threshold_tensor(threshold: Any, num_classes: int, device: torch.device) -> torch.Tensor:
    t = getattr(threshold, "threshold", threshold)  # a DecisionThreshold handler: its current value
    t = torch.as_tensor(t, dtype=torch.float32, device=device).reshape(-1)
    if t.numel() == 0:  # nothing chosen yet
        t = torch.full((1,), 0.5, device=device)
    if t.numel() not in (1, num_classes):
        raise ValueError(f"threshold has {t.numel()} values for {num_classes} classes.")
    return t.reshape(1, -1)


def compute_confounder_reliance(
    network: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    region: torch.Tensor | Sequence[Any],
    threshold: Any = 0.5,
    fill: FillMode | str = FillMode.MEAN,
    value: float = 0.0,
    margin: int = 4,
    activation: Activation = "sigmoid",
    batch_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image and class: the absolute probability change when the region is filled, and whether it flips.

    The network runs in eval mode without gradients on the original and the filled images.

    Args:
        network: the classifier (logits ``(B, C)``).
        images: ``(B, C_in, *spatial)``.
        region: mask ``(B, K, *spatial)`` or ``B`` box arrays, see :func:`region_mask`.
        threshold: decision threshold: a float, ``(C,)`` values, or an object with a ``threshold`` attribute
            (:class:`monai_explain.handlers.DecisionThreshold`, read at call time).
        fill, value, margin: see :func:`fill_region`.
        activation: ``"sigmoid"`` (multi-label, default), ``"softmax"``, ``None`` (already probabilities) or a
            callable.
        batch_size: images per forward pass.

    Returns:
        ``(change, flipped)``, float tensors ``(B, C)``; NaN rows for images without a region.

    Example:
        >>> import torch
        >>> net = lambda x: x.flatten(1).sum(1, keepdim=True)  # logit = sum of pixels
        >>> images = torch.zeros(1, 1, 2, 2); images[0, 0, 0, 0] = 4.0
        >>> change, flipped = compute_confounder_reliance(net, images, [[[0, 0, 1, 1]]], fill="constant", value=-1.0)
        >>> round(float(change), 4), float(flipped)  # sigmoid(4) - sigmoid(-1); 0.98 -> 0.27 crosses 0.5
        (0.7131, 1.0)
    """
    mask = region_mask(region, images)
    filled = fill_region(images, mask, fill, value, margin)
    has_region = mask.flatten(1).any(dim=1)
    both = torch.cat([images, filled])
    outs = []
    ctx = eval_mode(network) if isinstance(network, nn.Module) else torch.no_grad()
    with ctx, torch.no_grad():
        for start in range(0, both.shape[0], int(batch_size)):
            outs.append(network(both[start : start + int(batch_size)]).float())
    probs = _activate(torch.cat(outs), activation)
    probs = probs.reshape(probs.shape[0], -1)
    p0, p1 = probs[: images.shape[0]], probs[images.shape[0] :]
    t = _threshold_tensor(threshold, p0.shape[1], p0.device)
    change = (p1 - p0).abs()
    flipped = ((p0 >= t) != (p1 >= t)).float()
    nan = torch.tensor(float("nan"), device=p0.device)
    keep = has_region.to(p0.device)[:, None]
    return torch.where(keep, change, nan), torch.where(keep, flipped, nan)


class ConfounderReliance(CumulativeIterationMetric):
    """Mean absolute probability change and decision flip rate when a confounder region is filled.

    Called as ``metric(y_pred=images, y=region)``: unlike a ``(prediction, label)`` metric it needs the images
    (``y_pred``) and the region mask (``y``, ``(B, K, *spatial)``, or box arrays per image), and holds the
    network. Each call buffers ``(change, flipped)`` of shape ``(B, C)``; :meth:`aggregate` reduces both.

    Args:
        network: the classifier.
        threshold: the decision threshold (float, per class, or a ``DecisionThreshold`` handler).
        fill: ``"mean"``, ``"local"`` or ``"constant"`` (:class:`FillMode`).
        value: the constant fill.
        margin: band width of the local fill.
        activation: ``"sigmoid"``, ``"softmax"``, ``None`` or a callable.
        batch_size: images per forward pass.
        reduction: a :class:`monai.utils.MetricReduction` (NaN, i.e. images without a region, ignored).
        get_not_nans: also return the number of images with a region.

    Example:
        >>> metric = ConfounderReliance(net, threshold=0.5, fill="local")  # doctest: +SKIP
        >>> metric(y_pred=images, y=confounder_mask)  # doctest: +SKIP
        >>> change, flip_rate = metric.aggregate()  # doctest: +SKIP
    """

    def __init__(
        self,
        network: nn.Module | Callable[[torch.Tensor], torch.Tensor],
        threshold: Any = 0.5,
        fill: FillMode | str = FillMode.MEAN,
        value: float = 0.0,
        margin: int = 4,
        activation: Activation = "sigmoid",
        batch_size: int = 64,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__()
        self.network = network
        self.threshold = threshold
        self.fill = look_up_option(fill, FillMode)
        self.value = value
        self.margin = margin
        self.activation = activation
        self.batch_size = batch_size
        self.reduction = reduction
        self.get_not_nans = get_not_nans

    def __call__(self, y_pred: Any, y: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """Buffer one batch; ``y_pred`` = images (batch tensor or list of items), ``y`` = region (mask or boxes)."""
        if isinstance(y_pred, (list, tuple)):  # decollated items: one batched pass instead of one per item
            y_pred = torch.stack([torch.as_tensor(i) for i in y_pred])
            if isinstance(y, (list, tuple)) and all(
                isinstance(m, torch.Tensor) and m.ndim == y_pred.ndim - 1 for m in y
            ):
                y = torch.stack(list(y))
        if y is None:
            raise ValueError("ConfounderReliance needs the region (y): a mask or box arrays per image.")
        ret = self._compute_tensor(y_pred, y)
        self.extend(*ret)
        return ret

    def _compute_tensor(self, y_pred: torch.Tensor, y: Any = None) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return compute_confounder_reliance(
            self.network,
            y_pred,
            y,
            self.threshold,
            self.fill,
            self.value,
            self.margin,
            self.activation,
            self.batch_size,
        )

    def aggregate(self, reduction: MetricReduction | str | None = None) -> Any:
        """``[change, flip_rate]`` reduced over images (and classes), or ``[(change, n), (flip_rate, n)]`` with
        ``get_not_nans``.

        Raises:
            ValueError: nothing buffered.
        """
        buffers = self.get_buffer()
        if buffers is None or len(buffers) != 2:
            raise ValueError("ConfounderReliance: nothing to aggregate; call the metric on a batch first.")
        out = []
        for b in buffers:
            f, not_nans = do_metric_reduction(b, reduction or self.reduction)
            out.append((f, not_nans) if self.get_not_nans else f)
        return out
