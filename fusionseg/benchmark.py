"""Every method of the paper's tables on one benchmark: masks written, frames scored.

`score_benchmark(videos, models, masks, flows, dataset)` runs Ours-A, Ours-M and both joint models on
the annotated frames of each video, and the flow baselines (Flow-Th, Flow-Sal) on every frame; it
writes each method's masks as `<masks>/<method slug>/<video>/<frame>.png` ({0, 255}, at the
annotation's size), skipping videos already written (so an interrupted evaluation resumes), then
scores them with the benchmark's convention (`fusionseg.evaluate`). One row per (method, annotated
frame) with J, F and the frame's amount of motion (`fusionseg.evaluate.frame_motion`, for Table 4).

Predictions: the streams run on each frame at its own size; the foreground probability is resized
bilinearly to the annotation's size before thresholding at 0.5 (the real DAVIS copy has 427x240
frames and 854x480 masks). The networks see the frame and its colour-coded flow image from the
flow cache (`fusionseg.flow.FlowCache`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from fusionseg.baselines import video_masks, write_video_masks
from fusionseg.data.types import Video
from fusionseg.evaluate import (
    BASELINE_METHODS,
    FUSION_DESIGNS,
    METHODS,
    REFERENCE,
    frame_motion,
    score_frames,
)
from fusionseg.flow import FlowCache, load_raw_flow
from fusionseg.infer import LazyImages, iter_logits
from fusionseg.io import image_size, write_png

OURS = ("Ours-A", "Ours-M", *FUSION_DESIGNS)


@dataclass
class Models:
    """The trained networks: both streams and a fusion module per joint method."""

    appearance: nn.Module
    motion: nn.Module
    fusions: dict[str, nn.Module]  # method name (`FUSION_DESIGNS`) -> fusion module


@dataclass(frozen=True)
class Flows:
    """Where a video's flow comes from: the cache and the method that filled it."""

    cache: FlowCache
    method: str


def slug(method: str) -> str:
    """A method's folder name: "Ours-Joint (release)" -> "ours-joint_release"."""
    return method.lower().replace(" ", "_").replace("(", "").replace(")", "")


def stream_logits(model: nn.Module, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
    """Per-image float32 logits (2, H, W) at the image's own size."""
    logits: list[torch.Tensor] = [torch.empty(0)] * len(images)
    for batch, _, values in iter_logits(model, [images]):
        for row, index in enumerate(batch):
            logits[index] = values[row].float().cpu()
    return logits


def foreground(logits: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Softmax foreground probability resized (bilinear) to `size`, thresholded at 0.5."""
    probability = logits.softmax(dim=0)[1:2][None]
    if tuple(probability.shape[-2:]) != tuple(size):
        probability = F.interpolate(probability, size=size, mode="bilinear", align_corners=False)
    return probability[0, 0].numpy() > 0.5


def _video_done(masks: Path, methods: Sequence[str], video: Video, indices: Sequence[int]) -> bool:
    return all(
        (masks / slug(m) / video.name / f"{video.frames[i].name}.png").is_file()
        for m in methods
        for i in indices
    )


def segment_video(models: Models, video: Video, masks: Path, flows: Flows) -> None:
    """Ours-A, Ours-M and both joint models on the annotated frames of one video; masks written as PNG."""
    indices = video.annotated_indices
    if _video_done(masks, OURS, video, indices):
        return
    flow_images = flows.cache.flow_images(video, flows.method)
    app = stream_logits(models.appearance, LazyImages([video.frames[i].image_path for i in indices]))
    mot = stream_logits(models.motion, LazyImages([flow_images[i] for i in indices]))
    for index, a, m in zip(indices, app, mot, strict=True):
        size = image_size(video.frames[index].mask_paths[0])
        predictions = {"Ours-A": a, "Ours-M": m}
        with torch.inference_mode():
            for method, module in models.fusions.items():
                predictions[method] = module(a[None], m[None])[0].float()
        for method, logits in predictions.items():
            write_png(
                masks / slug(method) / video.name / f"{video.frames[index].name}.png",
                foreground(logits, size),
            )


def baseline_masks(videos: Sequence[Video], masks: Path, flows: Flows) -> None:
    """Flow-Th and Flow-Sal masks of every frame (skipping videos already written)."""
    for method, baseline in BASELINE_METHODS.items():
        for video in videos:
            if not _video_done(masks, [method], video, range(len(video))):
                frames = video_masks(video, baseline, flows.cache, flows.method)
                write_video_masks(video, masks / slug(method), frames)


def motion_of_frames(videos: Sequence[Video], flows: Flows) -> dict[tuple[str, int], float]:
    """(sequence, frame index) -> `frame_motion` of every annotated frame."""
    values = {}
    for video in videos:
        paths = flows.cache.raw_flow_paths(video, flows.method)
        for index in video.annotated_indices:
            values[(video.name, index)] = frame_motion(load_raw_flow(paths[index]))
    return values


def score_benchmark(
    videos: Sequence[Video],
    models: Models,
    masks: Path,
    flows: Flows,
    dataset: str,
    reference: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every method on one benchmark: one row per (method, annotated frame) with J, F and motion, plus
    the `REFERENCE` rows (frames 1..N-2) when `reference` holds the official per-frame scores."""
    for video in tqdm(videos, desc=f"segment {dataset}", unit="video"):
        segment_video(models, video, masks, flows)
    baseline_masks(videos, masks, flows)
    motion = motion_of_frames(videos, flows)
    tables = []
    for method in METHODS:
        per_frame = score_frames(videos, masks / slug(method), dataset, progress=False)
        per_frame.insert(0, "method", method)
        tables.append(per_frame)
    if reference is not None:
        tables.append(reference.assign(method=REFERENCE)[tables[0].columns])
    frames = pd.concat(tables, ignore_index=True)
    frames["motion"] = [motion[(s, int(i))] for s, i in zip(frames["sequence"], frames["index"], strict=True)]
    return frames


def benchmark_tables(per_frame: pd.DataFrame, dataset: str, rank_motion: bool) -> dict[str, pd.DataFrame]:
    """The results ledger's tables of one benchmark from `score_benchmark`'s rows, by file name:
    per frame, per sequence, the detail table (`<table>_detail`), the comparison table in percent
    (`table1_davis` ...), and with `rank_motion` Table 4 (`table4_detail`, `table4_moving_static`)."""
    from fusionseg import evaluate

    per_sequence = evaluate.sequence_scores(per_frame, dataset)
    table = evaluate.TABLES[dataset]
    tables = {
        f"per_frame_{dataset}": per_frame,
        f"per_sequence_{dataset}": per_sequence,
        f"{table}_detail": evaluate.detail_table(per_sequence),
        table: evaluate.comparison_rows(per_sequence, dataset),
    }
    if rank_motion:
        table4 = evaluate.moving_static(per_frame, evaluate.MOVING_FRACTION).assign(dataset=dataset)
        columns = ["dataset", "method", "subset", "n_frames", "motion_min", "motion_max", "J_mean"]
        tables["table4_detail"] = table4[columns]
        ledger = {"method": table4["method"], "column": table4["subset"], "value": 100 * table4["J_mean"]}
        tables["table4_moving_static"] = pd.DataFrame(ledger)
    return tables
