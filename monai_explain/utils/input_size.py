"""Check that a network accepts an input size, and find the smallest size it accepts.

A classifier with several stride-2 stages (DenseNet, ResNet) fails on a small input deep inside torch (e.g.
``Given input size: (34x1x1). Calculated output size: (34x0x0). Output size is too small``), naming neither the
input size nor the setting that chose it. :func:`check_input_size` runs one forward pass of a single sample of the
given size (no gradient, the network temporarily in eval mode) and raises an error naming the setting and the
smallest size that works.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["check_input_size", "smallest_input_size"]

#: largest side tried by :func:`smallest_input_size` per number of spatial dimensions
MAX_SIDE = {1: 65536, 2: 2048, 3: 256}


@contextmanager
def _probing(network: nn.Module) -> Iterator[None]:
    """Eval mode (no BatchNorm statistics update, no batch-of-one BatchNorm error), no gradient; modes restored."""
    modes = [(m, m.training) for m in network.modules()]
    network.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, mode in modes:
            m.training = mode


def _in_channels(network: nn.Module) -> int:
    for m in network.modules():
        channels = getattr(m, "in_channels", None)
        if isinstance(channels, int):
            return int(channels)
    return 1


def _device_dtype(network: nn.Module) -> tuple[torch.device, torch.dtype]:
    for p in network.parameters():
        return p.device, (p.dtype if p.is_floating_point() else torch.float32)
    return torch.device("cpu"), torch.float32


def _forward_error(network: nn.Module, spatial_size: Sequence[int], in_channels: int) -> Exception | None:
    device, dtype = _device_dtype(network)
    x = torch.ones((1, in_channels, *spatial_size), device=device, dtype=dtype)
    try:
        network(x)
    except (RuntimeError, ValueError, IndexError) as e:
        return e
    return None


def smallest_input_size(network: nn.Module, spatial_dims: int, in_channels: int | None = None) -> int | None:
    """The smallest side ``s`` such that the network accepts a ``(1, C, s, ..., s)`` input (``None``: none found).

    Sides are tried by doubling from 1 up to :data:`MAX_SIDE`, then refined by bisection.

    Args:
        network: the model (its parameters give the device and dtype).
        spatial_dims: 1, 2 or 3.
        in_channels: input channels; default: the ``in_channels`` of the first module that has one, else 1.
    """
    c = _in_channels(network) if in_channels is None else int(in_channels)
    with _probing(network):
        lo, hi = 0, 1
        while _forward_error(network, (hi,) * spatial_dims, c) is not None:
            lo, hi = hi, hi * 2
            if hi > MAX_SIDE.get(spatial_dims, 256):
                return None
        while hi - lo > 1:  # lo fails (or is 0), hi works
            mid = (lo + hi) // 2
            if _forward_error(network, (mid,) * spatial_dims, c) is None:
                hi = mid
            else:
                lo = mid
    return hi


def check_input_size(
    network: nn.Module, spatial_size: Sequence[int] | int, in_channels: int | None = None, key: str = "image_size"
) -> nn.Module:
    """Raise a clear error when ``network`` cannot take inputs of ``spatial_size``; return the network otherwise.

    Meant for configs (``"network": "$monai_explain.utils.check_input_size(@network_def, @image_size)"``) and
    for handlers that meet a failing forward pass.

    Args:
        network: the model.
        spatial_size: the input's spatial size, e.g. ``[128, 128]``.
        in_channels: input channels; default: found from the network's first module with ``in_channels``.
        key: the name of the setting that chose the size, used in the error.

    Returns:
        ``network`` itself.

    Raises:
        ValueError: a size below 1, or a size the network's forward pass fails on (naming ``key``, the size, the
            network and the smallest size that works, with the torch error as the cause).
    """
    size = [int(spatial_size)] * 2 if isinstance(spatial_size, (int, float)) else [int(s) for s in spatial_size]
    if not size or min(size) < 1:
        raise ValueError(f"{key} must be positive sizes, got {spatial_size!r}.")
    c = _in_channels(network) if in_channels is None else int(in_channels)
    with _probing(network):
        error = _forward_error(network, size, c)
    if error is None:
        return network
    smallest = smallest_input_size(network, len(size), c)
    hint = (
        f"the smallest input it accepts is {smallest} along every spatial axis"
        if smallest is not None
        else "no square input up to the tried sizes works either"
    )
    raise ValueError(
        f"{key} {size} is too small (or wrong) for the network {type(network).__name__}: its forward pass fails on a "
        f"(1, {c}, {', '.join(map(str, size))}) input ({error}); {hint}. Increase {key}."
    ) from error
