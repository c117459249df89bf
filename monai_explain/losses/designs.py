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

Range: sums and squares run on the map divided by its largest absolute value per sample and channel (a constant
of the graph, so values and gradients are those of the formulas), so no intermediate sum or square overflows: every
design returns a finite value for any finite map whose exact loss is representable in the map's dtype. The bounded
designs (``energy``, ``dice``, ``kl``, ``bce`` and the normalised ones) are therefore finite for every finite map,
even one with values near ``finfo(dtype).max``; ``outside`` and ``mse``/``l1`` with ``normalize="none"`` return
``inf`` only when the exact mean square (or mean) itself exceeds the dtype's range (e.g. ~1e77 for a float32 map of
3e38; normalise such maps, or compute in float64).
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
    "PENALIZABLE_EMPTY_DESIGNS",
    "EmptyMaskPolicy",
    "ExplanationLossDesign",
    "SaliencySign",
    "bce_term",
    "compute_design_terms",
    "dice_term",
    "energy_term",
    "kl_term",
    "l1_term",
    "mse_term",
    "outside_term",
    "resolve_empty",
    "resolve_normalization",
    "resolve_sign",
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
"""Designs that only make sense on non-negative maps: ``sign="auto"`` clamps the saliency at 0 before normalisation."""


class SaliencySign(StrEnum):
    """What the loss does with the sign of the map before normalisation.

    - ``auto``: ``positive`` for :data:`NON_NEGATIVE_DESIGNS`, ``keep`` for the others (the historical behaviour);
    - ``positive``: the positive part ``max(s, 0)`` (evidence for the class only);
    - ``absolute``: ``|s|``, a *two-sided* loss: evidence for and against the class outside the annotation are
      both penalised (use it with a signed map, e.g. ``CAM(signed=True)``; on a rectified map it equals ``keep``);
    - ``keep``: the signed map as given (not allowed for the ratio designs ``energy`` and ``kl``).
    """

    AUTO = "auto"
    POSITIVE = "positive"
    ABSOLUTE = "absolute"
    KEEP = "keep"


class EmptyMaskPolicy(StrEnum):
    """What an all-zero mask (an image without the annotated finding) means to the loss.

    - ``skip``: nothing is known; the entry is excluded (contributes 0 and is not counted in the mean);
    - ``penalize``: "this class is nowhere here": the whole map is outside the annotation and the design's term
      is paid on it (``outside`` then penalises any saliency of the class on negative images). Only for the
      designs whose term depends on the map when the mask is empty, :data:`PENALIZABLE_EMPTY_DESIGNS`.
    """

    SKIP = "skip"
    PENALIZE = "penalize"


PENALIZABLE_EMPTY_DESIGNS: frozenset[ExplanationLossDesign] = frozenset(
    {ExplanationLossDesign.OUTSIDE, ExplanationLossDesign.L1, ExplanationLossDesign.MSE, ExplanationLossDesign.BCE}
)
"""Designs whose term is not constant on an empty mask (``energy``, ``dice`` and ``kl`` are 1, 1 and undefined)."""


def _flat_sum(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).sum(-1)


def _flat_mean(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).mean(-1)


def _range_scale(x: torch.Tensor) -> torch.Tensor:
    """``(B, K)`` largest ``|x|`` per sample and channel (1 where the map is all zero), outside the graph."""
    c = x.detach().abs().flatten(2).amax(-1)
    return torch.where(c > 0, c, torch.ones_like(c))


