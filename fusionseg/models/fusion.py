"""Fusing the two streams' 2-channel logits into joint logits: the paper's design and the
release's. They differ: the released `joint_stream.caffemodel` is not the net of Sec. 3.3
(24 parameters there, 374 in the release; see the book's appendix 'Implementation notes').

Both modules take `(app_logits, mot_logits)`, each (N, 2, H, W), and return (N, 2, H, W) logits
(channel 1 = foreground), so either can sit behind the same two streams.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _identity_1x1(conv: nn.Conv2d) -> nn.Conv2d:
    """Initialise a square 1x1 conv as the identity with zero bias."""
    with torch.no_grad():
        conv.weight.copy_(torch.eye(conv.out_channels).view_as(conv.weight))
        conv.bias.zero_()
    return conv


class PaperFusion(nn.Module):
    """Sec. 3.3: three parallel branches, then an element-wise maximum.

    1) 1x1 conv + ReLU on the appearance logits; 2) 1x1 conv + ReLU on the motion logits;
    3) a replica of branches 1 and 2 (own weights), multiplied element-wise: confident only where
    both streams are. Four 1x1 convs 2 -> 2 with bias, 6 parameters each: 24 in all, as the paper says.
    Initialised as identities, so before training the output is
    max(relu(app), relu(mot), relu(app) * relu(mot)): foreground if either stream is sure.
    """

    def __init__(self, channels: int = 2):
        super().__init__()
        self.app = _identity_1x1(nn.Conv2d(channels, channels, 1))
        self.mot = _identity_1x1(nn.Conv2d(channels, channels, 1))
        self.app_joint = _identity_1x1(nn.Conv2d(channels, channels, 1))
        self.mot_joint = _identity_1x1(nn.Conv2d(channels, channels, 1))

    def forward(self, app_logits: torch.Tensor, mot_logits: torch.Tensor) -> torch.Tensor:
        app = F.relu(self.app(app_logits))
        mot = F.relu(self.mot(mot_logits))
        joint = F.relu(self.app_joint(app_logits)) * F.relu(self.mot_joint(mot_logits))
        return torch.maximum(torch.maximum(app, mot), joint)


class ReleaseFusion(nn.Module):
    """The released `joint_stream.caffemodel` (its layers, read from the file itself):

    conv1 = ReLU(3x3 conv 4 -> 4 on concat(app, mot))   (Concat on channels, appearance first)
    conva = ReLU(3x3 conv 2 -> 4 on app)
    convm = ReLU(3x3 conv 2 -> 4 on mot)
    out   = 3x3 conv 4 -> 2 on (conv1 + conva + convm)   (Eltwise SUM; no ReLU after conv2)

    All convs have padding 1 and bias: 148 + 76 + 76 + 74 = 374 parameters. Module names match
    the Caffe layer names. Initialisation as in the release's prototxt: N(0, 0.01), bias 0.
    """

    def __init__(self, channels: int = 2, hidden: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(2 * channels, hidden, 3, padding=1)
        self.conva = nn.Conv2d(channels, hidden, 3, padding=1)
        self.convm = nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, channels, 3, padding=1)
        for conv in (self.conv1, self.conva, self.convm, self.conv2):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, app_logits: torch.Tensor, mot_logits: torch.Tensor) -> torch.Tensor:
        both = torch.cat([app_logits, mot_logits], dim=1)
        hidden = F.relu(self.conv1(both)) + F.relu(self.conva(app_logits)) + F.relu(self.convm(mot_logits))
        return self.conv2(hidden)
