from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.networks.layers import GaussianFilter
from torch import nn

from monai_explain.metrics import (
    DeletionAUC,
    InsertionAUC,
    compute_deletion_auc,
    compute_insertion_auc,
    compute_perturbation_curve,
)

W = torch.tensor([[4.0, 3.0], [2.0, 1.0]])


class Linear(nn.Module):
    """logits = (sum(w * x) + bias) for each of ``n_out`` outputs (optionally negated for the second)."""

    def __init__(self, w: torch.Tensor, n_out: int = 1, bias: float = 0.0, negate_second: bool = False):
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.n_out = n_out
        self.bias = bias
        self.negate_second = negate_second
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        z = (x * self.w).flatten(1).sum(1, keepdim=True) + self.bias
        if self.n_out == 1:
            return z
        return torch.cat([z, -z if self.negate_second else z], dim=1)


def _ones(b=1):
    return torch.ones(b, 1, 2, 2)


@pytest.mark.parametrize(
    "saliency, steps, deletion, insertion",
    [
        # most important first: deletion 10, 6, 3, 1, 0; insertion 0, 4, 7, 9, 10 (dx = 0.25)
        (W, 4, 3.75, 6.25),
        # least important first: deletion 10, 9, 7, 4, 0; insertion 0, 1, 3, 6, 10
        (1.0 / W, 4, 6.25, 3.75),
        # two steps of two pixels: deletion 10, 3, 0; insertion 0, 7, 10 (dx = 0.5)
        (W, 2, 4.0, 6.0),
        # coarser saliency [[2, 1]] upsampled to columns; ties by index: order 0, 2, 1, 3
        (torch.tensor([[2.0, 1.0]]), 4, 4.0, 0.25 * (4 + 6 + 9 + 5)),
    ],
)
def test_linear_model_analytic(saliency, steps, deletion, insertion):
    model = Linear(W)
    sal = saliency.view(1, 1, *saliency.shape)
    kw = {"steps": steps, "baseline": "zero", "activation": "none"}
    assert compute_deletion_auc(model, _ones(), 0, sal, **kw).tolist() == [[pytest.approx(deletion)]]
    assert compute_insertion_auc(model, _ones(), 0, sal, **kw).tolist() == [[pytest.approx(insertion)]]


def test_softmax_and_sigmoid_probabilities():
    z_del = np.array([10.0, 6.0, 3.0, 1.0, 0.0])
    sal = W.view(1, 1, 2, 2)
    # two-class softmax on logits [z - 5, z - 5] / [z - 5, -(z - 5)]: p(class 1) = sigmoid(-2 (z - 5))
    model = Linear(W, n_out=2, bias=-5.0, negate_second=True)
    expected_softmax = np.trapezoid(1 / (1 + np.exp(2 * (z_del - 5))), dx=0.25)
    got = compute_deletion_auc(model, _ones(), 1, sal, steps=4, baseline="zero", activation="softmax")
    assert got.item() == pytest.approx(expected_softmax, rel=1e-5)
    # multi-label: sigmoid of output 0 = sigmoid(z - 5)
    expected_sigmoid = np.trapezoid(1 / (1 + np.exp(-(z_del - 5))), dx=0.25)
    got = compute_deletion_auc(model, _ones(), 0, sal, steps=4, baseline="zero", activation="sigmoid")
    assert got.item() == pytest.approx(expected_sigmoid, rel=1e-5)
    got = compute_deletion_auc(model, _ones(), 0, sal, steps=4, baseline="zero", activation=torch.sigmoid)
    assert got.item() == pytest.approx(expected_sigmoid, rel=1e-5)


def test_3d_linear_model_matches_cumulative_sums():
    w = torch.arange(1.0, 9.0).view(2, 2, 2)
    model = Linear(w)
    img = torch.ones(1, 1, 2, 2, 2)
    curve = np.concatenate([[36.0], 36.0 - np.cumsum(np.sort(w.numpy().ravel())[::-1])])
    got = compute_deletion_auc(model, img, 0, w.view(1, 1, 2, 2, 2), steps=8, activation="none")
    assert got.item() == pytest.approx(np.trapezoid(curve, dx=1 / 8))


