from __future__ import annotations

import numpy as np
import pytest

from monai_explain.apps.synthetic import (
    MarkerKind,
    draw_chest_xray,
    draw_corner_marker,
    draw_marker,
    draw_ruler_marker,
    draw_text_marker,
)


@pytest.mark.parametrize("size", [(48, 64), (64, 48), 40])
@pytest.mark.parametrize("n_lesions", [0, 1, 2])
def test_lesions_inside_lungs_and_tight_boxes(size, n_lesions):
    ph = draw_chest_xray(np.random.default_rng(3), size, n_lesions=n_lesions, lesion_radius=(0.05, 0.08))
    shape = (size, size) if isinstance(size, int) else size
    assert ph.image.shape == shape and ph.image.dtype == np.float32
    assert 0.0 <= ph.image.min() and ph.image.max() <= 1.0 and ph.image.std() > 0.05
    assert ph.lesion_boxes.shape == (n_lesions, 4)
    assert not (ph.lesion_mask & ~ph.lung_mask).any()  # lesions lie in the lungs
    rows, cols = np.nonzero(ph.lesion_mask)
    if n_lesions == 0:
        assert rows.size == 0
        return
    # union of the boxes (x = column, y = row, half-open) covers exactly the lesion pixels' extent
    assert ph.lesion_boxes[:, 0].min() == cols.min() and ph.lesion_boxes[:, 2].max() == cols.max() + 1
    assert ph.lesion_boxes[:, 1].min() == rows.min() and ph.lesion_boxes[:, 3].max() == rows.max() + 1
    for x0, y0, x1, y1 in ph.lesion_boxes:
        inside = ph.lesion_mask[y0:y1, x0:x1]
        assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()


def test_lesion_is_brighter_than_its_surroundings():
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(10):
        ph = draw_chest_xray(rng, 96, n_lesions=1)
        x0, y0, x1, y1 = ph.lesion_boxes[0]
        ring = np.zeros_like(ph.lesion_mask)
        ring[max(0, y0 - 4) : y1 + 4, max(0, x0 - 4) : x1 + 4] = True
        ring &= ph.lung_mask & ~ph.lesion_mask
        diffs.append(ph.image[ph.lesion_mask].mean() - ph.image[ring].mean())
    assert np.mean(diffs) > 0.05


def test_deterministic():
    a = draw_chest_xray(np.random.default_rng(7), (40, 56), n_lesions=1, marker=True)
    b = draw_chest_xray(np.random.default_rng(7), (40, 56), n_lesions=1, marker=True)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.lesion_boxes, b.lesion_boxes)
    np.testing.assert_array_equal(a.marker_box, b.marker_box)
    c = draw_chest_xray(np.random.default_rng(8), (40, 56), n_lesions=1, marker=True)
    assert not np.array_equal(a.image, c.image)


def test_marker_is_a_bright_top_corner_square():
    for seed in range(6):
        ph = draw_chest_xray(np.random.default_rng(seed), (64, 80), n_lesions=0, marker=True, marker_size=0.1)
        x0, y0, x1, y1 = ph.marker_box
        assert x1 - x0 == y1 - y0 == 6
        assert y0 < 8 and (x0 < 8 or x1 > 72)
        patch = ph.image[y0:y1, x0:x1]
        assert patch.max() == 1.0 and (patch == 1.0).mean() > 0.4
        assert ph.marker_letter in ("L", "R")
    assert draw_chest_xray(np.random.default_rng(0), 32, marker=False).marker_box is None


@pytest.mark.parametrize("letter_seed", [0, 1, 2, 3])
def test_corner_marker_values(letter_seed):
    img = np.full((20, 30), 0.2)
    box, letter = draw_corner_marker(img, np.random.default_rng(letter_seed), size=0.5, intensity=0.9)
    x0, y0, x1, y1 = box
    assert (x1 - x0, y1 - y0) == (10, 10)
    patch = img[y0:y1, x0:x1]
    assert set(np.unique(patch).round(6)) == {0.9, round(0.35 * 0.9, 6)}
    outside = img.copy()
    outside[y0:y1, x0:x1] = 0.2
    assert (outside == 0.2).all()
    assert letter in ("L", "R")


