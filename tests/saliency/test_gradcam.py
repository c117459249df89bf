from __future__ import annotations

import math

import pytest
import torch
from monai.networks.nets import DenseNet121

from monai_explain.saliency import CAM, GradCAM, HiResCAM
from monai_explain.utils import resize_saliency
from tests.saliency._reference import (
    densenet_forward,
    gradcam_reference,
    hirescam_reference,
    resnet_forward,
    small_densenet,
    small_resnet,
    target_score,
)


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4) -> None:
    """Maps equal up to float32 rounding, relative to the reference's scale (and the reference is not all zero)."""
    scale = float(b.detach().abs().max())
    assert scale > 0
    torch.testing.assert_close(a, b, rtol=0.0, atol=rtol * scale)


@pytest.mark.parametrize(
    "spatial_dims, shape, cut",
    [
        (2, (2, 1, 64, 64), "denseblock3"),  # last feature map 2x2, denseblock3 4x4
        (3, (1, 1, 32, 32, 32), "denseblock2"),  # last feature map 1x1x1, denseblock2 4x4x4
    ],
)
def test_densenet121_parity_with_manual_split(spatial_dims, shape, cut):
    """DenseNet121 2D and 3D: every CAM-family map against the same network run by hand and split at the layer."""
    net = DenseNet121(spatial_dims=spatial_dims, in_channels=1, out_channels=3).eval()
    x = torch.randn(*shape)
    target = torch.tensor([2, 0][: shape[0]])
    ref_logits, inter = densenet_forward(net, x, cut)
    mid, last = inter[f"features.{cut}"], inter["class_layers.relu"]
    g_mid, g_last = torch.autograd.grad(target_score(ref_logits, target), [mid, last])

    methods = {
        "gc_mid": GradCAM(net, f"features.{cut}"),
        "hi_mid": HiResCAM(net, f"features.{cut}"),
        "gc_fast": GradCAM(net, "class_layers.relu"),
        "gc_slow": GradCAM(net, "class_layers.relu", fast_path=False),
        "cam": CAM(net),
    }
    for m in methods.values():
        m.register()
    try:
        logits = net(x)
        out = {
            k: m.compute(logits, target, spatial_size=(mid if "mid" in k else last).shape[2:])
            for k, m in methods.items()
        }
    finally:
        for m in methods.values():
            m.remove()
    torch.testing.assert_close(logits, ref_logits)
    assert methods["cam"].target_layer == "class_layers.relu"
    assert methods["gc_fast"].uses_fast_path() is True and methods["gc_mid"].uses_fast_path() is False
    _close(out["gc_mid"], gradcam_reference(mid, g_mid))
    _close(out["hi_mid"], hirescam_reference(mid, g_mid))
    ref_last = gradcam_reference(last, g_last)
    _close(out["gc_fast"], ref_last)
    _close(out["gc_slow"], ref_last)
    n = math.prod(last.shape[2:])
    _close(out["cam"], n * ref_last)  # documented normalisation: CAM = N x Grad-CAM at the GAP layer


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_resnet_parity_and_resampling(spatial_dims, mode):
    """MONAI's torchvision-layout ResNet: Grad-CAM at layer3 vs the split network; output on the input grid."""
    net = small_resnet(spatial_dims)
    getattr(net, mode)()
    size = 32 if spatial_dims == 2 else 24
    x = torch.randn(2, 1, *([size] * spatial_dims))
    target = torch.tensor([1, 0])
    torch.manual_seed(1)
    ref_logits, inter = resnet_forward(net, x, "layer3")
    (g,) = torch.autograd.grad(target_score(ref_logits, target), [inter["layer3"]])
    ref = gradcam_reference(inter["layer3"], g)
    gc = GradCAM(net, "layer3")
    with gc.recording():
        logits = net(x)
        maps = gc.compute(logits, target)
    assert maps.shape == (2, 1, *([size] * spatial_dims))
    _close(maps, resize_saliency(ref, x.shape[2:]))
    assert gc.uses_fast_path() is False


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_fast_path_matches_gradient_path_in_train_mode(spatial_dims):
    net = small_densenet(spatial_dims).train()
    x = torch.randn(3, 1, *([16] * spatial_dims))
    target = torch.tensor([[1, 0, 1], [0, 0, 1], [1, 1, 0]])  # multi-hot: one map per class
    fast, slow = GradCAM(net, "class_layers.relu"), GradCAM(net, "class_layers.relu", fast_path=False)
    fast.register(), slow.register()
    try:
        logits = net(x)
        a, b = fast.compute(logits, target), slow.compute(logits, target)
    finally:
        fast.remove(), slow.remove()
    assert a.shape == (3, 3, *([16] * spatial_dims))
    _close(a, b)
    assert fast.uses_fast_path() is True and slow.uses_fast_path() is False


