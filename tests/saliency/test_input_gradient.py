from __future__ import annotations

import pytest
import torch
from torch import nn

from monai_explain.saliency import InputGradient, InputXGradient
from tests.saliency._reference import small_densenet


class _TinyNet(nn.Module):
    """A small smooth (tanh) 2D classifier in float64, for finite differences."""

    def __init__(self, in_channels: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 3, 3, padding=1)
        self.fc = nn.Linear(3, 2)
        self.double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.conv(x)).mean(dim=(2, 3)))


def _finite_difference_grad(net: nn.Module, x: torch.Tensor, cls: int, eps: float = 1e-6) -> torch.Tensor:
    """d logit_cls / dx per sample by central differences (no autograd)."""
    grad = torch.zeros_like(x)
    with torch.no_grad():
        flat = x.reshape(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + eps
            up = net(x)[:, cls]
            flat[i] = old - eps
            down = net(x)[:, cls]
            flat[i] = old
            b = i // (x.numel() // x.shape[0])
            grad.view(-1)[i] = (up[b] - down[b]) / (2 * eps)
    return grad


@pytest.mark.parametrize(
    "cls, method, reduction, combine",
    [
        (InputGradient, "sum", 1, lambda x, g: g.abs().sum(1, keepdim=True)),
        (InputGradient, "max", 0, lambda x, g: g.abs().amax(1, keepdim=True)),
        (InputXGradient, "sum", 1, lambda x, g: (x * g).abs().sum(1, keepdim=True)),
        (InputXGradient, "mean", 0, lambda x, g: (x * g).abs().mean(1, keepdim=True)),
    ],
)
def test_matches_finite_differences(cls, method, reduction, combine):
    net = _TinyNet()
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    expected = combine(x, _finite_difference_grad(net, x.clone(), reduction))
    maps, _ = cls(net, channel_reduction=method)(x, reduction)
    assert maps.dtype == torch.float64 and maps.shape == (2, 1, 5, 5)
    torch.testing.assert_close(maps, expected, rtol=1e-6, atol=1e-9)


def test_matches_torch_func_on_densenet_2d_and_3d():
    """Against torch.func.jacrev of the eval-mode network, per sample, in 2D and 3D."""
    for dims, size in ((2, 16), (3, 16)):
        net = small_densenet(dims).eval()
        x = torch.randn(2, 1, *([size] * dims))
        target = torch.tensor([1, 2])
        jac = torch.func.jacrev(net)(x)  # (B, C, B, 1, *sp)
        ref = torch.stack([jac[b, target[b], b] for b in range(2)]).abs().sum(1, keepdim=True)
        x_in = x.clone().requires_grad_(True)
        ig = InputGradient(net)
        with ig.recording():
            logits = net(x_in)
            maps = ig.compute(logits, target, inputs=x_in)
        torch.testing.assert_close(maps, ref, rtol=1e-4, atol=1e-6)


def test_default_inputs_multi_hot_and_training_signal():
    net = small_densenet(2).train()
    x = torch.randn(2, 1, 16, 16, requires_grad=True)
    ixg = InputXGradient(net)
    with ixg.recording():
        logits = net(x)
        maps = ixg.compute(logits, torch.tensor([[1, 0, 1], [0, 1, 1]]))  # inputs: the one seen in the forward
    assert maps.shape == (2, 3, 16, 16) and maps.min() >= 0
    grads = torch.autograd.grad(maps[..., :8].sum() / maps.sum(), list(net.parameters()), allow_unused=True)
    named = [n for n, _ in net.named_parameters()]
    # dy/dx depends on neither the classifier bias nor the last BatchNorm shift (it only moves ReLU kinks)
    no_signal = [n for n, g in zip(named, grads) if g is None or not g.abs().sum() > 0]
    assert no_signal == ["features.norm5.bias", "class_layers.out.bias"]


def test_input_without_grad_is_refused_with_a_hint():
    net = small_densenet(2).eval()
    x = torch.randn(2, 1, 16, 16)
    ig = InputGradient(net)
    with ig.recording(), pytest.raises(RuntimeError, match="requires_grad_\\(True\\)"):
        ig.compute(net(x), 0, inputs=x)


def test_an_input_that_was_not_fed_is_refused():
    net = small_densenet(2).eval()
    ig = InputGradient(net)
    with ig.recording(), pytest.raises(RuntimeError, match="do not depend on the input"):
        ig.compute(
            net(torch.randn(2, 1, 16, 16, requires_grad=True)), 0, inputs=torch.ones(2, 1, 16, 16).requires_grad_()
        )


def test_bad_channel_reduction():
    with pytest.raises(ValueError, match="median"):
        InputGradient(_TinyNet(), channel_reduction="median")


@pytest.mark.parametrize("method", [InputGradient, InputXGradient])
def test_signed_attribution_keeps_the_sign(method):
    """signed=True returns the gradient (or x * gradient) itself; its absolute value is the default map."""
    torch.manual_seed(0)
    net = _TinyNet(in_channels=1)
    x = torch.randn(2, 1, 5, 5, dtype=torch.float64)
    signed, _ = method(net, signed=True)(x, 1)
    default, _ = method(net)(x, 1)
    assert (signed < 0).any() and (signed > 0).any()
    torch.testing.assert_close(default, signed.abs())
