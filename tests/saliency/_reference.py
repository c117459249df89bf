"""Independent references for the saliency tests: networks run by hand, split at a layer, no hooks.

The references differentiate the target score with respect to intermediate tensors produced by an explicit,
hand-written forward (the network cut in two at the layer), and apply the textbook formulas element-wise, so
they share no code with monai_explain.saliency.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.nets import DenseNet, ResNet, resnet18
from torch import nn

__all__ = [
    "all_hooks_empty",
    "densenet_forward",
    "gradcam_reference",
    "hirescam_reference",
    "resnet_forward",
    "small_densenet",
    "small_resnet",
    "target_score",
]


def small_densenet(spatial_dims: int, out_channels: int = 3) -> DenseNet:
    """A MONAI DenseNet with DenseNet121's layout (features.* / class_layers.*) but 3 tiny blocks."""
    return DenseNet(
        spatial_dims=spatial_dims,
        in_channels=1,
        out_channels=out_channels,
        init_features=8,
        growth_rate=4,
        block_config=(2, 2, 2),
        bn_size=2,
    )


def small_resnet(spatial_dims: int, out_channels: int = 3) -> ResNet:
    """MONAI's torchvision-layout ResNet-18 (conv1/bn1/layer1-4/avgpool/fc), narrow, with 1 input channel."""
    return resnet18(
        spatial_dims=spatial_dims, n_input_channels=1, num_classes=out_channels, widen_factor=0.25, conv1_t_stride=2
    )


def densenet_forward(net: DenseNet, x: torch.Tensor, cut: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run a MONAI DenseNet by hand; return the logits and the intermediate tensors at ``cut`` and before GAP.

    Args:
        net: the DenseNet.
        x: input batch.
        cut: name of a child of ``net.features`` (e.g. ``"denseblock3"``).

    Returns:
        ``(logits, {"features.<cut>": A_mid, "class_layers.relu": A_last})``.
    """
    out, inter = x, {}
    for name, child in net.features.named_children():
        out = child(out)
        if name == cut:
            inter[f"features.{name}"] = out
    last = F.relu(out)  # the model's own ReLU is in-place; the reference makes a fresh tensor
    inter["class_layers.relu"] = last
    logits = net.class_layers.out(torch.flatten(last.mean(dim=tuple(range(2, last.ndim))), 1))
    return logits, inter


def resnet_forward(net: ResNet, x: torch.Tensor, cut: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run a MONAI (torchvision-layout) ResNet by hand; intermediate tensors at ``cut`` and at ``layer4``."""
    out = net.maxpool(net.act(net.bn1(net.conv1(x))))
    inter = {}
    for name in ("layer1", "layer2", "layer3", "layer4"):
        out = getattr(net, name)(out)
        if name in (cut, "layer4"):
            inter[name] = out
    logits = net.fc(out.mean(dim=tuple(range(2, out.ndim))))
    return logits, inter


def target_score(logits: torch.Tensor, cls: torch.Tensor | int) -> torch.Tensor:
    """Sum over the batch of the target logits, one class index per sample (or the same for all)."""
    if isinstance(cls, int):
        return logits[:, cls].sum()
    return logits[torch.arange(logits.shape[0]), cls].sum()


def gradcam_reference(activation: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Textbook Grad-CAM, element-wise: ReLU(sum_k mean_x(grad_k) * A_k), shape (B, 1, *spatial)."""
    spatial = tuple(range(2, activation.ndim))
    alpha = grad.mean(dim=spatial, keepdim=True)
    return F.relu((alpha * activation).sum(dim=1, keepdim=True))


def hirescam_reference(activation: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Textbook HiResCAM: ReLU(sum_k grad_k * A_k), shape (B, 1, *spatial)."""
    return F.relu((grad * activation).sum(dim=1, keepdim=True))


def all_hooks_empty(model: nn.Module) -> bool:
    """True when no module of ``model`` has a forward hook or pre-hook."""
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
