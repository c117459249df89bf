"""Functional core of the explanation loss: validation, preparation of the map, empty-mask exclusion, reduction.

:class:`monai_explain.losses.ExplanationLoss` is a thin wrapper over :func:`explanation_loss_terms` and
:func:`reduce_explanation_loss`; :func:`explanation_loss` chains both in one call.

Order of operations on ``saliency`` (B, K, *spatial) and ``mask`` (B, K or 1, *spatial):

1. validation (shapes, finite saliency, mask values in [0, 1], weights; the value checks raise at once on the CPU,
   are asynchronous device assertions on an accelerator - no host synchronisation - and can be switched off with
   :func:`monai_explain.utils.value_checks`) and conversion: MetaTensors become plain
   tensors, integer/bool masks become floats of the saliency's dtype, float16/bfloat16 saliency is computed in
   float32 (the loss comes back in float32);
2. ``soft_mask=False`` binarises the mask at 0.5 (``mask >= 0.5``); with ``soft_mask=True`` it is used as given;
3. the saliency is resampled to the mask's grid when the spatial sizes differ (never the mask), then the mask is
   broadcast over the K channels when it has one channel;
4. the sign policy (``sign``): by default ``energy`` and ``kl`` take the positive part of the map (``clamp_min(0)``)
   and the other designs keep its sign; ``sign="absolute"`` takes ``|s|`` (a two-sided loss on a signed map);
5. per-sample, per-channel normalisation (:func:`monai_explain.utils.normalize_saliency`; ``"auto"`` picks
   :data:`monai_explain.losses.designs.AUTO_NORMALIZATION`);
6. the raw design term (B, K), then the margin: ``relu(raw - margin)`` when ``margin > 0``;
7. entries whose mask channel is empty (no value above 0) are excluded: set to 0 and marked not valid; with
   ``empty="penalize"`` they count, their whole map being outside the (empty) annotation.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from enum import Enum
from typing import TypeVar

import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.utils import LossReduction, look_up_option

from monai_explain.losses.designs import (
    AUTO_NORMALIZATION,
    EmptyMaskPolicy,
    ExplanationLossDesign,
    SaliencySign,
    compute_design_terms,
    resolve_empty,
    resolve_sign,
)
from monai_explain.utils.checks import check_tensor
from monai_explain.utils.saliency_ops import SaliencyNormalization, normalize_saliency, resize_saliency

__all__ = ["check_margin", "explanation_loss", "explanation_loss_terms", "lookup_enum", "reduce_explanation_loss"]

logger = logging.getLogger(__name__)


_E = TypeVar("_E", bound=Enum)


def lookup_enum(name: str, value: object, enum: type[_E]) -> _E:
    """``look_up_option`` with the parameter's name in the error."""
    try:
        return look_up_option(value, enum)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None


def check_margin(margin: float) -> float:
    """The ``margin`` of the margin designs as a float; ValueError unless it is finite and >= 0."""
    margin = float(margin)
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite number >= 0, got {margin}.")
    return margin


def _plain(x: torch.Tensor) -> torch.Tensor:
    return x.as_tensor() if isinstance(x, MetaTensor) else x


