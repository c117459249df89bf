from __future__ import annotations

import math
from collections import deque

import numpy as np
import pytest
import torch

from monai_explain.metrics import SaliencyIoU, binarize_saliency, compute_saliency_iou, fill_regions
from tests.metrics._reference import iou, otsu_region, topk_region


@pytest.mark.parametrize(
    "saliency, mask, kwargs, expected",
    [
        ([[0.0, 1.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 1.0]], {}, 2 / 3),  # P = right column, G = 3 pixels
        ([[0.0, 1.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]], {}, 1.0),
        ([[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]], {}, 0.0),
        ([[0.3, 0.3], [0.3, 0.3]], [[0.0, 1.0], [0.0, 1.0]], {}, 0.0),  # constant: Otsu selects nothing
        ([[0.9, 0.1], [0.2, 0.8]], [[1.0, 1.0], [0.0, 0.0]], {"binarize": "topk", "fraction": 0.25}, 0.5),
        ([[0.9, 0.1], [0.2, 0.8]], [[1.0, 1.0], [0.0, 0.0]], {"binarize": "threshold", "threshold": 0.5}, 1 / 3),
    ],
)
def test_iou_hand_cases(saliency, mask, kwargs, expected):
    out = compute_saliency_iou(torch.tensor([[saliency]]), torch.tensor([[mask]]), **kwargs)
    assert out.item() == pytest.approx(expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", [(3, 2, 12, 10), (2, 1, 6, 5, 4)])
def test_iou_at_otsu_matches_numpy_brute_force(seed, shape):
    rng = np.random.default_rng(seed)
    s = rng.random(shape).astype(np.float32) ** 2
    s[:, :, 1:4, 2:5] += 1.5
    m = (rng.random(shape) > 0.7).astype(np.float32)
    m[0, 0, :3, :3] = 1
    m[-1, -1] = 0  # one empty annotation -> NaN
    out = compute_saliency_iou(torch.from_numpy(s), torch.from_numpy(m)).numpy()
    top = compute_saliency_iou(torch.from_numpy(s), torch.from_numpy(m), binarize="topk", fraction=0.2).numpy()
    for b in range(shape[0]):
        for c in range(shape[1]):
            ref = iou(otsu_region(s[b, c]), m[b, c])
            ref_top = iou(topk_region(s[b, c], 0.2), m[b, c])
            if math.isnan(ref):
                assert math.isnan(out[b, c]) and math.isnan(top[b, c])
            else:
                assert out[b, c] == pytest.approx(ref, abs=1e-6)
                assert top[b, c] == pytest.approx(ref_top, abs=1e-6)


def test_iou_metric_aggregates():
    s = torch.rand(4, 1, 8, 8)
    m = (torch.rand(4, 1, 8, 8) > 0.5).float()
    m[2] = 0
    metric = SaliencyIoU(get_not_nans=True)
    per_item = metric(y_pred=s, y=m)
    value, not_nans = metric.aggregate()
    assert not_nans.item() == 3
    assert value.item() == pytest.approx(per_item[[0, 1, 3]].mean().item())


def test_iou_bad_binarize():
    with pytest.raises(ValueError, match="kmeans"):
        SaliencyIoU(binarize="kmeans")


# ---------------------------------------------------------------------------------------------------------------
# Parity with CheXlocalize's cam_to_segmentation (Otsu branch): min-max normalise, np.uint8(255 * x), cv2 Otsu.
# An independent reference: OpenCV's getThreshVal_Otsu_8u written out in numpy (cumulative class means, skipped
# splits where a class weight is below FLT_EPSILON, first strict maximum), applied as THRESH_BINARY (img > t).

FLT_EPSILON = float(np.finfo(np.float32).eps)


def otsu_uint8_reference(img: np.ndarray) -> int:
    """OpenCV's Otsu threshold of a uint8 image, step by step in float64."""
    hist = np.bincount(img.ravel(), minlength=256).astype(np.float64) / img.size
    mu = float(np.dot(np.arange(256), hist))
    q1 = mu1 = max_sigma = 0.0
    max_val = 0
    for i in range(256):
        p_i = hist[i]
        mu1 *= q1
        q1 += p_i
        q2 = 1.0 - q1
        if min(q1, q2) < FLT_EPSILON or max(q1, q2) > 1.0 - FLT_EPSILON:
            continue
        mu1 = (mu1 + i * p_i) / q1
        mu2 = (mu - q1 * mu1) / q2
        sigma = q1 * q2 * (mu1 - mu2) ** 2
        if sigma > max_sigma:
            max_sigma, max_val = sigma, i
    return max_val


def chexlocalize_uint8(cam: np.ndarray) -> np.ndarray:
    """CheXlocalize's 8-bit image of a (float32) heatmap: min-max normalised, ``np.uint8(255 * x)``."""
    cam = cam.astype(np.float32)
    x = (cam - cam.min()) / (cam.max() - cam.min())
    return np.uint8(255 * x)


def chexlocalize_otsu_region(cam: np.ndarray) -> np.ndarray:
    img = chexlocalize_uint8(cam)
    return img > otsu_uint8_reference(img)


def chexlocalize_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """CheXlocalize's calculate_iou with true_pos_only=True: NaN when either segmentation is empty."""
    if pred.sum() == 0 or gt.sum() == 0:
        return float("nan")
    return float(np.logical_and(pred, gt).sum() / np.logical_or(pred, gt).sum())


def cam_like_maps(seed: int, n: int = 64, size: int = 96) -> np.ndarray:
    """Random CAM-like maps: a coarse ReLU'd map (a few Gaussian blobs + noise) upsampled bilinearly, float32."""
    rng = np.random.default_rng(seed)
    coarse = int(rng.integers(6, 13))
    yy, xx = np.mgrid[0:coarse, 0:coarse].astype(np.float32)
    maps = np.zeros((n, 1, coarse, coarse), dtype=np.float32)
    for i in range(n):
        for _ in range(int(rng.integers(1, 4))):
            cy, cx = rng.uniform(0, coarse, 2)
            width = rng.uniform(0.8, 3.0)
            maps[i, 0] += rng.uniform(0.5, 3.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width**2))
        maps[i, 0] += rng.normal(0.0, 0.15, (coarse, coarse)).astype(np.float32)
    maps = np.maximum(maps, 0.0)
    up = torch.nn.functional.interpolate(torch.from_numpy(maps), size=(size, size), mode="bilinear")
    return up.numpy().astype(np.float32)


