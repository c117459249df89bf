"""No host synchronisation in a training step with a saliency term: device-to-host reads are counted with a
dispatch mode (``aten._local_scalar_dense`` is what ``.item()``, ``bool(tensor)``, ``int(tensor)`` dispatch to;
``nonzero``-like ops have data-dependent shapes), which works on the CPU as well."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.networks.nets import DenseNet
from torch.utils._python_dispatch import TorchDispatchMode

from monai_explain.losses import ExplanationLoss
from monai_explain.saliency import CAM, GradCAM, HiResCAM, InputGradient, InputXGradient
from monai_explain.utils import value_checks

SYNC_OPS = {"_local_scalar_dense", "nonzero", "is_nonzero", "masked_select", "unique", "_unique2"}


class SyncCounter(TorchDispatchMode):
    """Counts dispatched ops that read device values on the host."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in SYNC_OPS:
            self.calls.append(name)
        return func(*args, **(kwargs or {}))


def _step(method_cls, kwargs, target):
    torch.manual_seed(0)
    net = DenseNet(spatial_dims=2, in_channels=1, out_channels=3, init_features=4, growth_rate=4, block_config=(2, 2))
    x = torch.randn(2, 1, 16, 16)
    mask = torch.zeros(2, 1, 16, 16)
    mask[:, :, 3:9, 4:12] = 1.0
    method = method_cls(net, **kwargs)
    loss_fn = ExplanationLoss(design="energy")

    def step():
        inputs = x.clone().requires_grad_(True)
        logits = net(inputs)
        saliency = method.compute(logits, target, inputs=inputs if method.needs_input_grad else None)
        loss = F.cross_entropy(logits, torch.tensor([0, 2])) + loss_fn(saliency, mask)
        loss.backward()

    with method.recording():
        step()  # first step: the one-off fast-path decision of Grad-CAM / CAM may read values
        counter = SyncCounter()
        with counter:
            step()
    return counter.calls


METHODS = [
    (CAM, {}),
    (GradCAM, {"target_layer": "class_layers.relu"}),
    (GradCAM, {"target_layer": "features.denseblock1"}),
    (HiResCAM, {"target_layer": "features.denseblock1", "fast_path": False}),
    (InputGradient, {}),
    (InputXGradient, {}),
]


@pytest.mark.parametrize("method_cls,kwargs", METHODS, ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize("multi_hot", [False, True])
def test_training_step_without_value_checks_reads_nothing_on_the_host(method_cls, kwargs, multi_hot):
    target = F.one_hot(torch.tensor([0, 2]), 3).float() if multi_hot else torch.tensor([0, 2])
    with value_checks(False):
        calls = _step(method_cls, kwargs, target)
    assert calls == []


def test_training_step_with_cpu_value_checks_counts_them():
    """On the CPU the checks raise clear errors at once: one host read per check (target range, finite saliency,
    mask range); on an accelerator they are asynchronous device assertions instead (see gpu_checks.sh)."""
    calls = _step(InputGradient, {}, torch.tensor([0, 2]))
    assert calls == ["_local_scalar_dense"] * 3
