"""Import the authors' released Caffe weights (.caffemodel) into our PyTorch modules, without Caffe.

The release (github suyogduttjain/fusionseg) ships three nets: the appearance and motion streams
(DeepLab-v2 ResNet-101, ~170 MB each) and the joint fusion layers (`joint_stream.caffemodel`,
374 parameters). `read_caffemodel` parses a file with protobuf alone (`fusionseg.caffe_proto`);
the converters map the release's Caffe layer names onto our modules' state dicts:

    conv1 / bn_conv1 / scale_conv1            -> backbone.conv1 / backbone.bn1
    res{X}_branch2{a,b,c}, bn.., scale..      -> backbone.layerL[i].conv{1,2,3} / bn{1,2,3}
    res{X}_branch1, bn{X}_branch1, scale..    -> backbone.layerL[0].downsample.{0,1}   (X = 2a, 3a, 4a, 5a)
    fc1_binary_seg_c{k}                       -> head.branches.k   (motion: fc1_binary_seg_flow_c{k}_motion)
    conv1, conva, convm, conv2 (joint)        -> ReleaseFusion.conv1, .conva, .convm, .conv2

with X = 2a-c, 3a + 3b1-b3, 4a + 4b1-b22, 5a-c, and every motion-stream name suffixed `_motion`.
Caffe splits batch normalisation in two layers: BatchNorm holds (mean * s, var * s, s) with a
moving-average scale factor s (divide by it; s = 0 means the statistics are 0), and the following
Scale layer holds gamma and beta. The BN epsilon is Caffe's default 1e-5, the same as PyTorch's.

CLI: `fusionseg import-caffe MODEL.caffemodel --arch {appearance,motion,joint} --out WEIGHTS.pt`
writes the module's weights in the project's weights format (`fusionseg.checkpoints.save_weights`:
{"config", "model": state_dict, ...}), which `fusionseg segment --weights`, `fusionseg.infer` and
`build_stream("resnet101", 8, pretrained="WEIGHTS.pt")` read.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from google.protobuf.message import DecodeError
from torch import nn

from fusionseg.caffe_proto import V1_LAYER_TYPES, NetParameter
from fusionseg.io import DataError

ARCHS = ("appearance", "motion", "joint")
MOTION_SUFFIX = "_motion"
# Caffe block names per torchvision layer (layer1 = res2 ... layer4 = res5) of ResNet-101.
RESNET101_BLOCKS: dict[str, list[str]] = {
    "layer1": ["2a", "2b", "2c"],
    "layer2": ["3a", "3b1", "3b2", "3b3"],
    "layer3": ["4a"] + [f"4b{i}" for i in range(1, 23)],
    "layer4": ["5a", "5b", "5c"],
}
JOINT_LAYERS = ("conv1", "conva", "convm", "conv2")


@dataclass
class CaffeLayer:
    """One layer of a .caffemodel: what the converters need."""

    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    blobs: list[np.ndarray] = field(default_factory=list)
    pad: list[int] = field(default_factory=list)
    kernel_size: list[int] = field(default_factory=list)
    dilation: list[int] = field(default_factory=list)


def _blob_array(blob, where: str) -> np.ndarray:
    """A BlobProto as a float32 array of its declared shape (new `shape` or legacy 4-D dims)."""
    values = np.asarray(blob.data if len(blob.data) else blob.double_data, dtype=np.float32)
    if blob.HasField("shape"):
        shape = tuple(int(d) for d in blob.shape.dim)
    else:
        shape = (blob.num, blob.channels, blob.height, blob.width)
    if int(np.prod(shape)) != values.size:
        raise DataError(f"{where}: blob shape {shape} does not match its {values.size} values")
    return values.reshape(shape)


def read_caffemodel(path: Path) -> dict[str, CaffeLayer]:
    """All layers of a .caffemodel by name, in file order (`layer` and legacy V1 `layers`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected a Caffe .caffemodel)")
    net = NetParameter()
    try:
        net.ParseFromString(path.read_bytes())
    except DecodeError as exc:
        raise DataError(f"{path}: not a Caffe NetParameter protobuf ({exc})") from exc
    layers: dict[str, CaffeLayer] = {}
    for proto in [*net.layers, *net.layer]:
        type_ = V1_LAYER_TYPES.get(proto.type, str(proto.type)) if isinstance(proto.type, int) else proto.type
        conv = proto.convolution_param
        layer = CaffeLayer(
            name=proto.name,
            type=type_,
            bottoms=list(proto.bottom),
            tops=list(proto.top),
            blobs=[
                _blob_array(b, f"{path}: layer {proto.name!r} blob {i}") for i, b in enumerate(proto.blobs)
            ],
            pad=list(conv.pad),
            kernel_size=list(conv.kernel_size),
            dilation=list(conv.dilation),
        )
        if layer.name in layers:
            raise DataError(f"{path}: two layers are named {layer.name!r}")
        layers[layer.name] = layer
    if not layers:
        raise DataError(f"{path}: no layers found (expected a Caffe NetParameter)")
    return layers


