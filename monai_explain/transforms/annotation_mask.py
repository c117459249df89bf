"""Shared machinery of the annotation -> mask transforms: channels, reader fusion, soft edges, bad-input policy.

Every annotation transform (boxes, ellipses, polygons, RLE, points) works the same way:

1. its annotations are parsed and validated; each one becomes a set of pixels of the reference image's grid;
2. annotations are grouped into output channels - one merged channel (default), one channel per finding class
   (``num_classes`` / ``class_names``) or one channel per annotation (``per_instance=True``);
3. within a channel, the annotations are combined by union, or - with ``fusion`` and reader ids - each reader's
   annotations are combined first and the readers are fused by :func:`~monai_explain.transforms.fuse_reader_masks`;
4. optionally the edges are softened by a Gaussian (``sigma`` in pixels, ``scipy.ndimage.gaussian_filter`` with
   ``mode="nearest"``, so a region touching the image border is not faded there), giving a soft mask in [0, 1];
5. the float32 mask (C, *spatial) is converted to the reference image's type with ``convert_to_dst_type``: for a
   ``MetaTensor`` image it carries the image's affine and meta, so it follows the image through MONAI's spatial
   transforms.

Coordinates (see :class:`SpatialLayout`): datasets give (x, y) = (column, row). MONAI's image readers (PILReader,
PydicomReader with ``swap_ij=True``, ITKReader, NibabelReader) return arrays whose FIRST spatial axis is the column,
so with the default ``spatial_layout="xy"`` coordinate k indexes spatial axis k. For arrays stored (row, column) -
the numpy / PIL default, e.g. ``np.asarray(PIL.Image.open(f))[None]`` - use ``spatial_layout="yx"``: x and y are
swapped before rasterising (a third coordinate z stays the last axis).

Pixel geometry: continuous pixel coordinates put pixel ``i`` over ``[i, i + 1)`` with its centre at ``i + 0.5``
(MONAI's box convention, ``TO_REMOVE = 0``), so the box ``[2, 5]`` covers pixels 2, 3, 4. Voxel *index*
coordinates (used by points and by the affine) put the centre of voxel ``i`` at ``i``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import StrEnum, TransformBackends, ensure_tuple, ensure_tuple_rep, look_up_option
from monai.utils.type_conversion import convert_to_dst_type, convert_to_tensor

from monai_explain.utils.extras import optional_import_extra

from .fusion import FusionMethod, fuse_per_reader, reader_ids

gaussian_filter, _ = optional_import_extra("scipy.ndimage", "masks", name="gaussian_filter")

__all__ = ["AnnotationToMask", "AnnotationToMaskd", "InvalidPolicy", "SpatialLayout", "swap_xy"]

logger = logging.getLogger(__name__)


#: reader id given to every annotation of a record that names no readers (fusion then leaves the mask as is)
_SINGLE_READER = "<single reader>"

class SpatialLayout(StrEnum):
    """How the reference image stores its first two spatial axes, relative to dataset coordinates (x=column, y=row).

    - ``xy``: spatial axis 0 is x (the column), axis 1 is y (the row) - what MONAI's readers return
      (``LoadImage`` with PILReader, PydicomReader(swap_ij=True), ITKReader, NibabelReader). Coordinates are used
      as they are.
    - ``yx``: spatial axis 0 is the row, axis 1 the column - numpy / PIL storage, e.g. ``np.asarray(pil_image)``.
      x and y are swapped before rasterising.
    """

    XY = "xy"
    YX = "yx"


class InvalidPolicy(StrEnum):
    """What to do with an invalid annotation (NaN, inverted, degenerate, entirely outside the image, malformed).

    - ``raise``: ``ValueError`` naming the annotation index (and the record key and image file when known).
    - ``drop``: the annotation is left out of the mask; it is counted in ``transform.counts["dropped"]`` and logged
      with ``logging.warning``.
    """

    RAISE = "raise"
    DROP = "drop"


def swap_xy(coords: np.ndarray) -> np.ndarray:
    """Swap the first two columns (x <-> y) of an (N, D) coordinate array, returning a new array."""
    out = np.array(coords, dtype=np.float64, copy=True)
    if out.ndim == 2 and out.shape[1] >= 2:
        out[:, [0, 1]] = out[:, [1, 0]]
    return out


def _as_float_rows(annotations: Any, width: int, what: str, ctx: str) -> np.ndarray:
    """Annotations (list / ndarray / tensor) -> float64 array (N, width); an empty input gives (0, width)."""
    if annotations is None:
        return np.zeros((0, width), dtype=np.float64)
    if hasattr(annotations, "detach"):
        annotations = annotations.detach().cpu().numpy()
    try:
        arr = np.asarray(annotations, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} must be a numeric array of shape (N, {width}){ctx}: {e}") from None
    if arr.size == 0:
        return arr.reshape(0, width)
    if arr.ndim != 2 or arr.shape[1] != width:
        raise ValueError(f"{what} must have shape (N, {width}), got {arr.shape}{ctx}.")
    return arr


@dataclass
class _Geometry:
    """The reference grid an annotation is rasterised into."""

    spatial_size: tuple[int, ...]
    affine: np.ndarray | None = None
    space: str = "RAS"

    @property
    def spatial_dims(self) -> int:
        return len(self.spatial_size)


@dataclass
class _Prepared:
    """Validated annotations: ``keep`` holds the original indices that are rasterised, ``patches`` (one per kept
    annotation, or ``None`` for an annotation that is empty by design) hold ``(slices, bool patch)``."""

    keep: list[int]
    patches: list[tuple[tuple[slice, ...], np.ndarray] | None] = field(default_factory=list)
    data: Any = None
    clipped: int = 0
    empty: int = 0


class AnnotationToMask(Transform):
    """Base class: annotations -> float32 mask (C, *spatial) in a reference image's own grid.

    Subclasses implement :meth:`_normalize` (annotations -> list-like items and optional labels),
    :meth:`_prepare` (validate and locate each item) and, optionally, :meth:`_render_group`.

    Args:
        num_classes: one output channel per class id ``0 .. num_classes - 1`` (multi-label mask). ``None`` with no
            ``class_names``: one merged channel holding every annotation.
        class_names: one output channel per class name, in this order; labels may then be names or ids.
        per_instance: one output channel per annotation (kept order; an image with no annotation gives one
            all-zero channel). Not combinable with classes or fusion.
        fusion: fuse several readers' annotations of the image per channel: ``"union"``, ``"intersection"``,
            ``"majority"`` or ``"mean"`` (soft average) - see :class:`~monai_explain.transforms.FusionMethod`.
            Needs a reader id per annotation. ``None``: the union of all annotations, readers ignored.
        spatial_layout: ``"xy"`` (default, MONAI readers) or ``"yx"`` (arrays stored row, column); see
            :class:`SpatialLayout`.
        sigma: Gaussian softening of the mask edges, in pixels (scalar or one value per spatial axis, in array axis
            order), applied per channel after fusion. ``0`` keeps a binary mask. The result lies in [0, 1]; a
            region narrower than a few sigma loses its peak value (blurring, not rescaling).
        invalid: ``"raise"`` (default) or ``"drop"`` for invalid annotations; see :class:`InvalidPolicy`.

    Attributes:
        counts: running ``collections.Counter`` of ``annotations`` (seen), ``clipped`` (partly outside the image,
            clipped), ``dropped`` (invalid, left out under ``invalid="drop"``), ``empty`` (empty by design, e.g. a
            SIIM ``-1`` row) and ``images``.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]  # noqa: RUF012 (MONAI style)
    item_name: str = "annotation"
    item_plural: str = "annotations"

    def __init__(
        self,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        per_instance: bool = False,
        fusion: FusionMethod | str | None = None,
        spatial_layout: SpatialLayout | str = SpatialLayout.XY,
        sigma: float | Sequence[float] = 0.0,
        invalid: InvalidPolicy | str = InvalidPolicy.RAISE,
    ) -> None:
        if class_names is not None:
            class_names = [str(c) for c in class_names]
            if len(set(class_names)) != len(class_names) or not class_names:
                raise ValueError(f"class_names must be non-empty and unique, got {class_names}.")
            if num_classes is not None and num_classes != len(class_names):
                raise ValueError(f"num_classes={num_classes} does not match len(class_names)={len(class_names)}.")
            num_classes = len(class_names)
        if num_classes is not None and int(num_classes) < 1:
            raise ValueError(f"num_classes must be a positive int or None, got {num_classes}.")
        self.num_classes = None if num_classes is None else int(num_classes)
        self.class_names = class_names
        self.per_instance = bool(per_instance)
        if self.per_instance and (self.num_classes is not None or fusion is not None):
            raise ValueError(
                "per_instance=True gives one channel per annotation: it cannot be combined with "
                "num_classes/class_names or fusion."
            )
        self.fusion = None if fusion is None else look_up_option(fusion, FusionMethod)
        self.spatial_layout = look_up_option(spatial_layout, SpatialLayout)
        sig = np.asarray(ensure_tuple(sigma), dtype=np.float64)
        if not np.all(np.isfinite(sig)) or np.any(sig < 0):
            raise ValueError(f"sigma must be finite and >= 0, got {sigma}.")
        self.sigma = sigma
        self._sigma = sig
        self.invalid = look_up_option(invalid, InvalidPolicy)
        self.counts: Counter = Counter()

    def __call__(
        self,
        annotations: Any,
        labels: Any = None,
        image: NdarrayOrTensor | None = None,
        readers: Any = None,
        image_readers: Any = None,
        spatial_size: Sequence[int] | None = None,
        context: str | None = None,
    ) -> NdarrayOrTensor:
        """Rasterise ``annotations`` into a float32 mask (C, *spatial); see the subclasses for the arguments."""
        return self._make_mask(annotations, labels, image, readers, image_readers, spatial_size, context)

    # ------------------------------------------------------------------ subclass hooks
    def _normalize(self, annotations: Any, labels: Any, geometry: _Geometry, ctx: str) -> tuple[Any, Any]:
        """Return ``(items, labels)`` with ``len(items)`` annotations (e.g. flatten a {class: [...]} mapping)."""
        return annotations, labels

    def _prepare(self, items: Any, geometry: _Geometry, ctx: str, **kwargs: Any) -> _Prepared:
        raise NotImplementedError(f"{type(self).__name__} must implement _prepare.")

    def _render_group(self, prepared: _Prepared, positions: Sequence[int], spatial_size: tuple[int, ...]) -> np.ndarray:
        """Union (bool array of ``spatial_size``) of the prepared annotations at ``positions`` (into ``keep``)."""
        out = np.zeros(spatial_size, dtype=bool)
        for p in positions:
            patch = prepared.patches[p]
            if patch is not None:
                sl, m = patch
                out[sl] |= m
        return out

    @staticmethod
    def _count_items(items: Any) -> int:
        return 0 if items is None else len(items)

    # ------------------------------------------------------------------ helpers for subclasses
    def _invalid(self, index: int, reason: str, ctx: str, dropped: list[int]) -> None:
        """Raise or record (and log) an invalid annotation according to ``self.invalid``."""
        msg = f"{self.item_name} {index} {reason.rstrip('.')}{ctx}"
        if self.invalid == InvalidPolicy.RAISE:
            raise ValueError(msg + " (use invalid='drop' to leave such annotations out).")
        dropped.append(index)
        self.counts["dropped"] += 1
        logger.warning("dropped %s", msg)

    def _apply_policy(self, reasons: Sequence[str | None], ctx: str) -> list[int]:
        """Raise for / drop every annotation with a reason (in index order); return the indices kept."""
        dropped: list[int] = []
        for i, reason in enumerate(reasons):
            if reason is not None:
                self._invalid(i, reason, ctx, dropped)
        return [i for i, reason in enumerate(reasons) if reason is None]

    def _swap_if_yx(self, coords: np.ndarray) -> np.ndarray:
        return swap_xy(coords) if self.spatial_layout == SpatialLayout.YX else coords

    def _rc_shape(self, spatial_size: Sequence[int]) -> tuple[int, ...]:
        """The image shape in (row, column[, ...]) storage order (what RLE and COCO ``size`` describe)."""
        s = tuple(int(v) for v in spatial_size)
        return (s[1], s[0]) + s[2:] if self.spatial_layout == SpatialLayout.XY else s

    # ------------------------------------------------------------------ the common pipeline
    @staticmethod
    def _geometry(image: NdarrayOrTensor | None, spatial_size: Sequence[int] | None) -> _Geometry:
        if image is not None:
            if image.ndim < 3:
                raise ValueError(
                    f"the reference image must be channel-first (C, *spatial), got shape {tuple(image.shape)}."
                )
            size = tuple(int(s) for s in image.shape[1:])
            affine = None
            space = "RAS"
            if isinstance(image, MetaTensor):
                affine = image.affine.detach().cpu().numpy().astype(np.float64)
                space = str(image.meta.get("space", "RAS"))
        elif spatial_size is None:
            raise ValueError("give the reference image (channel-first) or spatial_size.")
        else:
            size, affine, space = tuple(int(s) for s in ensure_tuple(spatial_size)), None, "RAS"
        if any(s < 1 for s in size):
            raise ValueError(f"the spatial size must be positive, got {size}.")
        return _Geometry(size, affine, space)

    @staticmethod
    def _context(context: str | None, image: Any) -> str:
        parts = [context] if context else []
        if isinstance(image, MetaTensor):
            name = image.meta.get("filename_or_obj")
            if name:
                parts.append(f"image {name}")
        return f" ({', '.join(parts)})" if parts else ""

    def _channels(self, labels: Any, n: int, ctx: str) -> np.ndarray:
        """Output channel of each annotation (labels are always checked: a bad label is a configuration error)."""
        if self.per_instance:
            return np.arange(n, dtype=np.int64)
        if self.num_classes is None:
            return np.zeros(n, dtype=np.int64)
        if labels is None:
            if n == 0:
                return np.zeros(0, dtype=np.int64)
            raise ValueError(f"labels are needed for a per-class mask (num_classes={self.num_classes}){ctx}.")
        labs = reader_ids(labels)
        if len(labs) != n:
            raise ValueError(f"got {n} {self.item_plural} but {len(labs)} labels{ctx}.")
        out = np.empty(n, dtype=np.int64)
        for i, lab in enumerate(labs):
            if isinstance(lab, (str, bytes)):
                name = lab.decode() if isinstance(lab, bytes) else lab
                if self.class_names is None or name not in self.class_names:
                    raise ValueError(
                        f"{self.item_name} {i} has label {name!r}, which is not in class_names={self.class_names}{ctx}."
                    )
                out[i] = self.class_names.index(name)
                continue
            try:
                value = float(lab)
            except (TypeError, ValueError):
                raise ValueError(f"{self.item_name} {i} has label {lab!r}, not a class id or name{ctx}.") from None
            if not value.is_integer() or not 0 <= value < self.num_classes:
                raise ValueError(
                    f"{self.item_name} {i} has label {lab!r}, outside the class ids 0..{self.num_classes - 1}{ctx}."
                )
            out[i] = int(value)
        return out

    def _make_mask(
        self,
        annotations: Any,
        labels: Any = None,
        image: NdarrayOrTensor | None = None,
        readers: Any = None,
        image_readers: Any = None,
        spatial_size: Sequence[int] | None = None,
        context: str | None = None,
        **kwargs: Any,
    ) -> NdarrayOrTensor:
        geometry = self._geometry(image, spatial_size)
        ctx = self._context(context, image)
        items, labels = self._normalize(annotations, labels, geometry, ctx)
        n = self._count_items(items)
        self.counts["images"] += 1
        self.counts["annotations"] += n
        channels = self._channels(labels, n, ctx)
        reader_list = reader_ids(readers) if readers is not None else None
        if reader_list is not None and len(reader_list) != n:
            raise ValueError(f"got {n} {self.item_plural} but {len(reader_list)} reader ids{ctx}.")
        if self.fusion is not None and reader_list is None and n > 0:
            # a dataset without reader ids (RSNA, NIH, ...) has one reader per image: fusing one reader is a no-op
            reader_list = [_SINGLE_READER] * n
            self.counts["single_reader"] += 1
        if self.fusion is not None and image_readers is not None and reader_list:
            listed = reader_ids(image_readers)
            missing = [r for r in dict.fromkeys(reader_list) if r not in set(listed)]
            if missing:
                raise ValueError(f"readers {missing} annotated the image but are not in its readers {listed}{ctx}.")

        prepared = self._prepare(items, geometry, ctx, **kwargs)
        if prepared.clipped:
            self.counts["clipped"] += prepared.clipped
            logger.info(
                "%d of %d %s clipped to the image of size %s%s",
                prepared.clipped,
                n,
                self.item_plural,
                geometry.spatial_size,
                ctx,
            )
        if prepared.empty:
            self.counts["empty"] += prepared.empty
        keep = np.asarray(prepared.keep, dtype=np.int64)
        kept_channels = channels[keep] if n else channels

        size = geometry.spatial_size
        n_channels = max(len(keep), 1) if self.per_instance else (self.num_classes or 1)
        mask = np.zeros((n_channels,) + size, dtype=np.float32)
        num_listed = len(set(reader_ids(image_readers) if image_readers is not None else (reader_list or [])))
        for c in np.unique(kept_channels):
            positions = np.flatnonzero(kept_channels == c)
            if self.per_instance:
                c = positions[0]
            if self.fusion is None:
                mask[int(c)] = self._render_group(prepared, positions, size)
                continue
            kept_readers = [reader_list[int(keep[p])] for p in positions]  # type: ignore[index]
            per_reader = np.stack(
                [
                    self._render_group(prepared, [p for p, r in zip(positions, kept_readers) if r == rid], size)
                    for rid in dict.fromkeys(kept_readers)
                ]
            )
            mask[int(c)] = fuse_per_reader(per_reader, num_listed, self.fusion)
        if self._sigma.size and np.any(self._sigma > 0):
            sig = np.broadcast_to(self._sigma, (len(size),)) if self._sigma.size == 1 else self._sigma
            if sig.size != len(size):
                raise ValueError(f"sigma needs 1 or {len(size)} values for this image, got {self._sigma.tolist()}.")
            for ch in range(mask.shape[0]):
                if mask[ch].any():
                    mask[ch] = gaussian_filter(mask[ch], sigma=sig.tolist(), mode="nearest", truncate=4.0)
            np.clip(mask, 0.0, 1.0, out=mask)
        if image is not None:
            return convert_to_dst_type(mask, dst=image, dtype=torch.float32)[0]
        return convert_to_tensor(mask, dtype=torch.float32)


