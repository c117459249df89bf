"""The options of the annotation -> mask transforms, as ``StrEnum`` values read with ``monai.utils.look_up_option``.

One place for every choice the rasterisers and transforms offer: coordinate layout, invalid-annotation policy, box
rounding and margins, point space and world convention, reader fusion, and the RLE start convention.
"""

from __future__ import annotations

from monai.utils import StrEnum

__all__ = [
    "BoxRounding",
    "FusionMethod",
    "InvalidPolicy",
    "MarginMode",
    "PointSpace",
    "RLEStart",
    "SpatialLayout",
    "WorldConvention",
]


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
    - ``drop``: the annotation is left out of the mask; it is counted in the mask's meta
      (``mask.meta["annotation_stats"]["dropped"]``) and logged with ``logging.warning``.
    """

    RAISE = "raise"
    DROP = "drop"


class BoxRounding(StrEnum):
    """How float box corners become whole pixels (pixel ``i`` spans ``[i, i + 1)``, MONAI's convention).

    - ``outer`` (default): floor of the min corner, ceil of the max corner - every pixel the box touches. A coarse
      annotation is never shrunk.
    - ``nearest``: both corners rounded to the nearest integer (halves up) - the pixel edges closest to the box.
    - ``inner``: ceil of the min corner, floor of the max corner - only the pixels entirely inside the box.

    Coordinates within ``1e-4`` of an integer are first snapped to it. Integer boxes are unchanged by all three.
    """

    OUTER = "outer"
    NEAREST = "nearest"
    INNER = "inner"


class MarginMode(StrEnum):
    """Unit of a box margin: ``pixel`` (each side moves by ``margin`` pixels) or ``fraction`` (each side moves by
    ``margin`` times the box size along that axis, so ``0.1`` makes the box 20% larger). Negative margins shrink."""

    PIXEL = "pixel"
    FRACTION = "fraction"


class PointSpace(StrEnum):
    """Where point coordinates live.

    - ``world``: world millimetres, mapped to voxels through the reference image's affine (``MetaTensor.affine``);
      the diameter is in millimetres too. ``spatial_layout`` does not apply (the affine fixes the axes).
    - ``voxel``: voxel *index* coordinates in the dataset's (x=column, y=row[, z]) order - the centre of voxel ``i``
      is at ``i`` - swapped by ``spatial_layout="yx"``; the diameter is in voxels.
    """

    WORLD = "world"
    VOXEL = "voxel"


class WorldConvention(StrEnum):
    """Patient coordinate convention of world points: ``RAS`` (NIfTI, MONAI's default) or ``LPS`` (DICOM, ITK
    MetaImage, LUNA16 ``annotations.csv``). They differ by the sign of x and y."""

    RAS = "RAS"
    LPS = "LPS"


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


class RLEStart(StrEnum):
    """What the first number of each pair of a SIIM-style RLE string means (the second is always the run length).

    - ``relative`` (default, the SIIM-ACR ``train-rle.csv`` and its ``rle2mask``): the gap of background pixels
      since the end of the previous run (since pixel 0 for the first run).
    - ``absolute``: the 1-based flat index of the run's first pixel (Kaggle's usual ``rle_encode``, some SIIM
      re-exports).
    """

    RELATIVE = "relative"
    ABSOLUTE = "absolute"
