"""check_input_size / smallest_input_size: a too small image is a clear error naming the setting and the minimum."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import DenseNet

from monai_explain.utils import check_input_size, smallest_input_size


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    # stem conv (stride 2) + max pool (stride 2) + 2 transitions (avg pool 2): 8 x 8 inputs end below 1 pixel
    return DenseNet(
        spatial_dims=2, in_channels=1, out_channels=1, init_features=8, growth_rate=4, block_config=(2, 2, 2)
    )


def test_too_small_size_names_the_key_and_the_smallest_size():
    net = _net().train()
    smallest = smallest_input_size(net, 2)
    assert smallest is not None and 8 < smallest <= 16
    with pytest.raises(
        ValueError, match=rf"image_size \[8, 8\] is too small .* smallest input it accepts is {smallest}"
    ):
        check_input_size(net, [8, 8])
    assert check_input_size(net, [smallest, smallest]) is net
    assert check_input_size(net, 64) is net
    assert net.training and all(m.training for m in net.modules()), "the train/eval modes are restored"


def test_probing_leaves_batchnorm_statistics_alone():
    net = _net().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    check_input_size(net, [32, 32])
    with pytest.raises(ValueError):
        check_input_size(net, [4, 4], key="spatial_size")
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_non_positive_size_is_refused():
    with pytest.raises(ValueError, match=r"roi must be positive sizes, got \[0, 16\]"):
        check_input_size(_net(), [0, 16], key="roi")
