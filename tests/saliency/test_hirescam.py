from __future__ import annotations

import math

import pytest
import torch

from monai_explain.saliency import GradCAM, HiResCAM
from tests.saliency._reference import (
    densenet_forward,
    hirescam_reference,
    resnet_forward,
    small_densenet,
    small_resnet,
    target_score,
)


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4) -> None:
    scale = float(b.detach().abs().max())
    assert scale > 0
    torch.testing.assert_close(a, b, rtol=0.0, atol=rtol * scale)


@pytest.mark.parametrize(
    "make, layer, shape, mode",
    [
        (small_densenet, "features.denseblock2", (2, 1, 32, 32), "eval"),
        (small_densenet, "features.transition1", (2, 1, 16, 16, 16), "train"),
        (small_resnet, "layer3", (2, 1, 32, 32), "train"),
        (small_resnet, "layer2", (2, 1, 24, 24, 24), "eval"),
    ],
)
def test_parity_with_manual_split(make, layer, shape, mode):
    """HiResCAM = ReLU(sum_k dy/dA_k * A_k) with the gradient taken through the network run by hand."""
    net = make(len(shape) - 2)
    getattr(net, mode)()
    x = torch.randn(*shape)
    target = torch.tensor([0, 2])
    cut = layer.split(".")[-1]
    if make is small_densenet:
        ref_logits, inter = densenet_forward(net, x, cut)
    else:
        ref_logits, inter = resnet_forward(net, x, cut)
    a = inter[layer]
    (g,) = torch.autograd.grad(target_score(ref_logits, target), [a])
    hi = HiResCAM(net, layer)
    with hi.recording():
        logits = net(x)
        maps = hi.compute(logits, target, spatial_size=a.shape[2:])
    assert hi.uses_fast_path() is False
    _close(maps, hirescam_reference(a, g))


def test_equals_gradcam_and_cam_over_n_after_gap():
    """After GAP + linear the gradient is constant over space: HiResCAM = Grad-CAM there (fast or not)."""
    net = small_densenet(2).eval()
    x = torch.randn(2, 1, 32, 32)
    target = torch.tensor([[1, 0, 1], [1, 1, 0]])
    methods = [
        HiResCAM(net, "class_layers.relu"),
        HiResCAM(net, "class_layers.relu", fast_path=False),
        GradCAM(net, "class_layers.relu", fast_path=False),
    ]
    for m in methods:
        m.register()
    try:
        logits = net(x)
        maps = [m.compute(logits, target) for m in methods]
    finally:
        for m in methods:
            m.remove()
    assert methods[0].uses_fast_path() is True
    assert maps[0].shape == (2, 3, 32, 32)
    _close(maps[0], maps[1])
    _close(maps[1], maps[2])


def test_multi_hot_maps_equal_index_maps():
    net = small_resnet(2).eval()
    x = torch.randn(2, 1, 32, 32)
    hi = HiResCAM(net, "layer3")
    multi, _ = hi(x, torch.ones(2, 3))
    singles = torch.cat([hi(x, c)[0] for c in range(3)], dim=1)
    assert math.prod(multi.shape) == 2 * 3 * 32 * 32
    _close(multi, singles)
