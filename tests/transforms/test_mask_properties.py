"""Annotation -> mask transforms on bad and extreme input (hypothesis), 500 tiny examples per property.

For BoxesToMask, EllipsesToMask, PolygonsToMask, RLEToMask and PointsToMask, with annotations mixing valid ones,
NaN / Inf / inverted / degenerate ones and astronomically large or small coordinates (1e20, 1e300, 1e-300), and
reference images of several types (torch, numpy, MetaTensor) and dtypes (float32 with NaN and Inf pixels, float16,
int16, uint8, bool), 2D and 3D:

- ``invalid="raise"``: either a mask, or a ``ValueError`` whose message starts with ``"<item> <index> "`` (the
  documented per-annotation error); never another exception type;
- ``invalid="drop"``: always a mask; every annotation is counted as kept or dropped;
- a mask is float32 ``(C, *spatial)``, binary, of the reference image's type (a MetaTensor keeps the affine); the
  image's pixel values (NaN, Inf, dtype) never change it;
- where the documented rule is simple enough to evaluate pixel by pixel, the mask equals it exactly: ellipses (pixel
  centre inside the ellipse of the bounding box, or the pixel holding the centre), spheres of points in voxel and in
  world space (``|A (j - v)| <= d / 2`` or the voxel holding the centre), axis-aligned rectangle polygons (the same
  pixels as the box) and RLE round trips.
"""

from __future__ import annotations

import copy
import functools
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from monai.data import MetaTensor

from monai_explain.transforms import (
    BoxesToMask,
    EllipsesToMask,
    PointsToMask,
    PolygonsToMask,
    RLEToMask,
    annotation_stats,
    encode_coco_rle,
    encode_siim_rle,
)

PROPERTY = settings(
    max_examples=500,
    derandomize=True,  # seeded like every test here: the same 500 examples on every run
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
EXTREME = [1e20, -1e20, 1e300, -1e300, 1e-300, float("nan"), float("inf"), -float("inf")]


# ----------------------------------------------------------------------------------------------- strategies
@functools.cache
def coordinates(top: int):
    """Mostly dyadic values around the image (exact in float64), sometimes an extreme one (strategies are cached:
    building them anew for every draw costs more than the transforms)."""
    dyadic = st.integers(-4 * 8, (top + 4) * 8).map(lambda v: v / 8.0)
    return st.one_of(dyadic, dyadic, dyadic, dyadic, st.sampled_from(EXTREME))


INVALID = st.sampled_from(["raise", "drop"])
SEEDS = st.integers(0, 2**16)
DIAMETERS = st.one_of(st.integers(1, 40).map(lambda v: v / 4.0), st.sampled_from([0.0, -1.0, *EXTREME]))
SPACINGS = st.sampled_from([0.5, 1.0, 2.0, 4.0])
ORIGINS = st.integers(-8, 8).map(float)
RECT_CORNERS = st.lists(
    st.one_of(st.integers(-2, 8), st.sampled_from([-(10**20), 10**20])), min_size=2, max_size=2, unique=True
)


@st.composite
def reference_images(draw, spatial: tuple[int, ...]):
    """``(image or None, spatial_size or None)``: a reference image of some type and dtype, or a bare size."""
    kind = draw(st.sampled_from(["size", "torch", "numpy", "meta", "meta"]))
    if kind == "size":
        return None, spatial
    dtype = draw(st.sampled_from(["float32", "float16", "int16", "uint8", "bool"]))
    channels = draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(SEEDS))
    pixels = rng.normal(size=(channels, *spatial)) * 100
    if dtype == "float32":
        flat = pixels.reshape(-1)
        flat[rng.integers(flat.size)] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    arr = pixels.astype(dtype) if dtype != "bool" else pixels > 0
    if kind == "numpy":
        return arr, None
    t = torch.as_tensor(arr)
    return (MetaTensor(t, affine=torch.diag(torch.tensor([0.5] * len(spatial) + [1.0]))) if kind == "meta" else t), None


def _clean(image):
    """The same image with every pixel set to zero: masks must not depend on pixel values."""
    if image is None:
        return None
    if isinstance(image, np.ndarray):
        return np.zeros_like(image)
    return image.detach().clone().zero_()  # a MetaTensor keeps its affine and meta


