"""One target policy: which class maps the loss, the evaluator handlers and the metrics explain."""

from __future__ import annotations

import pytest
import torch

from monai_explain.handlers import default_saliency_target
from monai_explain.saliency import CAM, SaliencyMethod, SaliencyMethodProtocol, explained_classes, saliency_target

LOGITS3 = torch.tensor([[0.2, 1.5, -1.0], [2.0, -0.5, 0.1]])
MULTI_HOT = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])


@pytest.mark.parametrize(
    "label, logits, policy, expected",
    [
        (MULTI_HOT, LOGITS3, "label", MULTI_HOT),  # multi-label: one map per class
        (torch.tensor([2, 0]), LOGITS3, "label", torch.tensor([2, 0])),  # class indices
        (torch.tensor([[2], [1]]), LOGITS3, "label", torch.tensor([2, 1])),
        (torch.tensor([[1.0], [0.0]]), torch.randn(2, 1), "label", torch.tensor([0, 0])),  # single logit
        (torch.tensor([2, 0]), LOGITS3, "pred", torch.tensor([1, 0])),  # argmax
        (MULTI_HOT, LOGITS3, "pred", torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])),  # logit > 0
        (MULTI_HOT, LOGITS3, "all", torch.ones(2, 3)),
        (MULTI_HOT, LOGITS3, 1, torch.tensor([1, 1])),
        (MULTI_HOT, LOGITS3, lambda label, logits: label[:, :1].long()[:, 0], torch.tensor([1, 0])),
    ],
)
def test_policies(label, logits, policy, expected):
    out = saliency_target(label, logits, policy)
    assert out.dtype == expected.dtype and torch.equal(out, expected)


def test_default_target_is_the_label_policy():
    assert torch.equal(default_saliency_target(MULTI_HOT, LOGITS3), saliency_target(MULTI_HOT, LOGITS3, "label"))
    assert torch.equal(default_saliency_target(torch.tensor([2, 0]), LOGITS3), torch.tensor([2, 0]))


@pytest.mark.parametrize(
    "policy, match", [("first", "target policy must be one of"), (3, "outside \\[0, 3\\)"), (-1, "outside")]
)
def test_bad_policy(policy, match):
    with pytest.raises(ValueError, match=match):
        saliency_target(MULTI_HOT, LOGITS3, policy)


def test_without_label():
    assert saliency_target(None, LOGITS3, "pred").tolist() == [1, 0]
    assert saliency_target(None, torch.randn(2, 1), "pred").tolist() == [0, 0]
    assert saliency_target(None, LOGITS3, "all").shape == (2, 3)
    with pytest.raises(ValueError, match="needs a label"):
        saliency_target(None, LOGITS3, "label")


def test_explained_classes():
    assert explained_classes(MULTI_HOT, 3).tolist() == [[0, 1, 2], [0, 1, 2]]
    assert explained_classes(torch.tensor([2, 0]), 3).tolist() == [[2], [0]]
    assert explained_classes(torch.tensor([0, 0]), 1).tolist() == [[0], [0]]
    with pytest.raises(ValueError, match="neither"):
        explained_classes(torch.zeros(2, 2, 2), 3)


def test_maps_follow_the_policy_and_saliency_methods_satisfy_the_protocol():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU())
    model = torch.nn.Sequential(net, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))
    cam = CAM(model, "0.1", "3")
    assert isinstance(cam, SaliencyMethod) and isinstance(cam, SaliencyMethodProtocol)
    x = torch.rand(2, 1, 8, 8)
    for policy, k in (("label", 3), ("pred", 1), (2, 1)):
        logits = model(x).detach()
        target = saliency_target(MULTI_HOT if policy == "label" else torch.tensor([0, 1]), logits, policy)
        maps, _ = cam(x, target)
        assert maps.shape == (2, k, 8, 8)
        assert explained_classes(target, 3).shape == (2, k)
