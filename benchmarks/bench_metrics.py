"""Speed of the alignment metrics against a straightforward per-sample NumPy loop.

Workload: coverage ``|B and A| / |A|``, binary precision ``|B and A| / |B|`` (B = top 10% of pixels) and mass
precision ``sum(S * A) / sum(S)`` on ``--batch`` random saliency maps of ``--size`` x ``--size`` with random box
masks. The torch path is the package's public functions (``compute_saliency_coverage``,
``compute_saliency_precision`` twice, each binarising on its own), and the one-pass
``compute_alignment_metrics`` (one binarisation for all three), whole batch at once. Two NumPy baselines loop over
the samples, computing the three values from one selection per sample:

- ``numpy_argsort``: exact top-k by ``np.argsort`` (the straightforward way to pick exactly k pixels);
- ``numpy_quantile``: threshold at ``np.quantile(s, 1 - fraction)`` and ``s >= t`` (k up to ties/interpolation).

The results of the torch path and the exact NumPy loop are checked to agree before anything is timed.

Second workload, against Quantus' own metric formulas: RelevanceMassAccuracy (``sum(a * s) / sum(a)``) and
RelevanceRankAccuracy (of the ``|s|`` highest-attribution pixels - an ``argsort`` of the whole map - the share inside
the mask, counted with a set intersection of indices), written here in NumPy per sample following Quantus'
definitions, against the package's ``compute_saliency_precision(mode="mass")`` and
``compute_saliency_coverage(fraction="mask")`` (the same two numbers, checked to agree).

Usage::

    python benchmarks/bench_metrics.py [--device cpu|cuda] [--threads N] [--batch 64] [--size 512] [--json out.json]
        [--clock wall|process]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monai_explain.metrics import (
    compute_alignment_metrics,
    compute_saliency_coverage,
    compute_saliency_precision,
)


def make_data(batch: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random saliency in [0, 1) and one random box per map covering 2% to 25% of each side squared."""
    rng = np.random.default_rng(seed)
    sal = rng.random((batch, 1, size, size), dtype=np.float32)
    mask = np.zeros_like(sal)
    for b in range(batch):
        h, w = rng.integers(size // 8, size // 2, size=2)
        r0, c0 = rng.integers(0, size - h), rng.integers(0, size - w)
        mask[b, 0, r0 : r0 + h, c0 : c0 + w] = 1.0
    return sal, mask


def numpy_loop_argsort(sal: np.ndarray, mask: np.ndarray, fraction: float) -> np.ndarray:
    """Per sample: exact top-k by argsort, then the sums."""
    out = np.empty((sal.shape[0], 3))
    for b in range(sal.shape[0]):
        s = sal[b, 0].ravel()
        a = mask[b, 0].ravel() > 0.5
        k = max(1, round(fraction * s.size))
        top = np.argsort(-s, kind="stable")[:k]
        inter = a[top].sum()
        out[b] = inter / a.sum(), inter / k, (s * a).sum() / s.sum()
    return out


def numpy_loop_quantile(sal: np.ndarray, mask: np.ndarray, fraction: float) -> np.ndarray:
    """Per sample: quantile threshold, then the sums."""
    out = np.empty((sal.shape[0], 3))
    for b in range(sal.shape[0]):
        s = sal[b, 0].ravel()
        a = mask[b, 0].ravel() > 0.5
        sel = s >= np.quantile(s, 1.0 - fraction)
        inter = np.logical_and(sel, a).sum()
        out[b] = inter / a.sum(), inter / sel.sum(), (s * a).sum() / s.sum()
    return out


def quantus_relevance_mass(a: np.ndarray, s: np.ndarray) -> float:
    """RelevanceMassAccuracy as Quantus defines it: the share of the attribution inside the binary mask."""
    a, s = a.ravel(), s.ravel().astype(bool)
    return float(np.sum(a * s) / np.sum(a))


def quantus_relevance_rank(a: np.ndarray, s: np.ndarray) -> float:
    """RelevanceRankAccuracy as Quantus defines it: mask indices, the top-|s| attribution indices by argsort, and the
    size of their intersection over |s|."""
    mask_idx = np.where(s.ravel().astype(bool))[0]
    k = len(mask_idx)
    top = np.argsort(a.ravel())[-k:]
    return float(len(np.intersect1d(mask_idx, top)) / k)


def quantus_loop(sal: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = np.empty((sal.shape[0], 2))
    for b in range(sal.shape[0]):
        out[b] = quantus_relevance_mass(sal[b, 0], mask[b, 0]), quantus_relevance_rank(sal[b, 0], mask[b, 0])
    return out


def torch_quantus_equivalent(sal: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mass = compute_saliency_precision(sal, mask, mode="mass")
    rank = compute_saliency_coverage(sal, mask, fraction="mask")
    return torch.cat([mass, rank], dim=1)


def torch_metrics(sal: torch.Tensor, mask: torch.Tensor, fraction: float) -> torch.Tensor:
    cov = compute_saliency_coverage(sal, mask, fraction=fraction)
    prec = compute_saliency_precision(sal, mask, fraction=fraction)
    mass = compute_saliency_precision(sal, mask, mode="mass")
    return torch.cat([cov, prec, mass], dim=1)


def torch_one_pass(sal: torch.Tensor, mask: torch.Tensor, fraction: float) -> torch.Tensor:
    out = compute_alignment_metrics(sal, mask, fraction=fraction)
    return torch.cat([out["coverage"], out["precision"], out["mass_precision"]], dim=1)


CLOCK = time.perf_counter


def best_time(fn, repeats: int, sync=lambda: None) -> float:
    """Best time (wall, or this process's CPU time with ``--clock process``) of ``repeats`` runs after one warm-up,
    in seconds."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = CLOCK()
        fn()
        sync()
        times.append(CLOCK() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="torch device of the torch path (cpu, cuda, cuda:1, ...)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of the torch path (best is kept)")
    parser.add_argument("--numpy-repeats", type=int, default=1, help="timed runs of each NumPy loop")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    parser.add_argument(
        "--clock",
        choices=("wall", "process"),
        default="wall",
        help="wall time, or the process's CPU time (robust on a loaded machine; meaningful with --threads 1)",
    )
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "process" else time.perf_counter

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sal_np, mask_np = make_data(args.batch, args.size, args.seed)
    sal = torch.from_numpy(sal_np).to(device)
    mask = torch.from_numpy(mask_np).to(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)

    ref = numpy_loop_argsort(sal_np, mask_np, args.fraction)
    got = torch_metrics(sal, mask, args.fraction).cpu().double().numpy()
    got_one = torch_one_pass(sal, mask, args.fraction).cpu().double().numpy()
    max_diff = max(float(np.abs(got - ref).max()), float(np.abs(got_one - ref).max()))
    if max_diff > 1e-5:
        raise SystemExit(f"torch path and NumPy reference disagree: max |diff| = {max_diff:.3g}")

    q_ref = quantus_loop(sal_np, mask_np)
    q_got = torch_quantus_equivalent(sal, mask).cpu().double().numpy()
    q_diff = float(np.abs(q_got - q_ref).max())
    if q_diff > 1e-5:
        raise SystemExit(f"torch path and Quantus' formulas disagree: max |diff| = {q_diff:.3g}")

    t_quantus_torch = best_time(lambda: torch_quantus_equivalent(sal, mask), args.repeats, sync)
    t_quantus = best_time(lambda: quantus_loop(sal_np, mask_np), args.numpy_repeats)
    t_torch = best_time(lambda: torch_metrics(sal, mask, args.fraction), args.repeats, sync)
    t_one = best_time(lambda: torch_one_pass(sal, mask, args.fraction), args.repeats, sync)
    t_argsort = best_time(lambda: numpy_loop_argsort(sal_np, mask_np, args.fraction), args.numpy_repeats)
    t_quantile = best_time(lambda: numpy_loop_quantile(sal_np, mask_np, args.fraction), args.numpy_repeats)

    result = {
        "workload": f"coverage + binary precision (top {args.fraction:.0%}) + mass precision, "
        f"{args.batch} maps of {args.size}x{args.size}, random boxes",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "clock": args.clock,
        "torch_version": torch.__version__,
        "max_abs_diff_vs_numpy": max_diff,
        "torch_ms": t_torch * 1e3,
        "torch_one_pass_ms": t_one * 1e3,
        "numpy_argsort_loop_ms": t_argsort * 1e3,
        "numpy_quantile_loop_ms": t_quantile * 1e3,
        "speedup_vs_numpy_argsort": t_argsort / t_torch,
        "speedup_vs_numpy_quantile": t_quantile / t_torch,
        "one_pass_speedup_vs_numpy_argsort": t_argsort / t_one,
        "one_pass_speedup_vs_numpy_quantile": t_quantile / t_one,
        "quantus_workload": f"RelevanceMass + RelevanceRank, {args.batch} maps of {args.size}x{args.size}",
        "max_abs_diff_vs_quantus_formulas": q_diff,
        "torch_mass_plus_rank_ms": t_quantus_torch * 1e3,
        "quantus_formulas_numpy_ms": t_quantus * 1e3,
        "speedup_vs_quantus_formulas": t_quantus / t_quantus_torch,
        "speedup_vs_best_numpy_loop": min(t_argsort, t_quantile) / t_torch,
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "commit": _commit(),
        "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }
    print(result["workload"])
    print(f"device {result['device']} ({result['device_name']}), torch threads {result['torch_threads']}")
    print(f"agreement with the exact NumPy loop: max |diff| = {max_diff:.2e}")
    print(f"{'':34s}{'time':>10s}   speed-up vs numpy argsort / quantile loop")
    for label, key, t in (
        ("torch, three metric calls", "torch_ms", t_torch),
        ("torch, compute_alignment_metrics", "torch_one_pass_ms", t_one),
    ):
        print(f"{label:34s}{result[key]:8.1f} ms   x{t_argsort / t:.1f} / x{t_quantile / t:.1f}")
    print(f"{'numpy loop, argsort (exact top-k)':34s}{result['numpy_argsort_loop_ms']:8.1f} ms")
    print(f"{'numpy loop, quantile threshold':34s}{result['numpy_quantile_loop_ms']:8.1f} ms")
    print(result["quantus_workload"], f"(agreement: max |diff| = {q_diff:.2e})")
    print(
        f"{'torch, precision(mass) + coverage(mask)':34s}{result['torch_mass_plus_rank_ms']:8.1f} ms   "
        f"x{result['speedup_vs_quantus_formulas']:.1f} vs Quantus' formulas"
    )
    print(f"{'numpy, Quantus formulas per sample':34s}{result['quantus_formulas_numpy_ms']:8.1f} ms")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return result


def _commit() -> str:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    main()