# ----------------------------------------------------------------------------------------------
# Name mappings: caffe layer -> (kind, torch prefix)


def stream_layer_map(motion: bool) -> dict[str, tuple[str, str]]:
    """Caffe layer name -> (kind, state-dict prefix) for a release stream (kinds: conv, conv_bias,
    bn, scale). The prefixes are those of `build_stream("resnet101", 8)`."""
    suffix = MOTION_SUFFIX if motion else ""
    mapping: dict[str, tuple[str, str]] = {}

    def add(conv: str, bn: str, scale: str, conv_prefix: str, bn_prefix: str) -> None:
        mapping[conv + suffix] = ("conv", conv_prefix)
        mapping[bn + suffix] = ("bn", bn_prefix)
        mapping[scale + suffix] = ("scale", bn_prefix)

    add("conv1", "bn_conv1", "scale_conv1", "backbone.conv1", "backbone.bn1")
    for layer, blocks in RESNET101_BLOCKS.items():
        for i, x in enumerate(blocks):
            block = f"backbone.{layer}.{i}"
            branches = [("2a", "conv1", "bn1"), ("2b", "conv2", "bn2"), ("2c", "conv3", "bn3")]
            if i == 0:  # the projection shortcut
                branches.append(("1", "downsample.0", "downsample.1"))
            for branch, conv, bn in branches:
                tail = f"{x}_branch{branch}"
                add(f"res{tail}", f"bn{tail}", f"scale{tail}", f"{block}.{conv}", f"{block}.{bn}")
    for k in range(4):
        name = f"fc1_binary_seg_flow_c{k}_motion" if motion else f"fc1_binary_seg_c{k}"
        mapping[name] = ("conv_bias", f"head.branches.{k}")
    return mapping


def joint_layer_map() -> dict[str, tuple[str, str]]:
    """Caffe layer name -> (kind, prefix) for the released joint net -> `ReleaseFusion`."""
    return {name: ("conv_bias", name) for name in JOINT_LAYERS}


def layer_map(arch: str) -> dict[str, tuple[str, str]]:
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}: expected one of {ARCHS}")
    return joint_layer_map() if arch == "joint" else stream_layer_map(motion=arch == "motion")


# ----------------------------------------------------------------------------------------------
# Conversion


def _layer_tensors(layer: CaffeLayer, kind: str, prefix: str) -> dict[str, np.ndarray]:
    """The state-dict entries one Caffe layer provides."""
    blobs = layer.blobs
    need = {"conv": 1, "conv_bias": 2, "bn": 3, "scale": 2}[kind]
    if len(blobs) < need:
        raise DataError(
            f"layer {layer.name!r} ({layer.type}): expected {need} blobs for a {kind} layer, found {len(blobs)}"
        )
    if kind == "conv":
        return {f"{prefix}.weight": blobs[0]}
    if kind in ("conv_bias", "scale"):  # Scale: gamma, beta -> the BatchNorm's weight, bias
        return {f"{prefix}.weight": blobs[0], f"{prefix}.bias": blobs[1]}
    factor = float(blobs[2].reshape(-1)[0])
    inv = 0.0 if factor == 0 else 1.0 / factor  # Caffe BatchNorm: 0 means the statistics are 0
    return {f"{prefix}.running_mean": blobs[0] * inv, f"{prefix}.running_var": blobs[1] * inv}


