"""Where do the CAM cells inside the lesion box look? Their input gradient's density on the marker box.

For each trained run of the study and the first ``--images`` annotated, marked images of ``test_shifted``: the
gradient of the sum of the class-activation-map cells that overlap the lesion box (last layer,
``class_layers.relu``) with respect to the input pixels, and the share of its absolute mass that falls on the marker
box divided by the marker box's share of the image. 1 = no preference for the marker; above 1: the cells that the
explanation loss rewards draw their evidence from the marker (the shortcut is routed through the lesion cells, out of
the loss's sight); below 1: they look elsewhere.

Run by ``make study`` after the plan (the runs must exist in ``--work``)::

    python bundles/cxr_expl/study/routing_check.py --work reports/study --out bundles/cxr_expl/study/results/routing.md
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser

BUNDLE = Path(__file__).resolve().parents[1]
#: (work stage folder, data folder relative to the working directory, image size, runs)
GROUPS = [
    ("mechanism", "reports/study/data/shortcut_cxr_64", 64,
     ["none_lambda0_seed0", "none_lambda0_seed1", "cam/energy_lambda10_seed0", "cam/energy_lambda10_seed1"]),
    ("full_cam_energy", "reports/study/data/shortcut_cxr", 128,
     [f"none_lambda0_seed{s}" for s in range(5)] + [f"cam/energy_lambda3_seed{s}" for s in range(5)]),
    ("full_cam_dice", "reports/study/data/shortcut_cxr", 128,
     [f"none_lambda0_seed{s}" for s in range(5)] + [f"cam/dice_lambda10_seed{s}" for s in range(5)]),
    ("full_cam_dice_warmup1", "reports/study/data/shortcut_cxr", 128, [f"cam/dice_lambda10_seed{s}" for s in range(5)]),
]  # fmt: skip


def marker_density_of(grad: torch.Tensor, box: torch.Tensor) -> float:
    """Share of the gradient's absolute mass inside ``box`` over the box's share of the image (1 = no preference)."""
    g = grad.abs()
    return float(g[box].sum() / g.sum()) / float(box.float().mean())


def marker_density(run_dir: Path, dataset_dir: str, size: int, n_images: int) -> list[float]:
    """The marker density of the lesion-box CAM cells of one run, for up to ``n_images`` marked, annotated images."""
    parser = ConfigParser()
    parser.read_config([str(BUNDLE / "configs" / "train.json"), str(BUNDLE / "configs" / "evaluate.json")])
    parser.update({"bundle_root": str(BUNDLE), "dataset_dir": dataset_dir, "image_size": [size, size],
                   "test_split": "test_shifted", "output_dir": "/tmp/routing", "eval_dir": "/tmp/routing"})  # fmt: skip
    dataset = parser.get_parsed_content("validate#dataset")
    net = parser.get_parsed_content("network").cpu()
    net.load_state_dict(torch.load(run_dir / "models" / "model.pt", map_location="cpu", weights_only=True)["model"])
    net.eval()
    recorded: dict[str, torch.Tensor] = {}
    handle = net.class_layers.relu.register_forward_hook(lambda m, i, o: recorded.__setitem__("a", o))
    weight = net.class_layers.out.weight[0]
    out = []
    try:
        for i in range(len(dataset)):
            item = dataset[i]
            marker = item.get("confounder_mask")
            if item["mask"].sum() == 0 or marker is None or marker.sum() == 0:
                continue
            x = item["image"][None].as_tensor().float().requires_grad_(True)
            net(x)
            cam = torch.einsum("c,chw->hw", weight, recorded["a"][0])
            cells = torch.nn.functional.adaptive_avg_pool2d(item["mask"][None].as_tensor().float(), cam.shape)[0, 0] > 0
            if not cells.any():
                continue
            (grad,) = torch.autograd.grad(cam[cells].sum(), x)
            out.append(marker_density_of(grad[0, 0], marker[0].as_tensor() > 0))
            if len(out) >= n_images:
                break
    finally:
        handle.remove()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="reports/study")
    ap.add_argument("--out", default="bundles/cxr_expl/study/results/routing.md")
    ap.add_argument("--images", type=int, default=20)
    args = ap.parse_args()
    start = time.perf_counter()
    torch.manual_seed(0)
    intro = (
        "1 = no preference for the marker box; mean over the first annotated, marked `test_shifted` images "
        f"(up to {args.images}) of each run. Written by `bundles/cxr_expl/study/routing_check.py` (`make study`)."
    )
    lines = ["# Routing check: CAM cells of the lesion box, input-gradient density on the marker box", "", intro, "",
             "| stage | image size | run | images | density on marker (mean) | min | max |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    summary: dict[str, list[float]] = {}
    for stage, data, size, runs in GROUPS:
        for run in runs:
            run_dir = Path(args.work) / stage / "runs" / run
            if not (run_dir / "run.json").is_file():
                raise FileNotFoundError(f"{run_dir}: run not finished; run the study plan first (make study).")
            d = marker_density(run_dir, data, size, args.images)
            lines.append(
                f"| {stage} | {size} | {run} | {len(d)} | {np.mean(d):.2f} | {np.min(d):.2f} | {np.max(d):.2f} |"
            )
            summary.setdefault(f"{stage} {run.rsplit('_seed', 1)[0]}", []).append(float(np.mean(d)))
    lines += ["", "| setting | seeds | mean over seeds | min | max |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {len(v)} | {np.mean(v):.2f} | {np.min(v):.2f} | {np.max(v):.2f} |" for k, v in summary.items()]
    lines += ["", f"Wall time {time.perf_counter() - start:.0f} s."]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(json.dumps({k: round(float(np.mean(v)), 2) for k, v in summary.items()}))


if __name__ == "__main__":
    main()
