from __future__ import annotations

import pytest
from torch import nn

from monai_explain.saliency import find_last_linear, resolve_layer
from tests.saliency._reference import small_densenet, small_resnet


class _Wrapper(nn.Module):
    """Stands for DistributedDataParallel: the network is kept as `.module`."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module


@pytest.mark.parametrize(
    "wrap, name, expected",
    [
        (False, "features.denseblock2", "features.denseblock2"),
        (False, "class_layers.relu", "class_layers.relu"),
        (False, "module.features.denseblock2", "features.denseblock2"),
        (True, "features.denseblock2", "module.features.denseblock2"),
        (True, "module.class_layers.out", "module.class_layers.out"),
    ],
)
def test_resolve_with_or_without_wrapper_prefix(wrap, name, expected):
    net = small_densenet(2)
    model = _Wrapper(net) if wrap else net
    found, module = resolve_layer(model, name)
    assert found == expected and module is dict(model.named_modules())[expected]


def test_resolve_by_module_identity():
    net = small_resnet(2)
    assert resolve_layer(net, net.layer3) == ("layer3", net.layer3)
    with pytest.raises(ValueError, match="Linear module is not a sub-module of ResNet"):
        resolve_layer(net, nn.Linear(2, 2))


@pytest.mark.parametrize(
    "name, match",
    [
        (
            "features.denseblock7",
            "layer 'features.denseblock7' not found in DenseNet; closest names: features.denseblock",
        ),
        ("features.denseblock7", "sub-modules of 'features': conv0, norm0, relu0, pool0, denseblock1, transition1"),
        ("layer4", "sub-modules of the model: features, class_layers"),
        ("class_layers.fc", "closest names: class_layers.*; sub-modules of 'class_layers': relu, pool, flatten, out"),
        ("", "non-empty dotted module path"),
    ],
)
def test_wrong_names_list_nearby_names(name, match):
    with pytest.raises(ValueError, match=match):
        resolve_layer(small_densenet(2), name)


@pytest.mark.parametrize(
    "model, expected",
    [
        (small_densenet(2), "class_layers.out"),
        (small_resnet(3), "fc"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)), "2"),
    ],
)
def test_find_last_linear(model, expected):
    assert find_last_linear(model)[0] == expected


def test_find_last_linear_none():
    assert find_last_linear(nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1))) is None