def _prepare_inputs(saliency: torch.Tensor, mask: torch.Tensor, soft_mask: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate shapes and values, convert types, resample the saliency to the mask grid, broadcast the mask."""
    if not isinstance(saliency, torch.Tensor) or not isinstance(mask, torch.Tensor):
        raise TypeError(
            f"saliency and mask must be torch.Tensor, got {type(saliency).__name__} and {type(mask).__name__}."
        )
    saliency, mask = _plain(saliency), _plain(mask)
    s_shape, m_shape = tuple(saliency.shape), tuple(mask.shape)
    if saliency.ndim < 3:
        raise ValueError(f"saliency must be (B, K, *spatial), got shape {s_shape}.")
    if mask.ndim != saliency.ndim:
        raise ValueError(
            f"saliency {s_shape} and mask {m_shape} must have the same number of dimensions (B, K, *spatial)."
        )
    if m_shape[0] != s_shape[0]:
        raise ValueError(f"batch size of mask {m_shape} differs from saliency {s_shape}.")
    if m_shape[1] not in (1, s_shape[1]):
        raise ValueError(f"mask {m_shape} must have 1 or K={s_shape[1]} channels (saliency {s_shape}).")
    if not saliency.is_floating_point():
        raise TypeError(f"saliency must be a floating point tensor, got {saliency.dtype}.")
    check_tensor(torch.isfinite(saliency), f"saliency {s_shape} contains NaN or Inf values.")
    if saliency.dtype in (torch.float16, torch.bfloat16):
        saliency = saliency.float()
    is_bool = mask.dtype == torch.bool
    mask = mask.to(device=saliency.device, dtype=saliency.dtype)
    if not is_bool:  # a bool mask is {0, 1} by type
        check_tensor(
            (mask >= 0) & (mask <= 1),
            f"mask {m_shape} values must lie in [0, 1] (soft masks allowed), found values outside.",
        )
    if not soft_mask:
        mask = (mask >= 0.5).to(saliency.dtype)
    saliency = resize_saliency(saliency, mask.shape[2:])
    return saliency, mask.expand_as(saliency)


def explanation_loss_terms(
    saliency: torch.Tensor,
    mask: torch.Tensor,
    design: ExplanationLossDesign | str = ExplanationLossDesign.ENERGY,
    normalize: SaliencyNormalization | str = "auto",
    margin: float = 0.0,
    soft_mask: bool = True,
    eps: float = 1e-8,
    sign: SaliencySign | str = SaliencySign.AUTO,
    empty: EmptyMaskPolicy | str = EmptyMaskPolicy.SKIP,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-(sample, channel) explanation loss and which entries count (their mask is not empty).

    Args:
        saliency: ``(B, K, *spatial)`` saliency maps (2D or 3D), finite, floating point, differentiable.
        mask: ``(B, K, *spatial_m)`` or ``(B, 1, *spatial_m)`` annotation masks, values in [0, 1] (bool and integer
            accepted); a 1-channel mask is shared by the K channels. The saliency is resampled to ``spatial_m``.
        design: an :class:`~monai_explain.losses.designs.ExplanationLossDesign` value.
        normalize: ``"auto"`` or a :class:`~monai_explain.utils.SaliencyNormalization` value.
        margin: slack (>= 0): each term becomes ``relu(raw - margin)``; for ``energy`` this pays only when the
            fraction of saliency inside the mask is below ``1 - margin``. ``0`` keeps the raw term.
        soft_mask: ``True`` uses the mask values as weights in [0, 1]; ``False`` binarises the mask at 0.5.
        eps: numerical floor of denominators (see :mod:`monai_explain.losses.designs`).
        sign: a :class:`~monai_explain.losses.designs.SaliencySign` value: ``"auto"`` (positive part for
            ``energy``/``kl``, sign kept otherwise), ``"positive"``, ``"absolute"`` (two-sided) or ``"keep"``.
        empty: a :class:`~monai_explain.losses.designs.EmptyMaskPolicy` value: ``"skip"`` excludes entries with an
            empty mask, ``"penalize"`` scores them with the whole map outside (``outside``, ``l1``, ``mse``,
            ``bce`` only).

    Returns:
        ``(terms, valid)``: ``terms`` is ``(B, K)`` (0 where not valid, graph kept), ``valid`` a ``(B, K)`` bool
        tensor, ``True`` where the mask channel has a value above 0 (every entry with ``empty="penalize"``).

    Raises:
        ValueError: unknown design/normalisation, negative margin, shape mismatch (naming both shapes), NaN or Inf
            in the saliency, mask values outside [0, 1].
        TypeError: non-tensor inputs or an integer saliency.
    """
    design = lookup_enum("design", design, ExplanationLossDesign)
    norm = (
        AUTO_NORMALIZATION[design]
        if normalize == "auto"
        else lookup_enum("normalize", normalize, SaliencyNormalization)
    )
    margin = check_margin(margin)
    sign_, empty_ = resolve_sign(design, sign), resolve_empty(design, empty)
    saliency, mask = _prepare_inputs(saliency, mask, soft_mask)
    if sign_ == SaliencySign.POSITIVE:
        saliency = saliency.clamp_min(0)
    elif sign_ == SaliencySign.ABSOLUTE:
        saliency = saliency.abs()
    saliency = normalize_saliency(saliency, norm, eps=eps)
    raw = compute_design_terms(saliency, mask, design, eps=eps)
    if margin > 0:
        raw = F.relu(raw - margin)
    valid = mask.flatten(2).amax(-1) > 0
    if empty_ == EmptyMaskPolicy.PENALIZE:
        valid = torch.ones_like(valid)
    terms = torch.where(valid, raw, torch.zeros_like(raw))
    if logger.isEnabledFor(logging.DEBUG):
        n_out = int((~valid).sum())
        logger.debug(
            "explanation loss (%s): %d of %d entries have an empty mask, excluded.", design, n_out, valid.numel()
        )
    return terms, valid


def reduce_explanation_loss(
    terms: torch.Tensor,
    valid: torch.Tensor,
    weight: torch.Tensor | Sequence[float] | None = None,
    reduction: LossReduction | str = LossReduction.MEAN,
    spatial_dims: int = 0,
) -> torch.Tensor:
    """Reduce ``(B, K)`` terms over the valid entries, with optional per-sample weights.

    With ``w[b, k] = weight[b] * valid[b, k]`` (``weight`` = 1 when not given):

    - ``"mean"``: ``sum(w * terms) / sum(w)``: the weighted mean over valid entries; 0 (still differentiable, zero
      gradient) when no entry is valid or all weights of valid entries are 0;
    - ``"sum"``: ``sum(w * terms)``;
    - ``"none"``: ``w * terms`` with shape ``(B, K, 1, ..., 1)`` (``spatial_dims`` ones, broadcastable against the
      inputs, as ``monai.losses.DiceLoss`` does); excluded entries are 0.

    Raises:
        ValueError: unknown reduction; ``weight`` not of shape ``(B,)``, not finite or negative.
    """
    reduction = lookup_enum("reduction", reduction, LossReduction)
    w = valid.to(terms.dtype)
    if weight is not None:
        weight = torch.as_tensor(_plain(weight) if isinstance(weight, torch.Tensor) else weight)
        if weight.shape != (terms.shape[0],):
            raise ValueError(
                f"weight must have shape (B,)=({terms.shape[0]},), got {tuple(weight.shape)} "
                f"(loss terms {tuple(terms.shape)})."
            )
        weight = weight.to(device=terms.device, dtype=terms.dtype)
        check_tensor(
            torch.isfinite(weight) & (weight >= 0), f"weight must be finite and >= 0 (loss terms {tuple(terms.shape)})."
        )
        w = w * weight[:, None]
    weighted = terms * w
    if reduction == LossReduction.NONE:
        return weighted.reshape(*terms.shape, *([1] * spatial_dims))
    if reduction == LossReduction.SUM:
        return weighted.sum()
    return weighted.sum() / w.sum().clamp_min(torch.finfo(terms.dtype).tiny)


def explanation_loss(
    saliency: torch.Tensor,
    mask: torch.Tensor,
    design: ExplanationLossDesign | str = ExplanationLossDesign.ENERGY,
    normalize: SaliencyNormalization | str = "auto",
    margin: float = 0.0,
    soft_mask: bool = True,
    reduction: LossReduction | str = LossReduction.MEAN,
    weight: torch.Tensor | Sequence[float] | None = None,
    eps: float = 1e-8,
    sign: SaliencySign | str = SaliencySign.AUTO,
    empty: EmptyMaskPolicy | str = EmptyMaskPolicy.SKIP,
) -> torch.Tensor:
    """Explanation loss of ``saliency`` against annotation ``mask``: :func:`explanation_loss_terms` then
    :func:`reduce_explanation_loss` (see both for the arguments).

    Example:
        >>> s = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
        >>> m = torch.tensor([[[[0, 1], [0, 1]]]])
        >>> explanation_loss(s, m, design="energy")  # 1 - (2 + 4) / 10
        tensor(0.4000)
    """
    reduction = lookup_enum("reduction", reduction, LossReduction)  # fail before any work
    terms, valid = explanation_loss_terms(saliency, mask, design, normalize, margin, soft_mask, eps, sign, empty)
    return reduce_explanation_loss(terms, valid, weight, reduction, spatial_dims=saliency.ndim - 2)
