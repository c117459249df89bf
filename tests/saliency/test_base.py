from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from monai.data import MetaTensor

from monai_explain.saliency import CAM, GradCAM, InputGradient, get_saliency_method, parse_target
from tests.saliency._reference import all_hooks_empty, small_densenet

METHODS = [
    ("cam", {}),
    ("gradcam", {"target_layer": "class_layers.relu"}),
    ("gradcam", {"target_layer": "features.denseblock2"}),
    ("hirescam", {"target_layer": "features.transition1"}),
    ("input_gradient", {}),
    ("input_x_gradient", {}),
]


@pytest.mark.parametrize(
    "target, expected",
    [
        (1, [1, 1]),
        (torch.tensor([2, 0]), [2, 0]),
        (torch.tensor([[2], [1]]), [2, 1]),  # (B, 1) class indices
        (torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]), None),  # multi-hot (B, C): one map per class
        (torch.tensor([[True, False, True], [False, True, False]]), None),
    ],
)
def test_parse_target(target, expected):
    out = parse_target(target, torch.randn(2, 3))
    assert (out is None and expected is None) or out.tolist() == expected


@pytest.mark.parametrize(
    "target, logits_shape, match",
    [
        (torch.tensor([0, 3]), (2, 3), "out of range \\[0, 3\\): got values in \\[0, 3\\]"),
        (torch.tensor([-1, 0]), (2, 3), "out of range"),
        (torch.tensor([0.0, 1.0]), (2, 3), "integer tensor, got dtype torch.float32"),
        (torch.tensor([0, 1, 1]), (2, 3), "fits neither class indices \\(B,\\) = \\(2,\\)"),
        (torch.ones(2, 4), (2, 3), "multi-hot \\(B, C\\) = \\(2, 3\\)"),
        (0, (2, 3, 4), "logits must be a \\(B, C\\) tensor"),
    ],
)
def test_parse_target_errors(target, logits_shape, match):
    with pytest.raises(ValueError, match=match):
        parse_target(target, torch.randn(*logits_shape))


def test_parse_target_type_error_and_non_tensor_model_output():
    with pytest.raises(TypeError, match="target must be an int or a tensor, got str"):
        parse_target("cat", torch.randn(2, 3))

    class _DictOutput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = small_densenet(2)

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"logits": self.net(x)}

    net = _DictOutput()
    with pytest.raises(TypeError, match="must return a \\(B, C\\) logits tensor, got dict"):
        CAM(net)(torch.randn(2, 1, 32, 32), 0)
    assert all_hooks_empty(net)


@pytest.mark.parametrize("name, kwargs", METHODS)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_rules_no_hooks_no_grad_mode_untouched(name, kwargs, mode):
    """DESIGN rules: no hook left, no parameter .grad written, train/eval flags untouched, maps on the input grid."""
    net = small_densenet(2)
    getattr(net, mode)()
    net.features.denseblock1.eval()  # a mixed state that must survive as is
    flags = [m.training for m in net.modules()]
    method = get_saliency_method(name, net, **kwargs)
    maps, logits = method(torch.randn(2, 1, 32, 32), torch.tensor([0, 2]))
    loss = maps.mean() + F.cross_entropy(logits, torch.tensor([0, 2]))
    assert loss.requires_grad
    assert maps.shape == (2, 1, 32, 32) and torch.isfinite(maps).all() and maps.min() >= 0
    assert all_hooks_empty(net)
    assert all(p.grad is None for p in net.parameters())
    assert [m.training for m in net.modules()] == flags


@pytest.mark.parametrize("name, kwargs", METHODS)
def test_hooks_removed_after_exception_inside_recording(name, kwargs):
    net = small_densenet(2).eval()
    method = get_saliency_method(name, net, **kwargs)
    with pytest.raises(ZeroDivisionError), method.recording():
        assert not all_hooks_empty(net)
        net(torch.randn(2, 1, 32, 32))
        _ = 1 / 0
    assert all_hooks_empty(net) and not method.is_registered


@pytest.mark.parametrize("name, kwargs", METHODS)
def test_cpu_autocast_bf16_is_finite(name, kwargs):
    net = small_densenet(2).eval()
    method = get_saliency_method(name, net, **kwargs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        maps, logits = method(torch.randn(2, 1, 32, 32), torch.tensor([1, 2]))
    assert logits.dtype == torch.bfloat16
    assert maps.dtype == torch.float32 and torch.isfinite(maps).all() and maps.abs().sum() > 0


def test_persistent_registration_and_release():
    """register() keeps hooks over many forwards (recording() inside leaves them); recordings are dropped
    after compute() and replaced at the next forward."""
    net = small_densenet(2).train()
    gc = GradCAM(net, "features.denseblock2").register()
    handles = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in net.modules())
    # root pre-hook, root hook (the recorded logits, for the stale-forward check), layer hook, classifier pre-hook
    assert gc.register() is gc and handles == 4
    for _ in range(2):
        logits = net(torch.randn(2, 1, 32, 32))
        assert gc._activation is not None
        gc.compute(logits, 0)
        assert gc._activation is None
    with gc.recording():
        logits = net(torch.randn(2, 1, 32, 32))
    assert gc.is_registered
    assert gc.compute(logits, 1).shape == (2, 1, 32, 32)
    with pytest.raises(RuntimeError, match="nothing recorded at 'features.denseblock2'"):
        gc.compute(logits, 0)
    gc.remove()
    assert all_hooks_empty(net)


