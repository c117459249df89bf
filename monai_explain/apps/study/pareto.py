"""Pareto front of two objectives (accuracy vs alignment by default, both maximised).

A point ``j`` *dominates* ``i`` when it is at least as good on both objectives and strictly better on one.
The front is the set of points no other point dominates. Ties and duplicates: identical points do not dominate
each other, so duplicates of a front point are all on the front; a point equal to another on one objective and
worse on the other is dominated. Points with a NaN objective are never on the front (counted and logged).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["dominance_counts", "pareto_mask", "pareto_table"]

logger = logging.getLogger(__name__)


def _oriented(x: Any, y: Any, maximize: tuple[bool, bool]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(x, dtype=float).reshape(-1)
    b = np.asarray(y, dtype=float).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"x and y differ in length ({a.size} vs {b.size}).")
    if len(maximize) != 2:
        raise ValueError(f"maximize needs one flag per objective (2), got {maximize!r}.")
    return (a if maximize[0] else -a), (b if maximize[1] else -b)


def dominance_counts(x: Any, y: Any, maximize: tuple[bool, bool] = (True, True)) -> np.ndarray:
    """For each point, how many points dominate it (0 = on the front); -1 for points with a NaN objective.

    Args:
        x: first objective, one value per point.
        y: second objective.
        maximize: per objective, True to maximise, False to minimise.

    Returns:
        Integer array of counts.

    Raises:
        ValueError: ``x`` and ``y`` of different lengths, or a bad ``maximize``.

    Example:
        >>> dominance_counts([1, 2, 2, 0], [3, 2, 1, 0]).tolist()
        [0, 0, 1, 3]
    """
    a, b = _oriented(x, y, maximize)
    bad = np.isnan(a) | np.isnan(b)
    ge = (a[None, :] >= a[:, None]) & (b[None, :] >= b[:, None])  # [i, j]: j at least as good as i
    gt = (a[None, :] > a[:, None]) | (b[None, :] > b[:, None])
    dom = ge & gt & ~bad[None, :]
    counts = dom.sum(axis=1).astype(int)
    counts[bad] = -1
    return counts


def pareto_mask(x: Any, y: Any, maximize: tuple[bool, bool] = (True, True)) -> np.ndarray:
    """Boolean mask of the points on the Pareto front (see the module docstring for ties and NaN).

    Example:
        >>> pareto_mask([1, 2, 2, 0], [3, 2, 2, 0]).tolist()
        [True, True, True, False]
    """
    counts = dominance_counts(x, y, maximize)
    n_bad = int((counts < 0).sum())
    if n_bad:
        logger.info(f"pareto_mask: {n_bad} point(s) with a NaN objective are not on the front.")
    return counts == 0


def pareto_table(
    rows: Sequence[Mapping[str, Any]],
    x_key: str = "accuracy_mean",
    y_key: str = "precision_mean",
    maximize: tuple[bool, bool] = (True, True),
    keep: Sequence[str] = ("design", "lambda", "setting"),
) -> list[dict[str, Any]]:
    """Pareto front of table rows (e.g. the per-setting summary), as rows sorted front first, then by ``x``.

    Args:
        rows: dicts with ``x_key`` and ``y_key`` (``None`` = missing).
        x_key: first objective's key.
        y_key: second objective's key.
        maximize: per objective, True to maximise.
        keep: other keys copied into the output rows (when present).

    Returns:
        Rows with the kept keys, ``x_key``, ``y_key``, ``on_front`` (bool) and ``n_dominating`` (points dominating
        this one; None for a NaN objective). Front rows come first, sorted along the front by ``x``
        (best first), then the others by ``n_dominating``.

    Raises:
        KeyError: a row without ``x_key`` or ``y_key`` (its index named).
    """
    for i, r in enumerate(rows):
        for k in (x_key, y_key):
            if k not in r:
                raise KeyError(f"pareto_table: row #{i} ({r.get('setting', '?')}) has no {k!r}.")
    nan = float("nan")
    xs = [nan if r[x_key] is None else r[x_key] for r in rows]
    ys = [nan if r[y_key] is None else r[y_key] for r in rows]
    counts = dominance_counts(xs, ys, maximize)
    if (counts < 0).any():
        logger.info(f"pareto_table: {(counts < 0).sum()} row(s) with NaN {x_key}/{y_key} are not on the front.")
    sign = 1.0 if maximize[0] else -1.0
    out = []
    for r, x, y, c in zip(rows, xs, ys, counts):
        row = {k: r[k] for k in keep if k in r}
        row.update({x_key: x, y_key: y, "on_front": bool(c == 0), "n_dominating": None if c < 0 else int(c)})
        out.append(row)

    def order(item: tuple[dict[str, Any], int]) -> tuple:
        row, c = item
        x = row[x_key]
        return (c != 0, c < 0, c, -sign * x if np.isfinite(x) else 0.0)

    return [r for r, _ in sorted(zip(out, counts.tolist()), key=order)]