def test_curve_baselines():
    img = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]]]])
    model = Linear(torch.ones(2, 2))
    kw = {"steps": 4, "activation": "none"}
    scores, fractions = compute_perturbation_curve(model, img, 0, img, baseline="mean", **kw)
    assert fractions.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert scores.tolist() == [[16.0, 13.0, 12.0, 13.0, 16.0]]  # 7, 5, 3, 1 replaced by the mean 4 in turn
    scores, _ = compute_perturbation_curve(model, img, 0, img, baseline=0.5, **kw)
    assert scores.tolist() == [[16.0, 9.5, 5.0, 2.5, 2.0]]
    scores, _ = compute_perturbation_curve(model, img, 0, img, baseline=torch.zeros(1, 1, 1, 1), **kw)
    assert scores.tolist() == [[16.0, 9.0, 4.0, 1.0, 0.0]]
    scores, _ = compute_perturbation_curve(model, img, 0, img, insertion=True, baseline="blur", blur_sigma=1.0, **kw)
    blurred = GaussianFilter(2, sigma=1.0)(img)
    assert scores[0, 0].item() == pytest.approx(blurred.sum().item(), rel=1e-5)
    assert scores[0, -1].item() == pytest.approx(16.0)


def test_batches_channels_and_minibatch_size():
    model = Linear(W, n_out=2)
    sal = torch.stack([W, 1.0 / W])[:, None].repeat(1, 2, 1, 1)  # (2 images, 2 classes)
    sal[0, 1] = 1.0 / W  # image 0: class 1 map reversed, and explained for class 1
    sal[1, 0] = W  # image 1: class 0 map in importance order, explained for class 0
    target = torch.tensor([1, 0])
    expected = [[6.25], [3.75]]
    for batch_size in (1, 3, 100):
        out = compute_deletion_auc(model, _ones(2), target, sal, steps=4, activation="none", batch_size=batch_size)
        assert out.tolist() == [[pytest.approx(v[0])] for v in expected]
    model.calls = 0
    compute_deletion_auc(model, _ones(2), target, sal, steps=4, activation="none", batch_size=4)
    assert model.calls == 3  # 2 * 5 perturbed images in minibatches of 4


def test_model_mode_and_grads_untouched():
    model = Linear(W).train()
    out = compute_deletion_auc(model, _ones(), 0, W.view(1, 1, 2, 2), steps=2, activation="none")
    assert model.training and model.w.grad is None and not out.requires_grad
    model.eval()
    compute_insertion_auc(model, _ones(), 0, W.view(1, 1, 2, 2), steps=2, activation="none")
    assert not model.training


def test_cumulative_classes():
    model = Linear(W)
    metric = DeletionAUC(model, steps=4, activation="none", get_not_nans=True)
    assert metric.baseline == "zero"
    metric(_ones(), torch.tensor([0]), W.view(1, 1, 2, 2))
    metric(_ones(), torch.tensor([0]), 1.0 / W.view(1, 1, 2, 2))
    value, not_nans = metric.aggregate()
    assert value.item() == pytest.approx((3.75 + 6.25) / 2) and not_nans.item() == 2
    assert metric.aggregate(reduction="none")[0].view(-1).tolist() == pytest.approx([3.75, 6.25])
    insertion = InsertionAUC(model, steps=4, activation="none", baseline="zero")
    assert insertion(_ones(), 0, W.view(1, 1, 2, 2)).item() == pytest.approx(6.25)
    assert InsertionAUC(model).baseline == "blur"
    with pytest.raises(ValueError, match="nothing to aggregate"):
        DeletionAUC(model).aggregate()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"baseline": "noise"}, "baseline must be"),
        ({"baseline": torch.zeros(3, 1, 2, 2)}, "does not broadcast"),
        ({"activation": "relu"}, "activation must be"),
        ({"target": torch.tensor([0, 0])}, "one class per image"),
        ({"steps": 0}, "steps and batch_size"),
        ({"batch_size": 0}, "steps and batch_size"),
        ({"saliency": torch.rand(1, 1, 2)}, "does not match"),
        ({"saliency": torch.rand(1, 3, 2, 2), "target": torch.tensor([5])}, "has no channel"),
        ({"images": torch.ones(2, 2)}, "images must be"),
    ],
)
def test_bad_input(kwargs, match):
    args = {"images": _ones(), "target": torch.tensor([0]), "saliency": W.view(1, 1, 2, 2), "steps": 2}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        compute_perturbation_curve(Linear(W), **args)


def test_model_output_must_be_2d():
    with pytest.raises(ValueError, match="model output must be"):
        compute_perturbation_curve(lambda x: x, _ones(), 0, W.view(1, 1, 2, 2), steps=2)
