"""Hand-computed values and gradients of every explanation loss design, in 2D and 3D."""

from __future__ import annotations

import math

import pytest
import torch

from monai_explain.losses import (
    AUTO_NORMALIZATION,
    DESIGN_TERMS,
    ExplanationLossDesign,
    compute_design_terms,
    explanation_loss,
    kl_term,
    resolve_normalization,
)
from monai_explain.utils import SaliencyNormalization

# 2D: saliency [[1, 2], [3, 4]], mask [[0, 1], [0, 1]] (the right column: values 2 and 4).
S2 = [[[[1.0, 2.0], [3.0, 4.0]]]]
M2 = [[[[0.0, 1.0], [0.0, 1.0]]]]
# 3D: saliency 1..8 in a 2x2x2 volume, mask = the second slice of the first axis (values 5, 6, 7, 8).
S3 = torch.arange(1.0, 9.0).reshape(1, 1, 2, 2, 2).tolist()
M3 = [[[[[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]]]]

CASES_2D = [
    ("energy", 1 - 6 / 10),  # none: inside mass 2 + 4 = 6 of 10
    ("outside", (1**2 + 3**2) / 4),  # none: squares of 1 and 3, mean over 4 pixels
    ("l1", (0.25 + 0.5 + 0.75 + 0.0) / 4),  # max: s = [.25, .5, .75, 1]
    ("mse", (0.0625 + 0.25 + 0.5625 + 0.0) / 4),
    ("bce", (math.log(4 / 3) + math.log(2) + math.log(4) + 0.0) / 4),  # -log(.75), -log(.5), -log(.25), ~0
    ("dice", 1 - 2 * (0.5 + 1.0) / (2.5 + 2.0)),  # max: sum(s m) = 1.5, sum(s) = 2.5, sum(m) = 2
    ("kl", 0.5 * math.log(0.5 / 0.2) + 0.5 * math.log(0.5 / 0.4)),  # P = [0, .5, 0, .5], Q = [.1, .2, .3, .4]
]

CASES_3D = [
    ("energy", 1 - 26 / 36),  # inside 5 + 6 + 7 + 8 = 26 of 36
    ("outside", (1 + 4 + 9 + 16) / 8),
    ("l1", ((1 + 2 + 3 + 4) / 8 + (3 + 2 + 1 + 0) / 8) / 8),  # max: s = k / 8
    ("mse", ((1 + 4 + 9 + 16) / 64 + (9 + 4 + 1 + 0) / 64) / 8),
    ("bce", (math.log(8**4 / (7 * 6 * 5 * 4)) + math.log(8**3 / (5 * 6 * 7))) / 8),
    ("dice", 1 - 2 * (26 / 8) / (36 / 8 + 4)),
    ("kl", 0.25 * math.log(9**4 / (5 * 6 * 7 * 8))),  # P = 1/4 on k = 5..8, Q = k / 36
]


@pytest.mark.parametrize("design, expected", CASES_2D)
def test_design_value_2d(design, expected):
    loss = explanation_loss(torch.tensor(S2, dtype=torch.float64), torch.tensor(M2), design=design)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("design, expected", CASES_3D)
def test_design_value_3d(design, expected):
    loss = explanation_loss(torch.tensor(S3, dtype=torch.float64), torch.tensor(M3), design=design)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "design, normalize, saliency, mask, expected",
    [
        # negative values: energy and kl use the positive part [0, 2, 3, 4]
        ("energy", "auto", [[[[-1.0, 2.0], [3.0, 4.0]]]], M2, 1 - 6 / 9),
        ("kl", "auto", [[[[-1.0, 2.0], [3.0, 4.0]]]], M2, 0.5 * math.log(0.5 * 9 / 2) + 0.5 * math.log(0.5 * 9 / 4)),
        # outside keeps the sign and squares it
        ("outside", "auto", [[[[-1.0, 2.0], [-3.0, 4.0]]]], M2, (1 + 9) / 4),
        # explicit normalisations: minmax s = [0, 1/3, 2/3, 1]; sum s = [.1, .2, .3, .4]
        ("l1", "minmax", S2, M2, (0 + 2 / 3 + 2 / 3 + 0) / 4),
        ("mse", "sum", S2, M2, (0.01 + 0.64 + 0.09 + 0.36) / 4),
        ("energy", "max", S2, M2, 1 - 6 / 10),  # a ratio: the scale does not matter
        ("outside", "max", S2, M2, (0.25**2 + 0.75**2) / 4),
        # soft masks [[0, .5], [0, 1]]
        ("energy", "auto", S2, [[[[0.0, 0.5], [0.0, 1.0]]]], 1 - (0.5 * 2 + 4) / 10),
        ("outside", "auto", S2, [[[[0.0, 0.5], [0.0, 1.0]]]], (1 + (0.5 * 2) ** 2 + 9) / 4),
        ("kl", "auto", S2, [[[[0.0, 0.5], [0.0, 1.0]]]], math.log(5 / 3)),  # P = [0, 1/3, 0, 2/3]
    ],
)
def test_design_variants(design, normalize, saliency, mask, expected):
    loss = explanation_loss(
        torch.tensor(saliency, dtype=torch.float64), torch.tensor(mask), design=design, normalize=normalize
    )
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_bce_float32_clamp_is_finite():
    # mask on the smallest pixel: the max pixel (p = 1) has m = 0 and is clamped to 1 - 2**-23 in float32
    loss = explanation_loss(torch.tensor(S2), torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]), design="bce")
    # (-log .25 - log .5 - log .25 - log 2**-23) / 4 = (2 + 1 + 2 + 23) log 2 / 4
    assert loss.item() == pytest.approx(7 * math.log(2), rel=1e-5)


