"""Run tables and per-image tables of a lambda x design x seed study: validation, grouping, CSV input/output.

pandas is not a dependency: a run table is a list of dicts, a per-image table is :class:`PerImageTable`
(image ids + one float array per column).
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "METRIC_HIGHER_IS_BETTER",
    "PER_IMAGE_METRICS",
    "RUN_KEYS",
    "RUN_METRICS",
    "PerImageTable",
    "SettingKey",
    "align_per_image",
    "group_runs",
    "metric_keys",
    "read_csv",
    "read_per_image_csv",
    "setting_label",
    "validate_runs",
    "write_csv",
]

logger = logging.getLogger(__name__)

#: keys every run dict must have.
RUN_KEYS: tuple[str, ...] = ("design", "lambda", "seed", "run_id")
#: per-run scalar metrics a sweep is expected to record (any other numeric key is summarised too).
RUN_METRICS: tuple[str, ...] = (
    "accuracy",
    "accuracy_shifted",
    "auc",
    "coverage",
    "precision",
    "chance_level",
    "deletion_auc",
    "insertion_auc",
    "train_time",
)
#: per-image columns (besides ``image_id``) of the per-run CSV files.
PER_IMAGE_METRICS: tuple[str, ...] = ("correct", "probability", "coverage", "precision", "chance_level", "deletion_auc")
#: direction of each known metric (deletion AUC: a faithful map removes the class evidence fast -> lower is better).
METRIC_HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "accuracy_shifted": True,
    "auc": True,
    "coverage": True,
    "precision": True,
    "correct": True,
    "probability": True,
    "insertion_auc": True,
    "deletion_auc": False,
    "train_time": False,
}

#: a setting of the study: ``(design, lambda)``.
SettingKey = tuple[str, float]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def validate_runs(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check a run table and return a normalised copy (``design`` str, ``lambda`` float, ``seed`` int).

    Args:
        runs: one dict per run with the keys :data:`RUN_KEYS` and any metrics (numbers; ``None`` = missing).

    Returns:
        A list of new dicts, in the input order.

    Raises:
        ValueError: empty table, a missing key, a negative or non-finite lambda, a non-integer seed, a duplicated
            ``run_id`` or a duplicated ``(design, lambda, seed)`` (the message names the runs).
    """
    if len(runs) == 0:
        raise ValueError("the run table is empty.")
    out: list[dict[str, Any]] = []
    seen_ids: dict[str, int] = {}
    seen_settings: dict[tuple[str, float, int], str] = {}
    for i, run in enumerate(runs):
        missing = [k for k in RUN_KEYS if k not in run]
        if missing:
            raise ValueError(f"run #{i} ({dict(run).get('run_id', '?')}) lacks the key(s) {missing}.")
        r = dict(run)
        r["design"] = str(r["design"])
        r["run_id"] = str(r["run_id"])
        try:
            lam = float(r["lambda"])
        except (TypeError, ValueError) as e:
            raise ValueError(f"run {r['run_id']}: 'lambda' must be a number, got {r['lambda']!r}.") from e
        if not math.isfinite(lam) or lam < 0:
            raise ValueError(f"run {r['run_id']}: 'lambda' must be finite and >= 0, got {lam}.")
        r["lambda"] = lam
        seed = r["seed"]
        if not (_is_number(seed) and float(seed).is_integer()):
            raise ValueError(f"run {r['run_id']}: 'seed' must be an integer, got {seed!r}.")
        r["seed"] = int(seed)
        if r["run_id"] in seen_ids:
            raise ValueError(f"run_id {r['run_id']!r} appears twice (rows #{seen_ids[r['run_id']]} and #{i}).")
        seen_ids[r["run_id"]] = i
        key = (r["design"], lam, r["seed"])
        if key in seen_settings:
            raise ValueError(f"runs {seen_settings[key]!r} and {r['run_id']!r} have the same design/lambda/seed {key}.")
        seen_settings[key] = r["run_id"]
        out.append(r)
    return out


