"""Finding layers of a network by dotted module path, with or without a ``DistributedDataParallel`` wrapper."""

from __future__ import annotations

import difflib

from torch import nn

__all__ = ["find_last_linear", "resolve_layer"]

_WRAPPER_PREFIX = "module."


def _nearby_names(name: str, names: list[str], limit: int = 8) -> str:
    """A hint for a wrong ``name``: the closest existing names, and the children of its deepest existing parent."""
    known = [n for n in names if n]
    close = difflib.get_close_matches(name, known, n=limit, cutoff=0.5)
    parts = name.split(".")
    parent = ""
    for i in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:i])
        hits = [p for p in (prefix, _WRAPPER_PREFIX + prefix, prefix.removeprefix(_WRAPPER_PREFIX)) if p in known]
        if hits:
            parent = hits[0]
            break
    depth = parent.count(".") + 1 if parent else 0
    children = [n for n in known if n.count(".") == depth and (not parent or n.startswith(parent + "."))]
    hint = f"closest names: {', '.join(close) or '(none)'}"
    shown = ", ".join(n.rsplit(".", 1)[-1] for n in children[: 4 * limit])
    return f"{hint}; sub-modules of {repr(parent) if parent else 'the model'}: {shown or '(none)'}"


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """Find a sub-module of ``model`` by dotted path (``"features.denseblock4"``, ``"layer4"``) or by identity.

    A name written for the bare network also finds the layer inside a ``DistributedDataParallel`` (or any
    wrapper keeping it as ``.module``): ``"layer4"`` resolves to ``"module.layer4"``, and a name with the
    ``"module."`` prefix resolves inside the bare network.

    Args:
        model: the network (bare or wrapped).
        layer: dotted module path as listed by ``model.named_modules()``, or the module itself.

    Returns:
        ``(name, module)`` with the name as ``model.named_modules()`` spells it.

    Raises:
        ValueError: for an empty name, or when nothing matches; the message lists nearby names.

    Example:
        >>> from monai.networks.nets import resnet18
        >>> resolve_layer(resnet18(spatial_dims=2, n_input_channels=1, num_classes=2), "layer4")[0]
        'layer4'
    """
    named = dict(model.named_modules())
    if isinstance(layer, nn.Module):
        for name, module in named.items():
            if module is layer and name:
                return name, module
        raise ValueError(f"the given {type(layer).__name__} module is not a sub-module of {type(model).__name__}.")
    if not isinstance(layer, str) or not layer:
        raise ValueError(f"layer must be a non-empty dotted module path or an nn.Module, got {layer!r}.")
    candidates = [layer, _WRAPPER_PREFIX + layer]
    if layer.startswith(_WRAPPER_PREFIX):
        candidates.append(layer[len(_WRAPPER_PREFIX) :])
    for candidate in candidates:
        if candidate in named and candidate:
            return candidate, named[candidate]
    raise ValueError(f"layer '{layer}' not found in {type(model).__name__}; {_nearby_names(layer, list(named))}.")


def find_last_linear(model: nn.Module) -> tuple[str, nn.Linear] | None:
    """The last ``nn.Linear`` of ``model`` in registration order (the classifier of most networks), or None."""
    found = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            found = (name, module)
    return found
