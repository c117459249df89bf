"""monai_explain.saliency: differentiable saliency maps (CAM, Grad-CAM, HiResCAM, input gradients), 2D and 3D."""

from __future__ import annotations

from .base import SaliencyMethod, parse_target
from .cam import CAM
from .factory import SaliencyMethodName, get_saliency_method
from .functional import channel_weighted_sum, class_weights, gap_linear_matches, spatial_mean
from .gradcam import GradCAM
from .head import GapLinearHead
from .hirescam import HiResCAM
from .input_gradient import ChannelReduction, InputGradient, InputXGradient
from .layers import find_last_linear, resolve_layer

__all__ = [
    "CAM",
    "ChannelReduction",
    "GapLinearHead",
    "GradCAM",
    "HiResCAM",
    "InputGradient",
    "InputXGradient",
    "SaliencyMethod",
    "SaliencyMethodName",
    "channel_weighted_sum",
    "class_weights",
    "find_last_linear",
    "gap_linear_matches",
    "get_saliency_method",
    "parse_target",
    "resolve_layer",
    "spatial_mean",
]
