"""``get_adapter(name, **kwargs)``: build a dataset adapter by name (for bundle configs)."""

from __future__ import annotations

from typing import Any

from .base import DatasetAdapter
from .chexlocalize import CheXlocalizeAdapter
from .generic_csv import GenericCSVAdapter
from .luna16 import LUNA16Adapter
from .mscxr import MSCXRAdapter
from .nih import NIHChestXray14Adapter
from .rsna import RSNAPneumoniaAdapter
from .siim import SIIMPneumothoraxAdapter
from .vindr import VinDrCXRAdapter

__all__ = ["ADAPTERS", "get_adapter"]

#: Adapter classes by :func:`get_adapter` name.
ADAPTERS: dict[str, type[DatasetAdapter]] = {
    cls.name: cls
    for cls in (
        VinDrCXRAdapter,
        RSNAPneumoniaAdapter,
        NIHChestXray14Adapter,
        SIIMPneumothoraxAdapter,
        CheXlocalizeAdapter,
        MSCXRAdapter,
        LUNA16Adapter,
        GenericCSVAdapter,
    )
}


def get_adapter(name: str, **kwargs: Any) -> DatasetAdapter:
    """Build the dataset adapter called ``name`` (case-insensitive).

    Args:
        name: one of ``vindr``, ``rsna``, ``nih``, ``siim``, ``chexlocalize``, ``mscxr``, ``luna16``, ``csv``.
        kwargs: the adapter's constructor arguments (``dataset_dir`` first).

    Returns:
        the adapter; call ``.load()`` (or the adapter itself) for the data list.

    Raises:
        ValueError: an unknown name.

    Example:
        In a bundle config:

        .. code-block:: json

            "adapter": {"_target_": "monai_explain.data.get_adapter", "name": "vindr", "dataset_dir": "@data_dir"},
            "train_data": "$@adapter.load()"
    """
    key = str(name).strip().lower()
    if key not in ADAPTERS:
        raise ValueError(f"unknown dataset adapter {name!r}; available: {sorted(ADAPTERS)}.")
    return ADAPTERS[key](**kwargs)
