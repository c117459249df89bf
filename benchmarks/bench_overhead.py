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
- ``hirescam``: :class:`~monai_explain.saliency.HiResCAM` at ``--mid-layer`` (off the fast path);
- ``input_gradient``: :class:`~monai_explain.saliency.InputGradient`: one ``autograd.grad`` w.r.t. the input
  with ``create_graph=True``, i.e. a double backward through the whole network (inherent to the method);
- ``input_x_gradient``: :class:`~monai_explain.saliency.InputXGradient`, the same double backward.

Variants of every method row (``--variants``), all in one process with the same model, batch and settings:

- ``naive``: a straightforward reference written here without the package (a forward hook, ``autograd.grad`` and
  the map formula, the classifier weights for CAM), with PyTorch's own BatchNorm;
- ``native``: the package with ``batchnorm="native"`` (PyTorch's BatchNorm double backward);
- ``fused``: the package default, ``batchnorm="exact"`` (closed-form BatchNorm double backward, eager, or
  compiled with ``--compile-bn``).

Machine-independent counts (``--counts``): one step of each row run under a ``TorchDispatchMode`` that adds up
FLOPs with the formulas of :class:`torch.utils.flop_counter.FlopCounterMode` (matrix products and convolutions),
counts dispatched aten operations (view/alias ops excluded: they launch no kernel) and
estimates bytes moved as the sum of the sizes of each operation's tensor inputs and outputs. Reported as ratios
to the plain step, so progress shows without a GPU.

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

    python benchmarks/bench_overhead.py --device cpu --quick [--threads 1] [--counts] [--json out.json] [--md out.md]
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
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monai.networks.nets import DenseNet121

from monai_explain.losses import ExplanationLoss
from monai_explain.saliency import (
    CAM,
    GradCAM,
    HiResCAM,
    InputGradient,
    InputXGradient,
    SaliencyMethod,
    set_batchnorm_compile,
)
from monai_explain.utils import value_checks

CONFIGS = {
    # name: (spatial_dims, (batch, size) full, (batch, size) quick)
    "2d-224": (2, (32, 224), (4, 128)),
    "2d-512": (2, (16, 512), (2, 256)),
    "3d-96": (3, (4, 96), (2, 32)),
}
METHODS = ("plain", "cam", "gradcam_last", "gradcam_mid", "hirescam", "input_gradient", "input_x_gradient")
VARIANTS = ("naive", "native", "fused")
TARGETS = {
    "cam": 1.10,
    "gradcam_last": 1.10,
    "gradcam_mid": 1.3,
    "hirescam": 1.3,
    "input_gradient": 3.0,
    "input_x_gradient": 3.0,
}
LAST_LAYER = "class_layers.relu"


def build_method(name: str, variant: str, model: torch.nn.Module, mid_layer: str) -> SaliencyMethod | None:
    """The package's saliency method of a row (None for the plain step and the naive variant)."""
    if name == "plain" or variant == "naive":
        return None
    bn = "native" if variant == "native" else "exact"
    if name == "cam":
        return CAM(model)
    if name == "gradcam_last":
        return GradCAM(model, LAST_LAYER, batchnorm=bn)
    if name == "gradcam_mid":
        return GradCAM(model, mid_layer, batchnorm=bn)
    if name == "hirescam":
        return HiResCAM(model, mid_layer, fast_path=False, batchnorm=bn)
    if name == "input_gradient":
        return InputGradient(model, batchnorm=bn)
    if name == "input_x_gradient":
        return InputXGradient(model, batchnorm=bn)
    raise ValueError(f"unknown method '{name}'; choose from {', '.join(METHODS)}.")


class NaiveSaliency:
    """The reference: what one would write without the package (PyTorch's BatchNorm, a hook, ``autograd.grad``)."""

    def __init__(self, name: str, model: torch.nn.Module, mid_layer: str) -> None:
        self.name, self.model = name, model
        layer = {"cam": LAST_LAYER, "gradcam_last": LAST_LAYER, "gradcam_mid": mid_layer, "hirescam": mid_layer}
        self.layer = dict(model.named_modules()).get(layer.get(name, ""), None)
        self.needs_input_grad = name in ("input_gradient", "input_x_gradient")
        self.activation: torch.Tensor | None = None
        self.handle = None

    def register(self) -> None:
        if self.layer is not None:
            self.handle = self.layer.register_forward_hook(lambda m, a, out: setattr(self, "activation", out))

    def remove(self) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
        self.activation = None

    def compute(self, logits: torch.Tensor, y: torch.Tensor, inputs: torch.Tensor, spatial_size) -> torch.Tensor:
        score = logits.gather(1, y[:, None]).sum()
        if self.needs_input_grad:
            (g,) = torch.autograd.grad(score, inputs, create_graph=True)
            attr = g if self.name == "input_gradient" else inputs * g
            return attr.abs().sum(1, keepdim=True).float()
        a = self.activation
        if self.name == "cam":
            w = self.model.class_layers.out.weight[y]  # (B, K)
            cam = F.relu(torch.einsum("bk,bk...->b...", w.to(a.dtype), a))[:, None]
        else:
            (g,) = torch.autograd.grad(score, a, create_graph=True)
            if self.name == "hirescam":
                cam = F.relu((g * a).sum(1, keepdim=True))
            else:
                alpha = g.mean(dim=tuple(range(2, g.ndim)), keepdim=True)
                cam = F.relu((alpha * a).sum(1, keepdim=True))
        mode = "bilinear" if cam.ndim == 4 else "trilinear"
        return F.interpolate(cam.float(), size=tuple(spatial_size), mode=mode, align_corners=False)


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
    method: SaliencyMethod | NaiveSaliency | None,
    expl_loss: ExplanationLoss,
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    amp: bool,
    lam: float = 1.0,
) -> Callable[[], torch.Tensor]:
    """A closure running one training step; returns the (device) loss, no host synchronisation."""
    device_type = x.device.type

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        inputs = x.detach().requires_grad_(True) if method is not None and method.needs_input_grad else x
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=amp):
            logits = model(inputs)
            loss = F.cross_entropy(logits.float(), y)
            if isinstance(method, NaiveSaliency):
                saliency = method.compute(logits, y, inputs, mask.shape[2:])
                loss = loss + lam * expl_loss(saliency, mask)
            elif method is not None:
                saliency = method.compute(logits, y, inputs=inputs, spatial_size=mask.shape[2:])
                loss = loss + lam * expl_loss(saliency, mask)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


