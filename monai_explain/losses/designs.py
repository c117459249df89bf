"""Per-(sample, channel) terms of the explanation loss designs, and the normalisation each design expects.

Every term function takes a saliency map and a mask of the same shape ``(B, K, *spatial)`` (2D or 3D) and returns
a ``(B, K)`` tensor: one raw loss value per sample and channel. They do no validation, no masking of empty
annotations and no reduction; :func:`monai_explain.losses.explanation_loss_terms` does that around them.

Designs (``s``: the normalised saliency of one sample and channel, ``m``: its mask, values in [0, 1]; sums and means
run over the pixels/voxels of the mask grid, ``N`` is their number):

======== ================================================================ ================ =================
design   raw term                                                         auto normalise   negative values
======== ================================================================ ================ =================
energy   ``1 - sum(s * m) / max(sum(s), eps)`` (Model Guidance energy)    ``none``         clamped to 0
outside  ``sum(((1 - m) * s) ** 2) / N`` (RRR / GradMask)                 ``none``         kept (squared)
l1       ``sum(|s - m|) / N``                                             ``max``          kept
mse      ``sum((s - m) ** 2) / N``                                        ``max``          kept
bce      ``-sum(m log p + (1 - m) log(1 - p)) / N``, ``p = clamp(s)``     ``max``          clamped (``p``)
dice     ``1 - 2 sum(s * m) / max(sum(s) + sum(m), eps)`` (soft Dice)     ``max``          kept
kl       ``sum(P log P - P log(Q + eps))``, ``P = m / sum(m)``,           ``sum``          clamped to 0
         ``Q = s / max(sum(s), eps)``  (KL(P || Q))
======== ================================================================ ================ =================

``bce`` clamps ``p`` to ``[e, 1 - e]`` with ``e = max(eps, finfo(dtype).eps)`` so that ``log`` stays finite in
float32. ``energy`` and ``kl`` use the positive part of the map (as Model Guidance uses positive attributions); the
clamp is done by the caller before normalisation (see :data:`NON_NEGATIVE_DESIGNS`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.utils import StrEnum, look_up_option

from monai_explain.utils.saliency_ops import SaliencyNormalization

__all__ = [
    "AUTO_NORMALIZATION",
    "DESIGN_TERMS",
    "NON_NEGATIVE_DESIGNS",
    "ExplanationLossDesign",
    "bce_term",
    "compute_design_terms",
    "dice_term",
    "energy_term",
    "kl_term",
    "l1_term",
    "mse_term",
    "outside_term",
    "resolve_normalization",
]


class ExplanationLossDesign(StrEnum):
    """How a saliency map is compared with an annotation mask (see the module docstring for the formulas)."""

    ENERGY = "energy"
    OUTSIDE = "outside"
    L1 = "l1"
    MSE = "mse"
    BCE = "bce"
    DICE = "dice"
    KL = "kl"


AUTO_NORMALIZATION: dict[ExplanationLossDesign, SaliencyNormalization] = {
    ExplanationLossDesign.ENERGY: SaliencyNormalization.NONE,  # a ratio: invariant to the map's scale
    ExplanationLossDesign.OUTSIDE: SaliencyNormalization.NONE,  # penalises the raw magnitude outside
    ExplanationLossDesign.L1: SaliencyNormalization.MAX,
    ExplanationLossDesign.MSE: SaliencyNormalization.MAX,
    ExplanationLossDesign.BCE: SaliencyNormalization.MAX,
    ExplanationLossDesign.DICE: SaliencyNormalization.MAX,
    ExplanationLossDesign.KL: SaliencyNormalization.SUM,  # a distribution over pixels
}
"""Normalisation used by ``normalize="auto"`` for each design."""

NON_NEGATIVE_DESIGNS: frozenset[ExplanationLossDesign] = frozenset(
    {ExplanationLossDesign.ENERGY, ExplanationLossDesign.KL}
)
"""Designs that only make sense on non-negative maps: the saliency is clamped at 0 before normalisation."""


def _flat_sum(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).sum(-1)


def _flat_mean(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).mean(-1)


def energy_term(saliency: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``1 -`` the fraction of the saliency mass that lies inside the (soft) mask: ``1 - sum(s m) / sum(s)``.

    Args:
        saliency: non-negative ``(B, K, *spatial)`` map.
        mask: ``(B, K, *spatial)`` mask with values in [0, 1].
        eps: floor of the total mass (an all-zero map gives 1).

    Returns:
        ``(B, K)`` values in [0, 1].
    """
    return 1.0 - _flat_sum(saliency * mask) / _flat_sum(saliency).clamp_min(eps)