def _marker_pixels(seed, size, kind, **kwargs):
    """The phantom with a marker and the pixels the marker changed (the marker is drawn last from the same rng)."""
    plain = draw_chest_xray(np.random.default_rng(seed), size, n_lesions=1, **kwargs)
    ph = draw_chest_xray(np.random.default_rng(seed), size, n_lesions=1, marker=True, marker_kind=kind, **kwargs)
    return ph, plain.image != ph.image


@pytest.mark.parametrize("kind", list(MarkerKind))
@pytest.mark.parametrize("size", [64, (48, 80), (80, 48), 32])
def test_each_marker_kind_is_drawn_inside_its_tight_box(kind, size):
    for seed in range(8):
        ph, changed = _marker_pixels(seed, size, kind)
        rows, cols = ph.image.shape
        x0, y0, x1, y1 = ph.marker_box.tolist()
        assert 0 <= x0 < x1 <= cols and 0 <= y0 < y1 <= rows, (seed, ph.marker_box)
        inside = changed[y0:y1, x0:x1]
        outside = changed.copy()
        outside[y0:y1, x0:x1] = False
        assert not outside.any(), "nothing of the marker outside its box"
        # tight: the marker reaches every edge of its box, and fills a good part of it
        assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
        assert inside.mean() > 0.3
        drawn = ph.image[y0:y1, x0:x1][inside]
        assert drawn.max() == 1.0 and (kind == "corner" or drawn.min() == 1.0)  # bright (the corner's letter: dark)
        assert not ph.lung_mask[y0:y1, x0:x1].any() and not (ph.lesion_mask & changed).any()
        assert ph.marker_kind == kind


def test_ruler_lies_along_an_edge_with_ticks():
    edges = set()
    for seed in range(20):
        ph, changed = _marker_pixels(seed, 64, "ruler")
        x0, y0, x1, y1 = ph.marker_box.tolist()
        w, h = x1 - x0, y1 - y0
        assert ph.marker_letter is None
        assert min(w, h) == 5 and 0.3 * 64 - 2 <= max(w, h) <= 0.55 * 64  # thickness = corner side (0.08 * 64)
        if w > h:  # along the bottom edge, 2 or 3 pixels above it
            assert 64 - y1 in (2, 3)
            edges.add("bottom")
            profile = changed[y0:y1, x0:x1].sum(0)  # pixels per column: ticks of 2 lengths, bar of 1
        else:
            assert x0 in (2, 3) or 64 - x1 in (2, 3)
            edges.add("left" if x0 < 32 else "right")
            profile = changed[y0:y1, x0:x1].sum(1)
        assert set(profile.tolist()) == {1, 3, 5} and profile[0] == profile[-1] == 5
    assert edges == {"bottom", "left", "right"}


def test_text_tag_near_top_or_bottom_edge():
    places, lengths = set(), set()
    for seed in range(20):
        ph, _ = _marker_pixels(seed, 64, "text")
        x0, y0, x1, y1 = ph.marker_box.tolist()
        text = ph.marker_letter
        assert 3 <= len(text) <= 6 and text.isalnum()
        assert y1 - y0 == 5 and x1 - x0 <= 4 * len(text) - 1  # 3x5-pixel glyphs, one pixel apart
        assert y0 in (2, 3) or 64 - y1 in (2, 3)
        places.add("top" if y0 < 32 else "bottom")
        lengths.add(len(text))
    assert places == {"top", "bottom"} and len(lengths) >= 3


@pytest.mark.parametrize("kind, side", [("corner", (10, 10)), ("ruler", 10), ("text", (10, None))])
def test_marker_size_sets_the_size_of_each_kind(kind, side):
    """marker_size = corner square side = ruler thickness = text character height (x the smaller image side)."""
    for seed in range(5):
        img = np.full((100, 120), 0.2)
        box, _ = draw_marker(img, np.random.default_rng(seed), kind, size=0.1, intensity=0.9)
        h, w = int(box[3] - box[1]), int(box[2] - box[0])
        if kind == "ruler":
            assert min(w, h) == side and max(w, h) >= 30
        elif kind == "text":
            assert h == 10 and w >= 3 * 2 * 3  # at least 3 glyphs, each scaled by 2
        else:
            assert (h, w) == side
        assert set(np.unique(img[box[1] : box[3], box[0] : box[2]]).round(6)) <= {0.2, 0.9, round(0.35 * 0.9, 6)}


