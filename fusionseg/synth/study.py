"""Is the synthetic world hard enough? Motion statistics and Flow-Th per kind of clip.

For every annotated frame of a synthetic benchmark, `motion_table` measures the optical flow's mean
magnitude on the object and on the background, and scores the paper's Flow-Th baseline (flow
magnitude > mean + 1 std) with and without removing a fitted camera motion. Grouped by the clip's
camera motion and by whether its objects stand still (`summarize_motion`), the table shows what the
world is built to show: camera motion gives the background as much flow as the object, so Flow-Th
fails there, and objects that stand still give a motion-only method nothing to find.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from fusionseg.baselines import flow_threshold, remove_camera_motion
from fusionseg.data import load_videos
from fusionseg.flow import compute_flow, flow_pairs
from fusionseg.metrics import jaccard
from fusionseg.synth.world import SynthManifest


def motion_table(
    manifest: SynthManifest, dataset: str, split: str | None = None, method: str = "dis"
) -> pd.DataFrame:
    """One row per annotated frame: clip properties, flow magnitude on object / background, Flow-Th J."""
    rows = []
    for video in tqdm(
        load_videos(dataset, manifest.dataset_root(dataset), split), desc=f"motion {dataset}", leave=False
    ):
        record = manifest.record(dataset, video.name)
        partner = dict(flow_pairs(len(video)))  # the release's pairing: i -> i+1, the last -> the one before
        for index in video.annotated_indices:
            flow = compute_flow(video.image(index), video.image(partner[index]), method)
            mask = video.mask(index)
            magnitude = np.hypot(flow[..., 0], flow[..., 1])
            rows.append(
                {
                    "video": video.name,
                    "frame": index,
                    "camera_motion": record["camera_motion"],
                    "static_objects": record["static_objects"],
                    "distractor": record["distractor"] or "none",
                    "object_flow": float(magnitude[mask].mean()) if mask.any() else np.nan,
                    "background_flow": float(magnitude[~mask].mean()),
                    "flow_th_J": jaccard(flow_threshold(flow), mask),
                    "flow_th_compensated_J": jaccard(flow_threshold(remove_camera_motion(flow)), mask),
                }
            )
    return pd.DataFrame(rows)


def summarize_motion(
    table: pd.DataFrame, by: Sequence[str] = ("static_objects", "camera_motion")
) -> pd.DataFrame:
    """Per group: clips, frames and the mean of every measure (per-frame means)."""
    measures = ["object_flow", "background_flow", "flow_th_J", "flow_th_compensated_J"]
    grouped = table.groupby(list(by))
    summary = grouped[measures].mean().round(3)
    summary.insert(0, "frames", grouped.size())
    summary.insert(0, "clips", grouped["video"].nunique())
    return summary
