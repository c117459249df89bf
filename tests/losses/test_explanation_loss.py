"""ExplanationLoss: empty masks, margin, weights, reductions, broadcasting, resampling, input validation."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor
from torch.nn.modules.loss import _Loss

from monai_explain.losses import ExplanationLoss, ExplanationLossDesign, explanation_loss
from monai_explain.utils import resize_saliency

DESIGNS = [d.value for d in ExplanationLossDesign]
S2 = [[[[1.0, 2.0], [3.0, 4.0]]]]  # energy with M2: 1 - 6 / 10 = 0.4
S2_FLIP = [[[[4.0, 3.0], [2.0, 1.0]]]]  # energy with M2: 1 - 4 / 10 = 0.6
M2 = [[[[0.0, 1.0], [0.0, 1.0]]]]


def _pair_batch():
    """Two samples: energy 0.4 and 0.6 against the same mask."""
    return torch.tensor(S2 + S2_FLIP), torch.tensor(M2 + M2)


def _random(shape):
    saliency = torch.rand(shape) + 0.1
    mask = torch.zeros((shape[0], 1) + tuple(shape[2:]))
    mask[:, :, 1:3, 1:3] = 1.0
    return saliency, mask


def test_is_a_monai_style_loss():
    loss = ExplanationLoss()
    assert isinstance(loss, _Loss)
    assert loss.reduction == "mean" and loss.design == ExplanationLossDesign.ENERGY
    assert "design=energy" in repr(loss) and "margin=0.0" in repr(loss)


@pytest.mark.parametrize("design", DESIGNS)
def test_class_matches_functional(design):
    saliency, mask = _random((2, 3, 4, 4))
    got = ExplanationLoss(design, margin=0.01)(saliency, mask)
    assert torch.equal(got, explanation_loss(saliency, mask, design=design, margin=0.01))


@pytest.mark.parametrize("design", DESIGNS)
def test_empty_mask_sample_excluded_from_mean(design):
    saliency, mask = _random((2, 1, 4, 4))
    mask[1] = 0.0
    loss_fn = ExplanationLoss(design)
    both = loss_fn(saliency, mask)
    assert loss_fn.last_valid.tolist() == [[True], [False]]
    alone = loss_fn(saliency[:1], mask[:1])
    assert both.item() == pytest.approx(alone.item(), rel=1e-6)
    assert both.item() > 0


def test_empty_mask_channel_excluded_from_mean():
    saliency, mask = _random((1, 2, 4, 4))
    mask = mask.repeat(1, 2, 1, 1)
    mask[:, 1] = 0.0
    loss_fn = ExplanationLoss("l1")
    got = loss_fn(saliency, mask)
    assert loss_fn.last_valid.tolist() == [[True, False]]
    assert got.item() == pytest.approx(loss_fn(saliency[:, :1], mask[:, :1]).item(), rel=1e-6)


@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_all_empty_batch_is_zero_and_backpropagates(design, reduction):
    saliency = (torch.rand(2, 2, 3, 3) + 0.1).requires_grad_(True)
    loss = ExplanationLoss(design, reduction=reduction)(saliency, torch.zeros(2, 1, 3, 3))
    assert torch.count_nonzero(loss) == 0 and loss.requires_grad
    loss.sum().backward()
    assert torch.isfinite(saliency.grad).all() and torch.count_nonzero(saliency.grad) == 0


@pytest.mark.parametrize(
    "design, margin, expected",
    [
        ("energy", 0.0, 0.4),  # inside fraction 0.6
        ("energy", 0.1, 0.3),  # pays below 1 - 0.1 = 0.9: 0.9 - 0.6
        ("energy", 0.3, 0.1),
        ("energy", 0.45, 0.0),  # 1 - 0.45 = 0.55 < 0.6: nothing to pay
        ("l1", 0.25, 0.375 - 0.25),
        ("outside", 1.0, 2.5 - 1.0),
        ("outside", 3.0, 0.0),
    ],
)
def test_margin(design, margin, expected):
    saliency = torch.tensor(S2, requires_grad=True)
    loss = ExplanationLoss(design, margin=margin)(saliency, torch.tensor(M2))
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    loss.backward()
    assert (torch.count_nonzero(saliency.grad) == 0) == (expected == 0.0)


@pytest.mark.parametrize(
    "soft_mask, mask, expected",
    [
        (True, [[[[0.0, 0.5], [0.0, 1.0]]]], 1 - (1 + 4) / 10),  # soft weights as given
        (False, [[[[0.0, 0.5], [0.0, 1.0]]]], 1 - (2 + 4) / 10),  # binarised at 0.5 -> [[0, 1], [0, 1]]
        (False, [[[[0.0, 0.4], [0.0, 1.0]]]], 1 - 4 / 10),  # 0.4 -> 0
    ],
)
def test_soft_mask(soft_mask, mask, expected):
    loss = ExplanationLoss("energy", soft_mask=soft_mask)(torch.tensor(S2), torch.tensor(mask))
    assert loss.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "weight, reduction, expected",
    [
        (None, "mean", (0.4 + 0.6) / 2),
        ([1.0, 3.0], "mean", (0.4 + 3 * 0.6) / 4),  # weighted mean
        ([1.0, 3.0], "sum", 0.4 + 3 * 0.6),
        ([0.0, 2.0], "mean", 0.6),
        ([0.0, 0.0], "mean", 0.0),
        (None, "sum", 1.0),
    ],
)
def test_weights(weight, reduction, expected):
    saliency, mask = _pair_batch()
    w = None if weight is None else torch.tensor(weight)
    loss = ExplanationLoss("energy", reduction=reduction)(saliency, mask, weight=w)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_weight_on_empty_sample_is_ignored():
    saliency, mask = _pair_batch()
    mask[1] = 0
    loss = ExplanationLoss("energy")(saliency, mask, weight=torch.tensor([2.0, 5.0]))
    assert loss.item() == pytest.approx(0.4, abs=1e-6)


def test_reduction_none_shape_and_zeros():
    saliency, mask = _pair_batch()
    mask[1] = 0
    loss_fn = ExplanationLoss("energy", reduction="none")
    loss = loss_fn(saliency, mask, weight=torch.tensor([3.0, 1.0]))
    assert loss.shape == (2, 1, 1, 1)
    assert loss.flatten().tolist() == pytest.approx([1.2, 0.0], abs=1e-6)
    assert loss_fn.last_valid.tolist() == [[True], [False]]
    loss3d = ExplanationLoss("l1", reduction="none")(torch.rand(2, 3, 2, 2, 2) + 0.1, torch.ones(2, 1, 2, 2, 2))
    assert loss3d.shape == (2, 3, 1, 1, 1)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_reductions_agree(reduction):
    saliency, mask = _random((3, 2, 4, 4))
    mask[2] = 0
    per_entry = ExplanationLoss("mse", reduction="none")(saliency, mask)
    got = ExplanationLoss("mse", reduction=reduction)(saliency, mask)
    expected = {"none": per_entry, "sum": per_entry.sum(), "mean": per_entry.sum() / 4}[reduction]
    assert torch.allclose(got, expected)


def test_one_channel_mask_broadcast_over_k():
    saliency = torch.tensor([[S2[0][0], S2_FLIP[0][0]]])  # (1, 2, 2, 2)
    mask = torch.tensor(M2)  # (1, 1, 2, 2)
    loss = ExplanationLoss("energy", reduction="none")(saliency, mask)
    assert loss.flatten().tolist() == pytest.approx([0.4, 0.6], abs=1e-6)
    repeated = ExplanationLoss("energy", reduction="none")(saliency, mask.repeat(1, 2, 1, 1))
    assert torch.equal(loss, repeated)


def test_saliency_upsampled_to_mask_grid():
    saliency = torch.full((1, 1, 2, 2), 2.0)  # constant: stays constant when resampled to 4x4
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :2] = 1
    assert ExplanationLoss("energy")(saliency, mask).item() == pytest.approx(1 - 4 / 16, abs=1e-6)


def test_saliency_downsampled_to_mask_grid():
    # 4x4 -> 2x2 bilinear (align_corners=False) averages 2x2 blocks: [[2.5, 4.5], [10.5, 12.5]], total 30
    saliency = torch.arange(16.0).reshape(1, 1, 4, 4).requires_grad_(True)
    mask = torch.tensor([[[[1, 0], [0, 0]]]])
    loss = ExplanationLoss("energy")(saliency, mask)
    assert loss.item() == pytest.approx(1 - 2.5 / 30, abs=1e-6)
    expected = ExplanationLoss("energy")(resize_saliency(saliency, (2, 2)), mask)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-7)
    loss.backward()
    assert saliency.grad.shape == (1, 1, 4, 4)


def test_saliency_resampled_3d():
    saliency = torch.full((1, 2, 2, 2, 2), 3.0)
    mask = torch.zeros(1, 1, 4, 4, 4)
    mask[..., :2, :, :] = 1  # half of the volume
    loss = ExplanationLoss("energy", reduction="none")(saliency, mask)
    assert loss.shape == (1, 2, 1, 1, 1)
    assert loss.flatten().tolist() == pytest.approx([0.5, 0.5], abs=1e-6)


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.int64])
def test_integer_and_bool_masks(dtype):
    expected = ExplanationLoss("dice")(torch.tensor(S2), torch.tensor(M2))
    got = ExplanationLoss("dice")(torch.tensor(S2), torch.tensor(M2).to(dtype))
    assert got.dtype == torch.float32 and torch.equal(got, expected)


def test_metatensor_inputs_give_plain_tensor():
    loss = ExplanationLoss("energy")(MetaTensor(torch.tensor(S2)), MetaTensor(torch.tensor(M2)))
    assert type(loss) is torch.Tensor and loss.item() == pytest.approx(0.4, abs=1e-6)


def test_half_precision_saliency_computed_in_float32():
    loss = ExplanationLoss("kl")(torch.tensor(S2, dtype=torch.bfloat16), torch.tensor(M2))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(0.5697171, abs=1e-5)  # the 2D kl hand value


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"design": "cosine"}, "design"),
        ({"normalize": "zscore"}, "normalize"),
        ({"reduction": "batchmean"}, "reduction"),
        ({"margin": -0.1}, "margin must be a finite number >= 0"),
        ({"margin": float("nan")}, "margin"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ExplanationLoss(**kwargs)
    with pytest.raises(ValueError, match=match):
        explanation_loss(torch.tensor(S2), torch.tensor(M2), **kwargs)


@pytest.mark.parametrize(
    "s_shape, m_shape, match",
    [
        ((2, 1, 2, 2), (1, 1, 2, 2), r"batch size of mask \(1, 1, 2, 2\) differs from saliency \(2, 1, 2, 2\)"),
        ((1, 2, 2, 2), (1, 3, 2, 2), r"mask \(1, 3, 2, 2\) must have 1 or K=2 channels"),
        ((1, 1, 2, 2), (1, 2, 2), r"saliency \(1, 1, 2, 2\) and mask \(1, 2, 2\) must have the same number"),
        ((4, 4), (4, 4), r"saliency must be \(B, K, \*spatial\), got shape \(4, 4\)"),
    ],
)
def test_shape_errors(s_shape, m_shape, match):
    with pytest.raises(ValueError, match=match):
        ExplanationLoss()(torch.rand(s_shape) + 0.1, torch.ones(m_shape))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_saliency(bad):
    saliency = torch.tensor(S2)
    saliency[0, 0, 0, 1] = bad
    with pytest.raises(ValueError, match=r"saliency \(1, 1, 2, 2\) contains NaN or Inf"):
        ExplanationLoss("outside")(saliency, torch.tensor(M2))


@pytest.mark.parametrize("bad", [2.0, -0.5, float("nan")])
def test_mask_out_of_range(bad):
    mask = torch.tensor(M2)
    mask[0, 0, 1, 0] = bad
    with pytest.raises(ValueError, match=r"mask \(1, 1, 2, 2\) values must lie in \[0, 1\]"):
        ExplanationLoss()(torch.tensor(S2), mask)


@pytest.mark.parametrize(
    "weight, match",
    [
        (torch.ones(3), r"weight must have shape \(B,\)=\(2,\), got \(3,\)"),
        (torch.ones(2, 1), r"got \(2, 1\)"),
        (torch.tensor([1.0, -1.0]), "finite and >= 0"),
        (torch.tensor([1.0, float("nan")]), "finite and >= 0"),
    ],
)
def test_bad_weight(weight, match):
    saliency, mask = _pair_batch()
    with pytest.raises(ValueError, match=match):
        ExplanationLoss()(saliency, mask, weight=weight)


def test_type_errors():
    with pytest.raises(TypeError, match="floating point"):
        ExplanationLoss()(torch.ones(1, 1, 2, 2, dtype=torch.int64), torch.tensor(M2))
    with pytest.raises(TypeError, match="must be torch.Tensor"):
        ExplanationLoss()(torch.tensor(S2), M2)


def test_gradient_reaches_model_parameters():
    conv = torch.nn.Conv2d(1, 1, 3, padding=1)
    image = torch.rand(2, 1, 6, 6)
    saliency = torch.relu(conv(image)) + 1e-3
    mask = torch.zeros(2, 1, 6, 6)
    mask[0, :, 2:4, 2:4] = 1
    ExplanationLoss("energy")(saliency, mask).backward()
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()
    assert conv.weight.grad.abs().sum() > 0
