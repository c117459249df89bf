"""ExplanationLoss on bad and extreme input (hypothesis): finite loss and gradients, or the documented error.

Every example is tiny (at most 2 x 2 x 5 x 5 or 2 x 2 x 3 x 3 x 3), so each property runs in a few seconds with
500 examples. What is checked against the docstrings of :class:`~monai_explain.losses.ExplanationLoss`:

- non-tensor input -> ``TypeError``; integer / bool saliency -> ``TypeError`` ("floating point");
- NaN or Inf in the saliency -> ``ValueError`` ("contains NaN or Inf");
- mask values outside [0, 1] (NaN and Inf included) -> ``ValueError`` ("values must lie in [0, 1]");
- batch / channel / dimension mismatch -> ``ValueError`` naming both shapes; spatial sizes may differ (the saliency
  is resampled to the mask's grid);
- otherwise, for every design, normalisation, margin, soft/binary mask, dtype (float16 / bfloat16 / float32 /
  float64 saliency; bool / integer / float masks) and reduction: the loss and the saliency gradient are finite,
  entries whose mask is empty are excluded (``last_valid``), a batch without annotation gives exactly 0 with a
  zero gradient, ``energy`` lies in [0, 1] and the non-negative designs are >= 0.

Half-precision saliency: the loss value is checked on the float16 / bfloat16 tensor and the gradient on a float32
leaf holding the same values (the loss computes in float32). The gradient reaching a float16 tensor itself
overflows where a scale-invariant design (energy, kl, dice, max / sum normalisation) meets a map of tiny total mass:
it grows like ``1 / mass`` (``1 / eps = 1e8`` for an all-zero map), beyond float16's 65504. That is a property of
those designs in float16, left to ``GradScaler``, not an error of the loss.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monai_explain.losses import ExplanationLoss, ExplanationLossDesign, explanation_loss

DESIGNS = [d.value for d in ExplanationLossDesign]
NORMALIZE = ["auto", "none", "max", "minmax", "sum"]


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny tensors: one thread avoids OpenMP start-up and spin costs on the shared 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


PROPERTY = settings(
    max_examples=500,
    derandomize=True,  # seeded like every test here: the same 500 examples on every run
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
# designs whose raw term is >= 0 for any finite map (up to float rounding)
NON_NEGATIVE = {"energy", "outside", "l1", "mse", "bce", "kl"}


@st.composite
def spatial_shapes(draw, max_2d: int = 5, max_3d: int = 3) -> tuple[int, ...]:
    dims = draw(st.sampled_from([2, 3]))
    top = max_2d if dims == 2 else max_3d
    return tuple(draw(st.integers(1, top)) for _ in range(dims))


@st.composite
def saliency_values(draw, shape: tuple[int, ...]) -> np.ndarray:
    """A float64 array of ``shape``: random signed / non-negative, constant, all zero, tiny or large values."""
    kind = draw(st.sampled_from(["random", "non_negative", "constant", "zero", "one_hot", "tiny", "large"]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if kind == "random":
        return rng.normal(size=shape) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    if kind == "non_negative":
        return rng.random(shape)
    if kind == "constant":
        return np.full(shape, draw(st.sampled_from([-2.0, 0.5, 7.0])))
    if kind == "zero":
        return np.zeros(shape)
    if kind == "one_hot":
        out = np.zeros(n)
        out[rng.integers(n)] = 1.0
        return out.reshape(shape)
    if kind == "tiny":
        return rng.random(shape) * 1e-30
    return rng.random(shape) * 1e4


@st.composite
def mask_values(draw, shape: tuple[int, ...]) -> np.ndarray:
    """A float64 mask: empty, full, binary, soft in [0, 1], or with values outside [0, 1] / NaN / Inf."""
    kind = draw(st.sampled_from(["empty", "full", "binary", "binary", "soft", "outside", "nan", "inf"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if kind == "empty":
        return np.zeros(shape)
    if kind == "full":
        return np.ones(shape)
    if kind == "binary":
        return (rng.random(shape) > 0.5).astype(np.float64)
    if kind == "soft":
        return rng.random(shape)
    out = (rng.random(shape) > 0.5).astype(np.float64)
    flat = out.reshape(-1)
    flat[rng.integers(flat.size)] = {"outside": draw(st.sampled_from([-1.0, 2.0, 1.5, -1e-3])), "nan": np.nan}.get(
        kind, np.inf
    )
    return out


@st.composite
def loss_cases(draw) -> dict:
    """Saliency (B, K, *sp) and mask (B, K or 1, *sp_m) on the same number of dimensions, with options."""
    b = draw(st.integers(1, 2))
    k = draw(st.integers(1, 2))
    sp = draw(spatial_shapes())
    sp_m = sp if draw(st.booleans()) else tuple(draw(st.integers(1, 5 if len(sp) == 2 else 3)) for _ in sp)
    km = draw(st.sampled_from([1, k]))
    s = draw(saliency_values((b, k, *sp)))
    # per (sample, channel) masks drawn independently, so empty and non-empty entries mix in one batch
    m = np.stack([np.stack([draw(mask_values(sp_m)) for _ in range(km)]) for _ in range(b)])
    poison = draw(st.sampled_from([None, None, None, "nan", "inf", "-inf"]))
    if poison is not None:
        s.reshape(-1)[draw(st.integers(0, s.size - 1))] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[poison]
    return {
        "saliency": s,
        "mask": m,
        "design": draw(st.sampled_from(DESIGNS)),
        "s_dtype": draw(st.sampled_from([torch.float32, torch.float32, torch.float64, torch.float16, torch.bfloat16])),
        "m_dtype": draw(st.sampled_from([torch.float32, torch.float64, torch.uint8, torch.int64, torch.bool])),
        "normalize": draw(st.sampled_from(NORMALIZE)),
        "margin": draw(st.sampled_from([0.0, 0.0, 0.1, 0.5])),
        "soft_mask": draw(st.booleans()),
        "reduction": draw(st.sampled_from(["mean", "sum", "none"])),
        "weighted": draw(st.booleans()),
    }


def _to_tensors(case: dict) -> tuple[torch.Tensor, torch.Tensor]:
    s = torch.as_tensor(case["saliency"]).to(case["s_dtype"])
    m_np = case["mask"]
    if case["m_dtype"] in (torch.uint8, torch.int64, torch.bool):
        # an integer / bool mask cannot hold NaN or fractions: keep its binary part (values outside [0, 1] stay
        # outside for the integer types when they are integral, e.g. 2 or -1)
        m_np = np.where(np.isfinite(m_np), m_np, 0.0)
        m_np = np.where(m_np == np.round(m_np), m_np, 1.0)
        if case["m_dtype"] == torch.bool:
            m_np = m_np != 0
        elif case["m_dtype"] == torch.uint8:
            m_np = np.clip(m_np, 0, 255)
    m = torch.as_tensor(m_np).to(case["m_dtype"])
    return s, m


def _expected_valid(mask: torch.Tensor, k: int, soft_mask: bool) -> torch.Tensor:
    m = mask.double()
    if not soft_mask:
        m = (m >= 0.5).double()
    valid = m.flatten(2).amax(-1) > 0
    return valid.expand(-1, k) if valid.shape[1] == 1 else valid


@PROPERTY
@given(case=loss_cases())
def test_loss_is_finite_or_raises_the_documented_error(case):
    """Every design is drawn (about 70 examples each out of 500)."""
    design = case["design"]
    saliency, mask = _to_tensors(case)
    b, k = saliency.shape[:2]
    weight = torch.tensor([0.5, 2.0][:b]) if case["weighted"] else None
    loss_fn = ExplanationLoss(
        design=design,
        normalize=case["normalize"],
        margin=case["margin"],
        soft_mask=case["soft_mask"],
        reduction=case["reduction"],
    )
    s_float = saliency.detach().double()
    m_float = mask.double()
    if not bool(torch.isfinite(s_float).all()):
        with pytest.raises(ValueError, match=r"saliency \(.*\) contains NaN or Inf values"):
            loss_fn(saliency, mask, weight)
        return
    if not bool(((m_float >= 0) & (m_float <= 1)).all()):
        with pytest.raises(ValueError, match=r"mask \(.*\) values must lie in \[0, 1\]"):
            loss_fn(saliency, mask, weight)
        return
    loss = loss_fn(saliency, mask, weight)
    assert loss.dtype == (torch.float64 if case["s_dtype"] == torch.float64 else torch.float32)
    assert bool(torch.isfinite(loss).all()), f"non-finite loss {loss}"
    valid = _expected_valid(mask, k, case["soft_mask"])
    assert torch.equal(loss_fn.last_valid, valid)
    if case["reduction"] == "none":
        assert loss.shape == (b, k) + (1,) * (saliency.ndim - 2)
        assert bool((loss.flatten(2)[..., 0][~valid] == 0).all())
    # gradient on a float32/float64 leaf holding the same values (see the module docstring for half precision)
    leaf = saliency.to(torch.float64 if saliency.dtype == torch.float64 else torch.float32).requires_grad_(True)
    loss_leaf = loss_fn(leaf, mask, weight)
    assert torch.equal(loss_leaf.detach(), loss)
    (grad,) = torch.autograd.grad(loss_leaf.sum(), leaf)
    assert grad.shape == saliency.shape and bool(torch.isfinite(grad).all()), "non-finite gradient"
    if not bool(valid.any()):
        assert float(loss.detach().abs().sum()) == 0.0 and float(grad.abs().sum()) == 0.0
        return
    per_entry = ExplanationLoss(
        design=design, normalize=case["normalize"], margin=case["margin"], soft_mask=case["soft_mask"], reduction="none"
    )(saliency.detach(), mask).flatten(1)
    tol = 1e-3
    if design in NON_NEGATIVE:
        assert float(per_entry.min()) >= -tol
    if design == "energy":
        assert float(per_entry.max()) <= 1.0 + tol


@PROPERTY
@given(
    sp=spatial_shapes(),
    b=st.integers(1, 2),
    k=st.integers(1, 3),
    defect=st.sampled_from(["batch", "channels", "ndim", "flat"]),
    design=st.sampled_from(DESIGNS),
)
def test_shape_mismatch_names_both_shapes(sp, b, k, defect, design):
    saliency = torch.rand(b, k, *sp)
    if defect == "batch":
        mask = torch.ones(b + 1, 1, *sp)
        match = r"batch size of mask \(.*\) differs from saliency \(.*\)"
    elif defect == "channels":
        mask = torch.ones(b, k + 1, *sp)
        match = r"mask \(.*\) must have 1 or K=\d+ channels \(saliency \(.*\)\)"
    elif defect == "ndim":
        mask = torch.ones(b, 1, *sp, 2)
        match = r"saliency \(.*\) and mask \(.*\) must have the same number of dimensions"
    else:
        saliency, mask = saliency.flatten(1), torch.ones(b, 1, *sp).flatten(1)
        match = r"saliency must be \(B, K, \*spatial\), got shape"
    with pytest.raises(ValueError, match=match):
        ExplanationLoss(design)(saliency, mask)


@pytest.mark.parametrize(
    "saliency,mask,error,match",
    [
        (torch.ones(1, 1, 2, 2, dtype=torch.int64), torch.ones(1, 1, 2, 2), TypeError, "floating point"),
        (torch.ones(1, 1, 2, 2, dtype=torch.bool), torch.ones(1, 1, 2, 2), TypeError, "floating point"),
        (np.ones((1, 1, 2, 2)), torch.ones(1, 1, 2, 2), TypeError, "must be torch.Tensor, got ndarray and Tensor"),
        (torch.ones(1, 1, 2, 2), [[[[1, 0], [0, 1]]]], TypeError, "must be torch.Tensor, got Tensor and list"),
    ],
)
def test_wrong_types(saliency, mask, error, match):
    with pytest.raises(error, match=match):
        ExplanationLoss()(saliency, mask)


@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("normalize", NORMALIZE)
@pytest.mark.parametrize("value", [0.0, 1.0, -3.0])
def test_constant_map_finite_loss_and_gradient(design, normalize, value):
    """Constant (incl. all-zero) maps hit every ``eps`` floor (max, minmax, sum, energy, kl, dice): finite both ways."""
    saliency = torch.full((2, 1, 4, 4), value, requires_grad=True)
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, 1:3, 1:3] = 1.0
    loss = explanation_loss(saliency, mask, design=design, normalize=normalize)
    (grad,) = torch.autograd.grad(loss, saliency)
    assert math.isfinite(loss.item()) and bool(torch.isfinite(grad).all())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_bad_weight_raises(bad):
    with pytest.raises(ValueError, match=r"weight must be finite and >= 0"):
        ExplanationLoss()(torch.rand(2, 1, 3, 3), torch.ones(2, 1, 3, 3), torch.tensor([1.0, bad]))
