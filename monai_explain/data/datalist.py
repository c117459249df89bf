"""From a dataset's published files to the data list of one split, with the classes a bundle trains on.

This is the one call a bundle config makes (``"$monai_explain.data.build_datalist(...)"``): it reads the dataset
through its adapter, picks the split, and narrows labels and annotations to the configured classes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .adapters import get_adapter
from .confounders import attach_confounder_boxes, default_confounder_file, read_confounder_boxes
from .split import split_data_list

__all__ = ["assign_splits", "build_datalist", "positive_indices", "select_classes"]

logger = logging.getLogger(__name__)

_RATIO_SPLITS = ("train", "val", "test")


def select_classes(data: Sequence[dict], all_classes: Sequence[str], keep: Sequence[str]) -> list[dict]:
    """Narrow each record's multi-hot ``label`` and its annotations to the classes in ``keep``.

    ``label`` becomes a float list over ``keep`` (in that order) and ``box_labels`` is remapped to indices into
    ``keep``; boxes of other classes are removed from the record (counted and logged: they are out of scope by
    design, not lost data). Records are copied, the input is not modified.

    Args:
        data: adapter records with ``label`` (multi-hot over ``all_classes``) and optional ``boxes`` /
            ``box_labels`` / ``box_readers``.
        all_classes: the adapter's class names (the order of ``label``).
        keep: the class names to keep.

    Raises:
        ValueError: a name of ``keep`` not in ``all_classes``, or a record whose label length differs.
    """
    all_classes = list(all_classes)
    missing = [c for c in keep if c not in all_classes]
    if missing:
        raise ValueError(f"unknown class names {missing}; the dataset's classes are {all_classes}.")
    index = np.asarray([all_classes.index(c) for c in keep], dtype=np.int64)
    remap = np.full(len(all_classes), -1, dtype=np.int64)
    remap[index] = np.arange(len(index))
    out, dropped = [], 0
    for rec in data:
        new = dict(rec)
        label = np.asarray(rec["label"], dtype=np.float32).reshape(-1)
        if label.size != len(all_classes):
            raise ValueError(
                f"record {rec.get('id', rec.get('image'))!r}: label has {label.size} entries, expected "
                f"{len(all_classes)} (one per class of the dataset)."
            )
        new["label"] = label[index].tolist()
        if "box_labels" in rec and len(rec["box_labels"]) > 0:
            mapped = remap[np.asarray(rec["box_labels"], dtype=np.int64)]
            sel = mapped >= 0
            dropped += int((~sel).sum())
            new["box_labels"] = mapped[sel]
            for key in ("boxes", "box_readers"):
                if key in rec:
                    new[key] = np.asarray(rec[key])[sel]
        out.append(new)
    if dropped:
        logger.info(f"select_classes: {dropped} annotations of classes outside {list(keep)} left out by design.")
    return out


def _read_split_file(split_file: str | os.PathLike) -> dict[str, str]:
    """``{image_id: split}`` from a JSON file; errors name the file."""
    try:
        mapping = json.loads(Path(split_file).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(
            f"split file {split_file} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); "
            "expected an object {image_id: split name}."
        ) from e
    except UnicodeDecodeError as e:
        raise ValueError(f"split file {split_file} is not UTF-8 text: {e}.") from e
    if not isinstance(mapping, dict):
        raise ValueError(
            f"split file {split_file} must hold a JSON object {{image_id: split name}}, got a {type(mapping).__name__}."
        )
    bad = [k for k, v in mapping.items() if not isinstance(v, str)]
    if bad:
        raise ValueError(
            f"split file {split_file}: the split of image {bad[0]!r} is {mapping[bad[0]]!r}, not a split name "
            f"({len(bad)} such entries)."
        )
    return mapping


def assign_splits(
    data: Sequence[dict],
    split_file: str | os.PathLike | None = None,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> dict[str, list[dict]]:
    """Group records by split: from ``split_file`` (JSON ``{id: split}``), a ``"split"`` field, or ``ratios``.

    With ratios the split is deterministic for the seed, stratified by label, into ``train`` / ``val`` / ``test``.

    Raises:
        KeyError: a record missing from ``split_file`` (its id is named).
        ValueError: ``split_file`` is not valid JSON or not an object of ``{image_id: split name}`` (the file, and
            the line and column of a syntax error, are named).
    """
    if split_file is not None and Path(split_file).is_file():
        mapping = _read_split_file(split_file)
        groups: dict[str, list[dict]] = {}
        for rec in data:
            if rec["id"] not in mapping:
                raise KeyError(f"{split_file}: image {rec['id']!r} has no split.")
            groups.setdefault(mapping[rec["id"]], []).append(rec)
        return groups
    if data and all("split" in rec for rec in data):
        return split_data_list(data, by="split")
    parts = split_data_list(data, ratios=list(ratios), stratify_by="label", seed=seed)
    return dict(zip(_RATIO_SPLITS, parts))


def build_datalist(
    adapter: str,
    dataset_dir: str | os.PathLike,
    split: str,
    classes: Sequence[str] | None = None,
    split_file: str | os.PathLike | None = None,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    limit: int | None = None,
    adapter_kwargs: dict[str, Any] | None = None,
    confounder_file: str | os.PathLike | None = None,
) -> list[dict]:
    """The data list of one split of a dataset, ready for ``LoadImaged`` + the annotation-to-mask transforms.

    Args:
        adapter: an adapter name of :func:`monai_explain.data.get_adapter` (``"vindr"``, ``"rsna"``, ...).
        dataset_dir: the dataset root.
        split: ``"train"``, ``"val"``, ``"test"`` or any split named by ``split_file`` / the records
            (e.g. ``"test_shifted"`` of the synthetic set).
        classes: class names to train on (a subset of the adapter's ``class_names``); None keeps all. Every record's
            ``label`` is a multi-hot float list (binary adapters' 0/1 labels become a one-entry list).
        split_file: JSON ``{image_id: split}``; default ``<dataset_dir>/splits.json`` when it exists.
        ratios: train/val/test fractions when neither a split file nor a ``split`` field exists.
        seed: seed of the ratio split.
        limit: keep at most this many records (the first ones, after the split), e.g. for smoke tests.
        adapter_kwargs: passed to the adapter.
        confounder_file: CSV of confounder boxes (see :mod:`monai_explain.data.confounders`); default
            ``<dataset_dir>/confounder_boxes.csv`` when it exists. Its boxes become each record's
            ``"confounder_boxes"`` (empty for images without a row); without a file the key is absent.

    Raises:
        ValueError: an unknown split, or an empty split.
    """
    ad = get_adapter(adapter, dataset_dir=dataset_dir, **(adapter_kwargs or {}))
    data = ad.load()
    if getattr(ad, "binary", False):  # one class: the label as a one-entry multi-hot list, like the others
        data = [{**rec, "label": [float(rec["label"])]} for rec in data]
    if classes is not None:
        data = select_classes(data, ad.class_names, classes)
    if split_file is None and (Path(dataset_dir) / "splits.json").is_file():
        split_file = Path(dataset_dir) / "splits.json"
    groups = assign_splits(data, split_file=split_file, ratios=ratios, seed=seed)
    if split not in groups:
        raise ValueError(f"split {split!r} not found in {dataset_dir}; available: {sorted(groups)}.")
    part = groups[split]
    if limit is not None:
        part = part[: int(limit)]
    if not part:
        raise ValueError(f"split {split!r} of {dataset_dir} is empty.")
    if confounder_file is None:
        confounder_file = default_confounder_file(dataset_dir)
    if confounder_file is not None:
        part = attach_confounder_boxes(part, read_confounder_boxes(confounder_file), source=str(confounder_file))
    logger.info(f"{adapter} {split}: {len(part)} images, {sum(int(np.any(r['label'])) for r in part)} positive.")
    return part


def positive_indices(data: Sequence[dict], n: int) -> list[int]:
    """Indices of the first ``n`` records with a positive label (then negatives, if too few positives)."""
    pos = [i for i, rec in enumerate(data) if np.any(np.asarray(rec["label"], dtype=np.float32) > 0)]
    neg = [i for i, rec in enumerate(data) if i not in set(pos)]
    return (pos + neg)[: int(n)]
