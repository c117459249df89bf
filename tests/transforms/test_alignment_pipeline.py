"""A mask made by the annotation transforms follows its image through random MONAI spatial transforms.

The image is itself the indicator of the annotated region (built by slicing, independently of the transforms), so
after any spatial pipeline applied to both, the mask must still coincide with the image's region.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    RandAffined,
    RandFlipd,
    RandRotate90d,
    RandRotated,
    Resized,
)

from monai_explain.transforms import BoxesToMaskd, EllipsesToMaskd, PolygonsToMaskd

KEYS = ["image", "mask"]
# dataset boxes (x=column, y=row), xyxy, with classes
BOXES_2D = np.array([[3, 4, 15, 12], [20, 10, 30, 22], [8, 18, 14, 28]], dtype=np.float32)
LABELS_2D = np.array([0, 1, 1])


def _indicator_2d(layout, size_xy=(36, 32)):
    """(2, *spatial) image with 1 inside the class-c boxes in channel c, built by plain slicing."""
    shape = size_xy if layout == "xy" else size_xy[::-1]
    image = np.zeros((2, *shape), np.float32)
    for (x0, y0, x1, y1), c in zip(BOXES_2D.astype(int), LABELS_2D):
        if layout == "xy":
            image[c, x0:x1, y0:y1] = 1
        else:
            image[c, y0:y1, x0:x1] = 1
    affine = torch.diag(torch.tensor([0.3, 0.3, 1.0, 1.0], dtype=torch.float64))
    return MetaTensor(torch.from_numpy(image), affine=affine)


def _pipeline(image_mode, spatial_size):
    modes = [image_mode, "nearest"]
    return Compose(
        [
            RandFlipd(KEYS, prob=0.5, spatial_axis=0),
            RandRotate90d(KEYS, prob=0.5, max_k=3),
            RandRotated(KEYS, range_x=0.6, prob=1.0, mode=modes, padding_mode="zeros", keep_size=True),
            Resized(KEYS, spatial_size=spatial_size, mode=modes),
            RandAffined(
                KEYS,
                prob=1.0,
                rotate_range=0.3,
                scale_range=0.15,
                translate_range=3,
                mode=modes,
                padding_mode="zeros",
            ),
        ]
    )


@pytest.mark.parametrize("layout", ["xy", "yx"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_box_mask_follows_image_2d(layout, seed):
    data = {"image": _indicator_2d(layout), "boxes": BOXES_2D, "box_labels": LABELS_2D}
    data = BoxesToMaskd(num_classes=2, spatial_layout=layout)(data)
    np.testing.assert_array_equal(data["mask"].numpy(), data["image"].numpy())  # aligned before the transforms
    pipeline = _pipeline("nearest", (30, 40)).set_random_state(seed=seed)
    out = pipeline(data)
    image, mask = out["image"], out["mask"]
    assert isinstance(mask, MetaTensor) and tuple(mask.shape) == (2, 30, 40)
    assert image.sum() > 0  # the region survived the transforms
    torch.testing.assert_close(mask.affine, image.affine)
    np.testing.assert_array_equal(mask.numpy(), image.numpy())


@pytest.mark.parametrize("seed", [0, 1])
def test_box_mask_follows_bilinear_image(seed):
    data = BoxesToMaskd(num_classes=2)({"image": _indicator_2d("xy"), "boxes": BOXES_2D, "box_labels": LABELS_2D})
    out = _pipeline("bilinear", (48, 44)).set_random_state(seed=seed)(data)
    region, mask = out["image"].numpy() > 0.5, out["mask"].numpy() > 0.5
    dice = 2 * (region & mask).sum() / (region.sum() + mask.sum())
    assert dice > 0.9
    assert set(np.unique(out["mask"].numpy())) <= {0.0, 1.0}  # nearest keeps the mask binary


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_box_mask_follows_image_3d(seed):
    image = np.zeros((1, 16, 14, 10), np.float32)
    image[0, 2:9, 3:12, 1:6] = 1
    image[0, 10:15, 1:5, 4:9] = 1
    boxes = np.array([[2, 3, 1, 9, 12, 6], [10, 1, 4, 15, 5, 9]], dtype=np.float64)
    data = {"image": MetaTensor(torch.from_numpy(image)), "boxes": boxes}
    data = BoxesToMaskd()(data)
    pipeline = Compose(
        [
            RandFlipd(KEYS, prob=0.5, spatial_axis=2),
            RandRotate90d(KEYS, prob=0.5, spatial_axes=(0, 1)),
            RandAffined(KEYS, prob=1.0, rotate_range=(0.2, 0.2, 0.4), scale_range=0.1, mode="nearest"),
        ]
    ).set_random_state(seed=seed)
    out = pipeline(data)
    assert out["image"].sum() > 0
    torch.testing.assert_close(out["mask"].affine, out["image"].affine)
    np.testing.assert_array_equal(out["mask"].numpy(), out["image"].numpy())


def test_polygon_and_ellipse_masks_follow_image():
    # the boxes drawn as rectangle polygons give the indicator image itself; as ellipses, a subset of it
    image = _indicator_2d("xy")
    polygons = [[[x0, y0], [x1, y0], [x1, y1], [x0, y1]] for x0, y0, x1, y1 in BOXES_2D.tolist()]
    data = {"image": image, "polygons": polygons, "polygon_labels": LABELS_2D, "ellipses": BOXES_2D}
    data = PolygonsToMaskd(num_classes=2)(data)
    data = EllipsesToMaskd(mask_key="ellipse_mask")(data)
    out = Compose(
        [
            RandFlipd(["image", "mask", "ellipse_mask"], prob=1.0, spatial_axis=1),
            RandRotate90d(["image", "mask", "ellipse_mask"], prob=1.0),
        ]
    ).set_random_state(seed=5)(data)
    np.testing.assert_array_equal(out["mask"].numpy(), out["image"].numpy())
    # each ellipse lies inside its bounding box region of the (merged) image
    merged = out["image"].numpy().max(0)
    ellipse = out["ellipse_mask"][0].numpy()
    assert ellipse.sum() > 0 and np.all(merged[ellipse > 0] == 1)