def test_iou_chexlocalize_issue_example():
    saliency = torch.tensor([[[[0.0, 1.0, 0.45, 0.5], [0.75, 0.95, 0.0, 0.15]]]])
    mask = torch.tensor([[[[0.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]]])
    region = chexlocalize_otsu_region(saliency[0, 0].numpy())
    assert chexlocalize_uint8(saliency[0, 0].numpy()).tolist() == [[0, 255, 114, 127], [191, 242, 0, 38]]
    assert region.tolist() == [[False, True, False, False], [True, True, False, False]]
    assert chexlocalize_iou(region, mask[0, 0].numpy() > 0.5) == 1.0
    assert compute_saliency_iou(saliency, mask).item() == 1.0
    assert compute_saliency_iou(saliency, mask, fill_contours=True, empty_prediction="nan").item() == 1.0
    assert binarize_saliency(saliency, "otsu")[0, 0].numpy().tolist() == region.tolist()
    print("issue example: IoU", compute_saliency_iou(saliency, mask).item(), "(CheXlocalize 1.0)")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_otsu_region_equals_chexlocalize_on_cam_like_maps(seed):
    maps = cam_like_maps(seed)
    ours = binarize_saliency(torch.from_numpy(maps), "otsu").numpy()[:, 0]
    old_quantisation = 0
    for i in range(maps.shape[0]):
        ref = chexlocalize_otsu_region(maps[i, 0])
        assert 0 < ref.sum() < ref.size
        np.testing.assert_array_equal(ours[i], ref, err_msg=f"map {i}")
        # the former quantisation floor(256 x) gives another region on most of these maps
        old_bins = np.clip(
            (((maps[i, 0] - maps[i, 0].min()) / np.ptp(maps[i, 0])) * np.float32(256)).astype(np.int64), 0, 255
        )
        old_quantisation += int(not np.array_equal(old_bins > otsu_uint8_reference(old_bins.astype(np.uint8)), ref))
    print(
        f"seed {seed}: {maps.shape[0]} of {maps.shape[0]} Otsu regions equal; floor(256 x) differs on {old_quantisation}"
    )
    assert old_quantisation > maps.shape[0] // 2


@pytest.mark.parametrize("seed", [3, 4])
def test_iou_equals_chexlocalize_on_cam_like_maps(seed):
    maps = cam_like_maps(seed, n=32, size=64)
    rng = np.random.default_rng(seed)
    masks = np.zeros_like(maps)
    for i in range(maps.shape[0]):
        r0, c0 = rng.integers(0, 48, 2)
        masks[i, 0, r0 : r0 + int(rng.integers(4, 16)), c0 : c0 + int(rng.integers(4, 16))] = 1.0
    masks[5] = 0.0  # an empty annotation: NaN in both
    maps[7] = 0.25  # a constant map: empty Otsu region, NaN in CheXlocalize (its normalisation divides by 0)
    s, m = torch.from_numpy(maps), torch.from_numpy(masks)
    nan_mode = compute_saliency_iou(s, m, empty_prediction="nan").numpy()[:, 0]
    zero_mode = compute_saliency_iou(s, m).numpy()[:, 0]
    for i in range(maps.shape[0]):
        ref = float("nan") if i == 7 else chexlocalize_iou(chexlocalize_otsu_region(maps[i, 0]), masks[i, 0] > 0.5)
        if math.isnan(ref):
            assert math.isnan(nan_mode[i]), i
        else:
            assert nan_mode[i] == pytest.approx(ref, abs=1e-6), i
    assert zero_mode[7] == 0.0 and math.isnan(zero_mode[5])
    metric = SaliencyIoU(empty_prediction="nan", get_not_nans=True)
    metric(y_pred=s, y=m)
    _, not_nans = metric.aggregate()
    assert not_nans.item() == maps.shape[0] - 2
    print(f"seed {seed}: IoU equal to CheXlocalize's on {maps.shape[0]} maps, mIoU {np.nanmean(nan_mode):.4f}")


def test_iou_empty_prediction_option():
    with pytest.raises(ValueError, match="maybe"):
        compute_saliency_iou(torch.rand(1, 1, 4, 4), torch.ones(1, 1, 4, 4), empty_prediction="maybe")


def test_otsu_reference_matches_opencv():
    """The numpy reference against OpenCV itself (opencv-python-headless, in the test extras)."""
    cv2 = pytest.importorskip("cv2")
    maps = cam_like_maps(5)
    for i in range(maps.shape[0]):
        img = chexlocalize_uint8(maps[i, 0])
        t, thresh = cv2.threshold(img, 0, int(img.max()), cv2.THRESH_OTSU)
        assert int(t) == otsu_uint8_reference(img), i
        np.testing.assert_array_equal(thresh > 0, chexlocalize_otsu_region(maps[i, 0]))
    print(f"OpenCV {cv2.__version__}: numpy Otsu equals cv2.threshold(THRESH_OTSU) on {maps.shape[0]} maps")


# --- CheXlocalize's last step: the contours of the Otsu region drawn as filled polygons (RETR_TREE, > 1 point) ---
def contour_fill_reference(region: np.ndarray) -> np.ndarray:
    """Holes filled (background not 4-connected to the border) and isolated single pixels dropped, by flood fill."""
    h, w = region.shape
    outside = np.zeros_like(region)
    queue = deque(
        (r, c) for r in range(h) for c in range(w) if (r in (0, h - 1) or c in (0, w - 1)) and not region[r, c]
    )
    for r, c in queue:
        outside[r, c] = True
    while queue:
        r, c = queue.popleft()
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            rr, cc = r + dr, c + dc
            if 0 <= rr < h and 0 <= cc < w and not region[rr, cc] and not outside[rr, cc]:
                outside[rr, cc] = True
                queue.append((rr, cc))
    filled = ~outside
    padded = np.pad(filled, 1)
    neighbours = sum(
        padded[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w] for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)
    )
    return filled & (neighbours > 0)