def _fit(array: np.ndarray, target: torch.Tensor, layer: str, key: str) -> torch.Tensor:
    """`array` as a tensor of the target's shape. Size-1 dimensions are ignored in the comparison,
    because legacy blobs are always 4-D (a bias of 4 values is stored as 1 x 1 x 1 x 4)."""
    if [d for d in array.shape if d != 1] != [d for d in target.shape if d != 1]:
        raise DataError(
            f"layer {layer!r}: blob shape {tuple(array.shape)} does not fit {key} of shape {tuple(target.shape)}"
        )
    return (
        torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).reshape(target.shape).to(target.dtype)
    )


def caffe_state_dict(
    layers: dict[str, CaffeLayer],
    mapping: dict[str, tuple[str, str]],
    reference: dict[str, torch.Tensor],
    require_all: bool = True,
) -> dict[str, torch.Tensor]:
    """A copy of `reference` (the target module's state dict) with every mapped layer's values.

    With `require_all`, every mapped layer must be in the file; without it, missing layers keep
    the reference's values (used for partial nets). Raises DataError naming the layer on a
    missing layer or a shape mismatch.
    """
    state = {k: v.clone() for k, v in reference.items()}
    missing = [name for name in mapping if name not in layers]
    if missing and require_all:
        hint = ""
        if any(name.endswith(MOTION_SUFFIX) for name in layers) != any(
            n.endswith(MOTION_SUFFIX) for n in mapping
        ):
            hint = " (the file's layer names suggest the other stream: check --arch appearance/motion)"
        raise DataError(
            f"missing Caffe layer {missing[0]!r} ({len(missing)} of {len(mapping)} expected layers missing){hint}"
        )
    for name, (kind, prefix) in mapping.items():
        if name not in layers:
            continue
        for key, array in _layer_tensors(layers[name], kind, prefix).items():
            if key not in state:
                raise KeyError(f"layer map error: {key} is not in the target module")  # a bug, not bad data
            state[key] = _fit(array, state[key], name, key)
    return state


def build_target(arch: str) -> nn.Module:
    """A freshly initialised module for `arch`: the release's ResNet-101 stream or ReleaseFusion."""
    from fusionseg.models import ReleaseFusion, build_stream

    if arch == "joint":
        return ReleaseFusion()
    return build_stream("resnet101", output_stride=8, pretrained=False)


def load_caffemodel(path: Path, arch: str, module: nn.Module | None = None) -> nn.Module:
    """Read `path` and load it into `module` (default: `build_target(arch)`); returns the module."""
    layers = read_caffemodel(path)  # before building the module: a bad file fails fast
    module = build_target(arch) if module is None else module
    try:
        state = caffe_state_dict(layers, layer_map(arch), module.state_dict())
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from exc
    module.load_state_dict(state, strict=True)
    return module


# ----------------------------------------------------------------------------------------------
# Command line


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="the authors' .caffemodel file")
    parser.add_argument("--arch", required=True, choices=ARCHS, help="which released net the file holds")
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="where to write the PyTorch weights (.pt, the format `fusionseg segment --weights` reads)",
    )


def run_command(args: argparse.Namespace) -> int:
    """Convert and save in the project's weights format, which `fusionseg segment` and
    `build_stream(..., pretrained=PATH)` read (DataError -> one clear line from the CLI)."""
    from fusionseg.checkpoints import save_weights

    module = load_caffemodel(args.model, args.arch)
    config = {"source": str(args.model), "arch": args.arch}
    if args.arch == "joint":
        config["fusion"] = "release"
    else:
        config.update(backbone="resnet101", output_stride=8)
    save_weights(args.out, module, config)
    n_params = sum(p.numel() for p in module.parameters())
    print(
        f"{args.model} -> {args.out}: {args.arch} weights, {n_params:,} parameters in {type(module).__name__}"
    )
    return 0
