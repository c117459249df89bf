from __future__ import annotations

import math

import pytest
import torch

from monai_explain.metrics import (
    SaliencyCoverage,
    compute_instance_coverage,
    compute_saliency_coverage,
    instance_masks,
)

S = torch.tensor([[[[0.9, 0.1], [0.2, 0.8]]]])
TOP_ROW = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])


@pytest.mark.parametrize(
    "saliency, mask, kwargs, expected",
    [
        (S, TOP_ROW, {"fraction": 0.25}, 0.5),  # top 1 = 0.9: covers 1 of 2
        (S, TOP_ROW, {"fraction": 0.5}, 0.5),  # top 2 = 0.9, 0.8: still 1 of 2
        (S, TOP_ROW, {"fraction": 0.75}, 0.5),  # + 0.2 (outside)
        (S, TOP_ROW, {"fraction": 1.0}, 1.0),
        (S, TOP_ROW, {"fraction": "mask"}, 0.5),
        (S, TOP_ROW, {"binarize": "threshold", "threshold": 0.05}, 1.0),  # every pixel > 0.05 * 0.9
        (S, TOP_ROW, {"binarize": "otsu"}, 0.5),
        # constant map: covers exactly `fraction` of the annotation (shared ties)
        (torch.full((1, 1, 2, 2), 0.3), TOP_ROW, {"fraction": 0.25}, 0.25),
        (torch.zeros(1, 1, 2, 2), TOP_ROW, {"binarize": "threshold"}, 0.0),
    ],
)
def test_coverage_hand_cases(saliency, mask, kwargs, expected):
    out = compute_saliency_coverage(saliency, mask, **kwargs)
    assert out.shape == (1, 1)
    assert out.item() == pytest.approx(expected)


def test_coverage_3d_multichannel_and_nan():
    s = torch.arange(8, dtype=torch.float32).view(1, 1, 2, 2, 2)  # top 2 voxels: indices 7 and 6
    m = torch.zeros(1, 3, 2, 2, 2)
    m[0, 0].view(-1)[[6, 0]] = 1
    m[0, 1].view(-1)[[7, 6, 5, 4]] = 1
    out = compute_saliency_coverage(s, m, fraction=0.25)
    assert out[0, :2].tolist() == [0.5, 0.5] and math.isnan(out[0, 2])


def test_coverage_return_chance():
    value, chance = compute_saliency_coverage(S, TOP_ROW, fraction=0.25, return_chance=True)
    assert value.item() == 0.5 and chance.item() == 0.25
    _, chance_thr = compute_saliency_coverage(S, TOP_ROW, binarize="threshold", threshold=0.5, return_chance=True)
    assert chance_thr.item() == 0.5  # 0.9 and 0.8 selected


def test_coverage_metric_not_nans_and_mean_batch():
    s = torch.rand(4, 2, 6, 6)
    m = (torch.rand(4, 2, 6, 6) > 0.5).float()
    m[1, 0] = 0
    m[3, 1] = 0
    metric = SaliencyCoverage(reduction="mean_batch", get_not_nans=True)
    per_item = metric(y_pred=s, y=m)
    value, not_nans = metric.aggregate()
    assert not_nans.tolist() == [3.0, 3.0]
    expected = torch.stack([per_item[[0, 2, 3], 0].mean(), per_item[[0, 1, 2], 1].mean()])
    torch.testing.assert_close(value, expected)


def test_instance_masks_formats():
    labels = torch.tensor([[[[0, 1], [3, 3]]]])  # label 2 absent
    out = instance_masks(labels)
    assert out.shape == (1, 3, 2, 2)
    assert out.sum(dim=(2, 3)).tolist() == [[1, 0, 2]]
    channels = torch.rand(1, 4, 3, 3)
    assert torch.equal(instance_masks(channels), channels > 0.5)
    assert instance_masks(torch.zeros(2, 1, 3, 3)).shape == (2, 0, 3, 3)


@pytest.mark.parametrize(
    "saliency, instances, kwargs, expected, per_instance",
    [
        # top 1 = 0.9 on instance 1; instance 2 missed -> 1/2
        ([[0.9, 0.1, 0.0, 0.0]], [[1, 0, 0, 2]], {"fraction": 0.25}, 0.5, [1.0, 0.0]),
        # top 2 = 0.9, 0.5: instance 2 (2 pixels) half covered, >= 0.1 -> both found
        ([[0.9, 0.1, 0.0, 0.5]], [[1, 0, 2, 2]], {"fraction": 0.5}, 1.0, [1.0, 0.5]),
        # same, but a half-covered instance is not enough at threshold 0.6
        ([[0.9, 0.1, 0.0, 0.5]], [[1, 0, 2, 2]], {"fraction": 0.5, "instance_threshold": 0.6}, 0.5, [1.0, 0.5]),
        # fraction="mask": k = |union| = 3
        ([[0.9, 0.1, 0.0, 0.5]], [[1, 0, 2, 2]], {"fraction": "mask"}, 1.0, [1.0, 0.5]),
    ],
)
def test_instance_coverage_hand_cases(saliency, instances, kwargs, expected, per_instance):
    s = torch.tensor([[saliency]], dtype=torch.float32)
    inst = torch.tensor([[instances]])
    value, per = compute_instance_coverage(s, inst, return_per_instance=True, **kwargs)
    assert value.shape == (1, 1) and value.item() == pytest.approx(expected)
    assert per[0].tolist() == pytest.approx(per_instance)
    one_hot = torch.stack([inst[:, 0] == 1, inst[:, 0] == 2], dim=1).float()
    assert compute_instance_coverage(s, one_hot, **kwargs).item() == pytest.approx(expected)


def test_instance_coverage_3d_nan_and_class():
    s = torch.rand(3, 1, 4, 4, 4)
    inst = torch.zeros(3, 1, 4, 4, 4, dtype=torch.long)
    inst[0, 0, :2, :2, :2] = 1
    inst[0, 0, 2:, 2:, 2:] = 2
    inst[2, 0, 0, 0, 0] = 1
    value = compute_instance_coverage(s, inst)
    assert math.isnan(value[1, 0]) and not torch.isnan(value[[0, 2]]).any()
    metric = SaliencyCoverage(per_instance=True, get_not_nans=True)
    out = metric(y_pred=s, y=inst)
    torch.testing.assert_close(out, value, equal_nan=True)
    _, not_nans = metric.aggregate()
    assert not_nans.item() == 2


@pytest.mark.parametrize("fraction", [0.1, "mask"])
def test_instance_coverage_without_any_instance(fraction):
    value, per = compute_instance_coverage(
        torch.rand(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), fraction=fraction, return_per_instance=True
    )
    assert torch.isnan(value).all() and per.shape == (2, 0)


@pytest.mark.parametrize(
    "saliency, instances, kwargs, match",
    [
        (torch.rand(1, 2, 3, 3), torch.ones(1, 1, 3, 3), {}, "one saliency map per sample"),
        (torch.rand(1, 1, 3, 3), torch.full((1, 1, 3, 3), 0.5), {}, "integer-labelled"),
        (torch.rand(1, 1, 3, 3), -torch.ones(1, 1, 3, 3), {}, "non-negative"),
        (torch.rand(2, 1, 3, 3), torch.ones(1, 1, 3, 3), {}, "does not match"),
        (torch.rand(1, 1, 3, 3), torch.ones(1, 1, 3, 3), {"instance_threshold": 0.0}, "instance_threshold"),
    ],
)
def test_instance_coverage_bad_input(saliency, instances, kwargs, match):
    with pytest.raises(ValueError, match=match):
        compute_instance_coverage(saliency, instances, **kwargs)
