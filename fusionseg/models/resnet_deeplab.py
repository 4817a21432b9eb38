"""ResNet-101 in DeepLab-v2 style, exactly as the authors' released Caffe streams build it.

Built on torchvision's `ResNet`/`Bottleneck` (same module names, so torchvision's ImageNet state
dict loads), with the release's differences applied:

- pool1 rounds up (Caffe's ceil mode): 513 x 289 inputs give 65 x 37 features at stride 8;
- ResNet v1 stride placement: res3a downsamples with its 1x1 convs (branch2a and branch1),
  where torchvision (v1.5) puts the stride on the 3x3;
- res4 (layer3) 3x3 convs all use dilation 2 and res5 (layer4) all use dilation 4, including the
  first block of each stage (torchvision would keep the previous dilation there);
- output stride 8 (the release). Output stride 16 (res4 undilated, res5 dilation 2) is offered
  for cheaper experiments.

The release feeds Caffe-style input: BGR, 0-255, minus the ImageNet mean (`CaffePreprocess`).
Torchvision's ImageNet weights were trained on RGB input normalised by mean/std instead, so
`build_stream` switches the stream to that normalisation (`TorchvisionPreprocess`). The head and
its Caffe-style upsampling are in `head.py`; the book's appendix "Implementation notes" lists
what else the release does that the paper does not say.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

CAFFE_MEAN_BGR = (104.008, 116.669, 122.675)
TORCHVISION_MEAN_RGB = (0.485, 0.456, 0.406)
TORCHVISION_STD_RGB = (0.229, 0.224, 0.225)
TORCHVISION_URL = "https://download.pytorch.org/models/resnet101-63fe2227.pth"  # IMAGENET1K_V1
RESNET101_LAYERS = (3, 4, 23, 3)
STAGE_DILATIONS = {8: (1, 1, 2, 4), 16: (1, 1, 1, 2)}  # layer1..layer4


class CaffePreprocess(nn.Module):
    """RGB in [0, 1] -> BGR x 255 minus the mean [104.008, 116.669, 122.675] (B, G, R)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flip(1) * 255.0 - self.mean.to(x.dtype)


class TorchvisionPreprocess(nn.Module):
    """RGB in [0, 1] -> (x - mean) / std with ImageNet's statistics (torchvision's weights)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(TORCHVISION_MEAN_RGB).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(TORCHVISION_STD_RGB).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class DeepLabResNet101(ResNet):
    """The release's ResNet-101 trunk; `features(x)` gives res5c (2048 channels) at 1/output_stride."""

    def __init__(self, output_stride: int = 8):
        if output_stride not in STAGE_DILATIONS:
            raise ValueError(f"DeepLabResNet101: output_stride must be 8 or 16, got {output_stride}")
        dilations = STAGE_DILATIONS[output_stride]
        super().__init__(
            Bottleneck, list(RESNET101_LAYERS), replace_stride_with_dilation=[d > 1 for d in dilations[1:]]
        )
        del self.fc, self.avgpool
        self.output_stride = output_stride
        self.out_channels = 2048
        self.low_level_channels = 256
        self.maxpool.ceil_mode = True
        # ResNet v1: res3a strides on its 1x1 conv (branch2a), not on the 3x3 (branch2b).
        res3a = self.layer2[0]
        res3a.conv1.stride, res3a.conv2.stride = (2, 2), (1, 1)
        # Every 3x3 of a dilated stage uses that stage's dilation, the first block's too.
        for layer, dilation in zip((self.layer3, self.layer4), dilations[2:], strict=True):
            layer[0].conv2.dilation = (dilation, dilation)
            layer[0].conv2.padding = (dilation, dilation)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_and_low_level(x)[1]

    def features_and_low_level(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(res2c at stride 4, 256 channels; res5c): a decoder's two inputs."""
        low = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        return low, self.layer4(self.layer3(self.layer2(low)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def torch_hub_checkpoint() -> Path:
    """Where torchvision keeps its ResNet-101 ImageNet file once downloaded (it may not exist)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(TORCHVISION_URL)


def resnet101_weights_help() -> str:
    """How to get ResNet-101 weights, for error messages."""
    return (
        "ResNet-101 weights are not shipped with fusionseg. Either\n"
        f"  - download torchvision's ImageNet weights ({TORCHVISION_URL}) and pass the file:\n"
        "    build_stream('resnet101', pretrained='PATH/resnet101-63fe2227.pth'), or put it at\n"
        f"    {torch_hub_checkpoint()}, or let torchvision download it: pretrained='download';\n"
        "  - or convert the authors' stream weights (appearance_stream.caffemodel / motion_stream.caffemodel\n"
        "    from http://vision.cs.utexas.edu/projects/fusionseg/models/) with\n"
        "    `fusionseg import-caffe MODEL.caffemodel --arch appearance --out WEIGHTS.pt` and pass WEIGHTS.pt;\n"
        "  - or pass pretrained=False for random initialisation."
    )


def resnet101_imagenet_state(source: str | Path | None) -> dict[str, torch.Tensor]:
    """A ResNet-101 state dict from `source`: a local file; "download" (torchvision fetches its
    ImageNet weights into its cache: explicit opt-in only); None: torchvision's cache file if it is
    there, else a FileNotFoundError saying how to get weights. Never downloads unless asked to.
    """
    if source == "download":
        return torch.hub.load_state_dict_from_url(TORCHVISION_URL, map_location="cpu", progress=True)
    path = torch_hub_checkpoint() if source is None else Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no ResNet-101 weight file.\n{resnet101_weights_help()}")
    return torch.load(path, map_location="cpu", weights_only=True)
