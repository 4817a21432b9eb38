"""A light stride-4 decoder on top of the release's head (our addition; the paper has none).

Why: at output stride 16 the logits of a 427x240 frame form a 27x15 grid, and bilinear upsampling
of that grid caps the score: a *perfect* DAVIS val mask reduced to it and upsampled back scores
J 76.5 and F 71.8. At stride 4 the cap is J 91.9 and F 92.5. DeepLab-v3+ (Chen et al. 2018) closes
that gap with a decoder that mixes the coarse prediction with the backbone's stride-4 features; this
is a small version of it, sized for a CPU.

What it computes, at the stride-4 grid of the low-level features:

    up       = bilinear(head logits)                     (the paper's prediction, upsampled)
    features = [up, bilinear(1x1(high features)), 1x1(low-level features)]
    logits   = up + refine(features)                     (two depthwise-separable 3x3 blocks, 1x1 to 2)

The last 1x1 starts at zero, so an untrained decoder returns the head's logits bilinearly
upsampled to the stride-4 grid: it starts as the paper's prediction and learns corrections to it. It has no
BatchNorm (the streams keep their BatchNorms frozen), only biases and ReLUs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DECODERS = ("none", "skip4")  # "none": the release's head alone (the paper's network)


def _separable(channels_in: int, channels_out: int) -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1, with a ReLU: a cheap 3x3 block (MobileNet's)."""
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_in, 3, padding=1, groups=channels_in),
        nn.Conv2d(channels_in, channels_out, 1),
        nn.ReLU(inplace=True),
    )


class SkipDecoder(nn.Module):
    """Refine the head's 2-class logits at stride 4 with the backbone's low-level features."""

    def __init__(
        self,
        high_channels: int,
        low_channels: int,
        num_classes: int = 2,
        width: int = 64,
        low_width: int = 32,
    ):
        super().__init__()
        self.high = nn.Sequential(nn.Conv2d(high_channels, width, 1), nn.ReLU(inplace=True))
        self.low = nn.Sequential(nn.Conv2d(low_channels, low_width, 1), nn.ReLU(inplace=True))
        self.refine = nn.Sequential(
            _separable(num_classes + width + low_width, width),
            _separable(width, width),
            nn.Conv2d(width, num_classes, 1),
        )
        last = self.refine[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, logits: torch.Tensor, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        size = (low.shape[-2], low.shape[-1])
        up = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        high = F.interpolate(self.high(high), size=size, mode="bilinear", align_corners=False)
        return up + self.refine(torch.cat([up, high, self.low(low)], dim=1))

    def convs(self) -> list[nn.Conv2d]:
        return [m for m in self.modules() if isinstance(m, nn.Conv2d)]
