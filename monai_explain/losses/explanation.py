"""``ExplanationLoss``: a MONAI loss comparing a saliency map with an annotation mask, several designs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from monai_explain.losses.designs import (
    EmptyMaskPolicy,
    ExplanationLossDesign,
    SaliencySign,
    resolve_empty,
    resolve_sign,
)
from monai_explain.losses.functional import (
    check_margin,
    explanation_loss_terms,
    lookup_enum,
    reduce_explanation_loss,
)
from monai_explain.utils.saliency_ops import SaliencyNormalization

__all__ = ["ExplanationLoss"]


class ExplanationLoss(_Loss):
    """Explanation supervision loss between saliency maps ``(B, K, *spatial)`` and annotation masks.

    The model is penalised when its saliency for a class does not agree with the clinicians' annotation of that
    class. One code path serves 2D and 3D. Designs (formulas in :mod:`monai_explain.losses.designs`):

    ========= ===================================================================== ===================
    design    meaning                                                               ``normalize="auto"``
    ========= ===================================================================== ===================
    energy    1 - share of saliency mass inside the mask (Model Guidance, Rao 2023) none (ratio)
    outside   mean squared saliency outside the mask (RRR, Ross 2017; GradMask)     none
    l1        mean ``|s - m|``                                                      max
    mse       mean ``(s - m) ** 2``                                                 max
    bce       mean binary cross-entropy of ``s`` (clamped probabilities) vs ``m``   max
    dice      soft Dice loss ``1 - 2 sum(s m) / (sum(s) + sum(m))``                 max
    kl        ``KL(m / sum(m) || s / sum(s))``                                      sum
    ========= ===================================================================== ===================

    Negative saliency (``sign``): by default ``energy`` and ``kl`` use the positive part of the map (clamped at 0,
    as Model Guidance does); the other designs keep the sign (``outside`` squares it). CAM-family maps and absolute
    gradients are non-negative already. ``sign="absolute"`` with a signed map (``CAM(signed=True)``) makes the loss
    *two-sided*: evidence against the class outside the annotation is penalised as well as evidence for it.

    Negative images (``empty``): by default a (sample, channel) whose mask is all zero contributes nothing.
    ``empty="penalize"`` reads it as "this class is nowhere in the image": the whole map is outside, and
    ``outside``/``l1``/``mse``/``bce`` pay for any saliency of the class there. Without it, a shortcut can move into
    the images that have no annotation (e.g. a marker whose *absence* is evidence against the class).

    Robustness to coarse, noisy annotations (RES, Gao et al. 2022):

    - ``margin``: each per-sample, per-channel term becomes ``relu(raw - margin)``, so nothing is paid below the
      margin; for ``energy`` the loss is paid only when the inside fraction is below ``1 - margin``.
    - soft masks: values in [0, 1] (e.g. box edges softened by a Gaussian, averaged readers) weight the pixels as
      given (``soft_mask=True``); ``soft_mask=False`` binarises at 0.5 (e.g. majority of readers). Values outside
      [0, 1] raise ``ValueError``.

    Empty annotations (``empty="skip"``): a (sample, channel) whose mask is all zero is a negative: it contributes
    nothing and is not counted in the mean. A batch without any annotation gives a loss of exactly 0 that still backpropagates (zero
    gradient). After each call, :attr:`last_valid` holds the ``(B, K)`` bool tensor of the entries that counted.

    Reduction (``monai.utils.LossReduction``), with ``w[b, k] = weight[b] * valid[b, k]``:
    ``"mean"``: ``sum(w * loss) / sum(w)`` (weighted mean over the valid entries), ``"sum"``: ``sum(w * loss)``,
    ``"none"``: ``w * loss`` of shape ``(B, K, 1, ..., 1)`` (one 1 per spatial dimension), 0 where not valid.

    Args:
        design: an :class:`~monai_explain.losses.designs.ExplanationLossDesign` value. Defaults to ``"energy"``.
        normalize: per-sample, per-channel normalisation of the map before the design
            (:func:`monai_explain.utils.normalize_saliency`): ``"auto"`` (table above), ``"none"``, ``"max"``,
            ``"minmax"`` or ``"sum"``.
        margin: slack >= 0 below which no loss is paid. Defaults to 0 (the raw term).
        soft_mask: use mask values as soft weights (True, default) or binarise at 0.5 (False).
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        eps: numerical floor of denominators and offset in ``kl``'s log.
        sign: ``"auto"``, ``"positive"``, ``"absolute"`` (two-sided) or ``"keep"``
            (:class:`~monai_explain.losses.designs.SaliencySign`).
        empty: ``"skip"`` or ``"penalize"`` (:class:`~monai_explain.losses.designs.EmptyMaskPolicy`).

    Raises:
        ValueError: unknown ``design``, ``normalize``, ``reduction``, ``sign`` or ``empty``; negative or
            non-finite ``margin``; ``sign="keep"`` with ``energy``/``kl``; ``empty="penalize"`` with a design whose
            term is constant on an empty mask.

    Example:
        >>> loss = ExplanationLoss(design="energy", margin=0.1)
        >>> saliency = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], requires_grad=True)
        >>> mask = torch.tensor([[[[0, 1], [0, 1]]]])
        >>> loss(saliency, mask)  # relu(1 - 6 / 10 - 0.1)
        tensor(0.3000, grad_fn=<DivBackward0>)
    """

    def __init__(
        self,
        design: ExplanationLossDesign | str = ExplanationLossDesign.ENERGY,
        normalize: SaliencyNormalization | str = "auto",
        margin: float = 0.0,
        soft_mask: bool = True,
        reduction: LossReduction | str = LossReduction.MEAN,
        eps: float = 1e-8,
        sign: SaliencySign | str = SaliencySign.AUTO,
        empty: EmptyMaskPolicy | str = EmptyMaskPolicy.SKIP,
    ) -> None:
        # lookup_enum returns the member of the enum it is given (typed Enum)
        reduction_ = cast(LossReduction, lookup_enum("reduction", reduction, LossReduction))
        super().__init__(reduction=reduction_.value)
        self.design = cast(ExplanationLossDesign, lookup_enum("design", design, ExplanationLossDesign))
        self.normalize: SaliencyNormalization | str = (
            "auto"
            if normalize == "auto"
            else cast(SaliencyNormalization, lookup_enum("normalize", normalize, SaliencyNormalization))
        )
        self.margin = check_margin(margin)
        self.soft_mask = bool(soft_mask)
        self.eps = float(eps)
        self.sign = resolve_sign(self.design, sign)
        self.empty = resolve_empty(self.design, empty)
        self.last_valid: torch.Tensor | None = None

    def forward(
        self, saliency: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor | Sequence[float] | None = None
    ) -> torch.Tensor:
        """
        Args:
            saliency: ``(B, K, *spatial)`` saliency maps, finite floating point (resampled to the mask's grid when
                the spatial sizes differ).
            mask: ``(B, K, *spatial_m)`` or ``(B, 1, *spatial_m)`` masks in [0, 1]; bool/integer accepted; a
                1-channel mask is shared by the K channels.
            weight: optional per-sample weights ``(B,)``, finite and >= 0, multiplying each sample's loss.

        Returns:
            The reduced loss (a scalar for ``"mean"``/``"sum"``, ``(B, K, 1, ..., 1)`` for ``"none"``).

        Raises:
            ValueError: batch/channel/dimension mismatch (naming both shapes), NaN or Inf in the saliency, mask
                values outside [0, 1], bad ``weight``.
            TypeError: non-tensor inputs or an integer / bool saliency.
        """
        terms, valid = explanation_loss_terms(
            saliency, mask, self.design, self.normalize, self.margin, self.soft_mask, self.eps, self.sign, self.empty
        )
        self.last_valid = valid.detach()
        return reduce_explanation_loss(terms, valid, weight, self.reduction, spatial_dims=saliency.ndim - 2)

    def extra_repr(self) -> str:
        return (
            f"design={self.design.value}, normalize={self.normalize!s}, margin={self.margin}, "
            f"soft_mask={self.soft_mask}, reduction={self.reduction}"
        )
