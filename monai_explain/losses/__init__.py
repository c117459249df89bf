"""monai_explain.losses: explanation supervision losses comparing saliency maps with annotation masks."""

from __future__ import annotations

from .designs import (
    AUTO_NORMALIZATION,
    DESIGN_TERMS,
    NON_NEGATIVE_DESIGNS,
    PENALIZABLE_EMPTY_DESIGNS,
    EmptyMaskPolicy,
    ExplanationLossDesign,
    SaliencySign,
    bce_term,
    compute_design_terms,
    dice_term,
    energy_term,
    kl_term,
    l1_term,
    mse_term,
    outside_term,
    resolve_empty,
    resolve_normalization,
    resolve_sign,
)
from .explanation import ExplanationLoss
from .functional import explanation_loss, explanation_loss_terms, reduce_explanation_loss

__all__ = [
    "AUTO_NORMALIZATION",
    "DESIGN_TERMS",
    "NON_NEGATIVE_DESIGNS",
    "PENALIZABLE_EMPTY_DESIGNS",
    "EmptyMaskPolicy",
    "ExplanationLoss",
    "ExplanationLossDesign",
    "SaliencySign",
    "bce_term",
    "compute_design_terms",
    "dice_term",
    "energy_term",
    "explanation_loss",
    "explanation_loss_terms",
    "kl_term",
    "l1_term",
    "mse_term",
    "outside_term",
    "reduce_explanation_loss",
    "resolve_empty",
    "resolve_normalization",
    "resolve_sign",
]