def test_kl_zero_saliency_inside_mask_is_finite():
    s = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]], dtype=torch.float64, requires_grad=True)
    m = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]], dtype=torch.float64)
    loss = kl_term(s / 3, m)
    assert loss.item() == pytest.approx(-math.log(1e-8), rel=1e-6)  # P = [1, 0, 0, 0], Q = [0, 1/3, 1/3, 1/3]
    loss.sum().backward()
    assert torch.isfinite(s.grad).all()


@pytest.mark.parametrize(
    "design, expected",
    [
        ("energy", "none"),
        ("outside", "none"),
        ("l1", "max"),
        ("mse", "max"),
        ("bce", "max"),
        ("dice", "max"),
        ("kl", "sum"),
    ],
)
def test_auto_normalization_table(design, expected):
    assert AUTO_NORMALIZATION[ExplanationLossDesign(design)] == SaliencyNormalization(expected)
    assert resolve_normalization(design, "auto") == SaliencyNormalization(expected)
    assert resolve_normalization(design, "minmax") == SaliencyNormalization.MINMAX


def test_every_design_has_a_term():
    assert set(DESIGN_TERMS) == set(ExplanationLossDesign) == set(AUTO_NORMALIZATION)


def test_compute_design_terms_shape():
    s = torch.rand(3, 2, 4, 5) + 0.1
    m = (torch.rand(3, 2, 4, 5) > 0.5).float()
    for design in ExplanationLossDesign:
        assert compute_design_terms(s, m, design).shape == (3, 2)
    with pytest.raises(ValueError, match="cosine"):
        compute_design_terms(s, m, "cosine")


def _mask(shape):
    m = (torch.rand(shape, dtype=torch.float64) > 0.5).to(torch.float64)
    m.view(-1)[0] = 1.0  # never empty
    return m


@pytest.mark.parametrize("design", [d.value for d in ExplanationLossDesign])
@pytest.mark.parametrize("shape", [(2, 2, 3, 3), (1, 2, 2, 3, 2)])
def test_gradcheck(design, shape):
    saliency = (torch.rand(shape, dtype=torch.float64) * 0.9 + 0.1).requires_grad_(True)
    mask = _mask((shape[0], 1) + shape[2:])
    assert torch.autograd.gradcheck(lambda s: explanation_loss(s, mask, design=design), (saliency,))