class AnnotationToMaskd(MapTransform):
    """Dictionary form of an :class:`AnnotationToMask` transform.

    For each annotation key it reads the annotations (numpy arrays or lists, per sample, no collation), their
    labels and reader ids from sibling keys, rasterises them in the grid of ``data[ref_key]`` and writes the mask
    to ``mask_key``. Errors name the annotation key (and the image file when its meta has one).

    The annotation keys hold a different number of items per sample and do not collate into batches: drop them
    after this transform (``monai.transforms.DeleteItemsd`` / ``SelectItemsd``) before a ``DataLoader``.

    Args:
        keys: annotation key(s).
        converter: the array transform doing the work.
        ref_key: key of the reference image (channel-first), e.g. after ``LoadImaged(..., ensure_channel_first=True)``.
        mask_key: output key(s), one per annotation key.
        label_key: key(s) of the class labels; used when present in the data (needed for per-class masks).
        reader_key: key(s) of the reader ids; used when present (needed for ``fusion``).
        image_readers_key: key listing every reader of the image (e.g. 3 VinDr radiologists, including those who
            drew nothing); used by majority / mean / intersection fusion when present.
        allow_missing_keys: skip annotation keys absent from the data (no mask written for them).
    """

    backend = AnnotationToMask.backend

    def __init__(
        self,
        keys: KeysCollection,
        converter: AnnotationToMask,
        ref_key: Hashable = "image",
        mask_key: KeysCollection = "mask",
        label_key: KeysCollection | None = None,
        reader_key: KeysCollection | None = None,
        image_readers_key: Hashable | None = "readers",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = converter
        self.ref_key = ref_key
        self.mask_keys = ensure_tuple_rep(mask_key, len(self.keys))
        if len(set(self.mask_keys)) != len(self.mask_keys):
            raise ValueError(f"each annotation key needs its own mask_key, got {self.mask_keys} for {self.keys}.")
        self.label_keys = ensure_tuple_rep(label_key, len(self.keys))
        self.reader_keys = ensure_tuple_rep(reader_key, len(self.keys))
        self.image_readers_key = image_readers_key

    @property
    def counts(self) -> Counter:
        """The converter's running counts (see :class:`AnnotationToMask`)."""
        return self.converter.counts

    def _extra(self, d: Mapping, key: Hashable) -> dict[str, Any]:
        """Extra keyword arguments for the converter read from the record (e.g. point diameters)."""
        return {}

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, mask_key, label_key, reader_key in self.key_iterator(
            d, self.mask_keys, self.label_keys, self.reader_keys
        ):
            if self.ref_key not in d:
                raise KeyError(f"reference image key {self.ref_key!r} is missing from the data (needed for {key!r}).")
            labels = d.get(label_key) if label_key is not None else None
            readers = d.get(reader_key) if reader_key is not None else None
            context = f"key {key!r}"
            needs_labels = self.converter.num_classes is not None and not self.converter.per_instance
            needed = [label_key] if needs_labels else []
            needed += [reader_key] if self.converter.fusion is not None else []
            absent = [k for k in needed if k is not None and k not in d]
            if absent:
                context += f"; {', '.join(repr(k) for k in absent)} not in the data"
            image_readers = d.get(self.image_readers_key) if self.image_readers_key is not None else None
            d[mask_key] = self.converter._make_mask(
                d[key],
                labels=labels,
                image=d[self.ref_key],
                readers=readers,
                image_readers=image_readers,
                context=context,
                **self._extra(d, key),
            )
        return d
