"""Cost of explanation supervision: one training step with a saliency map + ExplanationLoss vs a plain step.

Workload: MONAI ``DenseNet121`` (1 input channel, 3 classes), one SGD step = forward, cross-entropy, backward,
``optimizer.step()``. The plain step is only that. Every other row adds, on the same model and batch, the
saliency map of the label class computed from that same forward (hooks registered on the network, as
``ExplanationLossHandler`` does) and ``ExplanationLoss(design="energy")`` against a random box mask, added to the
loss before the one backward:

- ``cam``: :class:`~monai_explain.saliency.CAM` (closed form from the classifier weights, no extra backward);
- ``gradcam_last``: :class:`~monai_explain.saliency.GradCAM` at ``class_layers.relu`` (fast path = CAM / N);
- ``gradcam_mid``: Grad-CAM at ``--mid-layer`` (default ``features.denseblock3``): one ``autograd.grad`` w.r.t.
  that activation with ``create_graph=True``, so the tail of the network is differentiated twice;
- ``input_gradient``: :class:`~monai_explain.saliency.InputGradient`: one ``autograd.grad`` w.r.t. the input
  with ``create_graph=True``, i.e. a double backward through the whole network (inherent to the method).

Timing: each step is synchronised (CUDA) and timed with ``time.perf_counter``; after ``--warmup`` steps per
method the methods are timed in interleaved rounds (plain, cam, ..., plain, cam, ...) so that drifting machine
load hits every row alike; the median of ``--steps`` steps is reported, with its ratio to the plain step.

Memory: on CUDA, the peak of ``torch.cuda.max_memory_allocated`` during one step (absolute: it includes the model,
the SGD state and the batch, which are the same for every row). On CPU, Python's ``tracemalloc`` does not see
torch's allocations; the figure is the growth of the process's peak resident set (``VmHWM``, reset through
``/proc/self/clear_refs`` before the step) over the resident set before the step, i.e. the step's transient
memory (activations, gradients, the graph). So that freed tensors really leave the resident set, memory is
measured in a child process started with ``MALLOC_MMAP_THRESHOLD_=65536`` (glibc then maps every block of
64 KiB or more separately and returns it on free), after one unmeasured step; small blocks and fragmentation
make the figure approximate. Timings run in the main process with the default allocator settings.

Configurations (``--config``; on CUDA the full sizes, on CPU the ``--quick`` sizes unless ``--full``):

============ =================== ==================
config       full (GPU)          quick (CPU default)
============ =================== ==================
2d-224       batch 32, 224^2     batch 4, 128^2
2d-512       batch 16, 512^2     batch 2, 256^2
3d-96        batch 4, 96^3       batch 2, 32^3
============ =================== ==================

On CUDA, ``cudnn.benchmark`` is on and model and batch use ``channels_last`` (``channels_last_3d``) memory format
(both for every row, plain included); ``--amp`` runs the step under bf16 autocast.

Usage::

    python benchmarks/bench_overhead.py --device cpu --quick [--threads 1] [--json out.json]
    python benchmarks/bench_overhead.py --device cuda [--config 2d-224 3d-96] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monai.networks.nets import DenseNet121

from monai_explain.losses import ExplanationLoss
from monai_explain.saliency import CAM, GradCAM, InputGradient, SaliencyMethod

CONFIGS = {
    # name: (spatial_dims, (batch, size) full, (batch, size) quick)
    "2d-224": (2, (32, 224), (4, 128)),
    "2d-512": (2, (16, 512), (2, 256)),
    "3d-96": (3, (4, 96), (2, 32)),
}
METHODS = ("plain", "cam", "gradcam_last", "gradcam_mid", "input_gradient")
TARGETS = {"cam": 1.10, "gradcam_last": 1.10, "gradcam_mid": 1.5, "input_gradient": 3.5}


def build_method(name: str, model: torch.nn.Module, mid_layer: str) -> SaliencyMethod | None:
    """The saliency method of a row (None for the plain step)."""
    if name == "plain":
        return None
    if name == "cam":
        return CAM(model)
    if name == "gradcam_last":
        return GradCAM(model, "class_layers.relu")
    if name == "gradcam_mid":
        return GradCAM(model, mid_layer)
    if name == "input_gradient":
        return InputGradient(model)
    raise ValueError(f"unknown method '{name}'; choose from {', '.join(METHODS)}.")


def random_boxes(batch: int, spatial: tuple[int, ...], device: torch.device, gen: torch.Generator) -> torch.Tensor:
    """One random box per sample covering 1/8 to 1/2 of each side."""
    mask = torch.zeros(batch, 1, *spatial, device=device)
    for b in range(batch):
        sl = [b, 0]
        for s in spatial:
            w = int(torch.randint(max(1, s // 8), max(2, s // 2), (1,), generator=gen))
            o = int(torch.randint(0, s - w + 1, (1,), generator=gen))
            sl.append(slice(o, o + w))
        mask[tuple(sl)] = 1.0
    return mask


def make_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    method: SaliencyMethod | None,
    expl_loss: ExplanationLoss,
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    amp: bool,
    lam: float = 1.0,
) -> Callable[[], float]:
    """A closure running one training step; returns the loss value."""
    device_type = x.device.type

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        inputs = x.detach().requires_grad_(True) if method is not None and method.needs_input_grad else x
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=amp):
            logits = model(inputs)
            loss = F.cross_entropy(logits.float(), y)
            if method is not None:
                saliency = method.compute(logits, y, inputs=inputs, spatial_size=mask.shape[2:])
                loss = loss + lam * expl_loss(saliency, mask)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_kib() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in KiB (Linux)."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                values[line.split(":")[0]] = int(line.split()[1])
    return values["VmRSS"], values["VmHWM"]


def measure_memory_mib(step: Callable[[], float], device: torch.device) -> float:
    """Peak memory of one step (CUDA: max allocated, absolute; CPU: peak-RSS growth during the step)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        before, _ = _rss_kib()
        step()
        _, peak = _rss_kib()
        return (peak - before) / 1024
    except OSError:
        return float("nan")


