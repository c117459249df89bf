"""The closed-form BatchNorm double backward: exactness (gradcheck, native equality), the swap into modules while
a saliency method is registered, and equality of full saliency training steps with the native path."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from monai.networks.nets import DenseNet
from torch import nn

from monai_explain.losses import ExplanationLoss
from monai_explain.saliency import (
    GradCAM,
    HiResCAM,
    InputGradient,
    InputXGradient,
    batch_norm_double_backward,
    exact_batch_norm,
    frozen_batch_statistics,
    patch_batchnorm,
    set_batchnorm_compile,
)
from monai_explain.saliency import batchnorm as bn_module

SHAPES = {1: (3, 2, 4), 2: (3, 2, 3, 2), 3: (2, 2, 2, 3, 2)}


def _inputs(dims: int, affine: bool, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(SHAPES[dims], generator=gen, dtype=torch.float64) * 2 + 1).requires_grad_()
    rm = torch.randn(2, generator=gen, dtype=torch.float64)
    rv = torch.rand(2, generator=gen, dtype=torch.float64) + 0.5
    w = (torch.rand(2, generator=gen, dtype=torch.float64) + 0.5).requires_grad_() if affine else None
    b = torch.randn(2, generator=gen, dtype=torch.float64).requires_grad_() if affine else None
    return x, rm, rv, w, b


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("train", [True, False])
def test_gradcheck_and_gradgradcheck(dims, affine, train):
    x, rm, rv, w, b = _inputs(dims, affine)
    inputs = (x, w, b) if affine else (x,)

    def fn(*args):
        wb = args[1:] if affine else (None, None)
        return exact_batch_norm(args[0], rm.clone(), rv.clone(), *wb, training=train, momentum=0.1, eps=1e-5)

    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("train", [True, False])
def test_forward_backward_double_backward_equal_native(dims, affine, train):
    x, rm, rv, w, b = _inputs(dims, affine, seed=1)
    inputs = [t for t in (x, w, b) if t is not None]
    gen = torch.Generator().manual_seed(2)
    go = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    weights = [torch.randn(t.shape, generator=gen, dtype=torch.float64) for t in inputs]
    results = []
    for fn in (exact_batch_norm, F.batch_norm):
        rm_i, rv_i = rm.clone(), rv.clone()
        y = fn(x, rm_i, rv_i, w, b, train, 0.1, 1e-5)
        grads = torch.autograd.grad(y, inputs, go, create_graph=True)
        second = sum((g * v).sum() for g, v in zip(grads, weights))
        gg = torch.autograd.grad(second, inputs, allow_unused=True)
        gg = [torch.zeros_like(t) if g is None else g for g, t in zip(gg, inputs)]
        results.append((y.detach(), [g.detach() for g in grads], gg, rm_i, rv_i))
    (y1, g1, gg1, rm1, rv1), (y2, g2, gg2, rm2, rv2) = results
    assert torch.equal(y1, y2)  # the same kernel
    assert torch.equal(rm1, rm2) and torch.equal(rv1, rv2)
    for a, c in zip(g1, g2):
        assert torch.equal(a, c)
    for a, c in zip(gg1, gg2):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-12)


def test_frozen_statistics_equal_eval_mode_with_batch_statistics():
    """Held-constant statistics: first and second derivatives of the saliency term are those of an eval-mode
    BatchNorm whose running statistics are this batch's mean and (biased) variance."""
    x, _, _, w, b = _inputs(2, True, seed=3)
    mean = x.detach().mean(dim=(0, 2, 3))
    var = x.detach().var(dim=(0, 2, 3), unbiased=False)
    go = torch.randn(x.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    out = []
    for frozen in (True, False):
        if frozen:
            y = exact_batch_norm(x, None, None, w, b, True, 0.1, 1e-5)
            with frozen_batch_statistics():
                (gx,) = torch.autograd.grad(y, x, go, create_graph=True)
        else:
            y = F.batch_norm(x, mean.clone(), var.clone(), w, b, False, 0.1, 1e-5)
            (gx,) = torch.autograd.grad(y, x, go, create_graph=True)
        second = (gx * gx).sum()
        out.append((gx.detach(), torch.autograd.grad(second, (x, w), allow_unused=True)))
    torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-10, atol=1e-12)
    for a, c in zip(out[0][1], out[1][1]):
        a = torch.zeros_like(x) if a is None else a
        c = torch.zeros_like(x) if c is None else c
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-12)


