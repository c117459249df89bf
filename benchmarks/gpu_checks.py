"""GPU checks of the performance work (run by ``benchmarks/gpu_checks.sh``; needs CUDA).

1. No host synchronisation: one training step (saliency + explanation loss + backward + SGD step) per method under
   ``torch.cuda.set_sync_debug_mode("error")`` with the value checks on (asynchronous device assertions).
2. The closed-form BatchNorm double backward on the GPU (cuDNN BatchNorm in float32 / bf16 autocast, the native
   kernels in float64): parameter gradients of a full training step equal to PyTorch's own double backward, and
   running statistics identical, for every method that differentiates twice.

Prints one line per check and exits non-zero when one fails.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monai.networks.nets import DenseNet121

from monai_explain.losses import ExplanationLoss
from monai_explain.saliency import CAM, GradCAM, HiResCAM, InputGradient, InputXGradient

METHODS = {
    "cam": (CAM, {}),
    "gradcam_last": (GradCAM, {"target_layer": "class_layers.relu"}),
    "gradcam_mid": (GradCAM, {"target_layer": "features.denseblock3"}),
    "hirescam": (HiResCAM, {"target_layer": "features.denseblock3", "fast_path": False}),
    "input_gradient": (InputGradient, {}),
    "input_x_gradient": (InputXGradient, {}),
}


def _data(device, dtype=torch.float32, batch=4, size=64):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, size, size, generator=gen).to(device, dtype)
    y = torch.randint(0, 3, (batch,), generator=gen).to(device)
    mask = torch.zeros(batch, 1, size, size, device=device, dtype=dtype)
    mask[:, :, size // 4 : size // 2, size // 3 : 2 * size // 3] = 1
    return x, y, mask


def _step(net, method, x, y, mask, amp=False, optimizer=None):
    net.zero_grad(set_to_none=True)
    inputs = x.clone().requires_grad_(True) if method.needs_input_grad else x
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
        logits = net(inputs)
        loss = F.cross_entropy(logits.float(), y)
        saliency = method.compute(logits, y, inputs=inputs if method.needs_input_grad else None)
        loss = loss + ExplanationLoss(design="energy")(saliency, mask)
    loss.backward()
    if optimizer is not None:
        optimizer.step()


def check_no_sync(device) -> bool:
    ok = True
    x, y, mask = _data(device)
    for name, (cls, kwargs) in METHODS.items():
        torch.manual_seed(0)
        net = DenseNet121(spatial_dims=2, in_channels=1, out_channels=3).to(device).train()
        opt = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9)
        method = cls(net, **kwargs)
        with method.recording():
            _step(net, method, x, y, mask, optimizer=opt)  # the one-off fast-path decision may synchronise
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            try:
                _step(net, method, x, y, mask, optimizer=opt)
                result = "ok"
            except RuntimeError as e:
                result, ok = f"FAIL ({str(e).splitlines()[0]})", False
            finally:
                torch.cuda.set_sync_debug_mode("default")
        torch.cuda.synchronize()
        print(f"no host sync   {name:18s} {result}", flush=True)
    return ok


def check_gradients(device) -> bool:
    ok = True
    for dtype, amp, tol in ((torch.float64, False, 1e-9), (torch.float32, False, 1e-4), (torch.float32, True, 5e-2)):
        x, y, mask = _data(device, dtype)
        torch.manual_seed(0)
        base = DenseNet121(spatial_dims=2, in_channels=1, out_channels=3).to(device, dtype).train()
        for name in ("gradcam_mid", "hirescam", "input_gradient", "input_x_gradient"):
            cls, kwargs = METHODS[name]
            grads, states = {}, {}
            for bn in ("native", "exact"):
                net = copy.deepcopy(base)
                method = cls(net, **kwargs, batchnorm=bn)
                with method.recording():
                    _step(net, method, x, y, mask, amp=amp)
                grads[bn] = torch.cat([p.grad.flatten().double() for p in net.parameters() if p.grad is not None])
                states[bn] = net.state_dict()
            rel = float((grads["exact"] - grads["native"]).norm() / grads["native"].norm())
            same_stats = all(torch.equal(states["exact"][k], states["native"][k]) for k in states["native"])
            good = rel < tol and same_stats
            ok &= good
            label = f"{str(dtype).replace('torch.', '')}{' bf16-autocast' if amp else ''}"
            print(
                f"grad equality  {name:18s} {label:22s} rel L2 {rel:.2e} (tol {tol:.0e}), running stats "
                f"{'identical' if same_stats else 'DIFFER'}: {'ok' if good else 'FAIL'}",
                flush=True,
            )
    return ok


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device")
        return 2
    device = torch.device("cuda")
    ok = check_no_sync(device)
    ok &= check_gradients(device)
    print("ALL OK" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
