"""Small tensor operations on saliency maps shared by losses, metrics and handlers.

All functions work on batch-first, channel-second tensors ``(B, C, *spatial)`` with any number of spatial
dimensions (2D or 3D), stay on the input's device and are differentiable where that makes sense.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.utils import StrEnum

__all__ = ["SaliencyNormalization", "normalize_saliency", "resize_saliency"]


class SaliencyNormalization(StrEnum):
    """How a saliency map is normalised per sample and channel before it is compared with a mask.

    - ``none``: used as is.
    - ``max``: divided by its maximum (``s / max(s)``); a map that is zero everywhere stays zero.
    - ``minmax``: mapped to [0, 1] by ``(s - min) / (max - min)``; a constant map becomes zero.
    - ``sum``: divided by its sum, so it is a distribution over pixels; a zero map stays zero.
    """

    NONE = "none"
    MAX = "max"
    MINMAX = "minmax"
    SUM = "sum"


def normalize_saliency(
    saliency: torch.Tensor, mode: SaliencyNormalization | str = SaliencyNormalization.MAX, eps: float = 1e-8
) -> torch.Tensor:
    """Normalise each ``(sample, channel)`` map of ``saliency`` independently.

    Constant and all-zero maps are safe: the denominator is clamped by ``eps`` (raised to the smallest normal number
    of the map's dtype, so that it does not round to 0 in float16), so the output is finite (zero for ``minmax`` on
    a constant map) and gradients stay finite. Float16 / bfloat16 maps are normalised in float32 and returned in
    their own dtype.

    Args:
        saliency: ``(B, C, *spatial)`` tensor, expected non-negative for ``max`` and ``sum``.
        mode: a :class:`SaliencyNormalization` value.
        eps: floor of the denominator.

    Returns:
        A tensor of the same shape, dtype and device.

    Raises:
        ValueError: for fewer than 3 dimensions or an unknown mode.
    """
    if saliency.ndim < 3:
        raise ValueError(f"saliency must be (B, C, *spatial), got shape {tuple(saliency.shape)}.")
    mode = SaliencyNormalization(mode)
    if mode == SaliencyNormalization.NONE:
        return saliency
    dtype = saliency.dtype
    if saliency.is_floating_point():
        eps = max(float(eps), float(torch.finfo(dtype).tiny))
    # float16 / bfloat16 maps are normalised in float32: the backward of a reduction (sum, min) over a map would
    # otherwise overflow float16, e.g. to -inf for a constant map under minmax
    s = saliency.float() if dtype in (torch.float16, torch.bfloat16) else saliency
    dims = tuple(range(2, s.ndim))
    if mode == SaliencyNormalization.MAX:
        out = s / s.amax(dim=dims, keepdim=True).clamp_min(eps)
    else:
        # minmax and sum are scale-free: work on the map divided by its largest |value| (outside the graph), so
        # that hi - lo and the sum cannot overflow for a finite map; eps keeps its meaning in the original units
        c = s.detach().abs().amax(dim=dims, keepdim=True)
        c = torch.where(c > 0, c, torch.ones_like(c))
        floor = (eps / c).clamp_min(torch.finfo(s.dtype).tiny) if s.is_floating_point() else eps / c
        s = s / c
        if mode == SaliencyNormalization.MINMAX:
            lo = s.amin(dim=dims, keepdim=True)
            hi = s.amax(dim=dims, keepdim=True)
            out = (s - lo) / torch.maximum(hi - lo, floor)
        else:
            out = s / torch.maximum(s.sum(dim=dims, keepdim=True), floor)
    return out.to(dtype)


def resize_saliency(saliency: torch.Tensor, spatial_size: Sequence[int], mode: str = "auto") -> torch.Tensor:
    """Resample ``(B, C, *spatial)`` saliency to ``spatial_size`` (the mask's grid), differentiably.

    Args:
        saliency: the map to resample.
        spatial_size: target spatial shape, same number of dimensions as the map.
        mode: interpolation mode; ``"auto"`` picks bilinear in 2D, trilinear in 3D, linear in 1D.

    Returns:
        The resampled map (the input itself when the size already matches).

    Raises:
        ValueError: a map or a target grid with a spatial size of 0 (an empty grid), different numbers of spatial
            dimensions, or ``mode="auto"`` for more than 3 spatial dimensions (all naming the shapes).
    """
    spatial_size = tuple(int(s) for s in spatial_size)
    if saliency.ndim < 3 or 0 in saliency.shape[2:]:
        raise ValueError(
            f"saliency map of shape {tuple(saliency.shape)} has an empty spatial grid; expected (B, C, *spatial) "
            "with every spatial size >= 1."
        )
    if 0 in spatial_size or min(spatial_size, default=0) < 0:
        raise ValueError(
            f"the target grid (mask / image spatial size) {spatial_size} is empty or negative; every spatial size "
            f"must be >= 1 (saliency map of shape {tuple(saliency.shape)})."
        )
    if tuple(saliency.shape[2:]) == spatial_size:
        return saliency
    if len(spatial_size) != saliency.ndim - 2:
        raise ValueError(
            f"cannot resample a {saliency.ndim - 2}D saliency map of shape {tuple(saliency.shape)} "
            f"to a {len(spatial_size)}D size {spatial_size}."
        )
    if mode == "auto":
        modes = {1: "linear", 2: "bilinear", 3: "trilinear"}
        if len(spatial_size) not in modes:
            raise ValueError(
                f"cannot resample a {len(spatial_size)}D saliency map of shape {tuple(saliency.shape)} to "
                f"{spatial_size}: only 1D, 2D and 3D maps can be resampled (images are (B, C, H, W[, D]))."
            )
        mode = modes[len(spatial_size)]
    align = False if mode in ("linear", "bilinear", "bicubic", "trilinear") else None
    return F.interpolate(saliency, size=spatial_size, mode=mode, align_corners=align)
