from __future__ import annotations

import numpy as np
import pytest

from monai_explain.apps.synthetic import draw_chest_xray, draw_corner_marker


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
