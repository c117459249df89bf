"""Output files named by the record's id: safe for a file name, unique, the same id always the same name.

Ids of nested layouts carry folders (CheXlocalize ``patient1/study1/view1_frontal``, a CSV with ``p1/img.dicom``
and ``p2/img.dicom``): naming outputs after the image's file name would give them all one file. MONAI's
``SaveImaged`` names a file after ``meta["filename_or_obj"]``; the bundles put the record id in the meta
(:func:`set_record_id`, a ``Lambda`` transform) and let ``SaveImaged`` name the file through
:func:`record_id_name` (its ``output_name_formatter``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

__all__ = ["RECORD_ID_KEY", "record_id_name", "safe_file_name", "set_record_id"]

RECORD_ID_KEY = "record_id"  # meta key of the record id in the saved image's meta
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_LENGTH = 120  # leaves room for "_<postfix>.<ext>" under the usual 255-byte limit


def safe_file_name(record_id: Any) -> str:
    """A file-name-safe, unique form of a record id.

    Ids made only of letters, digits, ``.``, ``_`` and ``-`` (not starting with ``.``) and at most 120 characters
    long are kept as they are. Otherwise every other character becomes ``_`` and the first 8 hex digits of the id's
    SHA-1 are appended, so that two ids that differ only in those characters (``a/b`` and ``a_b``) never share a
    name.

    Args:
        record_id: the id (converted with ``str``).

    Returns:
        The name (no folder separators, never empty).

    Raises:
        ValueError: an empty id.

    Example:
        >>> safe_file_name("3f2a9c"), safe_file_name("patient1/study1/view1_frontal")
        ('3f2a9c', 'patient1_study1_view1_frontal-6eb46f99')
    """
    text = str(record_id)
    if not text:
        raise ValueError("a record id must not be empty (it names the output files).")
    if not _UNSAFE.search(text) and not text.startswith(".") and len(text) <= _MAX_LENGTH:
        return text
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
    return f"{_UNSAFE.sub('_', text).lstrip('.')[:_MAX_LENGTH]}-{digest}"


def set_record_id(data: MutableMapping[str, Any], keys: str | Sequence[str], id_key: str = "id") -> MutableMapping:
    """Put ``data[id_key]`` into the meta of each ``data[key]`` (a MetaTensor) under :data:`RECORD_ID_KEY`.

    Use it as ``{"_target_": "Lambda", "func": "$lambda d: monai_explain.utils.set_record_id(d, 'saliency')"}``
    before ``SaveImaged``.

    Raises:
        KeyError: the record has no ``id_key``.
        TypeError: ``data[key]`` has no meta.
    """
    if id_key not in data:
        raise KeyError(f"the record has no {id_key!r} to name its output files (keys: {sorted(data)}).")
    for key in [keys] if isinstance(keys, str) else keys:
        meta = getattr(data[key], "meta", None)
        if meta is None:
            raise TypeError(f"{key!r} has no meta (a MetaTensor is needed), got {type(data[key]).__name__}.")
        meta[RECORD_ID_KEY] = str(data[id_key])
    return data


def record_id_name(metadict: Mapping[str, Any], saver: Any = None) -> dict[str, Any]:
    """``SaveImage(d)``'s ``output_name_formatter``: the file is named ``safe_file_name(record id)``.

    Raises:
        KeyError: the meta has no record id (:func:`set_record_id` did not run).
    """
    if RECORD_ID_KEY not in metadict:
        raise KeyError(f"the image's meta has no {RECORD_ID_KEY!r}: run set_record_id before SaveImaged.")
    return {"subject": safe_file_name(metadict[RECORD_ID_KEY]), "idx": metadict.get("patch_index")}
