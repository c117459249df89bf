"""Numerics of explanation-supervised training under reduced precision: the loss and every gradient stay finite.

A plain PyTorch loop (``saliency.compute`` + ``ExplanationLoss`` + ``backward`` + SGD with momentum) on a very small
MONAI DenseNet (``init_features=4, growth_rate=4, block_config=(1, 1)``, 16 x 16 inputs, batch 4: two positives
with a box annotation, two negatives with an empty mask) under ``torch.autocast("cpu", dtype=torch.bfloat16)``.

Six saliency methods (CAM, Grad-CAM at the last feature map - the closed-form fast path -, Grad-CAM at a middle
layer - the double-backward path -, HiResCAM, input gradient, input x gradient) times the seven loss designs would be
42 runs; 300 steps each would take minutes on the 2-core CI machine. So:

- the full cross product runs ``CROSS_STEPS`` steps per pair (every pair: forward, differentiable saliency, loss,
  double backward through the saliency, optimiser step, all checked);
- 300 steps run for seven representative pairs that cover every method and every design at least once
  (``LONG_RUNS``), where slow drifts (growing weights, vanishing maps hitting the ``eps`` floors) would show.

Also: :func:`monai_explain.utils.normalize_saliency` on constant and all-zero maps (every mode and float dtype, 2D
and 3D) gives finite values and finite gradients. An fp16 + ``GradScaler`` run on CUDA is added for GPU machines.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.networks.nets import DenseNet

from monai_explain.losses import ExplanationLoss, ExplanationLossDesign
from monai_explain.saliency import get_saliency_method
from monai_explain.utils import SaliencyNormalization, normalize_saliency

METHODS = {
    "cam": ("cam", {}),
    "gradcam_last": ("gradcam", {"target_layer": "class_layers.relu"}),
    "gradcam_mid": ("gradcam", {"target_layer": "features.denseblock1", "fast_path": False}),
    "hirescam": ("hirescam", {"target_layer": "features.denseblock2"}),
    "input_gradient": ("input_gradient", {}),
    "input_x_gradient": ("input_x_gradient", {}),
}
DESIGNS = [d.value for d in ExplanationLossDesign]
CROSS_STEPS = 6
LONG_STEPS = 300
LONG_RUNS = [
    ("cam", "dice"),
    ("gradcam_last", "energy"),  # Model Guidance
    ("gradcam_mid", "l1"),
    ("hirescam", "mse"),
    ("input_gradient", "outside"),  # Right for the Right Reasons
    ("input_x_gradient", "kl"),
    ("gradcam_mid", "bce"),
]


def _net() -> DenseNet:
    torch.manual_seed(0)
    return DenseNet(
        spatial_dims=2, in_channels=1, out_channels=2, init_features=4, growth_rate=4, block_config=(1, 1), bn_size=2
    )


def _batch(device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two positives (a bright square inside the annotated box) and two negatives (empty masks)."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 1, 16, 16, generator=g) * 0.2
    mask = torch.zeros(4, 1, 16, 16)
    for i, (r, c) in zip((0, 2), ((3, 4), (9, 8))):
        x[i, 0, r : r + 4, c : c + 4] += 1.0
        mask[i, 0, r - 1 : r + 5, c - 1 : c + 5] = 1.0
    y = torch.tensor([1, 0, 1, 0])
    return x.to(device), y.to(device), mask.to(device)


def _finite_step_check(method: str, design: str, step: int, loss, expl, net) -> None:
    where = f"{method} + {design}, step {step}"
    assert torch.isfinite(loss).item(), f"{where}: loss {loss.item()}"
    assert torch.isfinite(expl).item(), f"{where}: explanation loss {expl.item()}"
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{where}: no gradient for {name}"
        assert bool(torch.isfinite(p.grad).all()), f"{where}: non-finite gradient in {name}"


def _train(method: str, design: str, steps: int, lam: float = 1.0) -> list[float]:
    """``steps`` SGD steps of cross-entropy + ``lam`` * explanation loss under bf16 autocast; returns the losses."""
    net = _net().train()
    name, kwargs = METHODS[method]
    saliency = get_saliency_method(name, net, **kwargs)
    loss_fn = ExplanationLoss(design=design)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    x, y, mask = _batch()
    losses = []
    with saliency.recording():
        for step in range(steps):
            inputs = x.clone().requires_grad_(True) if saliency.needs_input_grad else x
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = net(inputs)
                maps = saliency.compute(logits, y, inputs=inputs if saliency.needs_input_grad else None)
                assert maps.shape == (4, 1, 16, 16) and bool(torch.isfinite(maps).all()), f"{method}: bad maps"
                expl = loss_fn(maps, mask)
                loss = F.cross_entropy(logits.float(), y) + lam * expl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            _finite_step_check(method, design, step, loss, expl, net)
            opt.step()
            losses.append(loss.item())
    assert all(bool(torch.isfinite(p).all()) for p in net.parameters()), f"{method} + {design}: weights not finite"
    assert loss_fn.last_valid[:, 0].tolist() == [True, False, True, False]  # negatives excluded
    return losses


@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("method", list(METHODS))
def test_bf16_every_method_and_design_few_steps(method, design):
    losses = _train(method, design, CROSS_STEPS)
    assert len(losses) == CROSS_STEPS


def test_long_runs_cover_every_method_and_design():
    assert {m for m, _ in LONG_RUNS} == set(METHODS) and {d for _, d in LONG_RUNS} == set(DESIGNS)


@pytest.mark.slow
@pytest.mark.parametrize("method,design", LONG_RUNS)
def test_bf16_300_steps_stay_finite(method, design):
    losses = _train(method, design, LONG_STEPS)
    # the classification term is learnable on this batch: training does not only stay finite, it makes progress
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10


@pytest.mark.parametrize("mode", [m.value for m in SaliencyNormalization])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("value", [0.0, 1e-12, 0.5, -3.0])
@pytest.mark.parametrize("shape", [(2, 1, 4, 4), (1, 2, 3, 3, 2)])
def test_normalize_constant_maps_finite_values_and_gradients(mode, dtype, value, shape):
    s = torch.full(shape, value, dtype=dtype, requires_grad=True)
    out = normalize_saliency(s, mode)
    (grad,) = torch.autograd.grad(out.float().sum(), s)
    assert out.dtype == dtype and bool(torch.isfinite(out).all()) and bool(torch.isfinite(grad).all())
    if mode == "minmax":
        assert float(out.detach().abs().sum()) == 0.0  # a constant map carries no ranking
    if mode == "max" and value == 0.5:
        assert bool((out == 1).all())


@pytest.mark.parametrize("mode", ["max", "minmax", "sum"])
def test_normalize_under_bf16_autocast(mode):
    s = torch.zeros(2, 1, 4, 4, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = normalize_saliency(s * 1.0, mode)
    (grad,) = torch.autograd.grad(out.float().sum(), s)
    assert bool(torch.isfinite(out).all()) and bool(torch.isfinite(grad).all())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method,design", [("gradcam_mid", "energy"), ("input_gradient", "outside"), ("cam", "kl")])
def test_fp16_grad_scaler_on_cuda(method, design):
    """fp16 autocast + GradScaler: every step either is finite or is skipped by the scaler (never NaN weights)."""
    net = _net().cuda().train()
    name, kwargs = METHODS[method]
    saliency = get_saliency_method(name, net, **kwargs)
    loss_fn = ExplanationLoss(design=design)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda")
    x, y, mask = _batch("cuda")
    finite_steps = 0
    with saliency.recording():
        for _ in range(50):
            inputs = x.clone().requires_grad_(True) if saliency.needs_input_grad else x
            with torch.autocast("cuda", dtype=torch.float16):
                logits = net(inputs)
                maps = saliency.compute(logits, y, inputs=inputs if saliency.needs_input_grad else None)
                loss = F.cross_entropy(logits.float(), y) + loss_fn(maps, mask)
            assert torch.isfinite(loss).item()
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            finite_steps += all(bool(torch.isfinite(p.grad).all()) for p in net.parameters() if p.grad is not None)
            scaler.step(opt)
            scaler.update()
    assert all(bool(torch.isfinite(p).all()) for p in net.parameters())
    assert finite_steps >= 40
