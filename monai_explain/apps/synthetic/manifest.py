"""Idempotent "generate on first run": a manifest records what a generator wrote and with which parameters."""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "MANIFEST_NAME",
    "OWNER_MARKER",
    "check_generator_folder",
    "is_generated",
    "mark_generator_folder",
    "normalize_parameters",
    "read_listing",
    "write_csv",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"
OWNER_MARKER = ".monai_explain_synthetic"  # written into a folder before a generator writes anything else there
_GENERATOR_KINDS = ("shortcut_cxr", "synthetic_ct")  # manifests of sets generated before the marker existed

logger = logging.getLogger(__name__)


def normalize_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``parameters`` as JSON would give them back (tuples become lists, keys become strings)."""
    return json.loads(json.dumps(dict(parameters), sort_keys=True))


def check_generator_folder(root: str | os.PathLike) -> None:
    """Refuse to generate into a folder that holds files a generator did not create (e.g. the user's data set).

    Accepted: a folder that does not exist yet, an empty one, or one holding :data:`OWNER_MARKER` (written by
    :func:`mark_generator_folder` before an earlier generation wrote anything) or a generator's ``manifest.json``.

    Args:
        root: the data set folder a generator is about to write into.

    Raises:
        ValueError: ``root`` is not a folder, or holds other files (a few are named).
    """
    folder = Path(root)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ValueError(f"cannot generate synthetic data into {folder}: it is not a folder.")
    if (folder / OWNER_MARKER).is_file():
        return
    manifest = folder / MANIFEST_NAME
    if manifest.is_file():
        try:
            if json.loads(manifest.read_text()).get("kind") in _GENERATOR_KINDS:
                return
        except (json.JSONDecodeError, AttributeError, OSError):
            pass
    found = sorted(p.name for p in folder.iterdir())
    if found:
        shown = ", ".join(found[:5]) + (f", ... ({len(found)} entries)" if len(found) > 5 else "")
        raise ValueError(
            f"refusing to generate synthetic data into {folder}: it holds files the generator did not create "
            f"({shown}) and no {OWNER_MARKER} marker of an earlier generation. Use an empty or new folder for "
            "synthetic data; to train on the data already there, do not generate (bundles: skip the data "
            "preparation step)."
        )


def mark_generator_folder(root: str | os.PathLike, kind: str) -> None:
    """Create ``root`` and mark it as a generator's folder (:data:`OWNER_MARKER`), before anything else is written."""
    folder = Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / OWNER_MARKER
    if not marker.is_file():
        marker.write_text(f"{kind}\n")


def is_generated(
    root: str | os.PathLike,
    kind: str,
    version: str,
    parameters: Mapping[str, Any],
    files: Iterable[str] | None = None,
    overwrite: bool = False,
) -> bool:
    """Whether ``root`` already holds a complete data set made by generator ``kind`` with ``parameters``.

    Args:
        root: data set folder.
        kind: generator name stored in the manifest (e.g. "shortcut_cxr").
        version: generator version stored in the manifest.
        parameters: generation parameters (compared after JSON normalisation).
        files: paths relative to ``root`` that must all exist (checked only when the manifest matches).
        overwrite: when True a differing manifest means "regenerate" instead of an error.

    Returns:
        True when the manifest matches and every listed file exists (generation can be skipped);
        False when there is no manifest, files are missing, or (with ``overwrite``) it differs.

    Raises:
        ValueError: the manifest belongs to another generator / version / parameter set and
            ``overwrite`` is False (the differing keys are named).
    """
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        return False
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}.") from err
    wanted = {"kind": kind, "version": version, "parameters": normalize_parameters(parameters)}
    found = {key: manifest.get(key) for key in wanted}
    if found != wanted:
        diff = sorted(k for k in wanted["parameters"] if (found["parameters"] or {}).get(k) != wanted["parameters"][k])
        diff += sorted(k for k in ("kind", "version") if found[k] != wanted[k])
        if not overwrite:
            raise ValueError(
                f"{path} was written with other settings (differing: {', '.join(diff) or 'parameter set'}); "
                "pass overwrite=True or use another folder."
            )
        logger.info("%s differs in %s: regenerating.", path, diff)
        return False
    missing = [f for f in (files or ()) if not (Path(root) / f).is_file()]
    if missing:
        logger.warning("%s: %d listed files are missing (first: %s): regenerating.", root, len(missing), missing[0])
        return False
    return True


def write_manifest(
    root: str | os.PathLike,
    kind: str,
    version: str,
    parameters: Mapping[str, Any],
    counts: Mapping[str, Any],
) -> Path:
    """Write ``<root>/manifest.json`` (written last by a generator: its presence marks a complete set).

    Args:
        root: data set folder.
        kind: generator name.
        version: generator version.
        parameters: generation parameters.
        counts: summary counts to record (per split, per class, ...).

    Returns:
        The manifest path.
    """
    path = Path(root) / MANIFEST_NAME
    body = {
        "kind": kind,
        "version": version,
        "parameters": normalize_parameters(parameters),
        "counts": normalize_parameters(counts),
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def read_listing(path: Path, overwrite: bool) -> dict[str, str]:
    """The ids recorded by a previous run (empty when none, or unreadable with ``overwrite``)."""
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        if overwrite:
            return {}
        raise ValueError(f"{path} is not a valid id -> split mapping ({err}); pass overwrite=True.") from err


def write_csv(path: Path, header: Sequence[str], rows: list[list[str]]) -> None:
    """Write a CSV file with ``header`` and ``rows`` (``\\n`` line ends, so files are byte-identical everywhere)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