# -------------------------------------------------------------------------------------------------------- counts
_VIEW_OPS = {
    "view", "_unsafe_view", "reshape", "expand", "as_strided", "t", "transpose", "permute", "unsqueeze", "squeeze",
    "select", "slice", "detach", "alias", "unbind", "split", "split_with_sizes", "chunk", "narrow", "view_as",
    "_reshape_alias", "lift_fresh", "unfold", "diagonal", "expand_as", "flatten", "_local_scalar_dense",
    "promote_types",
}  # fmt: skip


def _tensors(obj) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _tensors(o)]
    return []


class OpCounter(TorchDispatchMode):
    """Counts dispatched aten operations (views excluded), the bytes of their tensor inputs and outputs, and FLOPs
    with the formulas of :class:`torch.utils.flop_counter.FlopCounterMode` (matrix products and convolutions;
    used directly: that mode's module tracking hooks break ``autograd.grad`` with respect to a leaf input)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0
        self.bytes = 0
        self.flops = 0
        self.by_name: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket in flop_registry:
            self.flops += int(flop_registry[func.overloadpacket](*args, **(kwargs or {}), out_val=out))
        name = func.overloadpacket.__name__
        if name not in _VIEW_OPS:
            self.ops += 1
            self.by_name[name] += 1
            for t in _tensors(args) + _tensors(kwargs or {}) + _tensors(out):
                self.bytes += t.numel() * t.element_size()
        return out


def count_step(step: Callable[[], torch.Tensor]) -> dict[str, float]:
    """FLOPs, dispatched ops and bytes moved by one step."""
    counter = OpCounter()
    with counter:
        step()
    return {"flops": float(counter.flops), "ops": float(counter.ops), "bytes": float(counter.bytes)}


# -------------------------------------------------------------------------------------------------------- memory
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


def measure_memory_mib(step: Callable[[], torch.Tensor], device: torch.device) -> float:
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
        cmd += ["--variants", *args.variants]
        cmd += ["--batch", str(args.batch), "--threads", str(torch.get_num_threads()), "--json", str(out)]
        cmd += ["--amp"] * args.amp + ["--no-channels-last"] * (not args.channels_last)
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
        done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"[{name}] memory pass failed: {done.stderr.strip().splitlines()[-1:]}", flush=True)
            return {}
        return json.loads(out.read_text())["results"][0]["memory"]


# ----------------------------------------------------------------------------------------------------------- run
def row_keys(args: argparse.Namespace) -> list[tuple[str, str]]:
    keys = [("plain", "-")]
    for m in args.methods:
        if m != "plain":
            keys += [(m, v) for v in args.variants]
    return keys


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
    keys = row_keys(args)
    methods: dict[tuple[str, str], SaliencyMethod | NaiveSaliency | None] = {}
    for m, v in keys:
        methods[m, v] = (
            NaiveSaliency(m, model, args.mid_layer) if v == "naive" else build_method(m, v, model, args.mid_layer)
        )
    steps = {k: make_step(model, optimizer, meth, expl, x, y, mask, args.amp) for k, meth in methods.items()}

    def registered(k, fn):
        method = methods[k]
        if method is not None:
            method.register()
        try:
            return fn()
        finally:
            if method is not None:
                method.remove()

    def timed(k) -> float:
        def run() -> float:
            _sync(device)
            t0 = time.perf_counter()
            steps[k]()
            _sync(device)
            return time.perf_counter() - t0

        return registered(k, run)

    if args.memory_only:  # child process of cpu_memory_in_child: one unmeasured, then one measured step
        memory = {}
        for k in keys:
            registered(k, steps[k])
            memory["/".join(k)] = registered(k, lambda k=k: measure_memory_mib(steps[k], device))
        return [{"config": name, "memory": memory}]

    counts: dict[tuple[str, str], dict[str, float]] = {}
    patched = {
        k: registered(k, lambda k=k: len(getattr(methods[k], "patched_batchnorms", [])))
        for k in keys
        if methods[k] is not None
    }
    try:
        for k in keys:
            for _ in range(args.warmup):
                timed(k)
        times: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
        for _ in range(args.steps):
            for k in keys:
                times[k].append(timed(k))
        memory: dict[str, float] = {}
        if args.memory:
            if device.type == "cpu":
                memory = cpu_memory_in_child(name, args)
            else:
                for k in keys:
                    memory["/".join(k)] = registered(k, lambda k=k: measure_memory_mib(steps[k], device))
        if args.counts:
            for k in keys:
                counts[k] = registered(k, lambda k=k: count_step(steps[k]))
    except torch.cuda.OutOfMemoryError as e:  # report what fits, keep going with the next config
        print(f"[{name}] out of memory: {str(e).splitlines()[0]}", flush=True)
        return [{"config": name, "error": "out of memory"}]
    plain = statistics.median(times["plain", "-"])
    plain_mem = memory.get("plain/-", float("nan"))
    rows = []
    for k in keys:
        m, v = k
        med = statistics.median(times[k])
        mem = memory.get("/".join(k), float("nan"))
        row = {
            "config": name,
            "spatial_dims": dims,
            "batch": batch,
            "size": size,
            "dtype": "bf16" if args.amp else "fp32",
            "method": m,
            "variant": v,
            "fast_path": getattr(methods[k], "uses_fast_path", lambda: None)(),
            "patched_bn": patched.get(k, 0),
            "median_s": med,
            "min_s": min(times[k]),
            "ratio": med / plain,
            "target": TARGETS.get(m),
            "memory_mib": mem,
            "memory_ratio": mem / plain_mem if plain_mem > 0 else float("nan"),
        }
        if k in counts:
            row.update({c: counts[k][c] for c in ("flops", "ops", "bytes")})
            row.update(
                {f"{c}_ratio": counts[k][c] / max(counts["plain", "-"][c], 1.0) for c in ("flops", "ops", "bytes")}
            )
        rows.append(row)
    methods.clear()
    steps.clear()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def format_table(rows: list[dict]) -> str:
    """A Markdown table of the rows."""
    has_counts = any("ops" in r for r in rows)
    cols = [
        "config",
        "dtype",
        "B",
        "size",
        "method",
        "variant",
        "BN",
        "median s",
        "ratio",
        "target",
        "mem MiB",
        "mem x",
    ]
    if has_counts:
        cols += ["FLOPs x", "ops", "ops x", "bytes x"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['config']} | {r['error']} |")
            continue
        cells = [
            r["config"], r["dtype"], str(r["batch"]), str(r["size"]), r["method"], r["variant"], str(r["patched_bn"]),
            f"{r['median_s']:.4f}", f"{r['ratio']:.2f}", f"{r['target']:.2f}" if r["target"] else "-",
            f"{r['memory_mib']:.0f}", f"{r['memory_ratio']:.2f}",
        ]  # fmt: skip
        if has_counts:
            cells += [
                f"{r.get('flops_ratio', float('nan')):.2f}", f"{r.get('ops', float('nan')):.0f}",
                f"{r.get('ops_ratio', float('nan')):.2f}", f"{r.get('bytes_ratio', float('nan')):.2f}",
            ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(args: argparse.Namespace, env: dict, rows: list[dict]) -> None:
    """The JSON and Markdown outputs requested on the command line."""
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"env": env, "results": rows}, indent=2))
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        text = f"# Overhead of explanation supervision\n\n- command: `{env['command']}`\n- commit: {env['commit']}\n"
        text += f"- time (UTC): {env['time_utc']}\n- environment: {env}\n\n{format_table(rows)}\n"
        args.md.write_text(text)


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="quick", action="store_true", default=None, help="small sizes (CPU default)")
    size.add_argument("--full", dest="quick", action="store_false", help="full sizes (CUDA default)")
    parser.add_argument("--config", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--mid-layer", default="features.denseblock3")
    parser.add_argument("--batch", type=int, default=0, help="override the batch size of every config")
    parser.add_argument("--steps", type=int, default=0, help="timed steps per row (default 10 CUDA, 3 CPU)")
    parser.add_argument("--warmup", type=int, default=0, help="warm-up steps per row (default 3 CUDA, 1 CPU)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false", default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    parser.add_argument("--counts", action="store_true", help="also count FLOPs, dispatched ops and bytes per row")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory pass")
    parser.add_argument("--compile-bn", action="store_true", help="torch.compile the closed-form BatchNorm formula")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--md", type=Path, default=None, help="write a Markdown table here")
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but CUDA is not available")
    if args.quick is None:
        args.quick = device.type == "cpu"
    if args.channels_last is None:
        args.channels_last = device.type == "cuda"
    args.steps = args.steps or (10 if device.type == "cuda" else 3)
    args.warmup = args.warmup or (3 if device.type == "cuda" else 1)
    args.methods = [m for m in args.methods if m != "plain"]
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    set_batchnorm_compile(args.compile_bn)

    env = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "amp": args.amp,
        "channels_last": args.channels_last,
        "quick": args.quick,
        "compile_bn": args.compile_bn,
        "memory": "cuda max_memory_allocated (absolute)" if device.type == "cuda" else "peak RSS growth in a step",
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "commit": _commit(),
        "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }
    with value_checks(False):  # no host synchronisation in the timed steps
        if args.memory_only:
            rows = [r for name in args.config for r in run_config(name, args, device)]
            args.json.write_text(json.dumps({"env": env, "results": rows}))
            return rows
        print(f"# {env}", flush=True)
        all_rows = []
        for name in args.config:
            rows = run_config(name, args, device)
            all_rows.extend(rows)
            print(format_table(rows), flush=True)
            write_results(args, env, all_rows)  # after every config: a run cut short keeps what it measured
    return all_rows


if __name__ == "__main__":
    main()
