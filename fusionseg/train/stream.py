"""Training one stream (appearance or motion): SGD + poly learning rate, resumable, under torchrun too.

The stream recipe is the paper's (Sec. 3.1; 20,000 iterations per stream there): SGD with momentum 0.9 and weight
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
end, `<out_dir>/model.pt` holds the weights alone (formats: `fusionseg.checkpoints`).

Multi-process: `torchrun --nproc_per_node N -m fusionseg train ...` (gloo on CPU, nccl on GPU).
The stream's BatchNorm layers are frozen by default (`freeze_bn`, as DeepLab-v2 trained), which
also keeps the processes' forward passes independent of how the batch is split. The stream's head
learns 10x (weights) / 20x (biases) faster than the trunk (`StreamNet.param_groups`).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from fusionseg.checkpoints import (
    CHECKPOINT_FORMAT,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
    save_weights,
    to_input,
    use_bf16,
)
from fusionseg.data.types import IGNORE, ImageSet
from fusionseg.io import DataError, read_gray, read_rgb
from fusionseg.transforms import TrainAugment

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
OPTIMIZERS = ("sgd", "adamw")
# AdamW's settings (TrainConfig.optimizer="adamw"): its per-parameter step sizes make DeepLab's 10x/20x
# head multipliers too large, so the new layers learn ADAMW_HEAD_LR_MULT times faster than the trunk;
# decoupled weight decay where SGD has weight decay (none on the head's biases)
ADAMW_HEAD_LR_MULT = 5.0
ADAMW_WEIGHT_DECAY = 1e-2


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
    # "sgd" (the paper's solver) or "adamw" (ours, for short CPU budgets: see make_optimizer)
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    backbone: str = "lite0"
    output_stride: int = 16
    decoder: str = "none"  # build_stream's: "none" (the paper's head alone) or "skip4"
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
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {self.optimizer!r}")
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


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The solver over the model's `param_groups` (StreamNet: DeepLab's 10x/20x head multipliers) or
    all trainable parameters; every group carries the `lr_mult` that the poly schedule scales.

    "sgd" is the paper's (momentum, L2 weight decay). "adamw" caps the multipliers at
    ADAMW_HEAD_LR_MULT and decays with ADAMW_WEIGHT_DECAY the groups that SGD decays. Over mini's
    300-step budget it trained the appearance stream much further (held-out IoU 0.625 against SGD's
    0.386: `results/mini/recipe_selection_solver.csv`)."""
    if hasattr(model, "param_groups"):
        groups = model.param_groups(config.lr, config.weight_decay)
    else:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr_mult": 1}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    for group in groups:
        group["lr_mult"] = min(group["lr_mult"], ADAMW_HEAD_LR_MULT)
        group["lr"] = config.lr * group["lr_mult"]
        group["weight_decay"] = ADAMW_WEIGHT_DECAY if group.get("weight_decay", config.weight_decay) else 0.0
    return torch.optim.AdamW(groups, lr=config.lr)


def train_stream(config: TrainConfig, pairs: PairDataset, model: nn.Module | None = None) -> nn.Module:
    """Train a stream network on (image, label map) pairs; return it (unwrapped, on its device).

    `model` defaults to `fusionseg.models.build_stream(config.backbone, config.output_stride,
    config.pretrained, config.freeze_bn, config.decoder)`, built right after seeding torch with `config.seed` (a
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

        model = build_stream(
            config.backbone, config.output_stride, config.pretrained, config.freeze_bn, config.decoder
        )
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
        if not torch.isfinite(loss):  # stop before the update: the last checkpoint is still sound
            raise FloatingPointError(
                f"training diverged: the loss is {loss.item()} at iteration {iteration} (lr {lr:.2e}); "
                f"lower the learning rate (--lr) and resume from {latest_checkpoint(out_dir) or 'the start'}"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

        done = iteration + 1
        if processes.main and (done % config.checkpoint_every == 0 or done == config.iterations):
            save_checkpoint(checkpoint_path(out_dir, done), model, optimizer, done, config)
            prune_checkpoints(out_dir, config.keep_checkpoints)
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
