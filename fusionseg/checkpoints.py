"""What training and inference share, below both: weights files, the streams' input convention, precision.

**Files.** `fusionseg.train` writes two kinds of `.pt` file, both dicts read with `weights_only=True`:

- a training checkpoint (`save_checkpoint`, `<out_dir>/checkpoint-<iteration>.pt`): format
  `CHECKPOINT_FORMAT`, the completed iteration, the `TrainConfig` as a dict, the model's and the
  optimizer's state and the RNG states, so that a run resumes exactly;
- the weights alone (`save_weights`, e.g. `<out_dir>/model.pt`): format `WEIGHTS_FORMAT`, a `config`
  saying how to build the network ({"backbone", "output_stride", ...} for a stream, {"kind": "fusion",
  "fusion": "paper" | "release"} for the fusion layers), the iteration and the state_dict.

`load_stream` and `load_fusion` build the network a file describes and load it for inference; a bare
state_dict also loads. Every write goes through a temporary file and a rename, so that an interrupted
run never leaves half a checkpoint that a resume would take as complete.

**Input.** The streams read float (N, 3, H, W) in [0, 1] (`to_input`); each backbone normalises it
itself (`fusionseg.models`). On a CPU the tensors are channels_last (oneDNN's fast layout).

**Precision.** `use_bf16` resolves "auto": bf16 autocast on GPUs that have it and on CPUs with AMX
tiles; fp32 elsewhere, since bf16 is slower than fp32 on CPUs without AMX.
"""

from __future__ import annotations

import functools
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fusionseg.io import DataError, atomic_path

CHECKPOINT_FORMAT = "fusionseg-checkpoint-1"
WEIGHTS_FORMAT = "fusionseg-weights-1"


def to_input(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """uint8 (N,H,W,3) -> float (N,3,H,W) in [0, 1], the streams' input convention."""
    x = images.permute(0, 3, 1, 2).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def cpu_supports_bf16() -> bool:
    """True where bf16 pays off on this CPU: oneDNN's bf16 kernels *and* AMX tiles.

    AVX512-BF16 alone is not enough: on the 2-core development machine (AVX512-BF16, no AMX) a
    bf16 matmul ran at 55 GFLOP/s against 104 in fp32, and a Lite0 training step was slower in bf16
    (results/bench/*.json), so "auto" keeps fp32 there. Pass precision="bf16" to force it.
    """
    try:
        native = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
    return native and "amx_bf16" in _cpu_flags()


def cpu_has_bf16_instructions() -> bool:
    """True where the CPU computes in bf16 itself (x86 AVX512-BF16 or AMX, Arm's BF16 extension);
    elsewhere oneDNN emulates bf16 in fp32, tens of times slower (0.3 frames/s for the joint model
    on an AVX2-only AMD EPYC, against 5.2 in fp32), so measuring it there says nothing."""
    return bool({"avx512_bf16", "amx_bf16", "bf16"} & _cpu_flags())


@functools.cache
def _cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (x86 `flags`, Arm `Features`); empty elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def use_bf16(precision: str, device: torch.device) -> bool:
    """Resolve TrainConfig.precision for a device ("auto": bf16 on CUDA with bf16, or capable CPUs)."""
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_supports_bf16()


def checkpoint_path(out_dir: Path, iteration: int) -> Path:
    return Path(out_dir) / f"checkpoint-{iteration:07d}.pt"


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The checkpoint with the highest iteration in `out_dir`, or None."""
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def checkpoint_iteration(path: Path | None) -> int:
    """The iteration a checkpoint was saved at, read from its name (0 for None: nothing trained yet)."""
    return 0 if path is None else int(Path(path).stem.removeprefix("checkpoint-"))


def list_checkpoints(out_dir: Path) -> list[Path]:
    """The checkpoints in `out_dir`, oldest first (the zero-padded iteration sorts by name)."""
    return sorted(Path(out_dir).glob("checkpoint-*.pt"))


def _save(state: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def save_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, iteration: int, config: Any
) -> None:
    """Model, optimizer, completed iterations, config and RNG states, written atomically."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "iteration": iteration,
        "config": asdict(config),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
    }
    _save(state, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint or weights file written by this module (tensors on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a bad file
        raise DataError(f"{path}: not a readable PyTorch weights file ({exc})") from exc
    if not isinstance(state, dict):
        raise DataError(f"{path}: expected a dict of weights, found {type(state).__name__}")
    return state


def save_weights(path: Path, model: nn.Module, config: dict[str, Any], iteration: int | None = None) -> None:
    """The weights alone: {"format", "config" (how to build the net), "iteration", "model": state_dict}."""
    state = {"format": WEIGHTS_FORMAT, "config": config, "iteration": iteration, "model": model.state_dict()}
    _save(state, path)


def model_state(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The state_dict inside a checkpoint/weights file, or the file itself if it is a bare state_dict."""
    return state["model"] if isinstance(state.get("model"), dict) else state


def prune_checkpoints(out_dir: Path, keep: int) -> None:
    for old in list_checkpoints(out_dir)[:-keep]:
        old.unlink()


def load_stream(
    path: Path, backbone: str = "lite0", output_stride: int = 16, fold_bn: bool = True
) -> nn.Module:
    """A stream network with the weights in `path` (build settings from the file's config if present),
    in eval mode, for inference.

    `fold_bn` (default) folds its BatchNorms into the convs (`fusionseg.models.fold_batchnorm`):
    the same logits to float rounding, ~10% faster on a CPU; such a model cannot be trained.
    """
    from fusionseg.models import build_stream, fold_batchnorm

    state = load_checkpoint(path)
    config = state.get("config") or {}
    model = build_stream(
        config.get("backbone", backbone),
        int(config.get("output_stride", output_stride)),
        pretrained=False,
        decoder=config.get("decoder", "none"),
    )
    try:
        model.load_state_dict(model_state(state))
    except RuntimeError as exc:
        raise DataError(
            f"{path}: not the weights of a {config.get('backbone', backbone)} stream ({exc})"
        ) from exc
    model.eval()
    return fold_batchnorm(model) if fold_bn else model


def load_fusion(path: Path) -> nn.Module:
    """A PaperFusion or ReleaseFusion module with the weights in `path` (the design whose keys match)."""
    from fusionseg.models import PaperFusion, ReleaseFusion

    weights = model_state(load_checkpoint(path))
    for design in (ReleaseFusion, PaperFusion):
        module = design()
        if set(module.state_dict()) == set(weights):
            module.load_state_dict(weights)
            return module.eval()
    raise DataError(f"{path}: neither ReleaseFusion nor PaperFusion weights (keys {sorted(weights)[:6]})")