def test_frozen_statistics_decouple_samples():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 2))
    x = torch.randn(3, 1, 4, 4, requires_grad=True)
    with patch_batchnorm(net.modules()):
        logits = net(x)
        (coupled,) = torch.autograd.grad(logits[0, 1], x, retain_graph=True)
        with frozen_batch_statistics():
            (own,) = torch.autograd.grad(logits[0, 1], x)
    assert coupled[1:].abs().max() > 1e-6  # train-mode BatchNorm: sample 0's score depends on samples 1 and 2
    assert torch.equal(own[1:], torch.zeros_like(own[1:]))
    assert own[0].abs().max() > 0


def test_double_backward_low_precision_dtypes():
    """bf16 activations with float32 affine parameters (autocast): reductions in float32, outputs in each dtype."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(4, 3, 5, 5, generator=gen)
    g = torch.randn(4, 3, 5, 5, generator=gen)
    q = torch.randn(4, 3, 5, 5, generator=gen)
    w = torch.rand(3, generator=gen) + 0.5
    mean, invstd = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False).add(1e-5).rsqrt()
    ref = batch_norm_double_backward(q, None, None, g, x, w, mean, invstd, True)
    low = batch_norm_double_backward(q.bfloat16(), None, None, g.bfloat16(), x.bfloat16(), w, mean, invstd, True)
    assert low[0].dtype == torch.bfloat16 and low[1].dtype == torch.bfloat16 and low[2].dtype == torch.float32
    for a, c in zip(low, ref):
        torch.testing.assert_close(a.float(), c, rtol=5e-2, atol=5e-2)


def test_compile_failure_falls_back_to_eager(monkeypatch):
    def broken_compile(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken_compile)
    x, rm, rv, w, b = _inputs(2, True, seed=6)
    set_batchnorm_compile(True)
    try:
        y = exact_batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5)
        (gx,) = torch.autograd.grad(y.pow(2).sum(), x, create_graph=True)
        (gw,) = torch.autograd.grad(gx.pow(2).sum(), w)
        assert bn_module._compile_failed
    finally:
        set_batchnorm_compile(False)
    assert torch.isfinite(gw).all() and gw.abs().max() > 0


# ------------------------------------------------------------------------------------------------------ patching
def _net(dims: int) -> nn.Module:
    torch.manual_seed(0)
    return DenseNet(
        spatial_dims=dims, in_channels=1, out_channels=3, init_features=4, growth_rate=4, block_config=(2, 2), bn_size=2
    )


def test_patch_keeps_state_dict_and_is_undone():
    net = _net(2)
    keys = list(net.state_dict())
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    with patch_batchnorm(net.modules()) as handle:
        assert set(map(id, handle.modules)) == set(map(id, bns))
        assert all("forward" in m.__dict__ for m in bns)
        assert list(net.state_dict()) == keys
        inner = patch_batchnorm(bns[:2])  # reference counted
        inner.remove()
        assert all("forward" in m.__dict__ for m in bns)
    assert all("forward" not in m.__dict__ for m in bns)
    handle.remove()  # idempotent


def test_syncbatchnorm_and_custom_forward_are_not_patched():
    class MyBN(nn.BatchNorm2d):
        def forward(self, x):
            return super().forward(x) * 2

    mods = [nn.SyncBatchNorm(3), MyBN(3), nn.BatchNorm2d(3), nn.LazyBatchNorm2d()]
    handle = patch_batchnorm(mods)
    assert handle.modules == [mods[2]]
    handle.remove()


def _step(net: nn.Module, method_cls, kwargs: dict, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor):
    method = method_cls(net, **kwargs)
    method.register()
    try:
        net.zero_grad(set_to_none=True)
        inputs = x.clone().requires_grad_(True)
        logits = net(inputs)
        saliency = method.compute(logits, y, inputs=inputs if method.needs_input_grad else None)
        loss = F.cross_entropy(logits, y) + ExplanationLoss(design="energy")(saliency, mask)
        loss.backward()
        patched = len(method.patched_batchnorms)
    finally:
        method.remove()
    grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    return grads, copy.deepcopy(net.state_dict()), saliency.detach(), patched


METHODS = [
    (InputGradient, {}),
    (InputXGradient, {}),
    (GradCAM, {"target_layer": "features.denseblock1", "fast_path": False}),
    (HiResCAM, {"target_layer": "features.denseblock1", "fast_path": False}),
]


def _flat(grads: dict) -> torch.Tensor:
    return torch.cat([grads[k].flatten().double() for k in sorted(grads)])


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("method_cls,kwargs", METHODS, ids=lambda v: getattr(v, "__name__", ""))
@pytest.mark.parametrize("multi_hot", [False, True])
def test_training_step_gradients_equal_native(dims, method_cls, kwargs, multi_hot):
    """One training step (cross-entropy + energy explanation loss, one backward) with the closed form vs PyTorch's
    BatchNorm double backward: float64 gradients equal to 1e-9 (relative); float32 gradients within 1e-4 of each
    other (relative L2 over all parameters) and no further from the float64 result than the native float32 ones
    (float32 rounding of either path is ~1e-4 here: |d map| is not differentiable where a gradient is ~0);
    running statistics and state dict identical; no swap left behind."""
    base = _net(dims).train()
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(3, 1, *(12,) * dims, generator=gen)
    y = torch.tensor([0, 2, 1])
    mask = torch.zeros(3, 1, *(12,) * dims)
    mask[:, :, 2:8, 3:9] = 1.0
    target = F.one_hot(y, 3).float() if multi_hot else y
    results = {}
    for dtype in (torch.float64, torch.float32):
        for bn in ("native", "exact"):
            net = copy.deepcopy(base).to(dtype)
            results[bn, dtype] = _step(net, method_cls, {**kwargs, "batchnorm": bn}, x.to(dtype), target, mask)
            assert all("forward" not in m.__dict__ for m in net.modules())
    for dtype in (torch.float64, torch.float32):
        g_nat, sd_nat, s_nat, p_nat = results["native", dtype]
        g_ex, sd_ex, s_ex, p_ex = results["exact", dtype]
        assert p_nat == 0 and p_ex > 0
        assert g_nat.keys() == g_ex.keys() and len(g_nat) > 0
        assert list(sd_nat) == list(sd_ex)
        for name in sd_nat:  # running statistics and parameters: identical
            assert torch.equal(sd_nat[name], sd_ex[name]), name
        torch.testing.assert_close(s_ex, s_nat, rtol=1e-5, atol=1e-6)
    ref = _flat(results["native", torch.float64][0])
    exact64 = _flat(results["exact", torch.float64][0])
    assert float((exact64 - ref).norm() / ref.norm()) < 1e-9
    nat32, ex32 = _flat(results["native", torch.float32][0]), _flat(results["exact", torch.float32][0])
    assert float((ex32 - nat32).norm() / ref.norm()) < 1e-4
    assert float((ex32 - ref).norm()) <= 1.5 * float((nat32 - ref).norm()) + 1e-6 * float(ref.norm())


def test_gradcam_patches_only_layers_after_target():
    net = _net(2)
    last = GradCAM(net, "class_layers.relu")
    mid = GradCAM(net, "features.denseblock2", fast_path=False)
    with last.recording():
        assert last.patched_batchnorms == []
    with mid.recording():
        names = {id(m): n for n, m in net.named_modules()}
        patched = sorted(names[id(m)] for m in mid.patched_batchnorms)
    assert patched == ["features.norm5"]


def test_swap_undone_after_exception_in_recording():
    net = _net(2)
    method = InputGradient(net)
    with pytest.raises(RuntimeError, match="boom"), method.recording():
        assert method.patched_batchnorms
        raise RuntimeError("boom")
    assert all("forward" not in m.__dict__ for m in net.modules())
    assert not method.is_registered and method.patched_batchnorms == []


def test_swap_undone_when_register_fails(monkeypatch):
    net = _net(2)
    method = InputGradient(net)

    def fail():
        raise RuntimeError("hook failure")

    monkeypatch.setattr(method, "_register_hooks", fail)
    with pytest.raises(RuntimeError, match="hook failure"):
        method.register()
    assert all("forward" not in m.__dict__ for m in net.modules())
    assert not method.is_registered


def test_per_sample_maps_do_not_depend_on_the_batch():
    net = _net(2).train()
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(3, 1, 12, 12, generator=gen)
    for mode, independent in (("per_sample", True), ("exact", False)):
        method = InputGradient(copy.deepcopy(net), batchnorm=mode)
        inputs = x.clone().requires_grad_(True)
        with method.recording():
            logits = method.model(inputs)
            grads = list(method._target_gradients(logits, torch.tensor([1, 1, 1]), inputs, "the input"))
        # the score differentiated is the batch sum; sample 0's logit alone:
        inputs2 = x.clone().requires_grad_(True)
        with method.recording():
            logits2 = method.model(inputs2)
            with frozen_batch_statistics() if independent else torch.enable_grad():
                (own,) = torch.autograd.grad(logits2[0, 1], inputs2)
        same = torch.allclose(grads[0][0], own[0], rtol=1e-4, atol=1e-7)
        assert same == independent, mode
