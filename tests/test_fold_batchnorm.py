"""BatchNorm folding: the folded streams compute what the unfolded ones do, without BatchNorms."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from fusionseg.models import build_stream, fold_batchnorm

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def randomise_batchnorms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters (fresh ones are the identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            n = bn.num_features
            bn.running_mean.copy_(0.5 * torch.randn(n, generator=generator))
            bn.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=generator))
            bn.weight.copy_(0.5 + torch.rand(n, generator=generator))
            bn.bias.copy_(0.2 * torch.randn(n, generator=generator))
    return model


def batchnorms(model: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def check_folding(model: nn.Module, x: torch.Tensor) -> None:
    """Folded logits agree with the unfolded ones to 1e-4 of their range and no BatchNorm is left."""
    model = randomise_batchnorms(model).eval()
    n_batchnorms = len(batchnorms(model))
    assert n_batchnorms > 0
    folded = fold_batchnorm(copy.deepcopy(model))
    assert batchnorms(folded) == []
    assert sum(isinstance(m, nn.Identity) for m in folded.modules()) >= n_batchnorms
    with torch.inference_mode():
        expected, got = model(x), folded(x)
    assert got.shape == expected.shape
    assert relative_difference(got, expected) < 1e-4


@pytest.mark.parametrize("output_stride", [16, 8])
def test_folded_lite0_stream_matches_the_unfolded_one(output_stride):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 67, 91, generator=torch.Generator().manual_seed(1))  # odd sizes: SAME padding
    check_folding(build_stream("lite0", output_stride, pretrained=False), x)


def test_folded_lite0_stream_with_decoder_matches_the_unfolded_one():
    x = torch.rand(1, 3, 72, 104, generator=torch.Generator().manual_seed(0))
    net = build_stream("lite0", 16, pretrained=False, decoder="skip4")
    torch.nn.init.normal_(net.decoder.refine[-1].weight, std=0.1)  # a trained decoder is not zero
    check_folding(net, x)


def test_folded_resnet101_stream_matches_the_unfolded_one():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 41, 57, generator=torch.Generator().manual_seed(1))
    check_folding(build_stream("resnet101", 8, pretrained=False), x)


def test_only_batchnorms_right_after_a_conv_are_folded():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.BatchNorm2d(4))
    model = randomise_batchnorms(model).eval()
    x = torch.rand(1, 3, 5, 6)
    expected = model(x)
    fold_batchnorm(model)
    assert isinstance(model[1], nn.Identity) and isinstance(model[3], nn.BatchNorm2d)
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-6)


def test_folding_adds_the_shift_as_a_conv_bias():
    """Hand-computed: a 1x1 conv of weight 2 (no bias), then BN with mean 1, var 3, eps 1, gamma 4,
    beta 5: y = (2x - 1) / 2 * 4 + 5 = 4x + 3."""
    conv = nn.Conv2d(1, 1, 1, bias=False)
    bn = nn.BatchNorm2d(1, eps=1.0)
    with torch.no_grad():
        conv.weight.fill_(2.0)
        bn.running_mean.fill_(1.0)
        bn.running_var.fill_(3.0)
        bn.weight.fill_(4.0)
        bn.bias.fill_(5.0)
    model = fold_batchnorm(nn.Sequential(conv, bn).eval())
    assert model[0].weight.item() == 4.0 and model[0].bias.item() == 3.0


def test_folding_a_model_in_training_mode_raises():
    model = build_stream("lite0", 16, pretrained=False)  # train mode (BatchNorms frozen in eval)
    with pytest.raises(ValueError, match=r"inference only: call model.eval\(\)"):
        fold_batchnorm(model)
    assert len(batchnorms(model)) > 0  # untouched


def test_folding_twice_changes_nothing():
    model = fold_batchnorm(randomise_batchnorms(build_stream("lite0", 16, pretrained=False)).eval())
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    fold_batchnorm(model)
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