def metric_keys(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The numeric metric keys of a validated run table, in first-seen order.

    A key is a metric when every run that has it holds a number or ``None`` (missing). Keys holding text in all
    runs (paths, notes) are not metrics; a key mixing numbers and text is an error.

    Raises:
        ValueError: a key with numbers in some runs and non-numbers in others (names the key and a run).
    """
    order: list[str] = []
    kinds: dict[str, set[str]] = {}
    example: dict[tuple[str, str], str] = {}
    for r in runs:
        for k, v in r.items():
            if k in RUN_KEYS:
                continue
            if k not in kinds:
                order.append(k)
                kinds[k] = set()
            kind = "none" if v is None else ("number" if _is_number(v) else "other")
            kinds[k].add(kind)
            example.setdefault((k, kind), str(r.get("run_id", "?")))
    metrics = []
    for k in order:
        if "number" in kinds[k] and "other" in kinds[k]:
            raise ValueError(
                f"key {k!r} holds numbers (run {example[(k, 'number')]!r}) and non-numbers "
                f"(run {example[(k, 'other')]!r})."
            )
        if "number" in kinds[k]:
            metrics.append(k)
    return metrics


def group_runs(runs: Sequence[Mapping[str, Any]]) -> dict[SettingKey, list[dict[str, Any]]]:
    """Group validated runs by setting ``(design, lambda)``, settings sorted by design then lambda, runs by seed."""
    groups: dict[SettingKey, list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((str(r["design"]), float(r["lambda"])), []).append(dict(r))
    return {k: sorted(groups[k], key=lambda r: r["seed"]) for k in sorted(groups)}


def setting_label(key: SettingKey) -> str:
    """A short ASCII label of a setting, e.g. ``"energy lambda=0.1"``."""
    return f"{key[0]} lambda={key[1]:g}"


@dataclass
class PerImageTable:
    """Per-image values of one run: image ids and one float array per column (NaN = missing).

    Attributes:
        image_ids: the ids, unique, in file order.
        columns: column name -> float array of ``len(image_ids)``.
        source: where it was read from (for messages).
    """

    image_ids: list[str]
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = "<memory>"

    def __post_init__(self) -> None:
        self.image_ids = [str(i) for i in self.image_ids]
        if len(set(self.image_ids)) != len(self.image_ids):
            dup = sorted({i for i in self.image_ids if self.image_ids.count(i) > 1})
            raise ValueError(f"{self.source}: duplicated image id(s) {dup[:5]}.")
        cols = {}
        for k, v in self.columns.items():
            a = np.asarray(v, dtype=float).reshape(-1)
            if a.shape[0] != len(self.image_ids):
                raise ValueError(
                    f"{self.source}: column {k!r} has {a.shape[0]} values for {len(self.image_ids)} images."
                )
            cols[k] = a
        self.columns = cols

    def __len__(self) -> int:
        return len(self.image_ids)

    def column(self, name: str) -> np.ndarray:
        """The values of column ``name``.

        Raises:
            KeyError: the column is absent (the message names the table's source and its columns).
        """
        if name not in self.columns:
            raise KeyError(f"{self.source}: no column {name!r} (columns: {sorted(self.columns)}).")
        return self.columns[name]


def read_per_image_csv(path: str | os.PathLike, id_column: str = "image_id") -> PerImageTable:
    """Read a per-image CSV (``image_id`` + numeric columns; empty cell, ``nan`` or ``NA`` = missing).

    Args:
        path: the CSV file.
        id_column: the column holding the image ids.

    Returns:
        The :class:`PerImageTable`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: no ``id_column``, an empty id, a non-numeric cell (file, row and column named), a duplicated id.

    Example:
        >>> t = read_per_image_csv("runs/energy_0.1_s0/per_image.csv")  # doctest: +SKIP
        >>> t.column("precision").mean()  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"per-image file {path} does not exist.")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or id_column not in reader.fieldnames:
            raise ValueError(f"{path}: no {id_column!r} column (header: {reader.fieldnames}).")
        names = [n for n in reader.fieldnames if n != id_column]
        ids: list[str] = []
        values: dict[str, list[float]] = {n: [] for n in names}
        for row_no, row in enumerate(reader, start=2):
            image_id = (row.get(id_column) or "").strip()
            if not image_id:
                raise ValueError(f"{path}, line {row_no}: empty {id_column!r}.")
            ids.append(image_id)
            for n in names:
                values[n].append(_parse_float(row.get(n), f"{path}, line {row_no}, column {n!r}"))
    return PerImageTable(ids, {n: np.asarray(v, dtype=float) for n, v in values.items()}, source=str(path))


def _parse_float(text: str | None, where: str) -> float:
    if text is None or text.strip() == "" or text.strip().lower() in ("nan", "na", "none"):
        return float("nan")
    try:
        return float(text)
    except ValueError as e:
        raise ValueError(f"{where}: {text!r} is not a number.") from e


def align_per_image(tables: Sequence[PerImageTable], column: str) -> tuple[list[str], np.ndarray, int]:
    """Values of one column for the images present in every table, in the first table's order.

    Args:
        tables: per-image tables of several runs.
        column: the column to take.

    Returns:
        ``(image_ids, values, n_unmatched)`` with ``values`` of shape ``(len(tables), n_common)`` and
        ``n_unmatched`` the number of distinct images missing from at least one table (counted and logged).

    Raises:
        ValueError: no tables.
        KeyError: a table without ``column``.
    """
    if len(tables) == 0:
        raise ValueError("align_per_image needs at least one table.")
    common = set(tables[0].image_ids)
    union = set(tables[0].image_ids)
    for t in tables[1:]:
        common &= set(t.image_ids)
        union |= set(t.image_ids)
    ids = [i for i in tables[0].image_ids if i in common]
    n_unmatched = len(union) - len(common)
    if n_unmatched:
        logger.warning(
            f"{n_unmatched} image(s) are not in all of {[t.source for t in tables]}; they are left out of the pairing."
        )
    out = np.empty((len(tables), len(ids)), dtype=float)
    for j, t in enumerate(tables):
        pos = {i: p for p, i in enumerate(t.image_ids)}
        col = t.column(column)
        out[j] = col[[pos[i] for i in ids]] if ids else np.empty(0)
    return ids, out, n_unmatched


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, np.integer):
        return int(v)
    return v