ITEM = re.compile(r"^(box|ellipse|polygon|RLE|point) (\d+) ")


def _run(transform, annotations, image, spatial_size, n_items: int, invalid: str, **kwargs):
    """Call ``transform``; check the documented outcome; return the mask as a numpy array, or None if it raised."""
    try:
        out = transform(annotations, image=image, spatial_size=spatial_size, **kwargs)
    except ValueError as e:
        assert invalid == "raise", f"invalid='drop' raised: {e}"
        match = ITEM.match(str(e))
        assert match is not None and int(match.group(2)) < max(n_items, 1), str(e)
        assert "use invalid='drop'" in str(e)
        return None
    size = tuple(image.shape[1:]) if image is not None else tuple(spatial_size)
    if image is None:
        assert isinstance(out, MetaTensor)  # carries the annotation statistics in its meta
    elif isinstance(image, np.ndarray):
        assert isinstance(out, np.ndarray)
    else:
        assert isinstance(out, MetaTensor)  # a plain tensor reference too (MONAI's convert_to_tensor with meta)
        if isinstance(image, MetaTensor):
            assert torch.equal(out.affine, image.affine)
    arr = np.asarray(out.detach().cpu() if isinstance(out, torch.Tensor) else out)
    assert arr.dtype == np.float32 and arr.shape[1:] == size and arr.shape[0] >= 1
    assert np.isin(arr, (0.0, 1.0)).all()
    stats = annotation_stats(out)
    assert not stats or stats["dropped"] <= n_items
    if image is not None and (image.dtype in (np.float32, torch.float32)):  # NaN / Inf pixels
        again = copy.deepcopy(transform)(annotations, image=_clean(image), **kwargs)  # own counts
        np.testing.assert_array_equal(np.asarray(again.cpu() if isinstance(again, torch.Tensor) else again), arr)
    return arr


# --------------------------------------------------------------------------------------------------- boxes
@st.composite
def box_cases(draw):
    dims = draw(st.sampled_from([2, 3]))
    spatial = tuple(draw(st.integers(1, 6 if dims == 2 else 4)) for _ in range(dims))
    n = draw(st.integers(0, 3))
    boxes = [[draw(coordinates(max(spatial))) for _ in range(2 * dims)] for _ in range(n)]
    image, size = draw(reference_images(spatial))
    return {
        "dims": dims,
        "boxes": boxes,
        "image": image,
        "size": size,
        "invalid": draw(INVALID),
        "box_mode": draw(st.sampled_from([None, "xywh", "ccwh"] if dims == 2 else [None, "xyzwhd"])),
        "as_type": draw(st.sampled_from(["list", "float64", "float32", "tensor"])),
    }


def _as(boxes, as_type: str, width: int):
    if as_type == "list":
        return boxes
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, width)
    if as_type == "tensor":
        return torch.as_tensor(arr)
    with np.errstate(over="ignore"):  # 1e300 becomes inf in float32: an invalid box, as intended
        return arr.astype(as_type)


def _outer_box(box, spatial):
    """The documented outer rounding of a StandardMode box, clipped; None when it covers no pixel."""
    sd = len(spatial)
    b = [round(v) if abs(v - round(v)) <= 1e-4 else v for v in box]
    lo = [max(math.floor(v), 0) for v in b[:sd]]
    hi = [min(math.ceil(v), s) for v, s in zip(b[sd:], spatial)]
    return None if any(h <= lo_ for lo_, h in zip(lo, hi)) else tuple(slice(a, h) for a, h in zip(lo, hi))


