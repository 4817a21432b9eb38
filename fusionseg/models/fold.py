"""BatchNorm folding for inference: a conv followed by an eval-mode BatchNorm is one affine conv.

In eval mode BatchNorm2d computes y = (x - mean) / sqrt(var + eps) * gamma + beta per channel, so
after a conv with weight W and bias b it equals one conv with weight W * s and bias (b - mean) * s +
beta, where s = gamma / sqrt(var + eps). Folding saves a full pass over every activation map (Lite0
has 49 BatchNorms, ResNet-101 104), which matters on a CPU where these small networks are bound by
memory traffic. The results agree with the unfolded network to float rounding.

Which BatchNorm follows which conv is read from the stream definitions, not guessed: the named
(conv, bn) attribute pairs of EfficientNet-Lite0 and its MBConv blocks, of torchvision's ResNet and
Bottleneck, and consecutive (Conv2d, BatchNorm2d) children of an `nn.Sequential` (ResNet's
downsample branches). A folded model is for inference only: its BatchNorms are gone, so it must
never be trained (training would update the folded weights instead of frozen statistics).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

from fusionseg.models.efficientnet_lite import EfficientNetLite0, MBConvBlock


def conv_bn_pairs(module: nn.Module) -> list[tuple[str, str]]:
    """The (conv attribute, BatchNorm attribute) pairs of `module` itself (not of its children)
    where the BatchNorm is applied directly to that conv's output in `forward`."""
    if isinstance(module, EfficientNetLite0):
        return [("_conv_stem", "_bn0"), ("_conv_head", "_bn1")]
    if isinstance(module, MBConvBlock):
        pairs = [("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")]
        return ([("_expand_conv", "_bn0")] if module.expand != 1 else []) + pairs
    if isinstance(module, Bottleneck):
        return [("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")]
    if isinstance(module, ResNet):
        return [("conv1", "bn1")]
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        return [
            (first, second)
            for first, second in zip(names, names[1:], strict=False)
            if isinstance(module._modules[first], nn.Conv2d)
            and isinstance(module._modules[second], nn.BatchNorm2d)
        ]
    return []


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold `bn` (eval mode: running statistics) into `conv`'s weight and bias, in place.

    Computed in float64 and stored in the conv's dtype, so the folded conv is as close to
    conv-then-BatchNorm as float32 allows.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("fold_batchnorm: a BatchNorm2d without running statistics cannot be folded")
    if conv.out_channels != bn.num_features:
        raise ValueError(f"fold_batchnorm: conv has {conv.out_channels} outputs, BatchNorm {bn.num_features}")
    dtype = conv.weight.dtype
    scale = bn.running_var.double().add(bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    bias = (bias - bn.running_mean.double()) * scale
    if bn.bias is not None:
        bias = bias + bn.bias.double()
    conv.weight.copy_((conv.weight.double() * scale.view(-1, 1, 1, 1)).to(dtype))
    conv.bias = nn.Parameter(bias.to(dtype=dtype, device=conv.weight.device))


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d that directly follows a conv into it and replace it with nn.Identity.

    In place; returns `model`. The model must be in eval mode (all of it): folding uses the running
    statistics, which only eval mode applies, and a folded model can no longer be trained. Calling
    it twice is harmless (the second call finds nothing left to fold).
    """
    training = [name or "the model" for name, m in model.named_modules() if m.training]
    if training:
        raise ValueError(
            "fold_batchnorm is for inference only: call model.eval() first "
            f"({training[0]} is in training mode)"
        )
    for module in list(model.modules()):
        for conv_name, bn_name in conv_bn_pairs(module):
            conv, bn = getattr(module, conv_name), getattr(module, bn_name)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                fold_conv_bn(conv, bn)
                setattr(module, bn_name, nn.Identity().train(bn.training))
    return model
