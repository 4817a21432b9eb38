"""The release's segmentation head (DeepLab-v2 "ASPP-L" with 2 classes) and its upsampling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

RELEASE_RATES = (6, 12, 18, 24)  # dilation = padding of the four branches at output stride 8
RELEASE_OUTPUT_STRIDE = 8


def scaled_rates(output_stride: int) -> tuple[int, ...]:
    """The branch dilations for `output_stride`: the release's (6, 12, 18, 24) at stride 8.

    A dilation of r on a feature map of stride s looks r * s input pixels away. Keeping the
    release's fields of view (48, 96, 144, 192 input pixels) at another stride therefore means
    scaling the rates by 8 / s: (3, 6, 9, 12) at 16. Unscaled rates at stride 16 would look twice
    as far, mostly into the zero padding of small (e.g. 256 px) inputs.
    """
    rates = tuple(r * RELEASE_OUTPUT_STRIDE / output_stride for r in RELEASE_RATES)
    if not all(r.is_integer() and r >= 1 for r in rates):
        raise ValueError(
            f"the head's rates {RELEASE_RATES} at stride 8 do not scale to output stride {output_stride}"
        )
    return tuple(int(r) for r in rates)


class SegmentationHead(nn.Module):
    """Four parallel 3x3 convs with dilation = padding = `rates`, `num_classes` outputs each (with
    bias), summed: the release's `fc1_binary_seg_c{0..3}`. Output at the feature resolution."""

    def __init__(self, in_channels: int, rates: tuple[int, ...] = RELEASE_RATES, num_classes: int = 2):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Conv2d(in_channels, num_classes, 3, padding=r, dilation=r, bias=True) for r in rates
        )
        for conv in self.branches:  # DeepLab's initialisation of the classifier: N(0, 0.01), bias 0
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return out


def caffe_interp_upsample(x: torch.Tensor, factor: int, size: tuple[int, int]) -> torch.Tensor:
    """Caffe's Interp layer as the release uses it, then the crop: bilinear to (in - 1) * factor + 1
    with the corner pixels aligned (align_corners=True), cropped to `size` at the top-left.

    The release's input sizes (e.g. 513 x 289) make (in - 1) * 8 + 1 equal the input size exactly;
    for other sizes it is at least as large and the crop drops the extra bottom/right rows. If it
    were ever smaller, the logits are resized to `size` directly (align_corners=True).
    """
    h, w = x.shape[-2:]
    out_h, out_w = (h - 1) * factor + 1, (w - 1) * factor + 1
    if out_h < size[0] or out_w < size[1]:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)
    x = F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=True)
    return x[..., : size[0], : size[1]]


def bilinear_upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Plain bilinear resize to `size` (align_corners=False): the Lite0 streams' upsampling. TF
    SAME padding centres the features differently from Caffe's, and these heads are trained by us,
    so there is no release behaviour to match."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
