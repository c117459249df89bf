from __future__ import annotations

import pytest

from monai_explain.saliency import CAM, GradCAM, HiResCAM, InputGradient, InputXGradient, get_saliency_method
from tests.saliency._reference import small_resnet


@pytest.mark.parametrize(
    "name, kwargs, cls",
    [
        ("cam", {}, CAM),
        ("gradcam", {"target_layer": "layer4"}, GradCAM),
        ("Grad-CAM", {"target_layer": "layer3", "fast_path": False}, GradCAM),
        ("hirescam", {"target_layer": "layer2"}, HiResCAM),
        ("input_gradient", {}, InputGradient),
        ("input-x-gradient", {"channel_reduction": "max"}, InputXGradient),
    ],
)
def test_names(name, kwargs, cls):
    method = get_saliency_method(name, small_resnet(2), **kwargs)
    assert type(method) is cls and not method.is_registered
    assert method.needs_input_grad is (cls in (InputGradient, InputXGradient))


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown saliency method 'gradcam\\+\\+'; choose one of cam, gradcam"):
        get_saliency_method("gradcam++", small_resnet(2))