def outside_term(saliency: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean over all pixels of the squared saliency outside the mask, ``((1 - m) s) ** 2`` (``eps`` unused).

    Fed with input gradients this is the Right-for-the-Right-Reasons / GradMask penalty.
    """
    return _flat_mean(((1.0 - mask) * saliency) ** 2)


def l1_term(saliency: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean absolute difference between the (normalised) map and the mask (``eps`` unused)."""
    return _flat_mean((saliency - mask).abs())


def mse_term(saliency: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean squared difference between the (normalised) map and the mask (``eps`` unused)."""
    return _flat_mean((saliency - mask) ** 2)


def bce_term(saliency: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean binary cross-entropy of the map, read as per-pixel probabilities, against the (soft) mask.

    The map is clamped to ``[e, 1 - e]`` with ``e = max(eps, torch.finfo(dtype).eps)``.
    """
    e = max(float(eps), float(torch.finfo(saliency.dtype).eps))
    p = saliency.clamp(e, 1.0 - e)
    return _flat_mean(-(mask * torch.log(p) + (1.0 - mask) * torch.log1p(-p)))


def dice_term(saliency: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Soft Dice loss ``1 - 2 sum(s m) / (sum(s) + sum(m))``, no smoothing terms (denominator floored by ``eps``).

    This is the formula of ``monai.losses.DiceLoss`` (``squared_pred=False``) with ``smooth_nr = smooth_dr = 0``;
    no smoothing is needed because an empty mask is excluded by the caller.
    """
    return 1.0 - 2.0 * _flat_sum(saliency * mask) / (_flat_sum(saliency) + _flat_sum(mask)).clamp_min(eps)


def kl_term(saliency: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``KL(P || Q)`` with ``P = m / sum(m)`` (the target) and ``Q = s / sum(s)``, natural log.

    Pixels with ``P = 0`` contribute 0; ``log(Q + eps)`` keeps the value and the gradient finite where the map is 0
    inside the mask.

    Args:
        saliency: non-negative ``(B, K, *spatial)`` map (renormalised to sum 1 here, whatever came before).
        mask: ``(B, K, *spatial)`` mask with values in [0, 1].
        eps: floor of both sums and offset inside the log.
    """
    p = mask / _flat_sum(mask).clamp_min(eps)[(...,) + (None,) * (mask.ndim - 2)]
    q = saliency / _flat_sum(saliency).clamp_min(eps)[(...,) + (None,) * (saliency.ndim - 2)]
    return _flat_sum(torch.xlogy(p, p) - p * torch.log(q + eps))


DESIGN_TERMS: dict[ExplanationLossDesign, Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = {
    ExplanationLossDesign.ENERGY: energy_term,
    ExplanationLossDesign.OUTSIDE: outside_term,
    ExplanationLossDesign.L1: l1_term,
    ExplanationLossDesign.MSE: mse_term,
    ExplanationLossDesign.BCE: bce_term,
    ExplanationLossDesign.DICE: dice_term,
    ExplanationLossDesign.KL: kl_term,
}
"""The term function of each design."""


def resolve_normalization(
    design: ExplanationLossDesign | str, normalize: SaliencyNormalization | str = "auto"
) -> SaliencyNormalization:
    """The normalisation to apply for ``design``: ``normalize`` itself, or :data:`AUTO_NORMALIZATION` for ``"auto"``.

    Raises:
        ValueError: for an unknown design or normalisation.
    """
    design = look_up_option(design, ExplanationLossDesign)
    if normalize == "auto":
        return AUTO_NORMALIZATION[design]
    return look_up_option(normalize, SaliencyNormalization)


def compute_design_terms(
    saliency: torch.Tensor, mask: torch.Tensor, design: ExplanationLossDesign | str, eps: float = 1e-8
) -> torch.Tensor:
    """Raw ``(B, K)`` terms of ``design`` on an already prepared (clamped, normalised) map and a same-shape mask.

    Example:
        >>> s = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
        >>> m = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
        >>> compute_design_terms(s, m, "energy")
        tensor([[0.4000]])
    """
    return DESIGN_TERMS[look_up_option(design, ExplanationLossDesign)](saliency, mask, eps)