@pytest.mark.parametrize("design", [d.value for d in ExplanationLossDesign])
def test_gradcheck_soft_mask_margin(design):
    saliency = (torch.rand(2, 1, 3, 3, dtype=torch.float64) * 0.9 + 0.1).requires_grad_(True)
    mask = torch.rand(2, 1, 3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda s: explanation_loss(s, mask, design=design, margin=1e-3, reduction="sum"), (saliency,)
    )


# -- range: no intermediate overflow for finite maps near float32's maximum ------------------------------------------
_HUGE = 3e38


def _huge_case(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    unit = 0.25 + 0.75 * torch.rand(2, 1, 6, 5, generator=g)  # (0.25, 1]: every pixel contributes
    mask = torch.zeros(2, 1, 6, 5)
    mask[0, :, 1:4, 1:3] = 1.0
    mask[1, :, 3:6, 2:5] = 1.0
    return unit * _HUGE, mask


_BOUNDED = [
    (design, normalize)
    for design in ("energy", "dice", "kl", "l1", "mse", "bce")
    for normalize in ("auto", "none", "minmax", "sum")
    # unnormalised l1 / mse of a 3e38 map are themselves ~1e38 / ~1e77, not bounded: see the next test
    if not (normalize == "none" and design in ("l1", "mse"))
]


@pytest.mark.parametrize("design, normalize", _BOUNDED)
def test_bounded_designs_are_finite_and_exact_on_a_map_of_3e38(design, normalize):
    """Before: energy gave NaN (inf / inf) on a finite map of 3e38, kl a wrong finite value (its sum overflowed)."""
    s32, mask = _huge_case()
    s = s32.clone().requires_grad_(True)
    loss = explanation_loss(s, mask, design=design, normalize=normalize)
    ref = explanation_loss(s32.double(), mask.double(), design=design, normalize=normalize)
    assert torch.isfinite(loss)
    if design != "bce":  # bce clamps p at the dtype's own epsilon: float32 and float64 values differ by design
        assert loss.item() == pytest.approx(ref.item(), rel=1e-4)
    (grad,) = torch.autograd.grad(loss, s)
    assert torch.isfinite(grad).all()


def test_outside_and_unnormalised_l1_mse_stay_finite_whenever_the_exact_value_fits():
    """Squares of 1e19..2e19 overflow float32 once summed (before: outside gave inf), yet their mean (~2e38) fits."""
    g = torch.Generator().manual_seed(1)
    s = (1.0 + torch.rand(1, 1, 8, 8, generator=g)) * 1e19
    mask = torch.zeros(1, 1, 8, 8)
    mask[0, 0, :2, :2] = 1.0
    for design in ("outside", "mse"):
        loss = explanation_loss(s, mask, design=design, normalize="none")
        ref = explanation_loss(s.double(), mask.double(), design=design, normalize="none")
        assert torch.isfinite(loss) and loss.item() == pytest.approx(ref.item(), rel=1e-5), design
    # l1 of a 3e38 map: the per-sample sum overflows, the per-sample mean (the design term) does not
    s, mask = _huge_case()
    terms = compute_design_terms(s, mask, "l1")
    assert torch.isfinite(terms).all()
    torch.testing.assert_close(terms.double(), compute_design_terms(s.double(), mask.double(), "l1"), rtol=1e-5, atol=0)
    # the mean square of a 3e38 map (~1e77) cannot be a float32: inf, documented (normalise such maps)
    assert torch.isinf(explanation_loss(s, mask, design="outside"))


@pytest.mark.parametrize("design", list(ExplanationLossDesign))
def test_range_scaling_keeps_ordinary_values_and_gradients(design):
    """The scaled computation equals the float64 evaluation of the formulas on an ordinary map."""
    g = torch.Generator().manual_seed(2)
    s = torch.rand(3, 2, 7, 6, generator=g, dtype=torch.float64) + 0.05
    mask = (torch.rand(3, 2, 7, 6, generator=g, dtype=torch.float64) > 0.6).double()
    x = s.clone().requires_grad_(True)
    terms = compute_design_terms(x, mask, design)
    (grad,) = torch.autograd.grad(terms.sum(), x)
    d = ExplanationLossDesign(design)
    flat_s, flat_m = s.flatten(2), mask.flatten(2)
    expected = {
        ExplanationLossDesign.ENERGY: 1 - (flat_s * flat_m).sum(-1) / flat_s.sum(-1),
        ExplanationLossDesign.OUTSIDE: (((1 - flat_m) * flat_s) ** 2).mean(-1),
        ExplanationLossDesign.L1: (flat_s - flat_m).abs().mean(-1),
        ExplanationLossDesign.MSE: ((flat_s - flat_m) ** 2).mean(-1),
        ExplanationLossDesign.DICE: 1 - 2 * (flat_s * flat_m).sum(-1) / (flat_s.sum(-1) + flat_m.sum(-1)),
    }
    if d in expected:
        torch.testing.assert_close(terms, expected[d])
    y = s.clone().requires_grad_(True)
    plain = {
        ExplanationLossDesign.ENERGY: lambda v: 1 - (v * mask).flatten(2).sum(-1) / v.flatten(2).sum(-1),
        ExplanationLossDesign.OUTSIDE: lambda v: (((1 - mask) * v) ** 2).flatten(2).mean(-1),
        ExplanationLossDesign.MSE: lambda v: ((v - mask) ** 2).flatten(2).mean(-1),
    }
    if d in plain:
        (ref_grad,) = torch.autograd.grad(plain[d](y).sum(), y)
        torch.testing.assert_close(grad, ref_grad)


def test_two_sided_energy_counts_evidence_against_the_class():
    """sign="absolute": |s| = 1, 2, 3, 4 with 2 + 4 inside -> 1 - 6 / 10; the default positive part has none inside."""
    s = torch.tensor([[[[1.0, -2.0], [3.0, -4.0]]]])
    m = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    assert float(explanation_loss(s, m, design="energy", sign="absolute")) == pytest.approx(0.4)
    assert float(explanation_loss(s, m, design="energy")) == pytest.approx(1.0)
    assert float(explanation_loss(s, m, design="energy", sign="positive")) == pytest.approx(1.0)
    # outside squares the map: the sign policy does not change it
    for sign in ("auto", "absolute", "keep"):
        assert float(explanation_loss(s, m, design="outside", sign=sign)) == pytest.approx((1 + 9) / 4)


def test_empty_masks_penalized_score_the_whole_map_as_outside():
    """empty="penalize": an image without the finding pays for any saliency of the class (mean of s**2 here)."""
    s = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[1.0, 0.0], [0.0, 0.0]]]], requires_grad=True)
    m = torch.zeros_like(s)
    m[1, 0, 0, 0] = 1.0
    skipped = explanation_loss(s, m, design="outside")
    assert float(skipped) == pytest.approx(0.0)  # the second sample has nothing outside, the first is skipped
    penalized = explanation_loss(s, m, design="outside", empty="penalize")
    assert float(penalized) == pytest.approx((30 / 4 + 0.0) / 2)
    penalized.backward()
    torch.testing.assert_close(s.grad[0, 0], 2 * s.detach()[0, 0] / 4 / 2)  # d/ds mean(s**2) / 2 entries
    for design in ("l1", "mse", "bce"):
        assert float(explanation_loss(s.detach(), m, design=design, empty="penalize")) > 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"design": "energy", "sign": "keep"}, "sign='keep' is not defined for design 'energy'"),
        ({"design": "kl", "sign": "keep"}, "sign='keep' is not defined for design 'kl'"),
        ({"design": "energy", "empty": "penalize"}, "empty='penalize' needs a design"),
        ({"design": "dice", "empty": "penalize"}, "got 'dice'"),
        ({"design": "outside", "sign": "both"}, "both"),
        ({"design": "outside", "empty": "always"}, "always"),
    ],
)
def test_sign_and_empty_policies_refuse_what_is_undefined(kwargs, match):
    s, m = torch.rand(1, 1, 4, 4) + 0.1, torch.ones(1, 1, 4, 4)
    with pytest.raises(ValueError, match=match):
        explanation_loss(s, m, **kwargs)
    with pytest.raises(ValueError, match=match):
        from monai_explain.losses import ExplanationLoss

        ExplanationLoss(**kwargs)