def test_ruler_and_text_values_and_avoid_mask():
    img = np.full((64, 64), 0.2)
    box = draw_ruler_marker(img, np.random.default_rng(0), size=0.08, intensity=0.7)
    assert set(np.unique(img).round(6)) == {0.2, 0.7}
    rows, cols = np.nonzero(img == 0.7)
    assert box.tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
    avoid = np.zeros((64, 64), dtype=bool)
    avoid[32:] = True  # the bottom half: the text tag goes to the top edge
    for seed in range(6):
        img = np.full((64, 64), 0.2)
        box, text = draw_text_marker(img, np.random.default_rng(seed), size=0.08, intensity=0.7, avoid=avoid)
        assert box[3] <= 32 and (img[32:] == 0.2).all() and len(text) >= 3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"marker": True, "marker_kind": "rular"}, "marker_kind.*ruler"),
        ({"marker_kind": "barcode"}, "marker_kind"),
        ({"image_size": 64, "marker": True, "marker_kind": "ruler", "marker_size": 0.4}, "marker_size"),
        ({"image_size": 64, "marker": True, "marker_kind": "text", "marker_size": 0.5}, "marker_size"),
    ],
)
def test_bad_marker_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        draw_chest_xray(np.random.default_rng(0), **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_size": 8}, "image_size"),
        ({"image_size": (32, 32, 32)}, "image_size"),
        ({"n_lesions": -1}, "n_lesions"),
        ({"lesion_radius": (0.2, 0.1)}, "lesion_radius"),
        ({"lesion_contrast": (0.0, 0.1)}, "lesion_contrast"),
        ({"n_lesions": 1, "lesion_radius": (0.6, 0.6), "max_tries": 5}, "could not place lesion"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        draw_chest_xray(np.random.default_rng(0), **kwargs)


@pytest.mark.parametrize("size", [(48, 64), 64, 128])
def test_opacity_inside_lungs_clear_of_lesions_tight_box(size):
    for seed in range(4):
        ph = draw_chest_xray(np.random.default_rng(seed), size, n_lesions=1, n_opacities=1, marker=True)
        assert ph.opacity_boxes.shape == (1, 4) and ph.opacity_mask.any()
        assert not (ph.opacity_mask & ~ph.lung_mask).any()  # inside a lung field
        assert not (ph.opacity_mask & ph.lesion_mask).any()  # not on the nodule
        rows, cols = np.nonzero(ph.opacity_mask)
        np.testing.assert_array_equal(ph.opacity_boxes[0], [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
        x0, y0, x1, y1 = ph.opacity_boxes[0]
        assert y1 - y0 > x1 - x0  # elongated along the lungs' vertical axis


def test_opacity_is_larger_than_a_lesion_visible_and_optional():
    rng = np.random.default_rng(1)
    lesion_area, opacity_area, opacity_gain = [], [], []
    for _ in range(12):
        seed = int(rng.integers(0, 2**31))
        ph = draw_chest_xray(np.random.default_rng(seed), 96, n_lesions=1, n_opacities=1)
        # with the main generator, the lesion and anatomy are the same as without the opacity, drawn after them
        plain = draw_chest_xray(np.random.default_rng(seed), 96, n_lesions=1)
        np.testing.assert_array_equal(ph.lesion_boxes, plain.lesion_boxes)
        # with a generator of its own, the image is the same outside the opacity
        ph = draw_chest_xray(
            np.random.default_rng(seed), 96, n_lesions=1, n_opacities=1, opacity_rng=np.random.default_rng(seed + 1)
        )
        np.testing.assert_array_equal(ph.image[~ph.opacity_mask], plain.image[~ph.opacity_mask])
        assert plain.opacity_boxes.shape == (0, 4) and not plain.opacity_mask.any()
        lesion_area.append(ph.lesion_mask.sum())
        opacity_area.append(ph.opacity_mask.sum())
        # brighter than the same pixels of the image drawn without it
        opacity_gain.append(np.mean(ph.image[ph.opacity_mask]) - np.mean(plain.image[ph.opacity_mask]))
    assert np.mean(opacity_area) > 2.5 * np.mean(lesion_area)
    assert 0.08 < np.mean(opacity_gain) < 0.26


def test_opacity_bad_input():
    with pytest.raises(ValueError, match="n_opacities"):
        draw_chest_xray(np.random.default_rng(0), 64, n_opacities=-1)
    with pytest.raises(ValueError, match="opacity_radius"):
        draw_chest_xray(np.random.default_rng(0), 64, n_opacities=1, opacity_radius=(0.2, 0.1))
