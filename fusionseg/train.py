"""Training: one stream (appearance or motion) with SGD + poly learning rate, and the fusion layers.

The stream recipe is the paper's (Sec. 3, DESIGN section 3): SGD with momentum 0.9 and weight
decay 5e-4, "poly" learning rate lr * (1 - t / T) ** 0.9, per-pixel 2-class cross-entropy with
label 255 ignored, an ImageNet-initialised backbone. Augmentation is `fusionseg.transforms`.

Everything random is derived from `TrainConfig.seed` and the *position* of a sample in the
training stream (iteration * global batch + slot), never from hidden global state:

- the data order is a seeded permutation per epoch, concatenated into one endless stream;
- each sample's augmentation uses a generator seeded with (seed, position).

So a run is reproducible, resuming needs no RNG bookkeeping beyond the iteration counter, and
under `torchrun` each process takes its contiguous slice of every global batch: the union over the
processes is exactly the single-process batch. The loss is normalised by the number of labelled
pixels in the *global* batch, so that DistributedDataParallel's gradient averaging reproduces the
single-process gradient (tests/test_ddp.py checks this).

Training data: any indexable dataset of (image HxWx3 uint8 RGB, label map HxW uint8 in {0, 1, 255}).
`ImageSetPairs` adapts a `fusionseg.data.types.ImageSet` (appearance stream); `FolderPairs` reads a
folder of pairs (motion stream: colour-coded flow images with their pseudo-label masks)::

    <dir>/images/<name>.png   the network input (RGB frame or flow image; .png or .jpg)
    <dir>/masks/<name>.png    its label map, stored as is: 0 background, 1 foreground, 255 ignore

Checkpoints (`<out_dir>/checkpoint-<iteration>.pt`, written atomically by rank 0) hold the model,
optimizer, iteration, config and RNG states; `resume=True` continues from the latest one. At the
end, `<out_dir>/model.pt` holds the weights alone (format in `save_weights`).

Fusion (Sec. 3.3): `train_fusion` trains PaperFusion / ReleaseFusion on the frozen streams' logits,
which `fusionseg.infer.collect_fusion_data` computes once on held-out videos; on the command line
`fusionseg train --fusion release --appearance-weights A.pt --motion-weights M.pt --videos davis
--split val --size 120 214 --iterations 2000 --out runs/fusion`.

Multi-process: `torchrun --nproc_per_node N -m fusionseg train ...` (gloo on CPU, nccl on GPU).
The stream's BatchNorm layers are frozen by default (`freeze_bn`, as DeepLab-v2 trained), which
also keeps the processes' forward passes independent of how the batch is split. The stream's head
learns 10x (weights) / 20x (biases) faster than the trunk (`StreamNet.param_groups`).
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from fusionseg.data.types import IGNORE, ImageSet
from fusionseg.io import DataError, atomic_path, read_gray, read_rgb
from fusionseg.transforms import TrainAugment

CHECKPOINT_FORMAT = "fusionseg-checkpoint-1"
WEIGHTS_FORMAT = "fusionseg-weights-1"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


# ----------------------------------------------------------------------------------------------
# Configuration


@dataclass
class TrainConfig:
    """Every knob of a stream training run (defaults: the paper's solver, a CPU-sized crop)."""

    out_dir: str = "runs/stream"
    iterations: int = 20_000  # the paper's count per stream
    batch_size: int = 8  # global: split evenly across processes
    crop_size: int = 256
    lr: float = 1e-3  # the head learns 10x/20x faster; 1e-2 diverged for Lite0 on DUTS
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    backbone: str = "lite0"
    output_stride: int = 16
    pretrained: bool | str = True  # ImageNet backbone; a path: build_stream's weights file (e.g. a stream)
    freeze_bn: bool = True  # build_stream's: BatchNorm keeps its ImageNet statistics and affine
    precision: str = "auto"  # "auto" (bf16 where the hardware has it), "bf16" or "fp32"
    seed: int = 0
    workers: int = 2
    threads: int | None = None  # torch.set_num_threads; None leaves torch's default
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        self.scale_range = tuple(self.scale_range)  # lists from JSON/argparse
        if self.precision not in {"auto", "bf16", "fp32"}:
            raise ValueError(f"precision must be auto, bf16 or fp32, not {self.precision!r}")
        if self.iterations < 1 or self.batch_size < 1 or self.crop_size < 1:
            raise ValueError("iterations, batch_size and crop_size must be positive")


# Fields that may change between a run and its resumption without changing the result.
RESUMABLE_CHANGES = {
    "workers",
    "threads",
    "checkpoint_every",
    "keep_checkpoints",
    "resume",
    "progress",
    "out_dir",
}


# ----------------------------------------------------------------------------------------------
# Data


class PairDataset(Protocol):
    """What training reads: (image HxWx3 uint8 RGB, label map HxW uint8 in {0, 1, 255})."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]: ...


class ImageSetPairs:
    """An `ImageSet` (e.g. DUTS-TR) as (image, label map) pairs."""

    def __init__(self, image_set: ImageSet):
        self.image_set = image_set

    def __len__(self) -> int:
        return len(self.image_set)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.image_set.image(index), self.image_set.label(index)


class FolderPairs:
    """`<root>/images/<name>.{png,jpg}` with `<root>/masks/<name>.png` label maps (0/1/255)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        image_dir, mask_dir = self.root / "images", self.root / "masks"
        for folder in (image_dir, mask_dir):
            if not folder.is_dir():
                raise DataError(f"{folder}: folder not found (expected <dir>/images/ and <dir>/masks/)")
        self.images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.images:
            raise DataError(f"{image_dir}: no .png/.jpg images")
        self.masks = [mask_dir / f"{p.stem}.png" for p in self.images]
        missing = [str(m) for m in self.masks if not m.is_file()]
        if missing:
            raise DataError(f"{len(missing)} masks missing for images in {image_dir}, e.g. {missing[0]}")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, label = read_rgb(self.images[index]), read_gray(self.masks[index])
        bad = np.setdiff1d(np.unique(label), [0, 1, IGNORE])
        if bad.size:
            raise DataError(f"{self.masks[index]}: label values {bad.tolist()}, expected only 0, 1, 255")
        if image.shape[:2] != label.shape:
            raise DataError(f"{self.masks[index]}: size {label.shape}, image is {image.shape[:2]}")
        return image, label


class AugmentedStream(torch.utils.data.Dataset):
    """Position p in the endless training stream -> augmented (image, label) of a seeded permutation."""

    def __init__(self, pairs: PairDataset, augment: TrainAugment, seed: int):
        if len(pairs) == 0:
            raise DataError("the training set is empty")
        self.pairs, self.augment, self.seed = pairs, augment, seed
        self._order: tuple[int, np.ndarray] | None = None  # (epoch, permutation) cache

    def __len__(self) -> int:
        return len(self.pairs)

    def index_at(self, position: int) -> int:
        """The dataset index at stream `position`: epoch e is permutation (seed, e) of the dataset."""
        epoch, offset = divmod(position, len(self.pairs))
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, 0, epoch]).permutation(len(self.pairs)))
        return int(self._order[1][offset])

    def __getitem__(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        image, label = self.pairs[self.index_at(position)]
        return self.augment(image, label, np.random.default_rng([self.seed, 1, position]))


class StreamSampler(torch.utils.data.Sampler[int]):
    """This process's stream positions: for each iteration, its contiguous slice of the global batch."""

    def __init__(self, start: int, stop: int, global_batch: int, rank: int = 0, world: int = 1):
        if global_batch % world:
            raise ValueError(f"batch size {global_batch} is not divisible by {world} processes")
        self.start, self.stop, self.global_batch = start, stop, global_batch
        self.local_batch = global_batch // world
        self.first = rank * self.local_batch

    def __iter__(self) -> Iterator[int]:
        for iteration in range(self.start, self.stop):
            base = iteration * self.global_batch + self.first
            yield from range(base, base + self.local_batch)

    def __len__(self) -> int:
        return (self.stop - self.start) * self.local_batch


def _worker_init(_: int) -> None:
    """Data workers decode and resize single-threaded: the main process owns the cores."""
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def to_input(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """uint8 (N,H,W,3) -> float (N,3,H,W) in [0, 1], the streams' input convention."""
    x = images.permute(0, 3, 1, 2).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


# ----------------------------------------------------------------------------------------------
# Solver pieces


def poly_lr(base_lr: float, iteration: int, total: int, power: float = 0.9) -> float:
    """The "poly" schedule: base_lr * (1 - iteration / total) ** power (iteration counts from 0)."""
    return base_lr * (1.0 - iteration / total) ** power


def segmentation_loss(
    logits: torch.Tensor, labels: torch.Tensor, normalizer: float | torch.Tensor
) -> torch.Tensor:
    """Summed per-pixel cross-entropy over labelled pixels (255 ignored) divided by `normalizer`.

    The normaliser is the number of labelled pixels (of the global batch under DDP); dividing by it
    gives the usual mean, and 0 when nothing is labelled.
    """
    total = F.cross_entropy(logits.float(), labels.long(), ignore_index=IGNORE, reduction="sum")
    return total / torch.as_tensor(normalizer, dtype=total.dtype, device=total.device).clamp(min=1)


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


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
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


# ----------------------------------------------------------------------------------------------
# Processes (torchrun)


@dataclass(frozen=True)
class Processes:
    """This process's place in the run: rank, number of processes, and the device it trains on."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def start_processes() -> Processes:
    """Join the process group that torchrun describes (WORLD_SIZE > 1), else run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world == 1:
        return Processes(device=device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Processes(rank=dist.get_rank(), world=dist.get_world_size(), device=device)


def all_sum(value: torch.Tensor, processes: Processes) -> torch.Tensor:
    """Sum a tensor over the processes (identity when alone)."""
    if processes.world > 1:
        value = value.clone()
        dist.all_reduce(value)
    return value


# ----------------------------------------------------------------------------------------------
# Checkpoints


def checkpoint_path(out_dir: Path, iteration: int) -> Path:
    return Path(out_dir) / f"checkpoint-{iteration:07d}.pt"


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The checkpoint with the highest iteration in `out_dir`, or None."""
    found = _checkpoints(out_dir)
    return found[-1] if found else None


def _checkpoints(out_dir: Path) -> list[Path]:
    """The checkpoints in `out_dir`, oldest first (the zero-padded iteration sorts by name)."""
    return sorted(Path(out_dir).glob("checkpoint-*.pt"))


def _save(state: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def save_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, iteration: int, config: TrainConfig
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


def _prune_checkpoints(out_dir: Path, keep: int) -> None:
    for old in _checkpoints(out_dir)[:-keep]:
        old.unlink()


def _restore(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig) -> int:
    """Load a checkpoint into model and optimizer (checking the config agrees); return its iteration."""
    state = load_checkpoint(path)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"{path}: not a training checkpoint (format {state.get('format')!r})")
    saved = TrainConfig(**state["config"])
    changed = [f.name for f in fields(TrainConfig) if getattr(saved, f.name) != getattr(config, f.name)]
    changed = [name for name in changed if name not in RESUMABLE_CHANGES]
    if changed:
        details = ", ".join(f"{n}: {getattr(saved, n)!r} -> {getattr(config, n)!r}" for n in changed)
        raise ValueError(f"cannot resume from {path}: the configuration changed ({details})")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    if state["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return int(state["iteration"])


# ----------------------------------------------------------------------------------------------
# The stream training loop


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.SGD:
    """SGD over the model's `param_groups` (StreamNet: DeepLab's 10x/20x head multipliers) or all
    trainable parameters; every group carries the `lr_mult` that the poly schedule scales."""
    if hasattr(model, "param_groups"):
        groups = model.param_groups(config.lr, config.weight_decay)
    else:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr_mult": 1}]
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def train_stream(config: TrainConfig, pairs: PairDataset, model: nn.Module | None = None) -> nn.Module:
    """Train a stream network on (image, label map) pairs; return it (unwrapped, on its device).

    `model` defaults to `fusionseg.models.build_stream(config.backbone, config.output_stride,
    config.pretrained, config.freeze_bn)`, built right after seeding torch with `config.seed` (a
    model passed in is initialised by the caller; under DDP rank 0's parameters are broadcast).
    Run under torchrun for several processes. Writes checkpoints every `checkpoint_every`
    iterations and at the end, then `<out_dir>/model.pt` (rank 0).
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    processes = start_processes()
    out_dir = Path(config.out_dir)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    if model is None:
        from fusionseg.models import build_stream

        model = build_stream(config.backbone, config.output_stride, config.pretrained, config.freeze_bn)
    bf16 = use_bf16(config.precision, processes.device)
    # channels_last on a CPU (oneDNN's fast layout): a Lite0 step at 192 px, batch 8, fp32 took
    # 0.38 instead of 0.54 s on the quiet 2-core machine
    channels_last = processes.device.type == "cpu"
    model = model.to(
        processes.device, memory_format=torch.channels_last if channels_last else torch.preserve_format
    )
    optimizer = make_optimizer(model, config)

    start = 0
    resume_from = latest_checkpoint(out_dir) if config.resume else None
    if resume_from is not None:
        start = _restore(resume_from, model, optimizer, config)
    net = model
    if processes.world > 1:
        device_ids = [processes.device.index] if processes.device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    stream = AugmentedStream(
        pairs, TrainAugment(config.crop_size, config.scale_range, config.flip), config.seed
    )
    sampler = StreamSampler(start, config.iterations, config.batch_size, processes.rank, processes.world)
    loader = torch.utils.data.DataLoader(
        stream,
        batch_size=sampler.local_batch,
        sampler=sampler,
        num_workers=config.workers,
        worker_init_fn=_worker_init,
        pin_memory=processes.device.type == "cuda",
        # Forked workers inherit OpenCV's and OpenMP's thread pools and can hang on their locks
        # (seen after the flow stage ran in the same process); fresh interpreters cannot.
        multiprocessing_context="forkserver" if config.workers > 0 else None,
    )
    bar = tqdm(
        total=config.iterations,
        initial=start,
        desc="train",
        disable=not (config.progress and processes.main),
        dynamic_ncols=True,
    )
    net.train()
    for iteration, (images, labels) in enumerate(loader, start=start):
        lr = poly_lr(config.lr, iteration, config.iterations, config.poly_power)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_mult"]
        x = to_input(images, channels_last).to(processes.device, non_blocking=True)
        y = labels.to(processes.device, non_blocking=True)
        labelled = all_sum((y != IGNORE).sum(), processes)
        with torch.autocast(processes.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = net(x)
        # DDP averages gradients over processes; scaling by the world size turns that into a sum,
        # so the gradient is that of the global batch's mean loss.
        loss = segmentation_loss(logits, y, labelled) * processes.world
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

        done = iteration + 1
        if processes.main and (done % config.checkpoint_every == 0 or done == config.iterations):
            save_checkpoint(checkpoint_path(out_dir, done), model, optimizer, done, config)
            _prune_checkpoints(out_dir, config.keep_checkpoints)
        if config.progress:  # the same on every process, so all of them join the all-reduce
            global_loss = all_sum(loss.detach(), processes) / processes.world
            bar.set_postfix(loss=f"{global_loss.item():.4f}", lr=f"{lr:.2e}")
        bar.update()
    bar.close()
    if processes.main:
        save_weights(out_dir / "model.pt", model, asdict(config) | {"kind": "stream"}, config.iterations)
    if processes.world > 1:
        dist.barrier()
    return model


# ----------------------------------------------------------------------------------------------
# Fusion: train the small joint layers on the frozen streams' logits


@dataclass
class FusionData:
    """Precomputed stream logits (N,2,H,W) and label maps (N,H,W) uint8 of held-out frames."""

    appearance: torch.Tensor
    motion: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        n, _, h, w = self.appearance.shape
        if self.motion.shape != self.appearance.shape or self.labels.shape != (n, h, w):
            raise ValueError(
                f"fusion data shapes disagree: appearance {tuple(self.appearance.shape)}, "
                f"motion {tuple(self.motion.shape)}, labels {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return len(self.labels)


def train_fusion(
    fusion: nn.Module,
    data: FusionData,
    iterations: int = 2000,
    batch_size: int = 8,
    lr: float = 1e-3,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Train `fusion` (PaperFusion / ReleaseFusion) in place on frozen-stream logits; return the losses.

    The streams are not run here: `fusionseg.infer.collect_fusion_data` computes their logits on the
    held-out videos once, so each step costs only the fusion layers. Same solver as the streams
    (SGD, poly lr, cross-entropy ignoring 255); each step draws a seeded random batch of frames.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(fusion.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    fusion.train()
    losses = []
    for iteration in tqdm(range(iterations), desc="train fusion", disable=not progress):
        for group in optimizer.param_groups:
            group["lr"] = poly_lr(lr, iteration, iterations)
        batch = torch.randint(len(data), (batch_size,), generator=generator)
        labels = data.labels[batch]
        logits = fusion(data.appearance[batch].float(), data.motion[batch].float())
        loss = segmentation_loss(logits, labels, (labels != IGNORE).sum())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


# ----------------------------------------------------------------------------------------------
# Command line: `fusionseg train`


def load_pairs(dataset: str | None, split: str, root: Path | None, pairs_dir: Path | None) -> PairDataset:
    """The training pairs named on the command line: an image set (`--dataset`) or a folder (`--pairs`)."""
    if pairs_dir is not None:
        return FolderPairs(pairs_dir)
    from fusionseg.data import DEFAULT_FOLDERS, load_image_set
    from fusionseg.io import data_root

    folder = root if root is not None else data_root() / DEFAULT_FOLDERS[dataset]
    return ImageSetPairs(load_image_set(dataset, folder, split))


def configure_parser(parser: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", choices=["duts", "voc"], help="an image set (appearance stream)")
    source.add_argument(
        "--pairs", type=Path, help="a folder <dir>/images/*.png + <dir>/masks/*.png (label maps)"
    )
    source.add_argument(
        "--fusion", choices=["paper", "release"], help="fusion layers on two trained streams' logits"
    )
    parser.add_argument("--split", default="train", help="dataset split (default: train)")
    parser.add_argument("--root", type=Path, help="dataset folder (default: $FUSIONSEG_DATA/<dataset>)")
    fusion = parser.add_argument_group("fusion training (--fusion)")
    fusion.add_argument("--videos", default="davis", help="held-out video dataset (default: davis)")
    fusion.add_argument("--appearance-weights", type=Path, help="trained appearance stream (.pt)")
    fusion.add_argument("--motion-weights", type=Path, help="trained motion stream (.pt)")
    fusion.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="working size of the logits")
    fusion.add_argument("--every", type=int, default=1, help="use every k-th annotated frame")
    fusion.add_argument("--flow-method", default="dis", help="optical flow for the motion stream")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoints and model.pt")
    parser.add_argument("--iterations", type=int, default=defaults.iterations)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="global batch")
    parser.add_argument("--crop", type=int, default=defaults.crop_size, help="square crop size (px)")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="base learning rate (poly schedule)")
    parser.add_argument("--scale", type=float, nargs=2, default=defaults.scale_range, metavar=("MIN", "MAX"))
    parser.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    parser.add_argument("--backbone", default=defaults.backbone, choices=["lite0", "resnet101"])
    parser.add_argument("--output-stride", type=int, default=defaults.output_stride, choices=[8, 16])
    init = parser.add_mutually_exclusive_group()
    init.add_argument("--no-pretrained", action="store_true", help="random backbone (no ImageNet weights)")
    init.add_argument(
        "--init", type=Path, help="start from these weights (a stream .pt or a backbone state dict)"
    )
    parser.add_argument("--train-bn", action="store_true", help="update BatchNorm statistics")
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--workers", type=int, default=defaults.workers, help="data-loading processes")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process")
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        out_dir=str(args.out),
        iterations=args.iterations,
        batch_size=args.batch_size,
        crop_size=args.crop,
        lr=args.lr,
        scale_range=tuple(args.scale),
        flip=not args.no_flip,
        backbone=args.backbone,
        output_stride=args.output_stride,
        pretrained=str(args.init) if args.init else not args.no_pretrained,
        freeze_bn=not args.train_bn,
        precision="fp32" if args.fp32 else "auto",
        seed=args.seed,
        workers=args.workers,
        threads=args.threads,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
    )


def run_fusion(args: argparse.Namespace) -> None:
    """`--fusion`: stream logits on the held-out videos once, then train the fusion layers on them."""
    from fusionseg.data import DEFAULT_FOLDERS, load_videos
    from fusionseg.flow import FlowCache
    from fusionseg.infer import collect_fusion_data, load_stream
    from fusionseg.io import data_root
    from fusionseg.models import PaperFusion, ReleaseFusion

    if args.appearance_weights is None or args.motion_weights is None:
        raise ValueError("--fusion needs --appearance-weights and --motion-weights")
    if args.threads:
        torch.set_num_threads(args.threads)
    root = args.root if args.root is not None else data_root() / DEFAULT_FOLDERS[args.videos]
    videos = load_videos(args.videos, root, args.split)
    appearance, motion = load_stream(args.appearance_weights), load_stream(args.motion_weights)
    cache = FlowCache()
    data = collect_fusion_data(
        appearance,
        motion,
        videos,
        flow_images=lambda video: cache.flow_images(video, args.flow_method),
        size=tuple(args.size) if args.size else None,
        every=args.every,
        precision="fp32" if args.fp32 else "auto",
    )
    torch.manual_seed(args.seed)
    fusion = {"paper": PaperFusion, "release": ReleaseFusion}[args.fusion]()
    losses = train_fusion(fusion, data, args.iterations, args.batch_size, args.lr, seed=args.seed)
    config = {"kind": "fusion", "fusion": args.fusion, "videos": args.videos, "split": args.split}
    config |= {"frames": len(data), "final_loss": losses[-1]}
    save_weights(args.out / "model.pt", fusion, config, args.iterations)


def run_command(args: argparse.Namespace) -> int:
    try:
        if args.fusion:
            run_fusion(args)
        else:
            train_stream(config_from_args(args), load_pairs(args.dataset, args.split, args.root, args.pairs))
    except (DataError, ValueError) as exc:
        print(f"fusionseg train: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"weights: {args.out / 'model.pt'}")
    return 0