def cpu_memory_in_child(name: str, args: argparse.Namespace) -> dict[str, float]:
    """CPU memory rows of one config, measured in a fresh process where glibc returns freed blocks to the OS."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "memory.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--device", "cpu", "--memory-only", "--config", name]
        cmd += ["--quick" if args.quick else "--full", "--methods", *args.methods, "--mid-layer", args.mid_layer]
        cmd += ["--batch", str(args.batch), "--threads", str(torch.get_num_threads()), "--json", str(out)]
        cmd += ["--amp"] * args.amp + ["--no-channels-last"] * (not args.channels_last)
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
        done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"[{name}] memory pass failed: {done.stderr.strip().splitlines()[-1:]}", flush=True)
            return {m: float("nan") for m in args.methods}
        return json.loads(out.read_text())["results"][0]["memory"]


def run_config(name: str, args: argparse.Namespace, device: torch.device) -> list[dict]:
    dims, full, quick = CONFIGS[name]
    batch, size = quick if args.quick else full
    if args.batch:
        batch = args.batch
    spatial = (size,) * dims
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = DenseNet121(spatial_dims=dims, in_channels=1, out_channels=3).to(device).train()
    x = torch.randn(batch, 1, *spatial, generator=gen).to(device)
    y = torch.randint(0, 3, (batch,), generator=gen).to(device)
    mask = random_boxes(batch, spatial, device, gen)
    if args.channels_last:
        fmt = torch.channels_last if dims == 2 else torch.channels_last_3d
        model = model.to(memory_format=fmt)
        x = x.contiguous(memory_format=fmt)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9)
    expl = ExplanationLoss(design="energy")
    methods = {m: build_method(m, model, args.mid_layer) for m in args.methods}
    steps = {}
    for m, method in methods.items():
        steps[m] = make_step(model, optimizer, method, expl, x, y, mask, args.amp)

    def timed(m: str) -> float:
        method = methods[m]
        if method is not None:
            method.register()
        try:
            _sync(device)
            t0 = time.perf_counter()
            steps[m]()
            _sync(device)
            return time.perf_counter() - t0
        finally:
            if method is not None:
                method.remove()

    if args.memory_only:  # child process of cpu_memory_in_child: one unmeasured, then one measured step
        memory = {}
        for m, method in methods.items():
            if method is not None:
                method.register()
            try:
                steps[m]()
                memory[m] = measure_memory_mib(steps[m], device)
            finally:
                if method is not None:
                    method.remove()
        return [{"config": name, "memory": memory}]

    rows = []
    try:
        for m in methods:
            for _ in range(args.warmup):
                timed(m)
        times: dict[str, list[float]] = {m: [] for m in methods}
        for _ in range(args.steps):
            for m in methods:
                times[m].append(timed(m))
        memory = {}
        if device.type == "cpu":
            memory = cpu_memory_in_child(name, args)
        else:
            for m, method in methods.items():
                if method is not None:
                    method.register()
                try:
                    memory[m] = measure_memory_mib(steps[m], device)
                finally:
                    if method is not None:
                        method.remove()
    except torch.cuda.OutOfMemoryError as e:  # report what fits, keep going with the next config
        print(f"[{name}] out of memory: {str(e).splitlines()[0]}", flush=True)
        return [{"config": name, "error": "out of memory"}]
    plain = statistics.median(times["plain"]) if "plain" in times else float("nan")
    plain_mem = memory.get("plain", float("nan"))
    for m, method in methods.items():
        med = statistics.median(times[m])
        fast = getattr(method, "uses_fast_path", lambda: None)()
        rows.append(
            {
                "config": name,
                "spatial_dims": dims,
                "batch": batch,
                "size": size,
                "method": m,
                "fast_path": fast,
                "median_s": med,
                "min_s": min(times[m]),
                "ratio": med / plain,
                "target": TARGETS.get(m),
                "memory_mib": memory[m],
                "memory_ratio": memory[m] / plain_mem if plain_mem > 0 else float("nan"),
            }
        )
    methods.clear()
    steps.clear()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="quick", action="store_true", default=None, help="small sizes (CPU default)")
    size.add_argument("--full", dest="quick", action="store_false", help="full sizes (CUDA default)")
    parser.add_argument("--config", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--mid-layer", default="features.denseblock3")
    parser.add_argument("--batch", type=int, default=0, help="override the batch size of every config")
    parser.add_argument("--steps", type=int, default=0, help="timed steps per method (default 10 CUDA, 5 CPU)")
    parser.add_argument("--warmup", type=int, default=0, help="warm-up steps per method (default 3 CUDA, 1 CPU)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false", default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but CUDA is not available")
    if args.quick is None:
        args.quick = device.type == "cpu"
    if args.channels_last is None:
        args.channels_last = device.type == "cuda"
    args.steps = args.steps or (10 if device.type == "cuda" else 5)
    args.warmup = args.warmup or (3 if device.type == "cuda" else 1)
    if "plain" not in args.methods:
        args.methods = ["plain", *args.methods]
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    env = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "amp": args.amp,
        "channels_last": args.channels_last,
        "quick": args.quick,
        "memory": "cuda max_memory_allocated (absolute)" if device.type == "cuda" else "peak RSS growth in a step",
    }
    if args.memory_only:
        rows = [r for name in args.config for r in run_config(name, args, device)]
        args.json.write_text(json.dumps({"env": env, "results": rows}))
        return
    print(f"# {env}", flush=True)
    header = f"{'config':8s} {'B':>3s} {'size':>5s} {'method':15s} {'fast':>5s} {'median s':>9s} {'ratio':>6s} "
    header += f"{'target':>6s} {'mem MiB':>9s} {'mem x':>6s}"
    all_rows = []
    for name in args.config:
        rows = run_config(name, args, device)
        all_rows.extend(rows)
        print(header)
        for r in rows:
            if "error" in r:
                print(f"{r['config']:8s} {r['error']}")
                continue
            target = f"{r['target']:.2f}" if r["target"] else "-"
            fast = {True: "yes", False: "no", None: "-"}[r["fast_path"]]
            print(
                f"{r['config']:8s} {r['batch']:3d} {r['size']:5d} {r['method']:15s} {fast:>5s} {r['median_s']:9.4f} "
                f"{r['ratio']:6.2f} {target:>6s} {r['memory_mib']:9.1f} {r['memory_ratio']:6.2f}",
                flush=True,
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"env": env, "results": all_rows}, indent=2))


if __name__ == "__main__":
    main()
