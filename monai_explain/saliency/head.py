"""The classifier head of a network: its last linear layer, and whether a feature map reaches it through GAP only.

Networks such as DenseNet, ResNet and most MONAI classifiers end with ``logits = W mean_x(A) + b`` (global
average pooling of the last feature map ``A`` followed by one linear layer). For them CAM and Grad-CAM at
``A`` are closed-form in ``W`` and ``A`` (no second backward). :class:`GapLinearHead` records the linear
layer's input with a pre-hook and tests once per mode (train / eval) whether it is the spatial mean of a given
feature map; the answer is cached.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from .functional import gap_linear_matches
from .layers import find_last_linear, resolve_layer

__all__ = ["GapLinearHead"]

logger = logging.getLogger(__name__)


class GapLinearHead:
    """Locates the linear classifier and decides, once per train/eval mode, if a feature map feeds it via GAP.

    Args:
        model: the network.
        fc_layer: dotted name (or module) of the linear classifier; defaults to the model's last ``nn.Linear``.

    Raises:
        ValueError: when ``fc_layer`` is given but is not an ``nn.Linear``.
    """

    def __init__(self, model: nn.Module, fc_layer: str | nn.Module | None = None) -> None:
        self.name: str | None = None
        self.module: nn.Linear | None = None
        if fc_layer is not None:
            name, module = resolve_layer(model, fc_layer)
            if not isinstance(module, nn.Linear):
                raise ValueError(f"fc_layer '{name}' must be an nn.Linear, got {type(module).__name__}.")
            self.name, self.module = name, module
        else:
            found = find_last_linear(model)
            if found is not None:
                self.name, self.module = found
        self.fc_input: torch.Tensor | None = None
        self.record_always = False
        self._decisions: dict[bool, bool] = {}

    @property
    def mode(self) -> bool:
        """The classifier's training flag (the key of the cached decisions)."""
        return bool(self.module is not None and self.module.training)

    def decision(self) -> bool | None:
        """The cached decision for the current mode, or None while undecided."""
        return self._decisions.get(self.mode)

    def set_decision(self, value: bool) -> None:
        """Cache a decision for the current mode."""
        self._decisions[self.mode] = bool(value)

    def register(self) -> RemovableHandle:
        """Install the pre-hook recording the classifier's input (only while a decision is pending)."""
        if self.module is None:
            raise RuntimeError("the model has no nn.Linear classifier to hook.")
        return self.module.register_forward_pre_hook(self._record)

    def _record(self, module: nn.Module, args: tuple) -> None:
        if self.record_always or self.mode not in self._decisions:
            self.fc_input = args[0] if args and isinstance(args[0], torch.Tensor) else None

    def release(self) -> None:
        """Drop the recorded classifier input."""
        self.fc_input = None

    def check(self, activation: torch.Tensor, layer_name: str) -> bool:
        """Whether ``activation`` reaches the logits only through GAP + the linear layer (cached per mode).

        Args:
            activation: the feature map recorded in the last forward.
            layer_name: its layer's name, for the log.

        Returns:
            The (cached) decision; False when the classifier's input was not recorded in an undecided mode.
        """
        cached = self.decision()
        if cached is not None:
            return cached
        if self.fc_input is None:
            return False
        value = gap_linear_matches(activation, self.fc_input)
        self.set_decision(value)
        logger.info(
            "output of '%s' %s the input of '%s' through global average pooling (%s mode): %s",
            layer_name,
            "feeds" if value else "does not feed",
            self.name,
            "train" if self.mode else "eval",
            "closed-form CAM fast path" if value else "gradient path",
        )
        return value
