"""The paper's two motion-only baselines (Sec. 4, Table 1), with and without camera-motion removal.

- Flow-Th: per frame, the flow magnitude thresholded at its mean + 1 standard deviation.
- Flow-Sal: a static saliency method run on the colour-coded flow image, thresholded at the saliency
  map's average. The paper's saliency method ([21]) is not named in the text we have; the stand-in is
  OpenCV contrib's *fine-grained* static saliency (Montabone & Soto 2010), chosen a priori over the
  spectral-residual one (Hou & Zhang 2007) because it works at full resolution, whereas spectral
  residual works on a 64x64 thumbnail, too coarse for thin moving parts. `--saliency
  spectral_residual` runs the other one.

The paper does not say how camera motion was handled. The `camera_compensation` variant first fits a
global affine motion model to the flow (RANSAC on a grid of flow correspondences,
`cv2.estimateAffine2D`) and subtracts it, so that only motion *relative to the camera's* is left.

`fusionseg baseline {flow-th,flow-sal}` writes PNG masks laid out like DAVIS `Annotations/480p`
(at the annotation size) and scores them with `fusionseg.evaluate`. The real-data run's variant table
(`results/real-lite/table1_flow_baselines.csv`: DIS and DeepFlow, plain and camera-compensated) is
the pipeline's `flow_baselines` stage (`score_variants`, `variant_table`).
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from fusionseg.data.types import Video
from fusionseg.evaluate import score_videos, summarize
from fusionseg.flow import (
    FlowCache,
    add_flow_arguments,
    compute_videos,
    flow_params,
    flow_to_color,
    parse_size,
)
from fusionseg.io import atomic_path, read_gray, write_png

BASELINES = ("flow-th", "flow-sal")
SALIENCY_METHODS = ("fine_grained", "spectral_residual")
DEFAULT_SALIENCY = "fine_grained"


# --------------------------------------------------------------------------------------------------
# Camera motion


def camera_motion(flow: np.ndarray, grid_step: int = 8, ransac_threshold: float = 1.0) -> np.ndarray | None:
    """The dominant (camera) motion as a 2x3 affine matrix A, with x' = A @ [x, y, 1].

    Fitted robustly (RANSAC, inlier tolerance `ransac_threshold` pixels) to correspondences
    p -> p + flow(p) on a grid every `grid_step` pixels. None when no model can be fitted.
    """
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[grid_step // 2 : height : grid_step, grid_step // 2 : width : grid_step]
    source = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
    target = source + flow[ys.ravel(), xs.ravel()].astype(np.float32)
    if len(source) < 3:
        return None
    matrix, _ = cv2.estimateAffine2D(
        source,
        target,
        method=cv2.RANSAC,
        ransacReprojThreshold=ransac_threshold,
        maxIters=2000,
        confidence=0.99,
    )
    return matrix


def remove_camera_motion(flow: np.ndarray, grid_step: int = 8, ransac_threshold: float = 1.0) -> np.ndarray:
    """Flow minus the fitted camera motion (the flow itself when no model can be fitted)."""
    matrix = camera_motion(flow, grid_step, ransac_threshold)
    if matrix is None:
        return flow.astype(np.float32)
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    camera_u = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2] - xs
    camera_v = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2] - ys
    return (flow - np.stack([camera_u, camera_v], axis=2)).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# The baselines on one frame's flow


def flow_threshold(flow: np.ndarray) -> np.ndarray:
    """Flow-Th: foreground where the flow magnitude exceeds its mean + 1 standard deviation."""
    magnitude = np.hypot(flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64))
    return magnitude > magnitude.mean() + magnitude.std()


def saliency_map(image_rgb: np.ndarray, method: str = DEFAULT_SALIENCY) -> np.ndarray:
    """OpenCV contrib static saliency of an RGB uint8 image, as float32 (H, W)."""
    if method == "fine_grained":
        detector = cv2.saliency.StaticSaliencyFineGrained_create()
    elif method == "spectral_residual":
        detector = cv2.saliency.StaticSaliencySpectralResidual_create()
    else:
        raise ValueError(f"unknown saliency method {method!r}; expected one of {SALIENCY_METHODS}")
    ok, saliency = detector.computeSaliency(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"OpenCV {method} saliency failed on an image of shape {image_rgb.shape}")
    return np.asarray(saliency, dtype=np.float32)


def flow_saliency(flow: np.ndarray, method: str = DEFAULT_SALIENCY) -> np.ndarray:
    """Flow-Sal: foreground where the saliency of the flow image exceeds its average."""
    saliency = saliency_map(flow_to_color(flow), method)
    return saliency > saliency.mean()


def segment_flow(
    flow: np.ndarray, baseline: str, camera_compensation: bool = False, saliency: str = DEFAULT_SALIENCY
) -> np.ndarray:
    """One frame's foreground (bool, flow size) by `baseline` ('flow-th' or 'flow-sal')."""
    if camera_compensation:
        flow = remove_camera_motion(flow)
    if baseline == "flow-th":
        return flow_threshold(flow)
    if baseline == "flow-sal":
        return flow_saliency(flow, saliency)
    raise ValueError(f"unknown baseline {baseline!r}; expected one of {BASELINES}")