def _spread(c: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(B, K)`` -> ``(B, K, 1, ..., 1)`` broadcastable against ``like``."""
    return c[(...,) + (None,) * (like.ndim - 2)]


def _floor(eps: float, c: torch.Tensor) -> torch.Tensor:
    """The floor ``eps`` of an unscaled sum, in the units of a sum scaled by ``1 / c`` (kept above 0)."""
    return (eps / c).clamp_min(torch.finfo(c.dtype).tiny)


def _mean_square(x: torch.Tensor) -> torch.Tensor:
    """``mean(x ** 2)`` over the spatial axes without overflowing in the square: ``c * (c * mean((x / c) ** 2))``."""
    c = _range_scale(x)
    return c * (c * _flat_mean((x / _spread(c, x)) ** 2))


def energy_term(saliency: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``1 -`` the fraction of the saliency mass that lies inside the (soft) mask: ``1 - sum(s m) / sum(s)``.

    Args:
        saliency: non-negative ``(B, K, *spatial)`` map.
        mask: ``(B, K, *spatial)`` mask with values in [0, 1].
        eps: floor of the total mass (an all-zero map gives 1).

    Returns:
        ``(B, K)`` values in [0, 1].
    """
    c = _range_scale(saliency)  # the ratio is scale-free: sums of the scaled map cannot overflow
    s = saliency / _spread(c, saliency)
    return 1.0 - _flat_sum(s * mask) / torch.maximum(_flat_sum(s), _floor(eps, c))


def outside_term(saliency: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean over all pixels of the squared saliency outside the mask, ``((1 - m) s) ** 2`` (``eps`` unused).

    Fed with input gradients this is the Right-for-the-Right-Reasons / GradMask penalty.
    """
    return _mean_square((1.0 - mask) * saliency)


def l1_term(saliency: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean absolute difference between the (normalised) map and the mask (``eps`` unused)."""
    d = (saliency - mask).abs()
    c = _range_scale(d)
    return c * _flat_mean(d / _spread(c, d))


def mse_term(saliency: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean squared difference between the (normalised) map and the mask (``eps`` unused)."""
    return _mean_square(saliency - mask)


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
    c = _range_scale(saliency)  # numerator and denominator both divided by c: no overflow in the sums
    s = saliency / _spread(c, saliency)
    den = _flat_sum(s) + _flat_sum(mask) / c
    return 1.0 - 2.0 * _flat_sum(s * mask) / torch.maximum(den, _floor(eps, c))


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
    c = _range_scale(saliency)  # Q is scale-free: normalise the scaled map, whose sum cannot overflow
    s = saliency / _spread(c, saliency)
    q = s / _spread(torch.maximum(_flat_sum(s), _floor(eps, c)), s)
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


def resolve_sign(design: ExplanationLossDesign | str, sign: SaliencySign | str) -> SaliencySign:
    """The sign policy of ``design`` (``"auto"`` resolved); ``keep`` is refused for the ratio designs."""
    d: ExplanationLossDesign = look_up_option(design, ExplanationLossDesign)
    resolved: SaliencySign = look_up_option(sign, SaliencySign)
    if resolved == SaliencySign.AUTO:
        return SaliencySign.POSITIVE if d in NON_NEGATIVE_DESIGNS else SaliencySign.KEEP
    if resolved == SaliencySign.KEEP and d in NON_NEGATIVE_DESIGNS:
        raise ValueError(f"sign='keep' is not defined for design {d.value!r} (a ratio of sums); use 'absolute'.")
    return resolved


def resolve_empty(design: ExplanationLossDesign | str, empty: EmptyMaskPolicy | str) -> EmptyMaskPolicy:
    """The empty-mask policy, refusing ``penalize`` for designs whose term is constant on an empty mask."""
    d: ExplanationLossDesign = look_up_option(design, ExplanationLossDesign)
    resolved: EmptyMaskPolicy = look_up_option(empty, EmptyMaskPolicy)
    if resolved == EmptyMaskPolicy.PENALIZE and d not in PENALIZABLE_EMPTY_DESIGNS:
        names = sorted(x.value for x in PENALIZABLE_EMPTY_DESIGNS)
        raise ValueError(f"empty='penalize' needs a design whose term depends on the map on an empty mask {names}, "
                         f"got {d.value!r}.")  # fmt: skip
    return resolved


def resolve_normalization(
    design: ExplanationLossDesign | str, normalize: SaliencyNormalization | str = "auto"
) -> SaliencyNormalization:
    """The normalisation to apply for ``design``: ``normalize`` itself, or :data:`AUTO_NORMALIZATION` for ``"auto"``.

    Raises:
        ValueError: for an unknown design or normalisation.
    """
    resolved: ExplanationLossDesign = look_up_option(design, ExplanationLossDesign)
    if normalize == "auto":
        return AUTO_NORMALIZATION[resolved]
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
