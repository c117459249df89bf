"""Benchmark: parse a VinDr-CXR-sized train.csv with the adapter, then rasterise every image's fused box mask.

A synthetic ``train.csv`` in the published format is written to a temporary folder (default about 70,000 rows:
15,000 images x 3 radiologists, about 30% "No finding" rows, 1-3 boxes per reader on abnormal images, image sizes
2000-3000 px). It is parsed with :class:`monai_explain.data.VinDrCXRAdapter` (``check_files=False``, no images are
needed) and each image's readers are fused into one 512 x 512 mask with
:class:`monai_explain.transforms.BoxesToMask` (boxes scaled from the original size to 512).

Usage::

    python benchmarks/bench_vindr_masks.py [--rows 70000] [--size 512] [--fusion majority] [--per-class]
                                           [--json results.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from monai_explain.data import VINDR_CXR_CLASSES, VinDrCXRAdapter

HEADER = ["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"]
#: fraction of images read as normal by all 3 readers: 3 n / (3 n + 6 (1 - n)) = 0.3 with 2 boxes per reader
NORMAL_FRACTION = 6 / 13
#: expected rows per image: 3 "No finding" rows (normal) or 3 readers x 2 boxes (abnormal) = 60 / 13 ~ 4.6
ROWS_PER_IMAGE = 3 * NORMAL_FRACTION + 6 * (1 - NORMAL_FRACTION)


def write_vindr_csv(path: str, rows: int, seed: int = 0) -> tuple[int, dict[str, tuple[int, int]]]:
    """Write a VinDr-format train.csv of about ``rows`` rows; return the row count and each image's (width, height)."""
    rng = np.random.default_rng(seed)
    n_images = max(1, round(rows / ROWS_PER_IMAGE))
    sizes: dict[str, tuple[int, int]] = {}
    written = 0
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i in range(n_images):
            image_id = f"{i:032x}"
            width, height = (int(v) for v in rng.integers(2000, 3001, size=2))
            sizes[image_id] = (width, height)
            readers = [f"R{r}" for r in rng.choice(np.arange(1, 18), size=3, replace=False)]
            if rng.random() < NORMAL_FRACTION:
                for reader in readers:
                    out.writerow([image_id, "No finding", 14, reader, "", "", "", ""])
                written += 3
                continue
            # 1-3 lesions per image; each reader draws 1-3 boxes on them (2 on average), with jittered corners
            n_lesions = int(rng.integers(1, 4))
            classes = rng.integers(0, 14, size=n_lesions)
            centres = rng.uniform(0.2, 0.8, size=(n_lesions, 2)) * (width, height)
            extents = rng.uniform(80, 600, size=(n_lesions, 2))
            for reader in readers:
                n_boxes = int(rng.integers(1, 4))
                for k in rng.choice(n_lesions, size=n_boxes, replace=n_boxes > n_lesions):
                    jitter = rng.normal(0, 0.05, size=4) * np.tile(extents[k], 2)  # readers disagree by ~5%
                    x1, y1 = np.maximum(centres[k] - extents[k] / 2 + jitter[:2], 0.0)
                    x2, y2 = np.minimum(centres[k] + extents[k] / 2 + jitter[2:], (width, height))
                    x2, y2 = max(x2, x1 + 4.0), max(y2, y1 + 4.0)
                    cid = int(classes[k])
                    out.writerow(
                        [
                            image_id,
                            VINDR_CXR_CLASSES[cid],
                            cid,
                            reader,
                            f"{x1:.1f}",
                            f"{y1:.1f}",
                            f"{x2:.1f}",
                            f"{y2:.1f}",
                        ]
                    )
                    written += 1
    return written, sizes


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=70_000, help="approximate number of CSV rows (default 70000)")
    parser.add_argument("--size", type=int, default=512, help="mask side in pixels (default 512)")
    parser.add_argument("--fusion", default="majority", choices=["union", "intersection", "majority", "mean"])
    parser.add_argument("--per-class", action="store_true", help="one mask channel per finding (14) instead of one")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    args = parser.parse_args(argv)

    from monai_explain.transforms import BoxesToMask

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rows, sizes = write_vindr_csv(os.path.join(tmp, "train.csv"), args.rows, args.seed)
        t_write = time.perf_counter() - t0

        adapter = VinDrCXRAdapter(tmp, check_files=False)
        t0 = time.perf_counter()
        data = adapter.load()
        t_parse = time.perf_counter() - t0

    side = args.size
    to_mask = BoxesToMask(fusion=args.fusion, num_classes=14 if args.per_class else None)
    covered = 0.0
    t0 = time.perf_counter()
    for record in data:
        width, height = sizes[record["id"]]  # the original size, as a DICOM header would give it
        boxes = record["boxes"] * np.array([side / width, side / height] * 2, dtype=np.float32)
        mask = to_mask(
            boxes,
            labels=record["box_labels"] if args.per_class else None,
            readers=record["box_readers"],
            image_readers=record["readers"],
            spatial_size=(side, side),
        )
        covered += float(np.asarray(mask).mean())
    t_mask = time.perf_counter() - t0

    results = {
        "rows": rows,
        "images": len(data),
        "negative_images": adapter.stats["negatives"],
        "boxes": adapter.stats["boxes"],
        "csv_write_s": round(t_write, 3),
        "parse_s": round(t_parse, 3),
        "parse_rows_per_s": round(rows / t_parse, 1),
        "mask_size": side,
        "fusion": args.fusion,
        "mask_channels": 14 if args.per_class else 1,
        "mask_s": round(t_mask, 3),
        "mask_images_per_s": round(len(data) / t_mask, 1),
        "mean_mask_fraction": round(covered / max(1, len(data)), 5),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    print(
        f"VinDr adapter: {rows} rows -> {len(data)} images ({results['negative_images']} negatives, "
        f"{results['boxes']} boxes) in {t_parse:.2f} s = {results['parse_rows_per_s']:.0f} rows/s\n"
        f"BoxesToMask (fusion={args.fusion}, {results['mask_channels']} channel(s), {side}x{side}): "
        f"{len(data)} images in {t_mask:.2f} s = {results['mask_images_per_s']:.0f} images/s "
        f"(mean mask fraction {results['mean_mask_fraction']})"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
