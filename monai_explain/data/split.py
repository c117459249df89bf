"""Split a data list by ratios (``monai.data.partition_dataset``) or by the value of a field (e.g. MS-CXR's split)."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from typing import Any, overload

from monai.data import partition_dataset, partition_dataset_classes

__all__ = ["split_data_list"]

logger = logging.getLogger(__name__)


def _class_key(value: Any) -> Hashable:
    """A hashable stratum for a label: an int stays, a multi-hot list becomes a tuple."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    return tuple(value) if isinstance(value, (list, tuple)) else value


@overload
def split_data_list(
    data: Sequence[dict],
    ratios: Sequence[float] | None = None,
    by: None = None,
    stratify_by: str | None = None,
    shuffle: bool = True,
    seed: int = 0,
) -> list[list[dict]]: ...


@overload
def split_data_list(
    data: Sequence[dict],
    ratios: Sequence[float] | None = None,
    *,
    by: str,
    stratify_by: str | None = None,
    shuffle: bool = True,
    seed: int = 0,
) -> dict[Any, list[dict]]: ...


def split_data_list(
    data: Sequence[dict],
    ratios: Sequence[float] | None = None,
    by: str | None = None,
    stratify_by: str | None = None,
    shuffle: bool = True,
    seed: int = 0,
) -> list[list[dict]] | dict[Any, list[dict]]:
    """Split a data list into parts, either by ``ratios`` or by the value of the field ``by``.

    - ``ratios`` (e.g. ``[0.8, 0.1, 0.1]``): deterministic shuffled split with ``monai.data.partition_dataset``
      (``monai.data.partition_dataset_classes`` with ``stratify_by``, keeping each stratum's proportions; a
      multi-hot label is one stratum per distinct combination). Returns a list of parts.
    - ``by`` (e.g. ``"split"``): one part per distinct value, in order of first appearance, each keeping the
      input order. Returns a dict value -> part. Records without the field raise.

    Args:
        data: the data list.
        ratios: relative sizes of the parts.
        by: name of the field holding each record's part.
        stratify_by: with ``ratios``, the field used as the class of a record (e.g. ``"label"``).
        shuffle: with ``ratios``, shuffle before splitting.
        seed: the shuffling seed.

    Returns:
        list of parts (``ratios``) or dict of parts (``by``).

    Raises:
        ValueError: neither or both of ``ratios`` and ``by``, negative or all-zero ratios, or a record without
            the ``by`` / ``stratify_by`` field.

    Example:
        >>> data = [{"id": i, "split": "train" if i < 3 else "test"} for i in range(4)]
        >>> {k: [d["id"] for d in v] for k, v in split_data_list(data, by="split").items()}
        {'train': [0, 1, 2], 'test': [3]}
    """
    if (ratios is None) == (by is None):
        raise ValueError("give exactly one of ratios and by.")
    if by is not None:
        parts: dict[Any, list[dict]] = {}
        for i, item in enumerate(data):
            if by not in item:
                raise ValueError(f"record {i} (id {item.get('id')!r}) has no field {by!r}.")
            parts.setdefault(item[by], []).append(item)
        logger.info("split by %r: %s", by, {k: len(v) for k, v in parts.items()})
        return parts
    ratios = [float(r) for r in ratios]  # type: ignore[union-attr]
    if not ratios or min(ratios) < 0 or sum(ratios) <= 0:
        raise ValueError(f"ratios must be non-negative with a positive sum, got {ratios}.")
    if stratify_by is None:
        return partition_dataset(list(data), ratios=ratios, shuffle=shuffle, seed=seed)
    classes = []
    for i, item in enumerate(data):
        if stratify_by not in item:
            raise ValueError(f"record {i} (id {item.get('id')!r}) has no field {stratify_by!r}.")
        classes.append(_class_key(item[stratify_by]))
    # partition_dataset_classes sorts the strata: give it sortable keys (their order of first appearance)
    order = {c: k for k, c in enumerate(dict.fromkeys(classes))}
    return partition_dataset_classes(list(data), [order[c] for c in classes], ratios=ratios, shuffle=shuffle, seed=seed)
