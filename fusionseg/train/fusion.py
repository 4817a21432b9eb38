"""Training the fusion layers (Sec. 3.3) on the frozen streams' logits of held-out videos.

The paper trains its fusion layers (and the release its joint net) on a held-out annotated set per
benchmark, with the two streams frozen. So the streams run once per frame (`collect_fusion_data`),
their float16 logits stay in memory, and each fusion step costs only the fusion layers:
`train_fusion` trains `fusionseg.models.PaperFusion` (24 parameters) or `ReleaseFusion` (374) with the
streams' solver (SGD, poly learning rate, cross-entropy ignoring label 255).

On the command line: `fusionseg train --fusion release --appearance-weights A.pt --motion-weights M.pt
--videos davis --split val --size 120 214 --iterations 2000 --out runs/fusion`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from fusionseg.checkpoints import load_stream, save_weights
from fusionseg.data.types import IGNORE, Video
from fusionseg.infer import INFERENCE_BATCH, LazyImages, Size, iter_logits
from fusionseg.io import DataError
from fusionseg.train.stream import poly_lr, segmentation_loss


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

    The streams are not run here: `collect_fusion_data` computes their logits on the
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


def collect_fusion_data(
    appearance: nn.Module,
    motion: nn.Module,
    videos: Sequence[Video],
    flow_images: Callable[[Video], Sequence[np.ndarray] | Sequence[Path]] | None = None,
    size: Size | None = None,
    every: int = 1,
    batch_size: int = INFERENCE_BATCH,
    precision: str = "auto",
    progress: bool = True,
) -> FusionData:
    """Both streams' logits (float16) and label maps of every `every`-th annotated frame, at `size`.

    `flow_images(video)` gives the video's flow images, as arrays or image paths; by default the DIS
    flow images of the flow cache (`fusionseg.flow.FlowCache`, computed there if missing). Use a
    small working `size`: the data is held in memory (2 x 2 x H x W x 2 bytes per frame).
    """
    if flow_images is None:
        from fusionseg.flow import FlowCache

        flow_images = FlowCache().flow_images
    app_parts, mot_parts, label_parts = [], [], []
    for video in tqdm(videos, desc="stream logits", disable=not progress):
        chosen = video.annotated_indices[::every]
        if not chosen:  # nothing to learn from: skip before computing its flow
            continue
        flows = flow_images(video)
        if flows and isinstance(flows[0], (str, Path)):
            flows = LazyImages(flows)
        rgb = LazyImages([video.frames[i].image_path for i in chosen])
        flow = [flows[i] for i in chosen]
        for stream, inputs, parts in ((appearance, rgb, app_parts), (motion, flow, mot_parts)):
            for _, _, logits in iter_logits(stream, [inputs], batch_size, size, precision):
                parts.append(logits.to(torch.float16).cpu())
        h, w = app_parts[-1].shape[-2:]
        for i in chosen:
            label = video.label(i)
            label_parts.append(torch.from_numpy(cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)))
    if not label_parts:
        raise DataError("no annotated frames in the videos given to collect_fusion_data")
    return FusionData(torch.cat(app_parts), torch.cat(mot_parts), torch.stack(label_parts))


def frame_step(videos: Sequence[Video], max_bytes: int) -> int:
    """k such that both streams' float16 logits of every k-th annotated frame fit in `max_bytes`
    (frames at their own size)."""
    from fusionseg.io import image_size

    frames = sum(len(video.annotated_indices) for video in videos)
    if not frames:
        raise DataError("the fusion videos have no annotated frame")
    height, width = image_size(videos[0].frames[0].image_path)
    per_frame = 2 * 2 * height * width * 2  # two streams x two channels x float16
    return max(1, math.ceil(frames * per_frame / max_bytes))


def save_fusion_data(data: FusionData, path: Path) -> None:
    """Keep the collected logits (atomically: a resumed run never reads half a file)."""
    from fusionseg.io import atomic_path

    with atomic_path(path) as tmp:
        torch.save(dataclasses.asdict(data), tmp)


def load_fusion_data(path: Path) -> FusionData:
    return FusionData(**torch.load(path, weights_only=True))


def train_designs(
    data: FusionData,
    iterations: int,
    batch_size: int,
    lr: dict[str, float],
    seed: int,
    folder: Path,
    weight_decay: float,
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Train both fusion designs on the same logits (each from `seed`, with `weight_decay`); save
    `<folder>/<design>.pt`.

    Returns the weights' paths per design and one row per design for the `fusion_training` table
    (parameters, frames, iterations, first loss, mean of the last 10 losses)."""
    from fusionseg.models import PaperFusion, ReleaseFusion

    paths, rows = {}, []
    for design, module_type in (("paper", PaperFusion), ("release", ReleaseFusion)):
        torch.manual_seed(seed)
        module = module_type()
        losses = train_fusion(
            module, data, iterations, batch_size, lr[design], weight_decay=weight_decay, seed=seed
        )
        path = Path(folder) / f"{design}.pt"
        config = {"kind": "fusion", "fusion": design, "frames": len(data), "final_loss": losses[-1]}
        save_weights(path, module, config, iterations)
        paths[design] = str(path)
        parameters = sum(p.numel() for p in module.parameters())
        rows.append({"design": design, "parameters": parameters, "frames": len(data), "iterations": iterations}
                    | {"first_loss": losses[0], "final_loss": float(np.mean(losses[-10:]))})  # fmt: skip
    return paths, rows


def run_fusion(args: argparse.Namespace) -> None:
    """`--fusion`: stream logits on the held-out videos once, then train the fusion layers on them."""
    from fusionseg.data import DEFAULT_FOLDERS, load_videos
    from fusionseg.flow import FlowCache
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
