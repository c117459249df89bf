from __future__ import annotations

import pytest
import torch

from monai_explain.saliency import GapLinearHead
from tests.saliency._reference import small_densenet


def test_default_classifier_and_decision_cache_per_mode():
    net = small_densenet(2).eval()
    head = GapLinearHead(net)
    assert head.name == "class_layers.out" and head.decision() is None
    handle = head.register()
    feats = {}
    h2 = net.class_layers.relu.register_forward_hook(lambda m, a, o: feats.__setitem__("a", o))
    try:
        net(torch.randn(2, 1, 32, 32))
        assert head.fc_input is not None and head.fc_input.shape == (2, 16)
        assert head.check(feats["a"], "class_layers.relu") is True
        assert head.check(torch.zeros(2, 16, 2, 2), "ignored: cached") is True
        head.release()
        net(torch.randn(2, 1, 32, 32))
        assert head.fc_input is None  # decided for eval: nothing recorded any more
        net.train()
        net(torch.randn(2, 1, 32, 32))
        assert head.decision() is None and head.fc_input is not None
        assert head.check(torch.ones(2, 16, 2, 2), "wrong map") is False
        assert head._decisions == {False: True, True: False}
    finally:
        handle.remove()
        h2.remove()


def test_undecided_without_recording_is_false_and_not_cached():
    head = GapLinearHead(small_densenet(2))
    assert head.check(torch.ones(2, 16, 2, 2), "x") is False and head.decision() is None


@pytest.mark.parametrize(
    "fc_layer, match", [("class_layers.relu", "must be an nn.Linear, got ReLU"), ("fc", "closest")]
)
def test_bad_classifier(fc_layer, match):
    with pytest.raises(ValueError, match=match):
        GapLinearHead(small_densenet(2), fc_layer)
