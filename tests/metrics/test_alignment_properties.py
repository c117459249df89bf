"""Alignment metrics on bad and extreme input (hypothesis): finite, or NaN exactly where the rules say, or an error.

Each example is tiny (at most 2 x 2 x 6 x 6 or 2 x 2 x 3 x 3 x 3), 500 examples per property. What is checked, from
the docstrings of :mod:`monai_explain.metrics`:

- the result is ``(B, max(Cs, Cm))`` float32; NaN exactly where the annotation channel is empty (no value above
  ``mask_threshold``), finite elsewhere, and in [0, 1] for every count-based metric (mass precision too when the map
  is non-negative), whatever the saliency: constant, all zero, one hot, tiny (1e-30) or large, signed, integer /
  bool / float16 / bfloat16 / float64, on another grid than the mask (resampled);
- masks with values outside {0, 1} count as ``mask > mask_threshold``, bool / integer masks as their values;
- NaN or Inf in the saliency, or NaN in the mask, raise ``ValueError`` (they would otherwise give scores that mean
  nothing); mismatched batch / channels / dimensions raise ``ValueError`` naming both shapes;
- the documented exact values: an all-ones mask (precision 1, pointing game 1, chance 1, coverage ``k / N``), a
  constant map (top-k precision and pointing game = chance level ``|A| / N``, Otsu selects nothing), a zero map
  (zero mass precision, nothing above a threshold);
- scale invariance: multiplying a map by a power of two (exact in floating point) from 2**-100 to 2**60 changes
  no metric (top-k, threshold on the max-normalised map, Otsu on the min-max normalised map, mass, pointing game);
- the cumulative classes buffer ``(B, C)`` rows and ``aggregate`` counts the non-NaN entries in ``not_nans``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monai_explain.metrics import (
    ChanceLevel,
    PointingGame,
    SaliencyCoverage,
    SaliencyIoU,
    SaliencyPrecision,
    compute_alignment_metrics,
    compute_chance_level,
    compute_instance_coverage,
    compute_pointing_game,
    compute_saliency_coverage,
    compute_saliency_iou,
    compute_saliency_precision,
)


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


def _metrics(binarize: str, fraction: float | str, tolerance: int) -> dict:
    """Every functional metric with the drawn options, as ``name -> f(saliency, mask)``."""
    opts = {"binarize": binarize, "fraction": fraction}
    return {
        "coverage": lambda s, m: compute_saliency_coverage(s, m, **opts),
        "precision": lambda s, m: compute_saliency_precision(s, m, **opts),
        "mass_precision": lambda s, m: compute_saliency_precision(s, m, mode="mass"),
        "iou": lambda s, m: compute_saliency_iou(s, m, **opts),
        "pointing_game": lambda s, m: compute_pointing_game(s, m, tolerance=tolerance),
        "chance": lambda s, m: compute_chance_level(m, saliency=s),
        **{f"all.{k}": (lambda s, m, k=k: compute_alignment_metrics(s, m, **opts)[k]) for k in ("coverage", "iou")},
    }


METRIC_CLASSES = [SaliencyPrecision, SaliencyCoverage, ChanceLevel, PointingGame, SaliencyIoU]


@st.composite
def map_values(draw, shape: tuple[int, ...]) -> np.ndarray:
    kind = draw(st.sampled_from(["random", "random", "constant", "zero", "one_hot", "tiny", "large", "signed"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    n = int(np.prod(shape))
    if kind == "random":
        return rng.random(shape)
    if kind == "constant":
        return np.full(shape, draw(st.sampled_from([0.25, 3.0])))
    if kind == "zero":
        return np.zeros(shape)
    if kind == "one_hot":
        out = np.zeros(n)
        out[rng.integers(n)] = 1.0
        return out.reshape(shape)
    if kind == "tiny":
        return rng.random(shape) * 1e-30
    if kind == "large":
        return rng.random(shape) * 1e20
    return rng.normal(size=shape)


@st.composite
def mask_values(draw, shape: tuple[int, ...]) -> np.ndarray:
    kind = draw(st.sampled_from(["empty", "full", "binary", "binary", "soft", "outside", "nan"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if kind == "empty":
        return np.zeros(shape)
    if kind == "full":
        return np.ones(shape)
    if kind == "binary":
        return (rng.random(shape) > 0.6).astype(np.float64)
    if kind == "soft":
        return rng.random(shape)
    out = rng.choice([0.0, 1.0, 2.0, -1.0, 0.5, 7.0], size=shape) if kind == "outside" else np.zeros(shape)
    if kind == "nan":
        out.reshape(-1)[rng.integers(out.size)] = np.nan
    return out


@st.composite
def metric_cases(draw) -> dict:
    dims = draw(st.sampled_from([2, 3]))
    top = 6 if dims == 2 else 3
    sp = tuple(draw(st.integers(1, top)) for _ in range(dims))
    sp_s = sp if draw(st.booleans()) else tuple(draw(st.integers(1, top)) for _ in range(dims))
    b = draw(st.integers(1, 2))
    cs, cm = draw(st.sampled_from([(1, 1), (2, 2), (1, 2), (2, 1)]))
    s = draw(map_values((b, cs, *sp_s)))
    m = np.stack([np.stack([draw(mask_values(sp)) for _ in range(cm)]) for _ in range(b)])
    poison = draw(st.sampled_from([None, None, None, None, "nan", "inf", "-inf"]))
    if poison is not None:
        s.reshape(-1)[draw(st.integers(0, s.size - 1))] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[poison]
    binarize = draw(st.sampled_from(["topk", "threshold", "otsu"]))
    return {
        "saliency": s,
        "mask": m,
        "s_dtype": draw(
            st.sampled_from([torch.float32, torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64])
        ),
        "m_dtype": draw(st.sampled_from([torch.float32, torch.float32, torch.float64, torch.bool, torch.int64])),
        "binarize": binarize,
        "fraction": draw(st.sampled_from([0.1, 0.5, 1.0, "mask"])) if binarize == "topk" else 0.1,
        "tolerance": draw(st.sampled_from([0, 0, 1])),
        "metric_class": draw(st.sampled_from(METRIC_CLASSES)),
    }


def _tensors(case: dict) -> tuple[torch.Tensor, torch.Tensor]:
    s_np = case["saliency"]
    if case["s_dtype"] == torch.float16:
        s_np = np.where(np.abs(s_np) > 6e4, np.sign(s_np) * 6e4, s_np)  # "large" maps stay inside float16
    if case["s_dtype"] == torch.int64:
        s_np = np.where(np.isfinite(s_np), np.round(np.clip(s_np, -1e9, 1e9)), s_np)
        if not np.all(np.isfinite(s_np)):  # an integer tensor cannot hold NaN / Inf: keep the poison as float
            return torch.as_tensor(s_np, dtype=torch.float32), _mask(case)
    return torch.as_tensor(s_np).to(case["s_dtype"]), _mask(case)


def _mask(case: dict) -> torch.Tensor:
    m_np = case["mask"]
    if case["m_dtype"] in (torch.bool, torch.int64):
        m_np = np.where(np.isnan(m_np), 1.0, np.round(m_np))  # integer / bool masks cannot hold NaN
        return torch.as_tensor(m_np != 0 if case["m_dtype"] == torch.bool else m_np).to(case["m_dtype"])
    return torch.as_tensor(m_np).to(case["m_dtype"])


@PROPERTY
@given(case=metric_cases())
def test_metrics_finite_or_nan_by_rule(case):
    saliency, mask = _tensors(case)
    metrics = _metrics(case["binarize"], case["fraction"], case["tolerance"])
    s_bad = not bool(torch.isfinite(saliency.double()).all())
    m_bad = mask.is_floating_point() and bool(torch.isnan(mask).any())
    if s_bad or m_bad:
        for name, fn in metrics.items():
            if name == "chance" and not m_bad:  # the chance level reads only the mask
                continue
            if s_bad and name != "chance":
                match = r"y_pred \(saliency\) of shape .* contains NaN or Inf"
            else:
                match = r"mask\)? of shape .* contains NaN values"
            with pytest.raises(ValueError, match=match):
                fn(saliency, mask)
        return
    b = saliency.shape[0]
    c = max(saliency.shape[1], mask.shape[1])
    empty = ~(mask.double() > 0.5).flatten(2).any(-1).expand(b, c)
    non_negative = bool((saliency.double() >= 0).all())
    for name, fn in metrics.items():
        out = fn(saliency, mask)
        assert out.shape == (b, c) and out.dtype == torch.float32, name
        assert torch.equal(torch.isnan(out), empty), f"{name}: NaN at {torch.isnan(out).tolist()}, empty {empty}"
        values = out[~empty]
        assert bool(torch.isfinite(values).all()), f"{name}: {out}"
        if name != "mass_precision" or non_negative:
            assert bool(((values >= 0) & (values <= 1 + 1e-6)).all()), f"{name}: {out}"
    metric = case["metric_class"](reduction="mean_batch", get_not_nans=True)
    rows = metric(y_pred=saliency, y=mask)
    value, not_nans = metric.aggregate()
    assert rows.shape == (b, c)
    assert not_nans.tolist() == (~empty).sum(0).float().tolist() and bool(torch.isfinite(value).all())


@PROPERTY
@given(case=metric_cases())
def test_mask_outside_zero_one_counts_as_thresholded(case):
    saliency, mask = _tensors(case)
    if not bool(torch.isfinite(saliency.double()).all()) or (mask.is_floating_point() and bool(mask.isnan().any())):
        return
    binary = (mask.double() > 0.5).float()
    for name, fn in _metrics(case["binarize"], case["fraction"], case["tolerance"]).items():
        if name.startswith("all."):  # the same counts as coverage / iou
            continue
        torch.testing.assert_close(fn(saliency, mask), fn(saliency, binary), equal_nan=True, msg=name)


@st.composite
def non_negative_pairs(draw) -> tuple[np.ndarray, np.ndarray]:
    dims = draw(st.sampled_from([2, 3]))
    sp = tuple(draw(st.integers(1, 6 if dims == 2 else 3)) for _ in range(dims))
    s = draw(map_values((1, 1, *sp)))
    m = draw(mask_values(sp))[None, None]
    return np.abs(s), np.nan_to_num(m)


@PROPERTY
@given(
    pair=non_negative_pairs(), exponent=st.integers(-100, 60), binarize=st.sampled_from(["topk", "threshold", "otsu"])
)
def test_scale_invariance(pair, exponent, binarize):
    s_np, m_np = pair
    s = torch.as_tensor(s_np, dtype=torch.float32)
    scaled = s * 2.0**exponent
    tiny = torch.finfo(torch.float32).tiny
    if not bool(torch.isfinite(scaled).all()) or bool(((scaled.abs() < tiny) & (s != 0)).any()):
        return  # overflow, or underflow into subnormals: not an exact scaling any more
    mask = torch.as_tensor(m_np, dtype=torch.float32)
    for name, fn in _metrics(binarize, 0.25, 0).items():
        if name.startswith("all.") or name == "chance":  # the same counts again / no saliency
            continue
        torch.testing.assert_close(fn(scaled, mask), fn(s, mask), equal_nan=True, rtol=0, atol=0, msg=name)


@PROPERTY
@given(
    sp=st.sampled_from([(1, 1), (3, 4), (5, 5), (2, 2, 2), (3, 1, 2)]),
    value=st.sampled_from([0.0, 0.5, 4.0]),
    fraction=st.sampled_from([0.1, 0.3, 1.0]),
    mask_seed=st.integers(0, 2**16),
)
def test_documented_exact_values(sp, value, fraction, mask_seed):
    n = math.prod(sp)
    k = min(n, max(1, round(fraction * n)))
    constant = torch.full((1, 1, *sp), value)
    full = torch.ones(1, 1, *sp)
    # all-ones mask: every selected pixel is inside
    assert compute_saliency_precision(constant, full, fraction=fraction).item() == 1.0
    assert compute_pointing_game(constant, full).item() == 1.0
    assert compute_chance_level(full).item() == 1.0
    assert compute_saliency_coverage(constant, full, fraction=fraction).item() == pytest.approx(k / n, abs=1e-6)
    assert compute_saliency_precision(constant, full, mode="mass").item() == (1.0 if value > 0 else 0.0)
    # a constant map scores the chance level; Otsu and an all-zero map under "threshold" select nothing
    mask = torch.as_tensor(np.random.default_rng(mask_seed).random(sp) > 0.5, dtype=torch.float32)[None, None]
    area = float(mask.sum())
    if area == 0:
        assert math.isnan(compute_saliency_precision(constant, mask).item())
        return
    chance = area / n
    assert compute_saliency_precision(constant, mask, fraction=fraction).item() == pytest.approx(chance, abs=1e-6)
    assert compute_pointing_game(constant, mask).item() == pytest.approx(chance, abs=1e-6)
    assert compute_saliency_iou(constant, mask, binarize="otsu").item() == 0.0
    if value == 0.0:
        assert compute_saliency_precision(constant, mask, mode="mass").item() == 0.0
        assert compute_saliency_coverage(constant, mask, binarize="threshold").item() == 0.0


@PROPERTY
@given(
    sp=st.sampled_from([(4, 4), (3, 5), (2, 2, 3)]),
    b=st.integers(1, 2),
    c=st.integers(1, 3),
    defect=st.sampled_from(["batch", "channels", "ndim", "flat"]),
    name=st.sampled_from(["coverage", "precision", "mass_precision", "iou", "pointing_game"]),
)
def test_shape_mismatch_names_both_shapes(sp, b, c, defect, name):
    saliency = torch.rand(b, c, *sp)
    if defect == "batch":
        mask, match = torch.ones(b + 1, 1, *sp), r"batch sizes differ: .* \(shapes \(.*\) and \(.*\)\)"
    elif defect == "channels":
        saliency = torch.rand(b, 2, *sp)
        mask, match = torch.ones(b, 3, *sp), r"channel counts differ: y_pred \(saliency\) has 2, y \(mask\) has 3"
    elif defect == "ndim":
        mask, match = torch.ones(b, 1, *sp, 2), r"of shape \(.*\) and y \(mask\) of shape \(.*\) have different"
    else:
        mask, match = torch.ones(b, 1, *sp).flatten(1), r"y \(mask\) must be \(B, C, \*spatial\), got shape"
    with pytest.raises(ValueError, match=match):
        _metrics("topk", 0.1, 0)[name](saliency, mask)


@PROPERTY
@given(
    sp=st.sampled_from([(5, 4), (3, 3), (2, 3, 2)]),
    seed=st.integers(0, 2**16),
    kind=st.sampled_from(["random", "constant", "zero", "nan", "inf"]),
    labels=st.sampled_from(["map", "channels", "empty", "fractional", "negative"]),
)
def test_instance_coverage_finite_nan_or_error(sp, seed, kind, labels):
    rng = np.random.default_rng(seed)
    s = torch.as_tensor({"random": rng.random(sp), "constant": np.full(sp, 2.0)}.get(kind, np.zeros(sp)))[None, None]
    if kind in ("nan", "inf"):
        s.view(-1)[0] = float(kind)
    label_map = torch.as_tensor(rng.integers(0, 4, size=sp))[None, None]
    inst = {
        "map": label_map,
        "channels": torch.stack([label_map[0, 0] == i for i in (1, 2, 3)])[None].float(),
        "empty": torch.zeros_like(label_map),
        "fractional": label_map.double() + 0.5,
        "negative": label_map - 2,
    }[labels]
    if kind in ("nan", "inf"):
        with pytest.raises(ValueError, match=r"saliency\) of shape .* contains NaN or Inf"):
            compute_instance_coverage(s, inst)
        return
    if labels in ("fractional", "negative"):
        with pytest.raises(ValueError, match="integer-labelled|non-negative"):
            compute_instance_coverage(s, inst)
        return
    value, per_instance = compute_instance_coverage(s, inst, return_per_instance=True)
    n_instances = int((~torch.isnan(per_instance)).sum())  # instances present
    assert value.shape == (1, 1)
    assert math.isnan(value.item()) == (n_instances == 0)
    if n_instances:
        assert 0.0 <= value.item() <= 1.0
