"""The study's one data structure: the per-image results of every run, as one long pandas DataFrame.

Each run's evaluation writes the per-image table of the results contract
(:data:`monai_explain.handlers.PER_IMAGE_FILE`, columns :data:`monai_explain.handlers.PER_IMAGE_COLUMNS` then
the per-image metrics). The study stacks them with the run's setting in front: ``design, lambda, seed, id, split,
class, label, probability, threshold, decision, correct, <metrics...>``, one row per run, image and class (and
``macro`` rows: :func:`add_macro`). Per-run metrics (:func:`run_metrics`) are a second long table.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from monai_explain.handlers.per_image_results import PER_IMAGE_COLUMNS
from monai_explain.utils.extras import optional_import_extra

from .stats import sps

pd, _ = optional_import_extra("pandas", "study")

__all__ = ["MACRO", "RUN", "add_macro", "metric_columns", "read_per_image", "run_metrics", "validate_per_image"]

#: the columns naming a run.
RUN: list[str] = ["design", "lambda", "seed"]
#: the class name of the per-image mean over classes.
MACRO = "macro"


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The per-image metric columns of a study table (everything after the contract's fixed columns)."""
    fixed = set(RUN) | set(PER_IMAGE_COLUMNS)
    return [c for c in df.columns if c not in fixed]


def validate_per_image(df: pd.DataFrame, source: str = "per-image table") -> pd.DataFrame:
    """Check a study table and return it with normalised types.

    Raises:
        ValueError: a missing column, a non-numeric value, a non-0/1 label/decision/correct, a negative lambda, or
            a (run, id, split, class) that appears twice (the message names the source and the first bad row).
    """
    missing = [c for c in RUN + list(PER_IMAGE_COLUMNS) if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing} (columns: {list(df.columns)}).")
    df = df.copy()
    df[["id", "split", "class", "design"]] = df[["id", "split", "class", "design"]].astype(str)
    for c in ["lambda", "seed", "label", "probability", "threshold", "decision", "correct"] + metric_columns(df):
        values = pd.to_numeric(df[c], errors="coerce")
        bad = values.isna() & df[c].notna()
        if bad.any():
            raise ValueError(f"{source}, row {int(np.flatnonzero(bad)[0])}: column {c!r} holds {df[c][bad].iloc[0]!r}.")
        df[c] = values
    for c in ("label", "decision", "correct"):
        bad = ~df[c].isin([0, 1])
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{source}, row {row}: {c!r} must be 0 or 1, got {df[c].iloc[row]}.")
    if (df["lambda"] < 0).any():
        raise ValueError(f"{source}: lambda must be >= 0, got {sorted(df['lambda'][df['lambda'] < 0].unique())}.")
    df["seed"] = df["seed"].astype(int)
    dup = df.duplicated(RUN + ["id", "split", "class"])
    if dup.any():
        row = df[dup].iloc[0]
        raise ValueError(
            f"{source}: run {tuple(row[RUN])} has image {row['id']!r} ({row['split']}, {row['class']}) twice."
        )
    return df


def read_per_image(runs: Mapping[tuple[str, float, int], str | os.PathLike]) -> pd.DataFrame:
    """Stack the per-image tables of several runs.

    Args:
        runs: ``(design, lambda, seed) -> list of per-image CSV files`` (one per evaluated split) or one file.

    Returns:
        The validated study table.

    Raises:
        FileNotFoundError: a missing file (named). ValueError: see :func:`validate_per_image`.
    """
    frames = []
    for (design, lam, seed), paths in runs.items():
        for path in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"per-image table {path} of run {(design, lam, seed)} does not exist.")
            t = validate_per_image(pd.read_csv(path, dtype={"id": str, "class": str, "split": str}).assign(
                design=design, **{"lambda": float(lam)}, seed=int(seed)), str(path))  # fmt: skip
            frames.append(t)
    if not frames:
        raise ValueError("no per-image tables to read.")
    return pd.concat(frames, ignore_index=True)[RUN + [c for c in frames[0].columns if c not in RUN]]


def add_macro(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``class == "macro"`` rows (per image: the mean over its classes of every numeric column) when a split has
    several classes; NaN values are skipped, so a metric is averaged over the classes that have it."""
    per = df[df["class"] != MACRO]
    if per.groupby("split")["class"].nunique().max() < 2:
        return df
    numeric = ["probability", "correct"] + metric_columns(per)
    macro = per.groupby(RUN + ["id", "split"], sort=False)[numeric].mean().reset_index().assign(**{"class": MACRO})
    return pd.concat([df, macro], ignore_index=True)


def run_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """Per-run metrics from the per-image rows: ``design, lambda, seed, split, class, metric, value``.

    Per (run, split, class): ``accuracy`` (mean ``correct``), ``balanced_accuracy`` (mean of sensitivity and
    specificity), ``auc`` (ROC AUC = Mann-Whitney U / (n_pos n_neg); NaN without both labels) and the mean of every
    per-image metric over the images that have it. ``class == "macro"``: the mean over the classes.
    """
    rows = []
    per = df[df["class"] != MACRO]
    for key, g in per.groupby(RUN + ["split", "class"], sort=False):
        pos, neg = g[g["label"] == 1], g[g["label"] == 0]
        auc = np.nan
        if len(pos) and len(neg):
            auc = sps.mannwhitneyu(pos["probability"], neg["probability"]).statistic / (len(pos) * len(neg))
        values = {
            "accuracy": g["correct"].mean(),
            "balanced_accuracy": (pos["correct"].mean() + neg["correct"].mean()) / 2,
            "auc": auc,
            **{m: g[m].mean() for m in metric_columns(g)},
        }  # fmt: skip
        rows += [(*key, m, float(v)) for m, v in values.items()]
    out = pd.DataFrame(rows, columns=RUN + ["split", "class", "metric", "value"])
    if out.groupby("split")["class"].nunique().max() > 1:
        macro = out.groupby(RUN + ["split", "metric"], sort=False)["value"].mean().reset_index()
        out = pd.concat([out, macro.assign(**{"class": MACRO})[out.columns]], ignore_index=True)
    return out
