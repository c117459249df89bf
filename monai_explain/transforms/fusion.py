"""Fusion of several readers' annotation masks of one image (union, intersection, majority vote, soft average)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.utils import StrEnum, look_up_option
from monai.utils.type_conversion import convert_to_dst_type, convert_to_tensor

__all__ = ["FusionMethod", "fuse_per_reader", "fuse_reader_masks", "reader_ids"]


class FusionMethod(StrEnum):
    """How the masks of several readers of one image are combined into one mask.

    With ``R`` the number of readers listed for the image and ``m_r`` the mask of reader ``r`` (the maximum over
    that reader's annotations; a listed reader without annotations has an all-zero mask):

    - ``union``: ``max_r m_r`` - a pixel is in if any reader marked it.
    - ``intersection``: ``min_r m_r`` - a pixel is in only if every listed reader marked it.
    - ``majority``: 1 where more than half of the listed readers marked the pixel (``m_r >= 0.5``), i.e.
      ``votes > R / 2`` (2 of 3, 2 of 2, 3 of 4), else 0.
    - ``mean``: the soft average ``sum_r m_r / R`` - the fraction of readers who marked the pixel, in [0, 1].
    """

    UNION = "union"
    INTERSECTION = "intersection"
    MAJORITY = "majority"
    MEAN = "mean"


def reader_ids(readers: Any) -> list:
    """Return reader ids as a plain Python list (accepts lists, tuples, numpy arrays and tensors)."""
    if readers is None:
        return []
    if isinstance(readers, (str, bytes)):
        return [readers]
    if hasattr(readers, "tolist"):
        out = readers.tolist()
        return out if isinstance(out, list) else [out]
    return list(readers)


def fuse_reader_masks(
    masks: NdarrayOrTensor | Sequence[NdarrayOrTensor],
    readers: Sequence[Any] | NdarrayOrTensor,
    method: FusionMethod | str = FusionMethod.UNION,
    all_readers: Sequence[Any] | None = None,
) -> NdarrayOrTensor:
    """Fuse per-annotation masks drawn by several readers of the same image into one mask.

    Annotations of the same reader are first combined by their maximum (union), giving one mask per reader; the
    reader masks are then fused by ``method`` (see :class:`FusionMethod`). The number of readers ``R`` that the
    majority and the mean divide by is the number of readers *listed for the image*: ``all_readers`` when given
    (pass it: a reader who read the image and drew nothing, e.g. a VinDr-CXR "No finding" reader, still votes),
    else the distinct ids in ``readers``.

    Args:
        masks: per-annotation masks, shape (N, *spatial), values in [0, 1] (binary masks are the usual input).
        readers: reader id of each annotation, length N (str or int ids).
        method: one of ``"union"``, ``"intersection"``, ``"majority"``, ``"mean"``.
        all_readers: every reader who read this image (ids); must contain every id in ``readers``.

    Returns:
        float32 mask of shape ``masks.shape[1:]``: a numpy array for numpy input, else a tensor on ``masks``' device.
        All zero when there are no annotations or no readers.

    Raises:
        ValueError: unknown method, length mismatch between ``masks`` and ``readers``, values outside [0, 1], or a
            reader missing from ``all_readers``.

    Example:
        >>> import numpy as np
        >>> m = np.array([[1, 1, 0], [0, 1, 1], [0, 1, 0]], dtype=np.float32)
        >>> fuse_reader_masks(m, ["R1", "R2", "R3"], "majority")
        array([0., 1., 0.], dtype=float32)
        >>> fuse_reader_masks(m, ["R1", "R2", "R3"], "mean")
        array([0.33333334, 1.        , 0.33333334], dtype=float32)
    """
    method = look_up_option(method, FusionMethod)
    if isinstance(masks, (list, tuple)):
        if len(masks) == 0:
            raise ValueError("masks is an empty sequence: pass an array of shape (0, *spatial) for no annotations.")
        first = masks[0]
        masks = (
            torch.stack([torch.as_tensor(x) for x in masks])
            if isinstance(first, torch.Tensor)
            else np.stack([np.asarray(x) for x in masks])
        )
    is_torch = isinstance(masks, torch.Tensor)
    m: Any = (
        convert_to_tensor(masks, track_meta=False, dtype=torch.float32)
        if is_torch
        else np.asarray(masks, dtype=np.float32)
    )
    if m.ndim < 1:
        raise ValueError(f"masks must have shape (N, *spatial), got {tuple(m.shape)}.")
    ids = reader_ids(readers)
    if len(ids) != m.shape[0]:
        raise ValueError(f"got {m.shape[0]} masks but {len(ids)} reader ids: give one reader id per mask.")
    if m.size if not is_torch else m.numel():
        lo, hi = (float(m.min()), float(m.max()))
        if not (0.0 <= lo and hi <= 1.0):  # also catches NaN
            raise ValueError(f"masks must hold values in [0, 1] (no NaN), got [{lo}, {hi}].")
    listed = list(dict.fromkeys(reader_ids(all_readers) if all_readers is not None else ids))
    index = {r: j for j, r in enumerate(listed)}
    unknown = [r for r in dict.fromkeys(ids) if r not in index]
    if unknown:
        raise ValueError(f"readers {unknown} annotated the image but are not in all_readers={listed}.")
    # one mask per reader who drew something (max over that reader's annotations)
    present = list(dict.fromkeys(ids))
    sel = np.asarray([index[r] for r in ids], dtype=np.int64)
    groups = [np.flatnonzero(sel == index[r]) for r in present]
    if is_torch:
        stacked = (
            torch.stack([m[torch.as_tensor(g, device=m.device)].amax(0) for g in groups])
            if groups
            else m.new_zeros((0,) + tuple(m.shape[1:]))
        )
    else:
        stacked = np.stack([m[g].max(0) for g in groups]) if groups else np.zeros((0,) + m.shape[1:], np.float32)
    out = fuse_per_reader(stacked, len(listed), method)
    return convert_to_dst_type(out, dst=masks, dtype=torch.float32)[0] if is_torch else out


def fuse_per_reader(per_reader: Any, num_readers: int, method: FusionMethod | str) -> Any:
    """Fuse one mask per reader who annotated the image, out of ``num_readers`` listed readers.

    The core of :func:`fuse_reader_masks` without input checks (readers absent from ``per_reader`` drew nothing).

    Args:
        per_reader: (R, *spatial) numpy array or tensor in [0, 1], R <= ``num_readers``.
        num_readers: the number of readers listed for the image.
        method: see :class:`FusionMethod`.

    Returns:
        float32 (*spatial) array / tensor, all zero when ``num_readers`` or R is 0.
    """
    method = look_up_option(method, FusionMethod)
    r = int(per_reader.shape[0])
    if r > num_readers:
        raise ValueError(f"{r} reader masks but only {num_readers} readers listed.")
    is_torch = isinstance(per_reader, torch.Tensor)
    spatial = tuple(per_reader.shape[1:])
    if r == 0 or (method == FusionMethod.INTERSECTION and r < num_readers):
        return per_reader.new_zeros(spatial, dtype=torch.float32) if is_torch else np.zeros(spatial, np.float32)
    if method == FusionMethod.MAJORITY:
        votes = (per_reader >= 0.5).sum(0)
        out = 2 * votes > num_readers
    elif method == FusionMethod.MEAN:
        out = per_reader.sum(0) / num_readers
    elif is_torch:
        out = per_reader.amax(0) if method == FusionMethod.UNION else per_reader.amin(0)
    else:
        out = per_reader.max(0) if method == FusionMethod.UNION else per_reader.min(0)
    return out.to(torch.float32) if is_torch else np.asarray(out, dtype=np.float32)
