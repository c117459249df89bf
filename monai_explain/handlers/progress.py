"""Ignite's progress bar as a handler a bundle config can declare (``train#handlers``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from monai.utils import IgniteInfo, min_version, optional_import

IgniteProgressBar, _ = optional_import("ignite.handlers", IgniteInfo.OPT_IMPORT_VERSION, min_version, "ProgressBar")

__all__ = ["ProgressBarHandler"]


class ProgressBarHandler:
    """Attach ``ignite.handlers.ProgressBar`` (tqdm) to an engine; MONAI engines call ``attach(engine)`` only, so the
    bar's ``attach`` arguments are taken here.

    Args:
        output_transform: maps ``engine.state.output`` to the values shown (e.g. ``monai_explain.handlers.loss_terms``).
        persist: keep the bar of each finished epoch on screen.
    """

    def __init__(self, output_transform: Callable[[Any], Any] | None = None, persist: bool = True) -> None:
        self.output_transform = output_transform
        self.bar = IgniteProgressBar(persist=persist)

    def attach(self, engine: Any) -> None:
        self.bar.attach(engine, output_transform=self.output_transform)