# a finite box whose corners overflow to inf in the mode conversion (x + w = 1e300 + 1e300) is rounded with inf - inf
@pytest.mark.filterwarnings("ignore:invalid value encountered in subtract:RuntimeWarning")
@PROPERTY
@given(case=box_cases())
def test_boxes(case):
    t = BoxesToMask(box_mode=case["box_mode"], invalid=case["invalid"])
    boxes = _as(case["boxes"], case["as_type"], 2 * case["dims"])
    out = _run(t, boxes, case["image"], case["size"], len(case["boxes"]), case["invalid"])
    if out is None or case["box_mode"] is not None or case["as_type"] != "list":
        return
    expected = np.zeros(out.shape[1:], np.float32)
    for box in case["boxes"]:
        b = np.asarray(box)
        sd = case["dims"]
        if np.all(np.isfinite(b)) and np.all(b[sd:] > b[:sd]):
            region = _outer_box(box, out.shape[1:])
            if region is not None:
                expected[region] = 1.0
    np.testing.assert_array_equal(out[0], expected)


# ------------------------------------------------------------------------------------------------ ellipses
@PROPERTY
@given(case=box_cases())
def test_ellipses(case):
    t = EllipsesToMask(invalid=case["invalid"])
    out = _run(t, case["boxes"], case["image"], case["size"], len(case["boxes"]), case["invalid"])
    values = np.abs(np.asarray(case["boxes"], dtype=np.float64))
    if out is None or np.any(np.isfinite(values) & (values > 1e15)):
        # an ellipse edge at 1e20 - 1e20 = 0 is exact only to ~1e4 pixels in float64: which pixels touch it is not
        # decidable; test_far_coordinates_do_not_overflow checks that far corners still cover the image
        return
    sd = case["dims"]
    spatial = out.shape[1:]
    grid = np.stack(np.meshgrid(*[np.arange(s) + 0.5 for s in spatial], indexing="ij"), axis=-1)
    expected = np.zeros(spatial, bool)
    kept = 0
    for box in case["boxes"]:
        b = np.asarray(box, dtype=np.float64)
        lo, hi = b[:sd], b[sd:]
        if not (np.all(np.isfinite(b)) and np.all(hi > lo)):
            continue
        with np.errstate(all="ignore"):
            centre, semi = (lo + hi) / 2.0, (hi - lo) / 2.0
            if not (np.all(np.isfinite(semi)) and np.all(np.isfinite(1.0 / semi**2)) and np.all(1.0 / semi**2 > 0)):
                continue  # not representable: documented as invalid
            inside = (((grid - centre) / semi) ** 2).sum(-1) <= 1.0 + 1e-9
        holder = np.floor(centre).astype(np.float64)
        if np.all((holder >= 0) & (holder < np.asarray(spatial))):
            inside[tuple(holder.astype(int))] = True
        if inside.any():
            kept += 1
            expected |= inside
    np.testing.assert_array_equal(out[0].astype(bool), expected)
    stats = annotation_stats(t(case["boxes"], spatial_size=spatial))  # same boxes, a MetaTensor with the stats
    assert stats["dropped"] == len(case["boxes"]) - kept and stats["kept"] == kept


# -------------------------------------------------------------------------------------------------- points
@st.composite
def point_cases(draw):
    dims = draw(st.sampled_from([2, 3]))
    spatial = tuple(draw(st.integers(1, 6 if dims == 2 else 4)) for _ in range(dims))
    n = draw(st.integers(0, 3))
    rows = [[draw(coordinates(max(spatial))) for _ in range(dims)] + [draw(DIAMETERS)] for _ in range(n)]
    space = draw(st.sampled_from(["voxel", "world"]))
    spacing = [draw(SPACINGS) for _ in range(dims)]  # dyadic: the affine's inverse is exact
    origin = [draw(ORIGINS) for _ in range(dims)]
    return {
        "dims": dims,
        "spatial": spatial,
        "rows": rows,
        "space": space,
        "spacing": spacing,
        "origin": origin,
        "invalid": draw(INVALID),
    }