# --------------------------------------------------------------------------------------------------
# Whole videos: masks on disk, then scores


def annotation_size(video: Video) -> tuple[int, int] | None:
    """(H, W) of the video's first annotation (masks are written at that size), or None if unannotated."""
    indices = video.annotated_indices
    if not indices:
        return None
    return read_gray(video.frames[indices[0]].mask_paths[0]).shape[:2]


def upsample_mask(mask: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Nearest-neighbour resize of a boolean mask to (H, W)."""
    if size is None or mask.shape == tuple(size):
        return mask
    resized = cv2.resize(mask.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return resized.astype(bool)


def video_masks(
    video: Video,
    baseline: str,
    cache: FlowCache,
    method: str = "dis",
    size: tuple[int, int] | None = None,
    camera_compensation: bool = False,
    saliency: str = DEFAULT_SALIENCY,
    **params: Any,
) -> Iterator[np.ndarray]:
    """Yield every frame's mask (bool, upsampled to the annotation size) from the cached raw flow."""
    target = annotation_size(video)
    for flow in cache.iter_raw_flow(video, method, size, **params):
        yield upsample_mask(segment_flow(flow, baseline, camera_compensation, saliency), target)


def write_video_masks(video: Video, out_dir: Path, masks: Iterable[np.ndarray]) -> None:
    """Write `out_dir/<video>/<frame>.png` ({0, 255}), laid out like DAVIS `Annotations/480p`."""
    for frame, mask in zip(video.frames, masks, strict=True):
        write_png(out_dir / video.name / f"{frame.name}.png", mask)


def run_baseline(
    videos: list[Video],
    dataset: str,
    out_dir: Path,
    baseline: str,
    method: str = "dis",
    size: tuple[int, int] | None = None,
    camera_compensation: bool = False,
    cache: FlowCache | None = None,
    workers: int = 1,
    saliency: str = DEFAULT_SALIENCY,
    **params: Any,
) -> pd.DataFrame:
    """Flow (cached), masks for every video under `out_dir`, and the per-sequence scores."""
    cache = compute_videos(videos, method, size, cache, workers, **params)
    label = variant_name(baseline, camera_compensation)
    for video in tqdm(videos, desc=f"{label} ({method})", unit="video"):
        masks = video_masks(video, baseline, cache, method, size, camera_compensation, saliency, **params)
        write_video_masks(video, out_dir, masks)
    return score_videos(videos, out_dir, dataset)


def variant_name(baseline: str, camera_compensation: bool) -> str:
    return baseline + ("+cam" if camera_compensation else "")


# --------------------------------------------------------------------------------------------------
# The variant table of the real-data run (the pipeline's `flow_baselines` stage)

TABLE_COLUMNS = [
    "source", "baseline", "camera_compensation", "flow", "saliency", "split", "n_sequences",
    "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay",
]  # fmt: skip
# How the variants are made, as their provenance records it.
METHOD_NOTES = {
    "flow_th": "magnitude > mean + 1 std, per frame",
    "flow_sal": "OpenCV static saliency of the Middlebury flow image > its mean, per frame",
    "camera_compensation": "global affine fitted by RANSAC (cv2.estimateAffine2D, tolerance 1 px) "
    "to flow correspondences on an 8-px grid, subtracted before the baseline",
    "evaluation": "fusionseg.evaluate.score_videos (DAVIS 2016: first and last frame dropped)",
}
Variant = tuple[str, str, str, bool]  # (flow method, DAVIS split, baseline, camera compensation)


def _masks_for(
    video: Video, baseline: str, cache: FlowCache, method: str, camera_compensation: bool, saliency: str
) -> list[np.ndarray]:
    """All masks of one video (a module-level function, so that worker processes can run it)."""
    return list(video_masks(video, baseline, cache, method, None, camera_compensation, saliency))


def _score_one(job: tuple[Video, str, FlowCache, str, bool, str]) -> pd.DataFrame:
    video, baseline, cache, method, camera_compensation, saliency = job
    predictions = partial(_masks_for, baseline=baseline, cache=cache, method=method,
                          camera_compensation=camera_compensation, saliency=saliency)  # fmt: skip
    return score_videos([video], predictions, "davis", progress=False)


def score_variant(
    videos: list[Video],
    baseline: str,
    cache: FlowCache,
    method: str,
    camera_compensation: bool,
    saliency: str = DEFAULT_SALIENCY,
    workers: int = 1,
) -> pd.DataFrame:
    """Per-sequence DAVIS scores of one baseline variant, masks made in memory (flow must be cached)."""
    jobs = [(video, baseline, cache, method, camera_compensation, saliency) for video in videos]
    label = variant_name(baseline, camera_compensation) + (f" {saliency}" if baseline == "flow-sal" else "")
    bar = partial(tqdm, total=len(jobs), desc=f"{label} {method}", unit="seq")
    if workers <= 1:
        return pd.concat(list(bar(map(_score_one, jobs))), ignore_index=True)
    # spawned, not forked: OpenCV's thread pool does not survive a fork
    with multiprocessing.get_context("spawn").Pool(workers, cv2.setNumThreads, (1,)) as pool:
        return pd.concat(list(bar(pool.imap(_score_one, jobs))), ignore_index=True)


def variants(runs: Sequence[tuple[str, str, tuple[str, ...]]]) -> Iterator[Variant]:
    """Every scored variant of `runs` ((flow method, split, baselines) each): plain and camera-compensated."""
    for method, split, baselines in runs:
        for baseline, cam in itertools.product(baselines, (False, True)):
            yield method, split, baseline, cam


def variant_file(variant: Variant) -> str:
    """The file name of one variant's per-sequence scores, e.g. `flow-th_cam_dis_trainval.csv`."""
    method, split, baseline, cam = variant
    return f"{baseline}_{'cam' if cam else 'plain'}_{method}_{split}.csv"


def score_variants(
    videos: Sequence[Video], val_names: set[str], runs: Sequence[tuple[str, str, tuple[str, ...]]],
    cache: FlowCache, workers: int = 1,
) -> dict[Variant, pd.DataFrame]:  # fmt: skip
    """Per-sequence DAVIS scores of every variant of `runs` (flow computed into `cache` as needed);
    `videos` are all sequences, `val_names` those of the val split."""
    scores = {}
    for variant in variants(runs):
        method, split, baseline, cam = variant
        chosen = [v for v in videos if split == "trainval" or v.name in val_names]
        compute_videos(chosen, method, None, cache, workers)
        scores[variant] = score_variant(chosen, baseline, cache, method, cam, DEFAULT_SALIENCY, workers)
    return scores


def _split_rows(
    per_sequence: pd.DataFrame, labels: dict[str, Any], split: str, val_names: set[str]
) -> list[dict]:
    """Summary rows of one variant: the split scored and, for trainval, its val subset too."""
    subsets = {split: per_sequence}
    if split == "trainval":
        subsets["val"] = per_sequence[per_sequence["sequence"].isin(val_names)]
    return [
        {"source": "ours", **labels, "split": name, "n_sequences": len(table), **summarize(table)}
        for name, table in subsets.items()
    ]


def _paper_rows() -> list[dict[str, Any]]:
    """The paper's Table 1 flow baselines (Ce Liu's flow, all 50 videos; only the mean J is published)."""
    from fusionseg.paper_numbers import DAVIS_AVG

    return [
        {
            "source": "paper Table 1",
            "baseline": name.lower(),
            "camera_compensation": "unknown",
            "flow": "ce_liu",
            "saliency": "unnamed [21]" if name == "Flow-Sal" else "",
            "split": "trainval",
            "n_sequences": 50,
            "J_mean": DAVIS_AVG[name] / 100,
        }
        for name in ("Flow-Th", "Flow-Sal")
    ]


def variant_table(scores: dict[Variant, pd.DataFrame], val_names: set[str]) -> pd.DataFrame:
    """`table1_flow_baselines`: one summary row per variant and split, then the paper's Table 1 rows."""
    rows = []
    for (method, split, baseline, cam), per_sequence in scores.items():
        saliency = DEFAULT_SALIENCY if baseline == "flow-sal" else ""
        labels = {"baseline": baseline, "camera_compensation": cam, "flow": method, "saliency": saliency}
        rows += _split_rows(per_sequence, labels, split, val_names)
    return pd.DataFrame(rows + _paper_rows(), columns=TABLE_COLUMNS)


def write_csv(table: pd.DataFrame, path: Path) -> None:
    """A table as CSV, atomically, with 6 decimals (summaries are recomputed from these)."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")


# --------------------------------------------------------------------------------------------------
# Command line: fusionseg baseline


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline", choices=BASELINES)
    parser.add_argument("--dataset", required=True, help="dataset name, e.g. davis")
    parser.add_argument("--root", type=Path, required=True, help="the dataset's folder")
    parser.add_argument("--split", default=None, help="split, e.g. val")
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for the masks (<out>/<video>/<frame>.png)"
    )
    parser.add_argument(
        "--camera-compensation", action="store_true", help="remove the dominant (camera) motion first"
    )
    parser.add_argument(
        "--saliency", choices=SALIENCY_METHODS, default=DEFAULT_SALIENCY, help="Flow-Sal's saliency"
    )
    add_flow_arguments(parser)


def run_command(args: argparse.Namespace) -> int:
    from fusionseg.data import load_videos

    videos = load_videos(args.dataset, args.root, args.split)
    per_sequence = run_baseline(
        videos,
        args.dataset,
        args.out,
        args.baseline,
        args.method,
        parse_size(args.size),
        args.camera_compensation,
        FlowCache(args.cache),
        args.workers,
        args.saliency,
        **flow_params(args),
    )
    write_csv(per_sequence, args.out / "per_sequence.csv")
    summary = summarize(per_sequence)
    print(per_sequence.to_string(index=False, float_format="%.3f"))
    print(" ".join(f"{k}={v:.3f}" for k, v in summary.items()))
    return 0
