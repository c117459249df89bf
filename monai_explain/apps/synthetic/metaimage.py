"""Minimal MetaImage (.mhd header + .raw data) writer and reader, for LUNA16-style volumes.

MONAI reads MetaImage only through ITK (``monai.data.ITKReader``), which is an optional dependency;
these two functions let the project write LUNA16-format files and check them without ITK.

Conventions: the array is indexed ``[x, y, z]`` (first axis = x, the fastest-varying axis in the
raw file, as MetaIO's ``DimSize = nx ny nz``), world coordinates are ITK's LPS millimetres and
``world = Offset + D @ (ElementSpacing * index)`` where ``D`` is the direction matrix whose
columns are the image axes; ``TransformMatrix`` lists those columns one after another.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["METAIMAGE_TYPES", "metaimage_affine", "read_metaimage", "write_metaimage"]

METAIMAGE_TYPES = {
    "MET_CHAR": np.int8,
    "MET_UCHAR": np.uint8,
    "MET_SHORT": np.int16,
    "MET_USHORT": np.uint16,
    "MET_INT": np.int32,
    "MET_UINT": np.uint32,
    "MET_FLOAT": np.float32,
    "MET_DOUBLE": np.float64,
}
_NUMPY_TO_MET = {np.dtype(v): k for k, v in METAIMAGE_TYPES.items()}


def metaimage_affine(
    spacing: Sequence[float], origin: Sequence[float], direction: np.ndarray | Sequence[float] | None = None
) -> np.ndarray:
    """The (d+1)x(d+1) index -> LPS-world affine ``[[D @ diag(spacing), origin], [0, 1]]``.

    Args:
        spacing: voxel size per axis (mm).
        origin: world position of voxel index 0 (mm, LPS).
        direction: d x d direction matrix (columns = axes), or its d*d values row-major; None = identity.

    Returns:
        float64 affine.
    """
    spacing = np.asarray(spacing, dtype=np.float64)
    d = spacing.size
    direction = np.eye(d) if direction is None else np.asarray(direction, dtype=np.float64).reshape(d, d)
    affine = np.eye(d + 1)
    affine[:d, :d] = direction @ np.diag(spacing)
    affine[:d, d] = np.asarray(origin, dtype=np.float64)
    return affine


def _fmt(values) -> str:
    return " ".join(f"{float(v):.10g}" for v in values)


def write_metaimage(
    path: str | os.PathLike,
    array: np.ndarray,
    spacing: Sequence[float],
    origin: Sequence[float],
    direction: np.ndarray | None = None,
) -> Path:
    """Write ``array`` (indexed [x, y, z]) as ``path`` (.mhd header) plus a .raw file beside it.

    Args:
        path: header file name, ending in ".mhd".
        array: 2D or 3D array of a type in ``METAIMAGE_TYPES``.
        spacing: ElementSpacing per axis (mm).
        origin: Offset, the world position (LPS, mm) of the first voxel's centre.
        direction: direction matrix (columns = axes); None = identity.

    Returns:
        The header path.

    Raises:
        ValueError: wrong suffix, unsupported dtype, or lengths that do not match ``array.ndim``.
    """
    path = Path(path)
    if path.suffix != ".mhd":
        raise ValueError(f"MetaImage header must end in .mhd, got {path}.")
    arr = np.asarray(array)
    if arr.dtype not in _NUMPY_TO_MET:
        raise ValueError(f"dtype {arr.dtype} is not a MetaImage element type ({sorted(METAIMAGE_TYPES)}).")
    nd = arr.ndim
    if len(spacing) != nd or len(origin) != nd:
        raise ValueError(f"spacing and origin need {nd} values for an array of shape {arr.shape}.")
    direction = np.eye(nd) if direction is None else np.asarray(direction, dtype=np.float64)
    raw = path.with_suffix(".raw")
    header = [
        "ObjectType = Image",
        f"NDims = {nd}",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        "CompressedData = False",
        f"TransformMatrix = {_fmt(direction.T.ravel())}",
        f"Offset = {_fmt(origin)}",
        f"CenterOfRotation = {_fmt([0] * nd)}",
        f"AnatomicalOrientation = {'RAI'[:nd]}",
        f"ElementSpacing = {_fmt(spacing)}",
        f"DimSize = {' '.join(str(s) for s in arr.shape)}",
        f"ElementType = {_NUMPY_TO_MET[arr.dtype]}",
        f"ElementDataFile = {raw.name}",
    ]
    # x varies fastest in the file: C order of the axis-reversed array
    raw.write_bytes(
        np.ascontiguousarray(arr.transpose(tuple(range(nd))[::-1])).astype(arr.dtype.newbyteorder("<")).tobytes()
    )
    path.write_text("\n".join(header) + "\n")
    return path


def read_metaimage(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Read a MetaImage written with a separate data file (uncompressed, as LUNA16 ships them).

    Args:
        path: the .mhd header.

    Returns:
        (array indexed [x, y, z], meta) where meta has "spacing", "origin", "direction" (columns =
        axes), "affine" (index -> LPS world, see :func:`metaimage_affine`) and "header" (all fields).

    Raises:
        ValueError: a missing/unsupported field (named) or a data file of the wrong size.
    """
    path = Path(path)
    fields: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        if "=" not in line:
            raise ValueError(f"{path}:{n}: expected 'Key = Value', got {line!r}.")
        key, value = line.split("=", 1)
        fields[key.strip()] = value.strip()
    for key in ("NDims", "DimSize", "ElementType", "ElementDataFile"):
        if key not in fields:
            raise ValueError(f"{path}: field {key} is missing.")
    if fields.get("CompressedData", "False").lower() == "true":
        raise ValueError(f"{path}: CompressedData = True is not supported.")
    if fields["ElementType"] not in METAIMAGE_TYPES:
        raise ValueError(f"{path}: ElementType {fields['ElementType']} is not supported.")
    if fields["ElementDataFile"].upper() in ("LOCAL", "LIST") or "%" in fields["ElementDataFile"]:
        raise ValueError(f"{path}: ElementDataFile {fields['ElementDataFile']} is not supported.")
    nd = int(fields["NDims"])
    shape = tuple(int(v) for v in fields["DimSize"].split())
    spacing = np.array([float(v) for v in fields.get("ElementSpacing", " ".join(["1"] * nd)).split()])
    origin = np.array([float(v) for v in fields.get("Offset", fields.get("Position", " ".join(["0"] * nd))).split()])
    tm = fields.get("TransformMatrix", fields.get("Rotation", fields.get("Orientation")))
    direction = np.eye(nd) if tm is None else np.array([float(v) for v in tm.split()]).reshape(nd, nd).T
    if len(shape) != nd or spacing.size != nd or origin.size != nd:
        raise ValueError(f"{path}: DimSize/ElementSpacing/Offset do not have NDims = {nd} values.")
    msb = fields.get("BinaryDataByteOrderMSB", fields.get("ElementByteOrderMSB", "False")).lower() == "true"
    dtype = np.dtype(METAIMAGE_TYPES[fields["ElementType"]]).newbyteorder(">" if msb else "<")
    raw = path.parent / fields["ElementDataFile"]
    data = np.fromfile(raw, dtype=dtype)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{raw}: {data.size} elements, DimSize {shape} needs {int(np.prod(shape))}.")
    array = data.reshape(shape[::-1]).transpose(tuple(range(nd))[::-1]).astype(dtype.newbyteorder("="))
    meta = {
        "spacing": spacing,
        "origin": origin,
        "direction": direction,
        "affine": metaimage_affine(spacing, origin, direction),
        "header": fields,
    }
    return array, meta
