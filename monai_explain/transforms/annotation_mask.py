"""The annotation -> mask transforms' common composition, array and dictionary forms.

Every annotation transform (boxes, ellipses, polygons, RLE, points) is the same composition of the functional
pieces of :mod:`monai_explain.transforms.functional`:

1. the reference grid is read from the image (:func:`~monai_explain.transforms.functional.reference_grid`), which
   must not have gone through a spatial transform yet
   (:func:`~monai_explain.transforms.functional.check_untransformed`);
2. the annotations are parsed and rasterised (the subclass' rasteriser, e.g.
   :func:`~monai_explain.transforms.functional.rasterize_boxes`; coordinate layout is one of its arguments);
3. invalid annotations raise or are left out
   (:func:`~monai_explain.transforms.functional.apply_invalid_policy`);
4. annotations are grouped into output channels - one merged channel (default), one channel per finding class
   (``num_classes`` / ``class_names``) or one channel per annotation (``per_instance=True``)
   (:func:`~monai_explain.transforms.functional.annotation_channels`);
5. within a channel, the annotations are unioned, or - with ``fusion`` and reader ids - each reader's annotations
   are unioned and the readers fused (:func:`~monai_explain.transforms.functional.render_mask`);
6. optionally the edges are softened (:func:`~monai_explain.transforms.functional.soften_mask`);
7. the float32 mask (C, *spatial) is converted to the reference image's type with ``convert_to_dst_type``: for a
   ``MetaTensor`` image it carries the image's affine and meta, so it follows the image through MONAI's spatial
   transforms (a plain tensor reference gives a ``MetaTensor`` when MONAI's meta tracking is on, as MONAI's own
   transforms do; a numpy reference gives numpy, without meta), and its meta gets the annotation statistics of this
   image under ``"annotation_stats"``
   (:data:`ANNOTATION_STATS_KEY`: ``annotations``, ``kept``, ``dropped``, ``clipped``, ``empty``,
   ``single_reader``). The statistics travel with each sample (they survive ``DataLoader`` workers and collate
   into the batch's meta), are logged (INFO for clipped, WARNING for dropped annotations), and the transform
   itself holds no state that changes per call.

Coordinates (see :class:`SpatialLayout`): datasets give (x, y) = (column, row). MONAI's image readers (PILReader,
PydicomReader with ``swap_ij=True``, ITKReader, NibabelReader) return arrays whose FIRST spatial axis is the column,
so with the default ``spatial_layout="xy"`` coordinate k indexes spatial axis k. For arrays stored (row, column) -
the numpy / PIL default, e.g. ``np.asarray(PIL.Image.open(f))[None]`` - use ``spatial_layout="yx"``: x and y are
swapped before rasterising (a third coordinate z stays the last axis).

Spatial transforms: annotations are in the original image's pixels, so the mask must be made before any spatial
transform of the image (then ``Resized`` etc. are applied to image and mask together). A reference ``MetaTensor``
that records spatial transforms in its ``applied_operations`` is refused with a clear error (this was a silently
wrong mask before); ``allow_transformed_image=True`` accepts it for annotations already given in the transformed
grid. World-space points (``PointsToMask(space="world")``) go through the image affine, which MONAI's spatial
transforms keep up to date: they are accepted after spatial transforms.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, ensure_tuple, ensure_tuple_rep, look_up_option
from monai.utils.type_conversion import convert_to_dst_type, convert_to_tensor

from .functional import (
    AnnotationRegions,
    ReferenceGrid,
    annotation_channels,
    apply_invalid_policy,
    check_untransformed,
    reader_ids,
    reference_grid,
    render_mask,
    soften_mask,
    swap_xy,
)
from .options import FusionMethod, InvalidPolicy, SpatialLayout

__all__ = [
    "ANNOTATION_STATS_KEY",
    "AnnotationToMask",
    "AnnotationToMaskd",
    "InvalidPolicy",
    "SpatialLayout",
    "annotation_stats",
    "swap_xy",
]

logger = logging.getLogger(__name__)

#: meta key of the per-image annotation statistics written on the mask
ANNOTATION_STATS_KEY = "annotation_stats"
#: reader id given to every annotation of a record that names no readers (fusion then leaves the mask as is)
SINGLE_READER = "<single reader>"


def annotation_stats(mask: Any) -> dict[str, int]:
    """The annotation statistics a mask transform wrote in ``mask.meta`` (an empty dict for a plain array).

    Keys: ``annotations`` (given), ``kept`` (rasterised), ``dropped`` (invalid, left out under ``invalid="drop"``),
    ``clipped`` (kept, partly outside the image), ``empty`` (empty by design, e.g. a SIIM ``-1`` row),
    ``single_reader`` (1 when fusion was asked for but the record named no readers).

    Example:
        >>> from monai_explain.transforms import BoxesToMask
        >>> mask = BoxesToMask(invalid="drop")([[0, 0, 2, 2], [3, 3, 3, 4]], spatial_size=(4, 4))
        >>> annotation_stats(mask)["kept"], annotation_stats(mask)["dropped"]
        (1, 1)
    """
    meta = getattr(mask, "meta", None)
    stats = meta.get(ANNOTATION_STATS_KEY) if isinstance(meta, Mapping) else None
    return {k: int(v) for k, v in stats.items()} if isinstance(stats, Mapping) else {}


class AnnotationToMask(Transform):
    """Base class: annotations -> float32 mask (C, *spatial) in a reference image's own grid.

    Subclasses implement :meth:`_normalize` (annotations -> list-like items and labels) and :meth:`_rasterize`
    (items -> :class:`~monai_explain.transforms.functional.AnnotationRegions`, by a functional rasteriser); the rest
    is the composition described in the module docstring.

    Args:
        num_classes: one output channel per class id ``0 .. num_classes - 1`` (multi-label mask). ``None`` with no
            ``class_names``: one merged channel holding every annotation.
        class_names: one output channel per class name, in this order; labels may then be names or ids.
        per_instance: one output channel per kept annotation (kept order; an image with no annotation gives one
            all-zero channel). Not combinable with classes or fusion.
        fusion: fuse several readers' annotations of the image per channel: ``"union"``, ``"intersection"``,
            ``"majority"`` or ``"mean"`` (soft average) - see :class:`~monai_explain.transforms.FusionMethod`.
            Needs a reader id per annotation (a record without any counts as one reader). ``None``: the union of
            all annotations, readers ignored.
        spatial_layout: ``"xy"`` (default, MONAI readers) or ``"yx"`` (arrays stored row, column); see
            :class:`SpatialLayout`.
        sigma: Gaussian softening of the mask edges, in pixels (scalar or one value per spatial axis, in array axis
            order), applied per channel after fusion. ``0`` keeps a binary mask.
        invalid: ``"raise"`` (default) or ``"drop"`` for invalid annotations; see :class:`InvalidPolicy`.
        allow_transformed_image: accept a reference image that records spatial transforms (the annotations are
            then taken to be in the transformed grid). Default ``False``: such an image raises.
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
        allow_transformed_image: bool = False,
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
        self.invalid = look_up_option(invalid, InvalidPolicy)
        self.allow_transformed_image = bool(allow_transformed_image)

    def __call__(  # type: ignore[override]  # MONAI's Transform.__call__(data) placeholder; named inputs here
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
        """Rasterise ``annotations`` into a float32 mask (C, *spatial); see the subclasses for the arguments."""
        grid = reference_grid(image, spatial_size)
        ctx = self._context(context, image)
        if not self.allow_transformed_image and self._grid_sensitive():
            check_untransformed(image, self.item_plural, ctx)
        items, labels = self._normalize(annotations, labels, grid, ctx)
        n = 0 if items is None else len(items)
        channels = (
            np.zeros(n, dtype=np.int64)
            if self.per_instance
            else annotation_channels(
                labels, n, self.num_classes, self.class_names, self.item_name, ctx, self.item_plural
            )
        )
        reader_list = reader_ids(readers) if readers is not None else None
        if reader_list is not None and len(reader_list) != n:
            raise ValueError(f"got {n} {self.item_plural} but {len(reader_list)} reader ids{ctx}.")
        single_reader = self.fusion is not None and reader_list is None and n > 0
        if single_reader:
            # a dataset without reader ids (RSNA, NIH, ...) has one reader per image: fusing one reader is a no-op
            reader_list = [SINGLE_READER] * n
        listed = reader_ids(image_readers) if image_readers is not None else None
        if self.fusion is not None and listed is not None and reader_list:
            missing = [r for r in dict.fromkeys(reader_list) if r not in set(listed)]
            if missing:
                raise ValueError(f"readers {missing} annotated the image but are not in its readers {listed}{ctx}.")

        regions = self._rasterize(items, grid, ctx, **kwargs)
        keep, dropped = apply_invalid_policy(regions.reasons, self.invalid, self.item_name, ctx)
        for msg in dropped:
            logger.warning("dropped %s", msg)
        kept_channels = np.arange(len(keep)) if self.per_instance else channels[np.asarray(keep, dtype=np.int64)]
        n_channels = max(len(keep), 1) if self.per_instance else (self.num_classes or 1)
        kept_readers = None if reader_list is None else [reader_list[k] for k in keep]
        num_readers = len(set(listed if listed is not None else (reader_list or [])))
        mask = render_mask(regions, keep, kept_channels, n_channels, kept_readers, num_readers, self.fusion)
        mask = soften_mask(mask, self.sigma)

        stats = self._stats(regions, n, keep, len(dropped), single_reader)
        if stats["clipped"]:
            logger.info(
                "%d of %d %s clipped to the image of size %s%s",
                stats["clipped"],
                n,
                self.item_plural,
                grid.spatial_size,
                ctx,
            )
        if image is not None:
            # a tensor reference goes through convert_to_tensor as in MONAI's transforms: with meta tracking on, a
            # plain tensor gives a MetaTensor (which carries the statistics); a numpy reference gives numpy
            dst = convert_to_tensor(image, track_meta=get_track_meta()) if isinstance(image, torch.Tensor) else image
            out = convert_to_dst_type(mask, dst=dst, dtype=torch.float32)[0]
        else:
            out = convert_to_tensor(mask, dtype=torch.float32, track_meta=get_track_meta())
        if isinstance(out, MetaTensor):
            out.meta[ANNOTATION_STATS_KEY] = stats
        return out

    # ------------------------------------------------------------------ subclass hooks
    def _normalize(self, annotations: Any, labels: Any, grid: ReferenceGrid, ctx: str) -> tuple[Any, Any]:
        """Return ``(items, labels)`` with ``len(items)`` annotations (e.g. flatten a {class: [...]} mapping)."""
        return annotations, labels

    def _rasterize(self, items: Any, grid: ReferenceGrid, ctx: str, **kwargs: Any) -> AnnotationRegions:
        raise NotImplementedError(f"{type(self).__name__} must implement _rasterize.")

    def _grid_sensitive(self) -> bool:
        """Whether the annotations are in the image's pixel grid (so a spatial transform before would break them)."""
        return True

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _context(context: str | None, image: Any) -> str:
        parts = [context] if context else []
        if isinstance(image, MetaTensor):
            name = image.meta.get("filename_or_obj")
            if name:
                parts.append(f"image {name}")
        return f" ({', '.join(parts)})" if parts else ""

    @staticmethod
    def _stats(
        regions: AnnotationRegions, n: int, keep: Sequence[int], dropped: int, single_reader: bool
    ) -> dict[str, int]:
        kept = np.asarray(keep, dtype=np.int64)
        return {
            "annotations": int(n),
            "kept": len(keep),
            "dropped": int(dropped),
            "clipped": int(regions.clipped[kept].sum()) if len(keep) else 0,
            "empty": int(regions.empty.sum()),
            "single_reader": int(single_reader),
        }


class AnnotationToMaskd(MapTransform):
    """Dictionary form of an :class:`AnnotationToMask` transform.

    For each annotation key it reads the annotations (numpy arrays or lists, per sample, no collation), their
    labels and reader ids from sibling keys, rasterises them in the grid of ``data[ref_key]`` with the array
    transform (its public call) and writes the mask to ``mask_key``. Errors name the annotation key (and the image
    file when its meta has one); the statistics are in the mask's meta (see :func:`annotation_stats`).

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
            d[mask_key] = self.converter(
                d[key],
                labels=labels,
                image=d[self.ref_key],
                readers=readers,
                image_readers=image_readers,
                context=context,
                **self._extra(d, key),
            )
        return d