def noisy_maps(seed: int, n: int = 16, size: int = 32) -> np.ndarray:
    """Maps whose Otsu regions have holes and lone pixels (where the contour filling matters)."""
    return np.random.default_rng(seed).random((n, 1, size, size)).astype(np.float32)


@pytest.mark.parametrize("seed", [6, 7])
def test_iou_with_contour_filling_equals_chexlocalize(seed):
    maps = np.concatenate([cam_like_maps(seed, n=16, size=48)[:, :, :32, :32], noisy_maps(seed)])
    rng = np.random.default_rng(seed)
    masks = (rng.random(maps.shape) > 0.6).astype(np.float32)
    s, m = torch.from_numpy(maps), torch.from_numpy(masks)
    ours = compute_saliency_iou(s, m, fill_contours=True, empty_prediction="nan").numpy()[:, 0]
    regions = fill_regions(binarize_saliency(s, "otsu")).numpy()[:, 0]
    changed = 0
    for i in range(maps.shape[0]):
        otsu = chexlocalize_otsu_region(maps[i, 0])
        ref_region = contour_fill_reference(otsu)
        changed += int(not np.array_equal(ref_region, otsu))
        np.testing.assert_array_equal(regions[i], ref_region, err_msg=f"map {i}")
        ref = chexlocalize_iou(ref_region, masks[i, 0] > 0.5)
        assert (math.isnan(ours[i]) and math.isnan(ref)) or ours[i] == pytest.approx(ref, abs=1e-6), i
    assert changed >= maps.shape[0] // 4  # the filling matters on these maps
    print(f"seed {seed}: contour filling changed {changed} of {maps.shape[0]} Otsu regions; IoU equal on all")