def write_csv(
    rows: Iterable[Mapping[str, Any]], path: str | os.PathLike, fieldnames: Sequence[str] | None = None
) -> Path:
    """Write dict rows to a CSV file; the header is the union of the keys in first-seen order.

    Floats are written with ``repr`` (they read back exactly), ``None`` as an empty cell, NaN as ``nan``.

    Args:
        rows: the rows.
        path: the output file (folders are created).
        fieldnames: the header; default the union of the rows' keys.

    Returns:
        The path written.

    Raises:
        ValueError: a row with a key missing from ``fieldnames`` (the row is named).
    """
    rows = list(rows)
    if fieldnames is None:
        names: list[str] = []
        for r in rows:
            names.extend(k for k in r if k not in names)
        fieldnames = names
    else:
        for i, r in enumerate(rows):
            extra = [k for k in r if k not in fieldnames]
            if extra:
                raise ValueError(f"write_csv({path}): row #{i} has keys {extra} that are not in the header.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(fieldnames))
        w.writeheader()
        for r in rows:
            w.writerow({k: _cell(r.get(k)) for k in fieldnames})
    return path


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Read a CSV file into a list of dicts of strings (the inverse of :func:`write_csv`, without typing)."""
    with Path(path).open(newline="") as f:
        return [dict(r) for r in csv.DictReader(f)]
