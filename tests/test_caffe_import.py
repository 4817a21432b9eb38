"""Importing the authors' Caffe weights: the real released joint nets and small nets the tests write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fusionseg.caffe_import import (
    caffe_state_dict,
    load_caffemodel,
    read_caffemodel,
    stream_layer_map,
)
from fusionseg.caffe_proto import BlobProto, NetParameter, V1LayerParameter
from fusionseg.cli import main as cli_main
from fusionseg.io import DataError
from fusionseg.models import ReleaseFusion, build_stream

torch.set_num_threads(2)
SPLITS = ("joint_davis_train", "joint_davis_val")


# --- writing caffemodels with our message classes ----------------------------------------------


def _blob(array: np.ndarray, legacy: bool = False) -> BlobProto:
    """A BlobProto with `array`'s values: the current `shape` field, or legacy 4-D num/channels/..."""
    blob = BlobProto()
    blob.data.extend(np.asarray(array, dtype=np.float32).ravel().tolist())
    if legacy:
        dims = (1,) * (4 - array.ndim) + tuple(array.shape)
        blob.num, blob.channels, blob.height, blob.width = dims
    else:
        blob.shape.dim.extend(array.shape)
    return blob


def _write_net(
    path: Path, layers: list[tuple[str, str, list[np.ndarray]]], legacy_blobs: bool = False
) -> Path:
    net = NetParameter(name="test")
    for name, type_, arrays in layers:
        layer = net.layer.add(name=name, type=type_)
        layer.blobs.extend(_blob(a, legacy_blobs) for a in arrays)
    path.write_bytes(net.SerializeToString())
    return path


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _conv_bn_scale(rng, conv: str, bn: str, scale: str, shape: tuple[int, ...], factor: float):
    """Caffe's three layers for conv + BN: BatchNorm stores mean and var multiplied by `factor`."""
    c = shape[0]
    weight = rng.normal(size=shape).astype(np.float32)
    mean, var = rng.normal(size=c).astype(np.float32), rng.uniform(0.5, 2, size=c).astype(np.float32)
    gamma, beta = rng.normal(size=c).astype(np.float32), rng.normal(size=c).astype(np.float32)
    stored = [mean * factor, var * factor, np.array([factor], np.float32)]
    layers = [(conv, "Convolution", [weight]), (bn, "BatchNorm", stored), (scale, "Scale", [gamma, beta])]
    return layers, {"weight": weight, "mean": mean, "var": var, "gamma": gamma, "beta": beta}


def _truncated_resnet(path: Path, suffix: str = "") -> tuple[Path, dict]:
    """conv1/bn_conv1/scale_conv1 and the whole res2a block, with the release's names."""
    rng = _rng()
    layers, values = [], {}
    specs = [
        ("conv1", "bn_conv1", "scale_conv1", (64, 3, 7, 7), 999.982),
        (
            "res2a_branch1",
            "bn2a_branch1",
            "scale2a_branch1",
            (256, 64, 1, 1),
            0.0,
        ),  # factor 0 -> statistics 0
        ("res2a_branch2a", "bn2a_branch2a", "scale2a_branch2a", (64, 64, 1, 1), 1.0),
        ("res2a_branch2b", "bn2a_branch2b", "scale2a_branch2b", (64, 64, 3, 3), 4.0),
        ("res2a_branch2c", "bn2a_branch2c", "scale2a_branch2c", (256, 64, 1, 1), 0.5),
    ]
    for conv, bn, scale, shape, factor in specs:
        new, values[conv] = _conv_bn_scale(rng, conv + suffix, bn + suffix, scale + suffix, shape, factor)
        layers += new
    layers.insert(3, ("conv1_relu" + suffix, "ReLU", []))
    return _write_net(path, layers), values


# --- a NumPy transcription of the Caffe layers in the joint net ----------------------------------


def _np_convolution(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, pad: int, stride: int = 1
) -> np.ndarray:
    """Caffe Convolution: zero padding, then cross-correlation, explicit loops."""
    c_out, c_in, kh, kw = weight.shape
    _, h, w = x.shape
    padded = np.zeros((c_in, h + 2 * pad, w + 2 * pad), np.float64)
    padded[:, pad : pad + h, pad : pad + w] = x
    out_h, out_w = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    out = np.zeros((c_out, out_h, out_w), np.float64)
    for o in range(c_out):
        out[o] += 0.0 if bias is None else bias[o]
        for i in range(c_in):
            for dy in range(kh):
                for dx in range(kw):
                    rows = padded[i, dy : dy + stride * (out_h - 1) + 1 : stride]
                    out[o] += weight[o, i, dy, dx] * rows[:, dx : dx + stride * (out_w - 1) + 1 : stride]
    return out


