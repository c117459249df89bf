from __future__ import annotations

import pytest
import torch

from monai_explain.metrics import (
    compute_alignment_metrics,
    compute_chance_level,
    compute_saliency_coverage,
    compute_saliency_iou,
    compute_saliency_precision,
)


def test_hand_case():
    s = torch.tensor([[[[0.9, 0.1], [0.2, 0.8]]]])
    m = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    out = compute_alignment_metrics(s, m, fraction=0.5)
    expected = {
        "coverage": 0.5,  # top 2 = 0.9 (in), 0.8 (out)
        "precision": 0.5,
        "mass_precision": 0.5,
        "iou": 1 / 3,
        "chance_precision": 0.5,
        "chance_coverage": 0.5,
    }
    assert {k: v.item() for k, v in out.items()} == pytest.approx(expected)


@pytest.mark.parametrize(
    "options",
    [{}, {"fraction": "mask"}, {"binarize": "otsu"}, {"binarize": "threshold", "threshold": 0.3}],
)
@pytest.mark.parametrize("shape", [(3, 2, 9, 8), (2, 1, 5, 4, 6)])
def test_equals_the_separate_functions(options, shape):
    s = torch.rand(shape) ** 2
    m = (torch.rand(shape) > 0.6).float()
    m[0, 0] = 0
    out = compute_alignment_metrics(s, m, **options)
    close = {"equal_nan": True, "rtol": 1e-6, "atol": 1e-7}
    torch.testing.assert_close(out["coverage"], compute_saliency_coverage(s, m, **options), **close)
    torch.testing.assert_close(out["precision"], compute_saliency_precision(s, m, **options), **close)
    torch.testing.assert_close(out["mass_precision"], compute_saliency_precision(s, m, mode="mass"), **close)
    iou_options = {"binarize": "topk", **options}
    torch.testing.assert_close(out["iou"], compute_saliency_iou(s, m, **iou_options), **close)
    torch.testing.assert_close(out["chance_precision"], compute_chance_level(m), **close)
    _, chance_cov = compute_saliency_coverage(s, m, return_chance=True, **options)
    torch.testing.assert_close(out["chance_coverage"], chance_cov, **close)
