"""Synthetic chest CT volumes with LUNA16-format nodule annotations.

Layout written under ``root``::

    subset0/<seriesuid>.mhd + .raw    MetaImage, LPS world, as LUNA16 (fmt "mhd" or "both")
    subset0/<seriesuid>.nii.gz        NIfTI with the RAS affine, readable by MONAI without ITK (fmt "nifti" or "both")
    annotations.csv                   seriesuid,coordX,coordY,coordZ,diameter_mm (world mm, LPS)
    splits.json                       {seriesuid: "train" | "val" | "test" | "test_shifted"}
    volumes.csv                       per-volume truth: split, label, marker, marker voxel box
    truth_nodules.csv                 nodule centres as continuous voxel indices [i, j, k]
    confounder_boxes.csv              the marker's half-open voxel box (x, y, z = i, j, k) of each marked volume:
                                      image_id,x_min,y_min,z_min,x_max,y_max,z_max (data list "confounder_boxes")
    manifest.json                     generator, version, parameters, counts (written last)

Volumes without nodules (negatives) have no row in annotations.csv, as in LUNA16. ``monai.data``
reads MetaImage only through ITK; without it use the NIfTI files (``NibabelReader``): their affine
is the LPS affine with the first two rows negated (RAS), so a LUNA16 world point goes to a voxel
with ``monai.transforms.ApplyTransformToPoints(invert_affine=True, affine_lps_to_ras=True)``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from monai_explain.apps.synthetic.ct_phantom import draw_chest_ct
from monai_explain.apps.synthetic.cxr import SHORTCUT_CXR_SPLITS, exact_assignment
from monai_explain.apps.synthetic.manifest import (
    check_generator_folder,
    is_generated,
    mark_generator_folder,
    read_listing,
    write_csv,
    write_manifest,
)
from monai_explain.apps.synthetic.metaimage import metaimage_affine, write_metaimage
from monai_explain.utils.extras import optional_import_extra

nib, _ = optional_import_extra("nibabel", "nifti")
generate_uid, _ = optional_import_extra("pydicom.uid", "dicom", name="generate_uid")

__all__ = [
    "CT_FORMATS",
    "LUNA16_COLUMNS",
    "LUNA16_UID_PREFIX",
    "SYNTHETIC_CT_VERSION",
    "generate_synthetic_ct",
    "lps_to_ras_affine",
]

LUNA16_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")
LUNA16_UID_PREFIX = "1.3.6.1.4.1.14519.5.2.1.6279.6001."
SYNTHETIC_CT_VERSION = "1"
CT_FORMATS = ("mhd", "nifti", "both")
_KIND = "synthetic_ct"

logger = logging.getLogger(__name__)


def lps_to_ras_affine(affine: np.ndarray) -> np.ndarray:
    """Negate the x and y rows of an index -> LPS-world affine, giving index -> RAS-world (and back).

    Args:
        affine: 4x4 affine.

    Returns:
        A new 4x4 affine.
    """
    out = np.array(affine, dtype=np.float64, copy=True)
    out[:2] *= -1
    return out


def generate_synthetic_ct(
    root: str | os.PathLike,
    n: int = 20,
    shape: Sequence[int] = (96, 96, 40),
    spacing: Sequence[float] = (0.7, 0.7, 2.5),
    origin: Sequence[float] = (-33.25, -171.5, -312.75),
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    n_test_shifted: int = 0,
    prevalence: float = 0.5,
    max_nodules: int = 2,
    diameter_mm: Sequence[float] = (4.0, 10.0),
    marker_prob_positive: float = 0.0,
    marker_prob_negative: float = 0.0,
    shifted_marker_prob: float = 0.5,
    fmt: str = "both",
    overwrite: bool = False,
) -> Path:
    """Generate (once) synthetic chest CT volumes with LUNA16-format nodule annotations; return the folder.

    Deterministic in its arguments; skipped when ``root/manifest.json`` records the same arguments
    and all files exist. Split sizes are exact (``round`` rounds half up): ``round(val_fraction *
    n)`` val, ``round(test_fraction * n)`` test, the rest train, plus ``n_test_shifted`` extra
    volumes; each split has
    ``round(prevalence * size)`` positives (1 .. ``max_nodules`` nodules each). The optional shortcut
    marker (a bright block in a corner) goes with positives with ``marker_prob_positive`` and with
    negatives with ``marker_prob_negative`` (both 0 by default: no marker), and with either class with
    ``shifted_marker_prob`` in ``test_shifted``.

    The voxel grid: index [i, j, k] is at LPS world ``origin + spacing * [i, j, k]`` (identity
    direction, anisotropic spacing, non-zero origin), so ``annotations.csv`` holds
    ``coordX, coordY, coordZ = origin + spacing * centre_index`` in mm.

    Args:
        root: output folder (created).
        n: volumes in train + val + test.
        shape: (nx, ny, nz) voxels.
        spacing: (sx, sy, sz) mm.
        origin: LPS world position (mm) of voxel [0, 0, 0].
        seed: random seed.
        val_fraction: fraction of ``n`` in val.
        test_fraction: fraction of ``n`` in test.
        n_test_shifted: extra volumes whose marker is independent of the label.
        prevalence: fraction of volumes with nodules, per split.
        max_nodules: positives get 1 .. max_nodules nodules.
        diameter_mm: (min, max) nodule diameter.
        marker_prob_positive: p(marker | nodules) in train / val / test.
        marker_prob_negative: p(marker | no nodule) in train / val / test.
        shifted_marker_prob: p(marker) in test_shifted.
        fmt: "mhd" (MetaImage, LUNA16's own format; MONAI needs ITK to read it), "nifti" (.nii.gz,
            MONAI's NibabelReader) or "both" (default).
        overwrite: regenerate when ``root`` holds a set made with other arguments (else raise).

    Returns:
        ``Path(root)``.

    Raises:
        ValueError: a bad argument (named), or ``root`` holds a set made with other arguments and
            ``overwrite`` is False.

    Example:
        >>> root = generate_synthetic_ct("/tmp/synthetic_ct", n=4, shape=(48, 48, 16))
        >>> (root / "annotations.csv").read_text().splitlines()[0]
        'seriesuid,coordX,coordY,coordZ,diameter_mm'
    """
    if fmt not in CT_FORMATS:
        raise ValueError(f"fmt must be one of {CT_FORMATS}, got {fmt!r}.")
    if int(n) != n or n < 1 or int(n_test_shifted) != n_test_shifted or n_test_shifted < 0:
        raise ValueError(
            f"n must be a positive int and n_test_shifted a non-negative int, got {n!r}, {n_test_shifted!r}."
        )
    for name, value in (
        ("val_fraction", val_fraction),
        ("test_fraction", test_fraction),
        ("prevalence", prevalence),
        ("marker_prob_positive", marker_prob_positive),
        ("marker_prob_negative", marker_prob_negative),
        ("shifted_marker_prob", shifted_marker_prob),
    ):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}.")
    n_val, n_test = int(np.floor(val_fraction * n + 0.5)), int(np.floor(test_fraction * n + 0.5))
    if n_val + n_test > n:
        raise ValueError(f"val_fraction + test_fraction leave no room in n={n} ({n_val} val + {n_test} test).")
    if max_nodules < 1:
        raise ValueError(f"max_nodules must be >= 1, got {max_nodules}.")
    if len(shape) != 3 or len(spacing) != 3 or len(origin) != 3:
        raise ValueError(f"shape, spacing and origin need 3 values each, got {shape!r}, {spacing!r}, {origin!r}.")
    sizes = {"train": n - n_val - n_test, "val": n_val, "test": n_test, "test_shifted": int(n_test_shifted)}
    params = {
        "n": n, "shape": list(shape), "spacing": list(spacing), "origin": list(origin), "seed": seed,
        "val_fraction": val_fraction, "test_fraction": test_fraction, "n_test_shifted": n_test_shifted,
        "prevalence": prevalence, "max_nodules": max_nodules, "diameter_mm": list(diameter_mm),
        "marker_prob_positive": marker_prob_positive, "marker_prob_negative": marker_prob_negative,
        "shifted_marker_prob": shifted_marker_prob, "fmt": fmt,
    }  # fmt: skip
    root = Path(root)
    suffixes = {"mhd": (".mhd", ".raw"), "nifti": (".nii.gz",), "both": (".mhd", ".raw", ".nii.gz")}[fmt]
    check_generator_folder(root)
    splits_path = root / "splits.json"
    listed = read_listing(splits_path, overwrite)
    fixed = ["annotations.csv", "splits.json", "volumes.csv", "truth_nodules.csv", "confounder_boxes.csv"]
    files = fixed + [f"subset0/{uid}{sfx}" for uid in listed for sfx in suffixes]
    if is_generated(root, _KIND, SYNTHETIC_CT_VERSION, params, files, overwrite):
        logger.info("synthetic CT set already in %s (%d volumes): generation skipped.", root, len(listed))
        return root

    start = time.perf_counter()
    mark_generator_folder(root, _KIND)
    (root / "subset0").mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").unlink(missing_ok=True)
    affine_lps = metaimage_affine(spacing, origin)
    affine_ras = lps_to_ras_affine(affine_lps)
    ann_rows, vol_rows, truth_rows, confounder_rows = [], [], [], []
    splits: dict[str, str] = {}
    counts: dict[str, dict[str, int]] = {}
    for k, split in enumerate(SHORTCUT_CXR_SPLITS):
        size = sizes[split]
        arng = np.random.default_rng([seed, k, 23])
        labels = exact_assignment(arng, size, prevalence)
        p_pos, p_neg = (
            (shifted_marker_prob, shifted_marker_prob)
            if split == "test_shifted"
            else (marker_prob_positive, marker_prob_negative)
        )
        markers = np.zeros(size, dtype=bool)
        markers[labels] = exact_assignment(arng, int(labels.sum()), p_pos)
        markers[~labels] = exact_assignment(arng, int((~labels).sum()), p_neg)
        counts[split] = {
            "volumes": size,
            "positive": int(labels.sum()),
            "marker_positive": int((labels & markers).sum()),
            "marker_negative": int((~labels & markers).sum()),
        }
        for i in range(size):
            vrng = np.random.default_rng([seed, k, i, 21])
            uid = generate_uid(prefix=LUNA16_UID_PREFIX, entropy_srcs=[str(seed), split, str(i)])
            splits[uid] = split
            n_nod = int(vrng.integers(1, max_nodules + 1)) if labels[i] else 0
            ph = draw_chest_ct(
                vrng, shape, spacing, n_nodules=n_nod, diameter_mm=tuple(diameter_mm), marker=bool(markers[i])
            )
            if fmt in ("mhd", "both"):
                write_metaimage(root / "subset0" / f"{uid}.mhd", ph.volume, spacing, origin)
            if fmt in ("nifti", "both"):
                img = nib.Nifti1Image(ph.volume, affine_ras)
                img.set_qform(affine_ras, code=1)
                img.set_sform(affine_ras, code=1)
                img.header.set_xyzt_units("mm", "sec")
                nib.save(img, root / "subset0" / f"{uid}.nii.gz")
            for centre, diam in zip(ph.nodule_centers, ph.nodule_diameters):
                world = affine_lps[:3, :3] @ centre + affine_lps[:3, 3]
                ann_rows.append([uid, *(f"{c:.6f}" for c in world), f"{diam:.6f}"])
                truth_rows.append([uid, *(f"{c:.6f}" for c in centre), f"{diam:.6f}"])
            mbox = [str(v) for v in ph.marker_box] if ph.marker_box is not None else [""] * 6
            if ph.marker_box is not None:
                confounder_rows.append([uid, *mbox])
            vol_rows.append([uid, split, str(int(labels[i])), str(int(markers[i])), str(n_nod), *mbox])

    for old in set(listed) - set(splits):
        for sfx in (".mhd", ".raw", ".nii.gz"):
            (root / "subset0" / f"{old}{sfx}").unlink(missing_ok=True)
    write_csv(root / "annotations.csv", LUNA16_COLUMNS, ann_rows)
    write_csv(
        root / "volumes.csv",
        ("seriesuid", "split", "label", "marker", "n_nodules", "marker_i0", "marker_j0", "marker_k0",
         "marker_i1", "marker_j1", "marker_k1"),
        vol_rows,
    )  # fmt: skip
    write_csv(root / "truth_nodules.csv", ("seriesuid", "i", "j", "k", "diameter_mm"), truth_rows)
    write_csv(
        root / "confounder_boxes.csv",
        ("image_id", "x_min", "y_min", "z_min", "x_max", "y_max", "z_max"),
        confounder_rows,
    )
    splits_path.write_text(json.dumps(splits, indent=1) + "\n")
    write_manifest(root, _KIND, SYNTHETIC_CT_VERSION, params, counts)
    logger.info(
        "wrote %d synthetic CT volumes to %s in %.1f s: %s", len(splits), root, time.perf_counter() - start, counts
    )
    return root
