"""Functional core of the saliency methods: the tensor arithmetic behind CAM, Grad-CAM and HiResCAM.

Everything here is differentiable, dimension-generic (``(B, K, *spatial)`` with any number of spatial
dimensions) and stays on the input's device. Under :func:`torch.autocast` the channel combinations run in the
activation's dtype (bf16/fp16 operands, float32 accumulation inside the matrix product) with autocast
switched off locally, and the maps come back in ``float32`` (or ``float64`` for double-precision activations),
so no float32 copy of a feature map is ever made or kept for backward.
"""

from __future__ import annotations

import torch

__all__ = ["channel_weighted_sum", "class_weights", "gap_linear_matches", "map_dtype", "spatial_mean"]


def map_dtype(activation: torch.Tensor) -> torch.dtype:
    """The dtype saliency maps are returned in: float32, or the activation's dtype when that is wider."""
    return torch.promote_types(activation.dtype, torch.float32)


def spatial_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over the spatial dimensions of ``(B, K, *spatial)``, accumulated in (at least) float32: ``(B, K)``."""
    return x.mean(dim=tuple(range(2, x.ndim)), dtype=map_dtype(x))


def class_weights(weight: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    """Rows of a classifier weight ``(C, K)`` for a target: ``(B, 1, K)`` for class indices ``(B,)``, or the whole
    ``(C, K)`` matrix for "one map per class" (``index=None``)."""
    return weight if index is None else weight[index].unsqueeze(1)


def channel_weighted_sum(activation: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``out[b, m] = sum_k weights[b, m, k] * activation[b, k]``: one weighted channel sum per map, as one matmul.

    This is the map of CAM (weights = the classifier's rows) and Grad-CAM (weights = spatially averaged
    gradients). It is a batched matrix product over the flattened spatial grid, so no ``(B, K, *spatial)``
    temporary is created, and a ``channels_last`` activation is used through a view (no copy).

    Args:
        activation: ``(B, K, *spatial)`` feature map.
        weights: ``(B, M, K)`` per-sample weights, or ``(M, K)`` weights shared by the batch.

    Returns:
        ``(B, M, *spatial)`` maps in :func:`map_dtype` of the activation (not rectified).

    Raises:
        ValueError: when the channel counts differ.

    Example:
        >>> a = torch.rand(2, 3, 4, 4)
        >>> channel_weighted_sum(a, torch.ones(1, 3)).shape
        torch.Size([2, 1, 4, 4])
    """
    if activation.ndim < 3:
        raise ValueError(f"activation must be (B, K, *spatial), got shape {tuple(activation.shape)}.")
    b, k = activation.shape[:2]
    if weights.shape[-1] != k:
        raise ValueError(f"weights {tuple(weights.shape)} do not match the {k} channels of the activation.")
    flat = activation.reshape(b, k, -1)
    with torch.autocast(device_type=activation.device.type, enabled=False):
        out = torch.matmul(weights.to(activation.dtype), flat)
    return out.reshape(b, out.shape[-2], *activation.shape[2:]).to(map_dtype(activation))


def gap_linear_matches(activation: torch.Tensor, fc_input: torch.Tensor, rtol: float | None = None) -> bool:
    """Whether ``fc_input`` is the global average pool of ``activation`` (the CAM / Grad-CAM fast-path test).

    Args:
        activation: ``(B, K, *spatial)`` recorded feature map.
        fc_input: ``(B, K)`` recorded input of the linear classifier.
        rtol: tolerance relative to ``max |fc_input|``; by default ``1e-4`` in float32/float64 and ``3e-2``
            when either tensor is in a 16-bit float type (autocast).

    Returns:
        True when the shapes agree and every element matches within the tolerance.
    """
    if activation.ndim < 3 or fc_input.ndim != 2 or tuple(activation.shape[:2]) != tuple(fc_input.shape):
        return False
    if rtol is None:
        low = {torch.float16, torch.bfloat16}
        rtol = 3e-2 if (activation.dtype in low or fc_input.dtype in low) else 1e-4
    with torch.no_grad():
        pooled = spatial_mean(activation)
        ref = fc_input.to(pooled.dtype)
        scale = ref.abs().max().clamp_min(1e-12)
        return bool(((pooled - ref).abs() <= rtol * scale).all())
