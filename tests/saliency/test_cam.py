from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from monai_explain.saliency import CAM, GradCAM
from monai_explain.utils import resize_saliency
from tests.saliency._reference import (
    all_hooks_empty,
    densenet_forward,
    gradcam_reference,
    resnet_forward,
    small_densenet,
    small_resnet,
    target_score,
)


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4) -> None:
    scale = float(b.detach().abs().max())
    assert scale > 0
    torch.testing.assert_close(a, b, rtol=0.0, atol=rtol * scale)


class _TinyGapNet(nn.Module):
    """conv -> ReLU -> GAP -> linear, with hand-set weights for exact expected maps."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, kernel_size=1, bias=False)
        self.act = nn.ReLU()
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
            self.fc.weight.copy_(torch.tensor([[1.0, 2.0], [-1.0, 1.0]]))
            self.fc.bias.copy_(torch.tensor([5.0, -5.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_avg_pool2d(self.act(self.conv(x)), 1).flatten(1))


@pytest.mark.parametrize(
    "cls, expected",
    [
        # A_0 = relu(x), A_1 = relu(-x); class 0: 1*A_0 + 2*A_1 = |x| weighted; class 1: relu(-A_0 + A_1)
        (0, [[1.0, 4.0], [3.0, 0.0]]),
        (1, [[0.0, 2.0], [0.0, 0.0]]),
    ],
)
def test_exact_values_by_hand(cls, expected):
    """x = [[1, -2], [3, 0]]: the map is computed by hand from the linear weights (the bias plays no part)."""
    net = _TinyGapNet()
    cam = CAM(net)
    maps, logits = cam(torch.tensor([[[[1.0, -2.0], [3.0, 0.0]]]]), cls)
    assert cam.target_layer == "act"
    torch.testing.assert_close(maps, torch.tensor([[expected]]))
    torch.testing.assert_close(logits, torch.tensor([[5.0 + 1.0 + 1.0, -5.0 - 1.0 + 0.5]]))


@pytest.mark.parametrize(
    "make, layer, shape",
    [
        (small_densenet, "class_layers.relu", (2, 1, 32, 32)),
        (small_densenet, "class_layers.relu", (2, 1, 16, 16, 16)),
        (small_resnet, "layer4", (2, 1, 32, 32)),
        (small_resnet, "layer4", (2, 1, 24, 24, 24)),
    ],
)
def test_detected_layer_and_gradcam_normalisation(make, layer, shape):
    """CAM = N x Grad-CAM at the GAP layer, Grad-CAM from the network run by hand and split at that layer."""
    net = make(len(shape) - 2).eval()
    x = torch.randn(*shape)
    target = torch.tensor([2, 1])
    if make is small_densenet:
        ref_logits, inter = densenet_forward(net, x, "denseblock2")
    else:
        ref_logits, inter = resnet_forward(net, x, "layer4")
    a = inter[layer]
    (g,) = torch.autograd.grad(target_score(ref_logits, target), [a])
    cam = CAM(net)
    maps, logits = cam(x, target)
    assert cam.target_layer == layer
    torch.testing.assert_close(logits, ref_logits)
    expected = math.prod(a.shape[2:]) * gradcam_reference(a, g)
    _close(maps, resize_saliency(expected, shape[2:]))
    assert all_hooks_empty(net)


def test_multi_hot_one_einsum_all_classes_and_explicit_layer():
    net = small_densenet(2, out_channels=4).eval()
    x = torch.randn(2, 1, 32, 32)
    cam = CAM(net, target_layer="class_layers.relu", fc_layer="class_layers.out")
    multi, _ = cam(x, torch.tensor([[1, 0, 0, 1], [0, 1, 1, 1]]))
    assert multi.shape == (2, 4, 32, 32)
    singles = torch.cat([cam(x, c)[0] for c in range(4)], dim=1)
    _close(multi, singles)


def test_single_logit_binary_model():
    net = small_resnet(2, out_channels=1).eval()
    x = torch.randn(2, 1, 32, 32)
    cam = CAM(net)
    by_index, logits = cam(x, torch.tensor([0, 0]))
    by_multi_hot, _ = cam(x, torch.tensor([[1.0], [0.0]]))
    assert logits.shape == (2, 1) and by_index.shape == (2, 1, 32, 32)
    _close(by_multi_hot, by_index)


def test_works_without_gradients_and_trains_when_they_are_on():
    """No autograd needed for the map itself (no_grad forward is fine); a loss on it reaches layers and fc."""
    net = small_densenet(2).train()
    x = torch.randn(2, 1, 32, 32)
    cam = CAM(net)
    with torch.no_grad():
        frozen, _ = cam(x, 1)
    assert not frozen.requires_grad and frozen.abs().sum() > 0
    maps, _ = cam(x, torch.tensor([1, 0]))
    loss = maps[..., :16, :].sum() / maps.sum()
    exempt = {"class_layers.out.bias"}  # the bias does not enter a CAM
    named = [(n, p) for n, p in net.named_parameters() if n not in exempt]
    grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    assert [n for (n, _), g in zip(named, grads) if g is None or not g.abs().sum() > 0] == []
    assert all(p.grad is None for p in net.parameters())


class _MlpHeadNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.hidden = nn.Linear(4, 4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.hidden(self.conv(x).mean(dim=(2, 3)))))


class _FlattenHeadNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 4 * 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).flatten(1))


@pytest.mark.parametrize(
    "net, kwargs, match",
    [
        (_MlpHeadNet(), {"target_layer": "conv"}, "CAM needs a global-average-pool \\+ linear head: the input of 'fc'"),
        (_FlattenHeadNet(), {}, "could not find the feature map feeding the global average pooling before 'fc'"),
    ],
)
def test_heads_that_are_not_gap_linear_are_refused(net, kwargs, match):
    cam = CAM(net, **kwargs)
    with pytest.raises(RuntimeError, match=match):
        cam(torch.randn(2, 1, 4, 4), 0)
    assert all_hooks_empty(net)


def test_no_linear_layer_is_refused():
    with pytest.raises(ValueError, match="CAM needs a linear classifier"):
        CAM(nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1)))


def test_cpu_autocast_bf16_is_finite_and_close_to_float32():
    net = small_densenet(2).eval()
    x = torch.randn(2, 1, 32, 32)
    ref, _ = CAM(net)(x, torch.tensor([0, 1]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low, logits = CAM(net)(x, torch.tensor([0, 1]))
        fast, _ = GradCAM(net, "class_layers.relu")(x, torch.tensor([0, 1]))
    assert logits.dtype == torch.bfloat16
    assert low.dtype == torch.float32 and torch.isfinite(low).all() and torch.isfinite(fast).all()
    torch.testing.assert_close(low, ref, rtol=0.0, atol=0.05 * float(ref.abs().max()))


@pytest.mark.parametrize(
    "cls, expected",
    [
        # the same weighted sums as test_exact_values_by_hand, before the ReLU: class 1 keeps -1 and -3
        (0, [[1.0, 4.0], [3.0, 0.0]]),
        (1, [[-1.0, 2.0], [-3.0, 0.0]]),
    ],
)
def test_signed_map_keeps_the_evidence_against_the_class(cls, expected):
    """signed=True drops the ReLU: the negative values are the evidence against the class."""
    net = _TinyGapNet()
    x = torch.tensor([[[[1.0, -2.0], [3.0, 0.0]]]])
    signed, _ = CAM(net, signed=True)(x, cls)
    torch.testing.assert_close(signed, torch.tensor([[expected]]))
    rectified, _ = CAM(net)(x, cls)
    torch.testing.assert_close(rectified, signed.clamp_min(0))


def test_signed_gradcam_is_the_unrectified_map_2d_and_3d():
    torch.manual_seed(0)
    for shape in ((2, 1, 32, 32), (2, 1, 16, 16, 16)):
        net = small_densenet(len(shape) - 2).eval()
        x = torch.randn(*shape)
        signed, _ = GradCAM(net, "features.denseblock2", signed=True)(x, torch.tensor([1, 2]))
        rectified, _ = GradCAM(net, "features.denseblock2")(x, torch.tensor([1, 2]))
        assert (signed < 0).any() and (signed > 0).any()
        torch.testing.assert_close(rectified, signed.clamp_min(0))