@PROPERTY
@given(case=point_cases())
def test_points(case):
    dims, spatial = case["dims"], case["spatial"]
    affine = np.eye(4)
    affine[range(dims), range(dims)] = case["spacing"]
    affine[:dims, 3] = case["origin"]
    image = MetaTensor(torch.zeros(1, *spatial), affine=torch.as_tensor(affine))
    t = PointsToMask(space=case["space"], world_convention="RAS", invalid=case["invalid"])
    rows = np.asarray(case["rows"], dtype=np.float64).reshape(-1, dims + 1)
    out = _run(t, rows, image, None, len(rows), case["invalid"])
    if out is None:
        return
    scale = np.asarray(case["spacing"]) if case["space"] == "world" else np.ones(dims)
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in spatial], indexing="ij"), axis=-1)
    expected = np.zeros(spatial, bool)
    for row in rows:
        centre, d = row[:dims], row[dims]
        if not (np.all(np.isfinite(row)) and d > 0):
            continue
        with np.errstate(all="ignore"):
            v = (centre - np.asarray(case["origin"])) / scale if case["space"] == "world" else centre
            metric = scale**2 / (d / 2.0) ** 2
            if not (np.all(np.isfinite(metric)) and np.all(metric > 0) and np.all(np.isfinite(v))):
                continue  # not representable: documented as invalid
            inside = (metric * (grid - v) ** 2).sum(-1) <= 1.0 + 1e-9
        holder = np.floor(v + 0.5)
        if np.all((holder >= 0) & (holder < np.asarray(spatial))):
            inside[tuple(holder.astype(int))] = True
        expected |= inside
    np.testing.assert_array_equal(out[0].astype(bool), expected)


