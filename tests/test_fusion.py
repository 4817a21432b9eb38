"""The two fusion designs: the paper's (24 parameters) and the release's (374)."""

from __future__ import annotations

import torch

from fusionseg.models.fusion import PaperFusion, ReleaseFusion


def _n_trainable(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _pixel(*values: float) -> torch.Tensor:
    """A (1, C, 1, 1) tensor: one pixel with the given channel values."""
    return torch.tensor(values).view(1, -1, 1, 1)


def test_paper_fusion_has_24_parameters():
    fusion = PaperFusion()
    assert _n_trainable(fusion) == 24
    convs = [m for m in fusion.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and all(
        c.kernel_size == (1, 1) and c.in_channels == c.out_channels == 2 for c in convs
    )


def test_paper_fusion_identity_init_is_an_or():
    # app -> relu [0, 2]; mot -> relu [3, 0]; product [0, 0]; element-wise max [3, 2]
    out = PaperFusion()(_pixel(-1.0, 2.0), _pixel(3.0, -0.5))
    torch.testing.assert_close(out, _pixel(3.0, 2.0))


def test_paper_fusion_product_branch():
    fusion = PaperFusion()
    with torch.no_grad():
        for conv in (fusion.app, fusion.mot):
            conv.weight.zero_()
        fusion.app_joint.weight.mul_(2.0)
        fusion.mot_joint.weight.mul_(3.0)
        fusion.mot_joint.bias.fill_(1.0)
        # relu(2 * [1, 2]) * relu(3 * [0.5, -1] + 1) = [2, 4] * [2.5, 0] = [5, 0]; other branches 0
        out = fusion(_pixel(1.0, 2.0), _pixel(0.5, -1.0))
    torch.testing.assert_close(out, _pixel(5.0, 0.0))


def test_release_fusion_has_374_parameters_and_keeps_the_size():
    fusion = ReleaseFusion()
    assert _n_trainable(fusion) == 374  # 4*4*9+4 + 2*(4*2*9+4) + 2*4*9+2
    out = fusion(torch.randn(2, 2, 7, 5), torch.randn(2, 2, 7, 5))
    assert out.shape == (2, 2, 7, 5)


def test_release_fusion_wiring():
    """Hand-set centre taps: out[1] = relu(app[1]) + relu(mot[0]) (via conv1 on the concatenation,
    motion second) + relu(mot[1]) (via convm), and out[0] = conv2's bias."""
    fusion = ReleaseFusion()
    with torch.no_grad():
        for conv in (fusion.conv1, fusion.conva, fusion.convm, fusion.conv2):
            conv.weight.zero_()
            conv.bias.zero_()
        fusion.conva.weight[0, 1, 1, 1] = 1.0  # hidden 0 += relu(app[1])
        fusion.conv1.weight[0, 2, 1, 1] = 1.0  # hidden 0 += relu(concat[2] = mot[0])
        fusion.convm.weight[0, 1, 1, 1] = 1.0  # hidden 0 += relu(mot[1])
        fusion.conv2.weight[1, 0, 1, 1] = 1.0  # out[1] = hidden 0
        fusion.conv2.bias[0] = 0.25
        out = fusion(_pixel(5.0, 2.0), _pixel(-3.0, 0.5))
        torch.testing.assert_close(out, _pixel(0.25, 2.0 + 0.0 + 0.5))
        out = fusion(_pixel(5.0, -2.0), _pixel(4.0, 0.5))
        torch.testing.assert_close(out, _pixel(0.25, 0.0 + 4.0 + 0.5))