def _np_caffe_max_pool(x: np.ndarray, kernel: int = 3, stride: int = 2, pad: int = 1) -> np.ndarray:
    """Caffe Pooling MAX: ceil rounding (minus a last window that would start in the padding);
    windows are clipped to the image, so padding never wins."""
    _, h, w = x.shape

    def n_out(size: int) -> int:
        n = -(-(size + 2 * pad - kernel) // stride) + 1
        return n - 1 if (n - 1) * stride >= size + pad else n

    out = np.zeros((x.shape[0], n_out(h), n_out(w)))
    for oy in range(out.shape[1]):
        for ox in range(out.shape[2]):
            y0, x0 = oy * stride - pad, ox * stride - pad
            window = x[:, max(y0, 0) : min(y0 + kernel, h), max(x0, 0) : min(x0 + kernel, w)]
            out[:, oy, ox] = window.max(axis=(1, 2))
    return out


def _np_run_caffe_net(path: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the file's own layer graph (bottoms -> tops) on one image with NumPy."""
    blobs = dict(inputs)
    for layer in read_caffemodel(path).values():
        bottoms = [blobs[b] for b in layer.bottoms if b in blobs]
        if layer.type in {"HDF5Data", "SoftmaxWithLoss"}:
            continue
        if layer.type == "Split":
            outs = [bottoms[0]] * len(layer.tops)
        elif layer.type == "Concat":
            outs = [np.concatenate(bottoms, axis=0)]
        elif layer.type == "Convolution":
            assert layer.kernel_size == [3] and not layer.dilation
            outs = [_np_convolution(bottoms[0], layer.blobs[0], layer.blobs[1], layer.pad[0])]
        elif layer.type == "ReLU":
            outs = [np.maximum(bottoms[0], 0)]
        elif layer.type == "Eltwise":  # default operation: SUM
            outs = [np.sum(bottoms, axis=0)]
        else:
            raise AssertionError(f"layer type {layer.type} not transcribed")
        blobs.update(zip(layer.tops, outs, strict=True))
    return blobs


# --- the real released joint nets --------------------------------------------------------------


@pytest.mark.needs_data
@pytest.mark.parametrize("split", SPLITS)
def test_real_joint_model_matches_numpy_caffe(release_root, split):
    path = release_root / split / "joint_stream.caffemodel"
    fusion = load_caffemodel(path, "joint")
    assert sum(p.numel() for p in fusion.parameters()) == 374
    rng = np.random.default_rng(7)
    app, mot = rng.normal(size=(2, 9, 11)) * 3, rng.normal(size=(2, 9, 11)) * 3
    expected = _np_run_caffe_net(path, {"app_data": app, "mot_data": mot})["conv2"]
    with torch.no_grad():
        out = fusion(
            torch.tensor(app[None], dtype=torch.float32), torch.tensor(mot[None], dtype=torch.float32)
        )
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.needs_data
def test_real_joint_layers(release_root):
    layers = read_caffemodel(release_root / "joint_davis_train" / "joint_stream.caffemodel")
    shapes = {n: [b.shape for b in layers[n].blobs] for n in ("conv1", "conva", "convm", "conv2")}
    assert shapes == {
        "conv1": [(4, 4, 3, 3), (4,)],
        "conva": [(4, 2, 3, 3), (4,)],
        "convm": [(4, 2, 3, 3), (4,)],
        "conv2": [(2, 4, 3, 3), (2,)],
    }
    assert layers["data"].bottoms[0].startswith("app_data")  # concatenation: appearance first
    np.testing.assert_allclose(
        layers["conv2"].blobs[1], [-0.677, 0.677], atol=1e-3
    )  # as dumped from the raw bytes


@pytest.mark.needs_data
def test_cli_imports_the_real_joint_model(release_root, tmp_path):
    source = release_root / "joint_davis_val" / "joint_stream.caffemodel"
    out = tmp_path / "joint.pt"
    assert cli_main(["import-caffe", str(source), "--arch", "joint", "--out", str(out)]) == 0
    saved = torch.load(out, weights_only=True)
    assert saved["config"]["fusion"] == "release"
    fusion = ReleaseFusion()
    fusion.load_state_dict(saved["model"])
    np.testing.assert_array_equal(
        fusion.convm.weight.detach().numpy(), read_caffemodel(source)["convm"].blobs[0]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["joint.pt"]  # no temporary file left behind


@pytest.mark.needs_data
def test_cli_reports_a_wrong_arch(release_root, tmp_path, capsys):
    source = release_root / "joint_davis_train" / "joint_stream.caffemodel"
    assert (
        cli_main(["import-caffe", str(source), "--arch", "appearance", "--out", str(tmp_path / "a.pt")]) == 1
    )
    assert "bn_conv1" in capsys.readouterr().err
    assert not (tmp_path / "a.pt").exists()


# --- small nets written by the tests ------------------------------------------------------------


@pytest.fixture(scope="module")
def stream():
    return build_stream("resnet101", output_stride=8, pretrained=False)


@pytest.mark.parametrize("motion", [False, True])
def test_truncated_resnet_loads_with_the_right_values(tmp_path, stream, motion):
    path, values = _truncated_resnet(tmp_path / "net.caffemodel", suffix="_motion" if motion else "")
    reference = stream.state_dict()
    state = caffe_state_dict(read_caffemodel(path), stream_layer_map(motion), reference, require_all=False)
    stem, bn1 = values["conv1"], "backbone.bn1"
    np.testing.assert_array_equal(state["backbone.conv1.weight"].numpy(), stem["weight"])
    np.testing.assert_allclose(state[f"{bn1}.running_mean"].numpy(), stem["mean"], rtol=1e-6)  # / 999.982
    np.testing.assert_allclose(state[f"{bn1}.running_var"].numpy(), stem["var"], rtol=1e-6)
    np.testing.assert_array_equal(state[f"{bn1}.weight"].numpy(), stem["gamma"])
    np.testing.assert_array_equal(state[f"{bn1}.bias"].numpy(), stem["beta"])
    block = "backbone.layer1.0"
    assert not state[f"{block}.downsample.1.running_mean"].any()  # scale factor 0: statistics are 0
    assert not state[f"{block}.downsample.1.running_var"].any()
    np.testing.assert_array_equal(
        state[f"{block}.downsample.0.weight"].numpy(), values["res2a_branch1"]["weight"]
    )
    np.testing.assert_array_equal(state[f"{block}.conv2.weight"].numpy(), values["res2a_branch2b"]["weight"])
    np.testing.assert_allclose(
        state[f"{block}.bn2.running_var"].numpy(), values["res2a_branch2b"]["var"], rtol=1e-6
    )
    np.testing.assert_allclose(
        state[f"{block}.bn3.running_mean"].numpy(), values["res2a_branch2c"]["mean"], rtol=1e-6
    )
    np.testing.assert_array_equal(state[f"{block}.bn3.bias"].numpy(), values["res2a_branch2c"]["beta"])
    torch.testing.assert_close(
        state["backbone.layer1.1.conv1.weight"], reference["backbone.layer1.1.conv1.weight"]
    )
    stream.load_state_dict(state)  # the converted values fit the module


def test_imported_stem_matches_numpy_caffe(tmp_path, stream):
    """Caffe's stem on an RGB image: BGR x 255 - mean, conv1 7x7/2, BatchNorm (statistics / scale
    factor), Scale, ReLU, pool1 3x3/2 ceil. Our imported stem must compute the same."""
    path, values = _truncated_resnet(tmp_path / "net.caffemodel")
    state = caffe_state_dict(
        read_caffemodel(path), stream_layer_map(False), stream.state_dict(), require_all=False
    )
    stream.load_state_dict(state)
    image = np.random.default_rng(3).uniform(size=(3, 14, 11))
    x = image[::-1] * 255 - np.array([104.008, 116.669, 122.675])[:, None, None]
    v = values["conv1"]
    y = _np_convolution(x, v["weight"], None, pad=3, stride=2)
    y = (y - v["mean"][:, None, None]) / np.sqrt(v["var"][:, None, None] + 1e-5)
    y = np.maximum(y * v["gamma"][:, None, None] + v["beta"][:, None, None], 0)
    expected = _np_caffe_max_pool(y)
    trunk = stream.backbone.eval()
    with torch.no_grad():
        z = trunk.conv1(stream.preprocess(torch.tensor(image[None].copy(), dtype=torch.float32)))
        out = trunk.maxpool(trunk.relu(trunk.bn1(z)))
    assert out.shape[-2:] == (4, 4)  # 14 x 11 -> conv1 7 x 6 -> pool1 4 x 4 (floor mode: 4 x 3)
    np.testing.assert_allclose(out[0].numpy(), expected, rtol=1e-4, atol=1e-3)


def test_missing_layer_is_named(tmp_path):
    path, _ = _truncated_resnet(tmp_path / "net.caffemodel")
    with pytest.raises(DataError, match=r"net\.caffemodel.*missing Caffe layer 'res2b_branch2a'"):
        load_caffemodel(path, "appearance")


def test_motion_file_as_appearance_gives_a_hint(tmp_path):
    path, _ = _truncated_resnet(tmp_path / "net.caffemodel", suffix="_motion")
    with pytest.raises(DataError, match="'conv1'.*--arch"):
        load_caffemodel(path, "appearance")


def test_shape_mismatch_is_named(tmp_path):
    rng = _rng()
    layers = [
        (name, "Convolution", [rng.normal(size=(4, 4, 3, 3)), np.zeros(4)])
        for name in ("conv1", "conva", "convm", "conv2")
    ]
    path = _write_net(tmp_path / "bad.caffemodel", layers)
    with pytest.raises(
        DataError,
        match=r"layer 'conva': blob shape \(4, 4, 3, 3\) does not fit conva.weight of shape \(4, 2, 3, 3\)",
    ):
        load_caffemodel(path, "joint")


def test_legacy_v1_layers_and_4d_blobs(tmp_path):
    """Old files list V1 `layers` (field 2, enum types) with num/channels/height/width blobs."""
    rng = _rng()
    fusion = ReleaseFusion()
    net = NetParameter()
    expected = {}
    for name, param in (
        ("conv1", fusion.conv1),
        ("conva", fusion.conva),
        ("convm", fusion.convm),
        ("conv2", fusion.conv2),
    ):
        weight, bias = rng.normal(size=param.weight.shape), rng.normal(size=param.bias.shape)
        layer: V1LayerParameter = net.layers.add(name=name, type=4)  # 4 = CONVOLUTION
        layer.blobs.extend([_blob(weight, legacy=True), _blob(bias, legacy=True)])
        expected[name] = (weight, bias)
    path = tmp_path / "v1.caffemodel"
    path.write_bytes(net.SerializeToString())
    layers = read_caffemodel(path)
    assert layers["conv2"].type == "Convolution" and layers["conv2"].blobs[1].shape == (1, 1, 1, 2)
    loaded = load_caffemodel(path, "joint")
    for name, (weight, bias) in expected.items():
        np.testing.assert_allclose(getattr(loaded, name).weight.detach().numpy(), weight, rtol=1e-6)
        np.testing.assert_allclose(getattr(loaded, name).bias.detach().numpy(), bias, rtol=1e-6)


def test_stream_map_covers_every_tensor(stream):
    """Fake layers made from a stream's tensors convert into exactly that stream's state."""
    source = stream.state_dict()
    layers = {}
    for name, (kind, prefix) in stream_layer_map(motion=True).items():
        if kind in ("conv", "conv_bias", "scale"):
            keys = ["weight"] + ([] if kind == "conv" else ["bias"])
            blobs = [source[f"{prefix}.{k}"].numpy() for k in keys]
        else:  # bn, stored with a scale factor of 2
            blobs = [
                source[f"{prefix}.running_mean"].numpy() * 2,
                source[f"{prefix}.running_var"].numpy() * 2,
                np.array([2.0]),
            ]
        layers[name] = type("Layer", (), {"name": name, "type": kind, "blobs": blobs})()
    assert {
        "conv1_motion",
        "bn5c_branch2c_motion",
        "res4b22_branch2b_motion",
        "fc1_binary_seg_flow_c3_motion",
    } <= set(layers)
    zeros = {k: torch.zeros_like(v) for k, v in source.items()}
    state = caffe_state_dict(layers, stream_layer_map(motion=True), zeros)
    for key, value in source.items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(state[key], value), key  # exact: copies, and x * 2 * 0.5