def test_contour_filling_matches_opencv_and_pil():
    """fill_regions against CheXlocalize's own drawing: cv2.findContours(RETR_TREE) + PIL filled polygons."""
    cv2 = pytest.importorskip("cv2")
    from PIL import Image, ImageDraw

    maps = np.concatenate([cam_like_maps(8, n=32, size=64), noisy_maps(8, n=32, size=64)])
    ours = fill_regions(binarize_saliency(torch.from_numpy(maps), "otsu")).numpy()[:, 0]
    changed = 0
    for i in range(maps.shape[0]):
        img = chexlocalize_uint8(maps[i, 0])
        thresh = cv2.threshold(img, 0, int(img.max()), cv2.THRESH_OTSU)[1]
        contours = cv2.findContours(thresh, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
        contours = contours[0] if len(contours) == 2 else contours[1]
        drawn = Image.new("1", (img.shape[1], img.shape[0]))
        for contour in contours:
            if len(contour) > 1:
                ImageDraw.Draw(drawn).polygon([tuple(int(v) for v in p[0]) for p in contour], outline=1, fill=1)
        expected = np.array(drawn, dtype=bool)
        changed += int(not np.array_equal(expected, thresh > 0))
        np.testing.assert_array_equal(ours[i], expected, err_msg=f"map {i}")
    assert changed > 0
    print(f"cv2 + PIL contour drawing equals fill_regions on {maps.shape[0]} maps ({changed} changed by the filling)")


def test_fill_contours_needs_otsu():
    with pytest.raises(ValueError, match="binarize='otsu'"):
        compute_saliency_iou(torch.rand(1, 1, 4, 4), torch.ones(1, 1, 4, 4), binarize="topk", fill_contours=True)
    metric = SaliencyIoU(fill_contours=True)
    assert metric.fill_contours and metric(y_pred=torch.rand(2, 1, 6, 6), y=torch.ones(2, 1, 6, 6)).shape == (2, 1)


def test_iou_upsamples_the_map_as_chexlocalize():
    """A coarse map scored against a full-size mask: upsampled bilinearly (align_corners=False) as their pkl_to_mask."""
    rng = np.random.default_rng(9)
    coarse = np.maximum(rng.normal(0.3, 0.4, (12, 1, 7, 7)), 0).astype(np.float32)
    coarse[:, :, 2:4, 3:5] += 1.0
    masks = np.zeros((12, 1, 56, 56), dtype=np.float32)
    masks[:, :, 14:36, 20:44] = 1.0
    ours = compute_saliency_iou(
        torch.from_numpy(coarse), torch.from_numpy(masks), fill_contours=True, empty_prediction="nan"
    ).numpy()[:, 0]
    full = torch.nn.functional.interpolate(
        torch.from_numpy(coarse), size=(56, 56), mode="bilinear", align_corners=False
    ).numpy()
    for i in range(coarse.shape[0]):
        region = contour_fill_reference(chexlocalize_otsu_region(full[i, 0]))
        assert ours[i] == pytest.approx(chexlocalize_iou(region, masks[i, 0] > 0.5), abs=1e-6), i
