from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from monai_explain.metrics import SaliencyIoU, compute_saliency_iou
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