def test_multi_hot_gives_one_map_per_class_equal_to_index_maps():
    net = small_densenet(2).eval()
    x = torch.randn(2, 1, 16, 16)
    gc = GradCAM(net, "features.denseblock2")
    multi, _ = gc(x, torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))
    assert multi.shape == (2, 3, 16, 16)
    singles = torch.cat([gc(x, torch.full((2,), c))[0] for c in range(3)], dim=1)
    _close(multi, singles)


def test_decision_is_cached_per_mode():
    net = small_densenet(2)
    gc = GradCAM(net, "class_layers.relu")
    assert gc.uses_fast_path() is None
    net.eval()
    gc(torch.randn(2, 1, 16, 16), 0)
    assert gc.uses_fast_path() is True
    net.train()
    assert gc.uses_fast_path() is None
    gc(torch.randn(2, 1, 16, 16), 1)
    assert gc.uses_fast_path() is True
    assert gc.head._decisions == {False: True, True: True}


def test_gradients_reach_layers_before_and_after_the_target():
    """A loss on a mid-layer map trains the layers before it (through A) and after it, fc included (through dA)."""
    net = small_densenet(2).train()
    x = torch.randn(2, 1, 16, 16)
    gc = GradCAM(net, "features.denseblock2")
    maps, _ = gc(x, torch.tensor([0, 2]))
    mask = torch.zeros_like(maps)
    mask[..., 4:10, 4:10] = 1
    loss = (maps * (1 - mask)).sum() / maps.sum()
    # d(logit)/dA does not depend on the classifier bias, nor on the shift of the last BatchNorm (it only moves
    # the kinks of the ReLU after it): these two get no gradient, every other parameter must.
    exempt = {"class_layers.out.bias", "features.norm5.bias"}
    named = [(n, p) for n, p in net.named_parameters() if n not in exempt]
    grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    missing = [n for (n, _), g in zip(named, grads) if g is None or not g.abs().sum() > 0]
    assert missing == []


def test_fast_path_true_at_mid_layer_raises():
    gc = GradCAM(small_densenet(2).eval(), "features.denseblock2", fast_path=True)
    with pytest.raises(RuntimeError, match="fast_path=True but the output of 'features.denseblock2'"):
        gc(torch.randn(2, 1, 16, 16), 0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"target_layer": "features.denseblock9"}, ValueError, "closest names: features.denseblock"),
        ({"target_layer": None}, ValueError, "needs a target_layer"),
        ({"target_layer": "features", "fast_path": "yes"}, ValueError, "fast_path must be"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        GradCAM(small_densenet(2), **kwargs)


def test_torchvision_resnet18():
    torchvision = pytest.importorskip("torchvision")
    net = torchvision.models.resnet18(weights=None, num_classes=3).eval()
    x = torch.randn(2, 3, 64, 64)
    target = torch.tensor([0, 2])
    out = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    l3 = net.layer3(net.layer2(net.layer1(out)))
    l4 = net.layer4(l3)
    ref_logits = net.fc(l4.mean(dim=(2, 3)))
    g3, g4 = torch.autograd.grad(target_score(ref_logits, target), [l3, l4])
    cam, mid, last = CAM(net), GradCAM(net, "layer3"), GradCAM(net, "layer4")
    for m in (cam, mid, last):
        m.register()
    try:
        logits = net(x)
        c = cam.compute(logits, target, spatial_size=l4.shape[2:])
        a = mid.compute(logits, target, spatial_size=l3.shape[2:])
        b = last.compute(logits, target, spatial_size=l4.shape[2:])
    finally:
        for m in (cam, mid, last):
            m.remove()
    assert cam.target_layer == "layer4" and last.uses_fast_path() is True
    _close(a, gradcam_reference(l3, g3))
    _close(b, gradcam_reference(l4, g4))
    _close(c, math.prod(l4.shape[2:]) * gradcam_reference(l4, g4))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name, kwargs", [("cam", {}), ("gradcam", {"target_layer": "features.denseblock2"})])
def test_cuda_channels_last_autocast_matches_cpu(name, kwargs):
    from monai_explain.saliency import get_saliency_method

    net = small_densenet(2).eval()
    x, target = torch.randn(2, 1, 32, 32), torch.ones(2, 3)  # multi-hot: 3 maps per sample
    ref, _ = get_saliency_method(name, net, **kwargs)(x, target)
    gpu = net.cuda().to(memory_format=torch.channels_last)
    xg = x.cuda().contiguous(memory_format=torch.channels_last)
    maps, _ = get_saliency_method(name, gpu, **kwargs)(xg, target.cuda())
    assert maps.device.type == "cuda"
    _close(maps.cpu(), ref, rtol=2e-2)  # TF32 convolutions
    for dtype in (torch.float16, torch.bfloat16):
        with torch.autocast("cuda", dtype=dtype):
            low, _ = get_saliency_method(name, gpu, **kwargs)(xg, target.cuda())
        assert low.dtype == torch.float32 and torch.isfinite(low).all()
        _close(low.cpu(), ref, rtol=0.1)
