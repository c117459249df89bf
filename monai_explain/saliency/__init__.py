"""monai_explain.saliency: differentiable saliency maps (CAM, Grad-CAM, HiResCAM, input gradients), 2D and 3D.

Every method is built on the model, records what it needs with forward hooks during the model's own forward
(:meth:`SaliencyMethod.register` / :meth:`SaliencyMethod.recording`) and turns the logits of that forward into
maps ``(B, K, *spatial)`` with :meth:`SaliencyMethod.compute` (``torch.autograd.grad(create_graph=True)``, never
``.backward()``), resampled to the input grid, so that a loss on the maps trains the network.

Conventions:

- Targets: ``(B,)`` class indices give ``K = 1``; a multi-hot ``(B, C)`` tensor gives one map per class,
  ``K = C``. A single-logit binary model (logits ``(B, 1)``) uses index 0. Which class to explain is decided in
  one place, :mod:`monai_explain.saliency.targets` (policies ``label``, ``pred``, ``all``, an index).
- CAM vs Grad-CAM: at the feature map ``A`` feeding global average pooling + linear
  (``logits = W mean_x(A) + b``), ``GradCAM = HiResCAM = ReLU(sum_k W[c, k] A_k) / N = CAM / N`` with ``N`` the
  number of spatial positions of ``A``. :class:`GradCAM` (``fast_path="auto"``) detects that case once per
  train/eval mode and then uses the closed form (no second backward, all classes in one matrix product).
- Batched gradients: the score differentiated is the batch sum of the target logits (one ``autograd.grad``
  per map), i.e. each sample's own gradient unless BatchNorm in train mode after the layer mixes samples.
- Precision: under ``torch.autocast`` channel combinations run in the activation dtype (bf16/fp16 operands,
  float32 accumulation; no float32 copy of a feature map), maps are returned in float32 (float64 for a
  double-precision model).
- BatchNorm: methods that differentiate twice use an exact closed-form BatchNorm double backward while registered
  (``batchnorm="exact"``; ``"native"`` keeps PyTorch's, ``"per_sample"`` holds train-mode batch statistics constant
  in the saliency term so that a sample's map does not depend on its batch), see :mod:`.batchnorm`.
- Gradient methods need the forward to run with gradients enabled; CAM also works on a ``no_grad`` forward.
"""

from __future__ import annotations

from .base import SaliencyMethod, parse_target
from .batchnorm import (
    BatchNormGrad,
    batch_norm_double_backward,
    exact_batch_norm,
    frozen_batch_statistics,
    patch_batchnorm,
    set_batchnorm_compile,
)
from .cam import CAM
from .factory import SaliencyMethodName, get_saliency_method
from .functional import channel_weighted_sum, class_weights, gap_linear_matches, spatial_mean
from .gradcam import GradCAM
from .head import GapLinearHead
from .hirescam import HiResCAM
from .input_gradient import ChannelReduction, InputGradient, InputXGradient
from .layers import find_last_linear, resolve_layer
from .targets import (
    HookedSaliencyMethod,
    SaliencyMethodProtocol,
    TargetPolicy,
    TargetSpec,
    check_target_policy,
    explained_classes,
    saliency_target,
)

__all__ = [
    "CAM",
    "BatchNormGrad",
    "ChannelReduction",
    "GapLinearHead",
    "GradCAM",
    "HiResCAM",
    "HookedSaliencyMethod",
    "InputGradient",
    "InputXGradient",
    "SaliencyMethod",
    "SaliencyMethodName",
    "SaliencyMethodProtocol",
    "TargetPolicy",
    "TargetSpec",
    "batch_norm_double_backward",
    "channel_weighted_sum",
    "check_target_policy",
    "class_weights",
    "exact_batch_norm",
    "explained_classes",
    "find_last_linear",
    "frozen_batch_statistics",
    "gap_linear_matches",
    "get_saliency_method",
    "parse_target",
    "patch_batchnorm",
    "resolve_layer",
    "saliency_target",
    "set_batchnorm_compile",
    "spatial_mean",
]
