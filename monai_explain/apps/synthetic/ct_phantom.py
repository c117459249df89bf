"""A vectorised 3D chest CT phantom in Hounsfield units with spherical lung nodules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ChestCTPhantom", "draw_chest_ct"]


@dataclass
class ChestCTPhantom:
    """One synthetic chest CT volume and its ground truth.

    Attributes:
        volume: int16 array indexed [x, y, z] (LPS axes: x to the patient's left, y posterior, z superior), HU.
        nodule_centers: float array (N, 3), continuous voxel indices [i, j, k] of the nodule centres.
        nodule_diameters: float array (N,), diameters in mm.
        lung_mask: bool array, True inside the lungs.
        marker_box: int64 array (6,) ``[i0, j0, k0, i1, j1, k1]`` (half-open voxel box) of the marker, or None.
    """

    volume: np.ndarray
    nodule_centers: np.ndarray
    nodule_diameters: np.ndarray
    lung_mask: np.ndarray
    marker_box: np.ndarray | None = None


def _smooth_noise3d(rng: np.random.Generator, shape: tuple[int, ...], cutoff: float) -> np.ndarray:
    white = rng.standard_normal(shape)
    freqs = [np.fft.fftfreq(s) for s in shape[:-1]] + [np.fft.rfftfreq(shape[-1])]
    grids = np.meshgrid(*freqs, indexing="ij", sparse=True)
    filt = np.exp(-sum(g**2 for g in grids) / (2 * cutoff**2))
    out = np.fft.irfftn(np.fft.rfftn(white) * filt, s=shape, axes=tuple(range(len(shape))))
    return (out - out.mean()) / (out.std() + 1e-12)


def draw_chest_ct(
    rng: np.random.Generator,
    shape: Sequence[int] = (96, 96, 40),
    spacing: Sequence[float] = (0.7, 0.7, 2.5),
    n_nodules: int = 0,
    diameter_mm: tuple[float, float] = (4.0, 10.0),
    nodule_hu: tuple[float, float] = (-50.0, 80.0),
    marker: bool = False,
    noise_hu: float = 15.0,
    max_tries: int = 200,
) -> ChestCTPhantom:
    """Draw one synthetic chest CT volume.

    The anatomy lives in normalised coordinates (it scales with the field of view): an elliptic body
    cylinder of soft tissue (40 HU) in air (-1000 HU), two ellipsoidal lungs (about -850 HU with
    low-frequency texture), a heart (soft tissue) and a vertebral column (bone, about 600 HU).
    Nodules are physical spheres (diameters in mm, whatever the anisotropic spacing) with partial
    volume at their surface, placed entirely inside a lung and not touching each other. The optional
    marker is a small very bright block (2000 HU) in the anterior-right corner, outside the body.

    Args:
        rng: numpy random generator; the output is a deterministic function of its state.
        shape: (nx, ny, nz) voxels.
        spacing: (sx, sy, sz) mm.
        n_nodules: number of nodules (0 = negative volume).
        diameter_mm: (min, max) nodule diameter in mm.
        nodule_hu: (min, max) nodule density.
        marker: whether to add the corner marker.
        noise_hu: standard deviation of the white noise.
        max_tries: rejection-sampling attempts per nodule.

    Returns:
        ChestCTPhantom.

    Raises:
        ValueError: bad shape / spacing / ranges, or a nodule that cannot be placed.

    Example:
        >>> ph = draw_chest_ct(np.random.default_rng(0), (48, 48, 16), n_nodules=1)
        >>> ph.volume.shape, ph.nodule_centers.shape
        ((48, 48, 16), (1, 3))
    """
    shape = tuple(int(s) for s in shape)
    spacing_arr = np.asarray(spacing, dtype=np.float64)
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"shape must be 3 ints >= 8, got {shape!r}.")
    if spacing_arr.shape != (3,) or (spacing_arr <= 0).any():
        raise ValueError(f"spacing must be 3 positive values, got {spacing!r}.")
    if n_nodules < 0:
        raise ValueError(f"n_nodules must be >= 0, got {n_nodules}.")
    if len(diameter_mm) != 2 or not 0 < diameter_mm[0] <= diameter_mm[1]:
        raise ValueError(f"diameter_mm must be (min, max) with 0 < min <= max, got {diameter_mm!r}.")
    nx, ny, nz = shape
    u = ((np.arange(nx) + 0.5) / nx * 2 - 1)[:, None, None]
    v = ((np.arange(ny) + 0.5) / ny * 2 - 1)[None, :, None]
    w = ((np.arange(nz) + 0.5) / nz * 2 - 1)[None, None, :]

    def soft(d, edge):
        return 1.0 / (1.0 + np.exp(np.clip((d - 1.0) / edge, -50, 50)))

    body = soft(
        np.sqrt((u / rng.uniform(0.82, 0.9)) ** 2 + ((v - rng.normal(0, 0.02)) / rng.uniform(0.62, 0.7)) ** 2), 0.02
    )
    body = np.broadcast_to(body, shape)
    vol = -1000.0 + 1040.0 * body
    lung = np.zeros(shape)
    for side in (-1.0, 1.0):
        d = np.sqrt(
            ((u - side * rng.uniform(0.38, 0.44)) / rng.uniform(0.28, 0.33)) ** 2
            + ((v - rng.uniform(-0.05, 0.05)) / rng.uniform(0.42, 0.48)) ** 2
            + ((w - rng.uniform(0.05, 0.15)) / rng.uniform(1.0, 1.15)) ** 2
        )
        lung = np.maximum(lung, soft(d, 0.04))
    heart = soft(
        np.sqrt(((u - 0.12) / 0.3) ** 2 + ((v + 0.2) / 0.3) ** 2 + ((w + rng.uniform(0.3, 0.45)) / 0.5) ** 2), 0.05
    )
    lung = lung * (1.0 - heart) * body
    texture = _smooth_noise3d(rng, shape, 0.06)
    vol = vol + lung * (-890.0 + 40.0 * texture - vol)
    spine = soft(np.sqrt((u / 0.11) ** 2 + ((v - 0.5) / 0.11) ** 2) + 0 * w, 0.05)
    vol = vol + spine * (600.0 - vol)

    lung_mask = lung > 0.5
    centers, diameters = [], []
    taken = np.zeros(shape, dtype=bool)
    cand = np.argwhere(lung_mask) if n_nodules else None
    for _ in range(n_nodules):
        for _try in range(max_tries):
            diam = rng.uniform(*diameter_mm)
            radius = diam / 2
            base = cand[int(rng.integers(0, len(cand)))]
            centre = base + rng.uniform(-0.5, 0.5, 3)
            reach = np.ceil(radius / spacing_arr + 1.5).astype(int)
            lo = np.maximum(np.floor(centre).astype(int) - reach, 0)
            hi = np.minimum(np.floor(centre).astype(int) + reach + 2, shape)
            window = tuple(slice(a, b) for a, b in zip(lo, hi))
            grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij", sparse=True)
            dist = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing_arr)))
            sphere = dist < radius + 0.5 * spacing_arr.min()
            if sphere.sum() and lung_mask[window][sphere].all() and not taken[window][sphere].any():
                break
        else:
            raise ValueError(f"could not place a nodule inside the lungs after {max_tries} tries (shape {shape}).")
        frac = np.clip((radius - dist) / spacing_arr.min() + 0.5, 0.0, 1.0)  # partial volume
        hu = rng.uniform(*nodule_hu)
        vol[window] = vol[window] + frac * (hu - vol[window])
        taken[window] |= sphere
        centers.append(centre)
        diameters.append(diam)

    vol = vol + noise_hu * rng.standard_normal(shape)
    marker_box = None
    if marker:
        side = max(2, round(0.06 * min(nx, ny)))
        k0 = int(rng.integers(0, max(1, nz - 3)))
        i0, j0 = 1 + int(rng.integers(0, 2)), 1 + int(rng.integers(0, 2))
        marker_box = np.array([i0, j0, k0, i0 + side, j0 + side, min(nz, k0 + 3)], dtype=np.int64)
        vol[i0 : i0 + side, j0 : j0 + side, k0 : marker_box[5]] = 2000.0
    vol = np.clip(np.rint(vol), -1024, 3071).astype(np.int16)
    return ChestCTPhantom(
        volume=vol,
        nodule_centers=np.asarray(centers, dtype=np.float64).reshape(-1, 3),
        nodule_diameters=np.asarray(diameters, dtype=np.float64),
        lung_mask=lung_mask,
        marker_box=marker_box,
    )
