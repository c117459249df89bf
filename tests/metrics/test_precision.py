from __future__ import annotations

import math

import pytest
import torch

from monai_explain.metrics import SaliencyPrecision, compute_chance_level, compute_saliency_precision

S = torch.tensor([[[[0.9, 0.1], [0.2, 0.8]]]])
TOP_ROW = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
EMPTY = torch.zeros(1, 1, 2, 2)


@pytest.mark.parametrize(
    "saliency, mask, kwargs, expected",
    [
        (S, TOP_ROW, {"fraction": 0.5}, 0.5),  # top 2 = {0.9 in, 0.8 out}
        (S, TOP_ROW, {"fraction": 0.25}, 1.0),  # top 1 = 0.9, inside
        (S, TOP_ROW, {"fraction": 1.0}, 0.5),  # everything: |A| / N
        (S, TOP_ROW, {"fraction": "mask"}, 0.5),  # k = |A| = 2
        (S, TOP_ROW, {"mode": "mass"}, 1.0 / 2.0),  # (0.9 + 0.1) / 2.0
        (S, TOP_ROW, {"binarize": "threshold", "threshold": 0.5}, 0.5),  # s/0.9 > .5: 0.9, 0.8
        (S, TOP_ROW, {"binarize": "threshold", "threshold": 0.95}, 1.0),  # only 0.9 (1.0 > .95)
        (S, TOP_ROW, {"binarize": "otsu"}, 0.5),  # Otsu splits {0.9, 0.8} from {0.1, 0.2}
        # a constant map scores the chance level |A| / N, binary (shared ties) and mass
        (torch.full((1, 1, 2, 2), 0.3), TOP_ROW, {"fraction": 0.25}, 0.5),
        (torch.full((1, 1, 2, 2), 0.3), TOP_ROW, {"mode": "mass"}, 0.5),
        # an all-zero map: top-k ties -> chance; nothing selected / zero mass -> 0
        (torch.zeros(1, 1, 2, 2), TOP_ROW, {"fraction": 0.25}, 0.5),
        (torch.zeros(1, 1, 2, 2), TOP_ROW, {"binarize": "threshold"}, 0.0),
        (torch.zeros(1, 1, 2, 2), TOP_ROW, {"binarize": "otsu"}, 0.0),
        (torch.zeros(1, 1, 2, 2), TOP_ROW, {"mode": "mass"}, 0.0),
        # saliency on a coarser grid is upsampled to the mask (bilinear): see test_utils; mass inside 3.0625 of 4
        (
            torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]),
            torch.nn.functional.pad(torch.ones(1, 1, 2, 2), (0, 2, 0, 2)),
            {"mode": "mass"},
            3.0625 / 4.0,
        ),
    ],
)
def test_precision_hand_cases(saliency, mask, kwargs, expected):
    out = compute_saliency_precision(saliency, mask, **kwargs)
    assert out.shape == (1, 1)
    assert out.item() == pytest.approx(expected)


def test_precision_3d_hand_case():
    s = torch.zeros(1, 1, 2, 2, 2)
    s[0, 0, 0, 0, 0] = 1.0
    s[0, 0, 1, 1, 1] = 0.5
    m = torch.zeros(1, 1, 2, 2, 2)
    m[0, 0, 0] = 1.0  # first slab of 4 voxels
    assert compute_saliency_precision(s, m, fraction=0.25).item() == pytest.approx(0.5)  # top 2: one inside
    assert compute_saliency_precision(s, m, mode="mass").item() == pytest.approx(1.0 / 1.5)


@pytest.mark.parametrize("mode", ["binary", "mass"])
def test_empty_mask_gives_nan_and_is_counted_out(mode):
    s = torch.rand(3, 1, 4, 4)
    m = torch.zeros(3, 1, 4, 4)
    m[0, 0, :2] = 1
    m[2, 0, 1:3, 1:3] = 1
    values = compute_saliency_precision(s, m, mode=mode)
    assert math.isnan(values[1, 0]) and not torch.isnan(values[[0, 2]]).any()
    metric = SaliencyPrecision(mode=mode, get_not_nans=True)
    metric(y_pred=s, y=m)
    value, not_nans = metric.aggregate()
    assert not_nans.item() == 2
    assert value.item() == pytest.approx(values[[0, 2]].mean().item())


def test_multi_channel_masks():
    s = torch.tensor([[[[0.9, 0.1], [0.2, 0.8]]]])  # one map
    m = torch.cat([TOP_ROW, torch.tensor([[[[0.0, 0.0], [0.0, 1.0]]]]), EMPTY], dim=1)  # three findings
    out = compute_saliency_precision(s, m, fraction=0.5)
    assert out[0, :2].tolist() == [0.5, 0.5] and math.isnan(out[0, 2])
    s3 = torch.cat([S, S.flip(-1), S], dim=1)  # one map per class
    out3 = compute_saliency_precision(s3, m, fraction=0.25)
    # class 1 map flipped: top pixel 0.9 now at (0, 1) -> outside the (1, 1) mask
    assert out3[0, :2].tolist() == [1.0, 0.0] and math.isnan(out3[0, 2])


def test_return_chance():
    value, chance = compute_saliency_precision(S, TOP_ROW, fraction=0.25, return_chance=True)
    assert value.item() == 1.0
    assert chance.item() == 0.5
    torch.testing.assert_close(chance, compute_chance_level(TOP_ROW))


@pytest.mark.parametrize(
    "reduction, expected_shape",
    # MONAI's do_metric_reduction returns shape (1,) for "mean" (as DiceMetric does)
    [("mean", (1,)), ("sum", ()), ("mean_batch", (2,)), ("sum_batch", (2,)), ("mean_channel", (4,)), ("none", (4, 2))],
)
def test_aggregate_reductions(reduction, expected_shape):
    metric = SaliencyPrecision(mode="mass", reduction=reduction)
    s = torch.rand(2, 2, 5, 5)
    m = (torch.rand(2, 2, 5, 5) > 0.5).float()
    first = metric(y_pred=s, y=m)
    second = metric(y_pred=s.flip(-1), y=m)
    out = metric.aggregate()
    assert tuple(out.shape) == expected_shape
    allv = torch.cat([first, second])
    if reduction == "mean":
        assert out.item() == pytest.approx(allv.mean().item(), rel=1e-5)
    if reduction == "sum_batch":
        torch.testing.assert_close(out, allv.sum(0))


def test_bad_mode():
    with pytest.raises(ValueError, match="area"):
        compute_saliency_precision(S, TOP_ROW, mode="area")
    with pytest.raises(ValueError, match="area"):
        SaliencyPrecision(mode="area")