# ------------------------------------------------------------------------------------------------ polygons
@st.composite
def polygon_cases(draw):
    spatial = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    kind = draw(st.sampled_from(["random", "random", "rectangle"]))
    n = draw(st.integers(0, 3))
    polygons = []
    for _ in range(n):
        if kind == "rectangle":  # integer corners, some far outside the image (1e20: far beyond int64)
            x0, x1 = sorted(draw(RECT_CORNERS))
            y0, y1 = sorted(draw(RECT_CORNERS))
            polygons.append([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        else:
            v = draw(st.integers(0, 5))
            polygons.append([[draw(coordinates(6)), draw(coordinates(6))] for _ in range(v)])
    image, size = draw(reference_images(spatial))
    return {"kind": kind, "polygons": polygons, "image": image, "size": size, "invalid": draw(INVALID)}


@PROPERTY
@given(case=polygon_cases())
def test_polygons(case):
    t = PolygonsToMask(invalid=case["invalid"])
    out = _run(t, case["polygons"], case["image"], case["size"], len(case["polygons"]), case["invalid"])
    if out is None or case["kind"] != "rectangle":
        return
    boxes = [[p[0][0], p[0][1], p[2][0], p[2][1]] for p in case["polygons"]]
    expected = BoxesToMask(invalid="drop")(boxes, spatial_size=out.shape[1:])
    np.testing.assert_array_equal(out, np.asarray(expected))


# ----------------------------------------------------------------------------------------------------- RLE
@st.composite
def rle_items(draw, rc_shape: tuple[int, ...]):
    kind = draw(st.sampled_from(["siim", "coco", "empty", "garbage", "huge", "float_counts", "not_rle"]))
    rng = np.random.default_rng(draw(SEEDS))
    truth = rng.random(rc_shape) > 0.6
    if kind == "siim":
        return encode_siim_rle(truth), truth
    if kind == "coco":
        if len(rc_shape) != 2:
            return encode_siim_rle(truth), truth
        return encode_coco_rle(truth, compress=draw(st.booleans())), truth
    if kind == "empty":
        return draw(st.sampled_from(["-1", "", " -1 "])), np.zeros(rc_shape, bool)
    if kind == "garbage":
        return draw(st.text(alphabet="0123456789 -x.e", max_size=12)), None
    if kind == "huge":
        big = draw(st.sampled_from([2**63 - 1, 2**63, 10**30, 2**62]))
        if draw(st.booleans()):
            return draw(st.sampled_from([f"{big} 1", f"1 {big}", f"0 1 {big} {big}"])), None
        return {"size": list(rc_shape[:2]), "counts": [big, 1]}, None
    if kind == "float_counts":
        n = int(np.prod(rc_shape[:2]))
        return {"size": list(rc_shape[:2]), "counts": [0.5, n - 0.5]}, None
    return draw(st.sampled_from([5, None, 1.5, [1, 2]])), None


@st.composite
def rle_cases(draw):
    dims = draw(st.sampled_from([2, 2, 3]))
    spatial = tuple(draw(st.integers(1, 5)) for _ in range(dims))
    layout = draw(st.sampled_from(["xy", "yx"]))
    rc_shape = (spatial[1], spatial[0], *spatial[2:]) if layout == "xy" else spatial
    items = [draw(rle_items(rc_shape)) for _ in range(draw(st.integers(0, 3)))]
    image, size = draw(reference_images(spatial))
    return {"items": items, "layout": layout, "image": image, "size": size, "invalid": draw(INVALID)}


@PROPERTY
@given(case=rle_cases())
def test_rle(case):
    t = RLEToMask(spatial_layout=case["layout"], invalid=case["invalid"])
    annotations = [item for item, _ in case["items"]]
    out = _run(t, annotations, case["image"], case["size"], len(annotations), case["invalid"])
    if out is None or any(truth is None for _, truth in case["items"]):
        return
    expected = np.zeros(out.shape[1:], bool)
    for _, truth in case["items"]:
        expected |= np.swapaxes(truth, 0, 1) if case["layout"] == "xy" else truth
    np.testing.assert_array_equal(out[0].astype(bool), expected)


@pytest.mark.parametrize(
    "rle,match",
    [
        (f"{2**63 - 1} 1", "RLE 0 is malformed: SIIM RLE runs"),
        (f"1 {10**30}", "RLE 0 is malformed: SIIM RLE"),
        ({"size": [2, 3], "counts": [10**30, 1]}, "RLE 0 is malformed: COCO RLE"),
        ({"size": [2, 3], "counts": [0.5, 5.5]}, "RLE 0 is malformed: COCO RLE counts must be integers"),
    ],
)
def test_rle_out_of_range_values_are_malformed(rle, match):
    with pytest.raises(ValueError, match=match):
        RLEToMask(spatial_layout="yx")(rle, spatial_size=(2, 3))


@pytest.mark.parametrize(
    "call,match",
    [
        (
            lambda: PolygonsToMask()([[[-1e300, -1e300], [1e300, -1e300], [1e300, 1e300]]], spatial_size=(3, 3)),
            "polygon 0 has coordinates too large to rasterise",
        ),
        (
            lambda: EllipsesToMask()([[-1e300, 0, 1e300, 2]], spatial_size=(3, 3)),
            r"ellipse 0 is too large or too small to rasterise in float64 \(semi-axes \[1e\+300, 1\.0\]\)",
        ),
        (
            lambda: PointsToMask(space="voxel")([[1.0, 1.0, 1e200]], spatial_size=(3, 3)),
            "point 0 has a diameter 1e[+]200 too large or too small to rasterise",
        ),
        (lambda: BoxesToMask()([[0, 0, 1, 1]], spatial_size=(-1, 4)), r"spatial size .* positive"),
        (lambda: BoxesToMask()([], spatial_size=(0, 4)), r"spatial size .* positive"),
        (
            lambda: PointsToMask()(
                [[1.0, 1.0, 2.0]],
                image=MetaTensor(torch.zeros(1, 4, 4), affine=torch.diag(torch.tensor([0.0, 1, 1, 1]))),
            ),
            "finite and invertible",
        ),
        (
            lambda: PointsToMask()(
                [[1.0, 1.0, 2.0]],
                image=MetaTensor(torch.zeros(1, 4, 4), affine=torch.diag(torch.tensor([float("nan"), 1, 1, 1]))),
            ),
            "finite and invertible",
        ),
    ],
)
def test_bad_geometry_is_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "transform,annotation,expected_sum",
    [
        # each covers the whole 4 x 3 image though its coordinates are beyond int64 (they used to wrap around)
        (EllipsesToMask(), [-1e20, -1e20, 1e20, 1e20], 12),
        (PointsToMask(space="voxel"), [1.0, 1.0, 1e20], 12),
        (PolygonsToMask(), [[-1e20, -1e20], [1e20, -1e20], [1e20, 1e20], [-1e20, 1e20]], 12),
        (BoxesToMask(), [-1e20, -1e20, 1e20, 1e20], 12),
    ],
)
def test_far_coordinates_do_not_overflow(transform, annotation, expected_sum):
    assert float(transform([annotation], spatial_size=(4, 3)).sum()) == expected_sum