def test_gradient_method_under_no_grad_forward_is_refused():
    net = small_densenet(2).eval()
    gc = GradCAM(net, "features.denseblock2")
    with gc.recording():
        with torch.no_grad():
            logits = net(torch.randn(2, 1, 32, 32))
        with pytest.raises(RuntimeError, match="run the forward with gradients enabled"):
            gc.compute(logits, 0)


@pytest.mark.parametrize(
    "build",
    [
        lambda net: GradCAM(net, "features.denseblock2", fast_path=False),
        lambda net: CAM(net),  # no autograd involved: CAM used to map the latest forward silently
        lambda net: CAM(net, "class_layers.relu"),
    ],
)
def test_logits_of_another_forward_are_refused(build):
    torch.manual_seed(0)
    net = small_densenet(2).eval()
    method = build(net)
    with method.recording():
        old = net(torch.randn(2, 1, 32, 32))
        net(torch.randn(2, 1, 32, 32))
        with pytest.raises(RuntimeError, match="not the output of the forward recorded last"):
            method.compute(old, 0)
        # the logits of the recorded forward, also as a copy, are accepted
        new = net(torch.randn(2, 1, 32, 32))
        assert method.compute(new.clone(), 0).shape == (2, 1, 32, 32)


def test_metatensor_input_gives_plain_tensor_on_the_input_grid():
    net = small_densenet(2).eval()
    maps, _ = CAM(net)(MetaTensor(torch.randn(2, 1, 32, 32)), 1)
    assert type(maps) is torch.Tensor and maps.shape == (2, 1, 32, 32)
    smaller, _ = InputGradient(net)(torch.randn(2, 1, 32, 32), 1)
    maps = GradCAM(net, "features.denseblock2")
    with maps.recording():
        out = maps.compute(net(torch.randn(2, 1, 32, 32)), 0, spatial_size=(8, 8))
    assert out.shape == (2, 1, 8, 8) and smaller.shape == (2, 1, 32, 32)


_DDP_SCRIPT = """
import faulthandler, sys
from datetime import timedelta
faulthandler.dump_traceback_later(100, exit=True)
import torch, torch.distributed as dist, torch.nn.functional as F
from monai_explain.saliency import CAM, GradCAM
from tests.saliency._reference import all_hooks_empty, small_densenet
torch.manual_seed(0)
torch.set_num_threads(1)
dist.init_process_group("gloo", init_method="file://" + sys.argv[1], rank=0, world_size=1, timeout=timedelta(seconds=60))
try:
    net = small_densenet(2).train()
    ddp = torch.nn.parallel.DistributedDataParallel(net)
    x, y = torch.randn(2, 1, 32, 32), torch.tensor([1, 2])
    wrapped = GradCAM(ddp, "features.denseblock2")
    bare = GradCAM(net, "module.features.denseblock2")
    assert wrapped.target_layer == "module.features.denseblock2" and bare.target_layer == "features.denseblock2"
    cam = CAM(ddp)
    for m in (wrapped, bare, cam):
        m.register()
    logits = ddp(x)
    a, b, c = wrapped.compute(logits, y), bare.compute(logits, y), cam.compute(logits, y)
    assert cam.target_layer == "module.class_layers.relu", cam.target_layer
    assert a.shape == (2, 1, 32, 32) and float(a.abs().sum()) > 0
    torch.testing.assert_close(a, b)
    (F.cross_entropy(logits, y) + a.mean() + c.mean()).backward()
    assert all(p.grad is not None for p in net.parameters())
    for m in (wrapped, bare, cam):
        m.remove()
    assert all_hooks_empty(ddp)
finally:
    dist.destroy_process_group()
print("DDP-OK")
"""


def test_distributed_data_parallel_names_and_training_step(tmp_path):
    """Layer names work with or without 'module.'; hooks fire inside DDP; a full step runs through DDP.

    Runs in a child process (gloo, world size 1) with a hard time limit, so that a stuck process group can
    never hang the test session; a timeout fails the test with the child's stack dump.
    """
    if not dist.is_available():
        pytest.fail("torch.distributed is not available in this build")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    cmd = [sys.executable, "-c", _DDP_SCRIPT, str(tmp_path / "store")]
    try:
        done = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=150, check=False)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"DDP child process timed out; output:\n{e.stdout}\n{e.stderr}")
    assert done.returncode == 0 and "DDP-OK" in done.stdout, done.stderr[-3000:]
