"""Pseudo-label bootstrapping for the motion stream (paper Sec. 3.2) and its quality check.

The appearance stream segments every frame of a video that is annotated only with boxes; four
steps then keep the segmentations that are likely right and whose object moves differently from
its surroundings:

1. **Pruning**: pixels outside every box become background.
2. **Box test**: for each box, the smallest rectangle enclosing the foreground pixels inside it
   must overlap the box by at least `box_overlap` (75%), else the segmentation is discarded.
3. **Fill test**: discard when more than `max_fill` (95%) of the box is foreground ("good
   segmentations are rarely a rectangle": the object probably spills out of the box).
4. **Flow test**: on the colour-coded flow image, the 2-norm between the mean colour inside the box
   and the mean colour inside a box `box_scale` (2) times its width and height (same centre,
   clipped to the image) must exceed `flow_threshold` (30), else discard.

How "overlaps by at least 75%" is read. The rectangle R encloses the foreground pixels *inside*
the box B (after step 1 those are the only foreground pixels the box owns; with several boxes it
is the only reading that lets each box be tested alone). So R lies within B, the intersection is
R itself, and the plausible measures coincide: IoU(R, B) = |R| / |R u B| = |R| / |B| = the fraction
of the box that R covers, while the third reading, the fraction of R inside B, is always 1 and
tests nothing. We therefore compute one number, |R| / |B| (0 when the box holds no foreground),
and pass when it is >= `box_overlap`. Because R is taken inside the box, switching step 1 off
changes the labels (foreground outside the boxes survives) but not which frames pass.

How the flow test's outer region is read. The paper's "a box whose height and width are twice
the original size" contains the inner box; `flow_context="box"` (default) averages over that whole
doubled box, as written; `flow_context="ring"` averages over the doubled box minus the inner box,
a stronger contrast (the inner box makes up to a quarter of the doubled box's pixels).

Several boxes per frame. `multi_box="frame"` (default, the paper's "otherwise we discard the
segmentation"): a frame is kept only when every box passes. `multi_box="mask"`: a frame is kept
when at least one box passes, and the pixels of failed boxes (outside passed boxes) are labelled
255, so that training ignores them.

Each step is a small pure function that measures one number; `check_box` turns the three numbers
into a reason code (the first failed step, or "kept") so that the funnel can count. The numbers are
recorded per box, so the ablations of the quality study re-decide from the records without
re-running the appearance model.

On disk (`run_pipeline`): `<out>/images/<video>_<frame>.png` (flow image, the motion stream's
input), `<out>/masks/<video>_<frame>.png` (label map 0/1/255), `<out>/frames/<video>_<frame>.jpg`
(RGB frame, for figures), `<out>/manifest.csv`, `<out>/funnel.csv`; plus the working records
`<out>/records/<video>.csv` (one row per box; written last, so a video with a record is done and
skipped on a rerun) and `<out>/segmentation/<video>_<frame>.png` (the unpruned appearance
segmentation, for the quality study).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import ndimage
from tqdm import tqdm

from fusionseg.data.types import BACKGROUND, FOREGROUND, IGNORE, Box, Frame, ImagePair, ImageSet, Video
from fusionseg.io import (
    DataError,
    atomic_path,
    image_size,
    read_gray,
    write_jpeg,
    write_json,
    write_png,
)
from fusionseg.metrics import iou, match_size

STEPS: tuple[str, ...] = ("box_test", "fill_test", "flow_test")
KEPT = "kept"

Segmenter = Callable[[Video], Sequence[np.ndarray]]
"""A video -> one foreground probability (float, HxW) or mask (bool) per frame."""
FlowImages = Callable[[Video], Sequence[np.ndarray]]
"""A video -> one colour-coded flow image (HxWx3 uint8) per frame."""


@dataclass(frozen=True)
class PseudoLabelConfig:
    """The thresholds of Sec. 3.2 and the readings chosen where the paper leaves a choice."""

    box_overlap: float = 0.75  # step 2: |enclosing rectangle| / |box| must be >= this
    max_fill: float = 0.95  # step 3: discard when the foreground fraction of the box exceeds this
    flow_threshold: float = 30.0  # step 4: colour distance must exceed this
    box_scale: float = 2.0  # step 4: the outer box's width and height, relative to the box
    flow_context: Literal["box", "ring"] = "box"  # step 4: whole doubled box, or it minus the box
    multi_box: Literal["frame", "mask"] = "frame"  # all boxes must pass, or failed boxes -> 255
    prune: bool = True  # step 1
    steps: tuple[str, ...] = STEPS  # the tests that are switched on (ablations drop one)
    fg_threshold: float = 0.5  # a probability map is foreground where p > this

    def __post_init__(self) -> None:
        if self.flow_context not in ("box", "ring"):
            raise ValueError(f"flow_context must be 'box' or 'ring', got {self.flow_context!r}")
        if self.multi_box not in ("frame", "mask"):
            raise ValueError(f"multi_box must be 'frame' or 'mask', got {self.multi_box!r}")
        unknown = set(self.steps) - set(STEPS)
        if unknown:
            raise ValueError(f"unknown steps {sorted(unknown)}; expected a subset of {STEPS}")


# --------------------------------------------------------------------------------------------
# Geometry


def box_pixels(box: Box, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """The (rows, cols) slices of the pixels a box covers, clipped to an image of `shape`.

    Box corners are in pixel coordinates, (x0, y0) inclusive and (x1, y1) exclusive; fractional
    corners take every pixel the box touches."""
    height, width = shape[:2]
    x0 = min(max(math.floor(box.x0), 0), width)
    y0 = min(max(math.floor(box.y0), 0), height)
    x1 = min(max(math.ceil(box.x1), x0), width)
    y1 = min(max(math.ceil(box.y1), y0), height)
    return slice(y0, y1), slice(x0, x1)


def scaled_box(box: Box, scale: float, shape: tuple[int, ...]) -> Box:
    """The box with `scale` times its width and height around the same centre, clipped to the image."""
    height, width = shape[:2]
    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    half_w, half_h = box.width * scale / 2, box.height * scale / 2
    return dataclasses.replace(
        box,
        x0=max(cx - half_w, 0.0),
        y0=max(cy - half_h, 0.0),
        x1=min(cx + half_w, float(width)),
        y1=min(cy + half_h, float(height)),
    )


def enclosing_rectangle(mask: np.ndarray, box: Box) -> Box | None:
    """The smallest rectangle enclosing the foreground pixels of `mask` inside `box` (None if none)."""
    rows, cols = box_pixels(box, mask.shape)
    ys, xs = np.nonzero(mask[rows, cols])
    if ys.size == 0:
        return None
    return Box(
        x0=float(cols.start + xs.min()),
        y0=float(rows.start + ys.min()),
        x1=float(cols.start + xs.max() + 1),
        y1=float(rows.start + ys.max() + 1),
    )


def _pixel_count(box: Box, shape: tuple[int, ...]) -> int:
    rows, cols = box_pixels(box, shape)
    return (rows.stop - rows.start) * (cols.stop - cols.start)


# --------------------------------------------------------------------------------------------
# The four steps: each a pure function of a mask (or flow image) and the boxes


def prune_outside_boxes(mask: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
    """Step 1: a copy of the boolean mask with every pixel outside all boxes set to background."""
    inside = np.zeros(mask.shape[:2], dtype=bool)
    for box in boxes:
        inside[box_pixels(box, mask.shape)] = True
    return mask & inside


def box_overlap(mask: np.ndarray, box: Box) -> float:
    """Step 2's measure: |R| / |box|, R the rectangle enclosing the foreground inside the box.

    R lies within the box, so this is also IoU(R, box) (see the module docstring); 0 when the box
    holds no foreground or no pixels."""
    rect = enclosing_rectangle(mask, box)
    area = _pixel_count(box, mask.shape)
    if rect is None or area == 0:
        return 0.0
    return _pixel_count(rect, mask.shape) / area


def box_fill(mask: np.ndarray, box: Box) -> float:
    """Step 3's measure: the fraction of the box's pixels that are foreground."""
    region = mask[box_pixels(box, mask.shape)]
    return float(region.mean()) if region.size else 0.0


def flow_contrast(
    flow_image: np.ndarray, box: Box, scale: float = 2.0, context: Literal["box", "ring"] = "box"
) -> float:
    """Step 4's measure: 2-norm between the mean colour inside the box and inside the scaled box.

    `context="box"` averages over the whole scaled box (it contains the inner box, as the paper's
    text reads); `"ring"` over the scaled box minus the inner box. 0 where a region is empty (a
    box that fills the image has no surroundings to differ from)."""
    image = np.asarray(flow_image, dtype=np.float64)
    inner_rows, inner_cols = box_pixels(box, image.shape)
    outer_rows, outer_cols = box_pixels(scaled_box(box, scale, image.shape), image.shape)
    inner = image[inner_rows, inner_cols].reshape(-1, image.shape[2])
    if context == "box":
        outer = image[outer_rows, outer_cols].reshape(-1, image.shape[2])
    else:
        keep = np.zeros(image.shape[:2], dtype=bool)
        keep[outer_rows, outer_cols] = True
        keep[inner_rows, inner_cols] = False
        outer = image[keep]
    if inner.size == 0 or outer.size == 0:
        return 0.0
    return float(np.linalg.norm(inner.mean(axis=0) - outer.mean(axis=0)))


@dataclass(frozen=True)
class BoxCheck:
    """Steps 2-4's measures for one box and the verdict under a configuration."""

    overlap: float
    fill: float
    flow_distance: float
    reason: str  # the first failed step ("box_test", "fill_test", "flow_test") or "kept"


def step_passes(step: str, value: float, config: PseudoLabelConfig) -> bool:
    """Whether one measure passes its test; a test switched off always passes."""
    if step not in config.steps:
        return True
    if step == "box_test":
        return value >= config.box_overlap
    if step == "fill_test":
        return value <= config.max_fill
    if step == "flow_test":
        return value > config.flow_threshold
    raise ValueError(f"unknown step {step!r}")


def tests_passed(overlap: float, fill: float, flow_distance: float, config: PseudoLabelConfig) -> int:
    """How many of the tests (box, fill, flow, in the paper's order) a box passes before the first failure."""
    for passed, (step, value) in enumerate(zip(STEPS, (overlap, fill, flow_distance), strict=True)):
        if not step_passes(step, value, config):
            return passed
    return len(STEPS)


def box_reason(overlap: float, fill: float, flow_distance: float, config: PseudoLabelConfig) -> str:
    """The first failed test in the paper's order, or "kept"."""
    passed = tests_passed(overlap, fill, flow_distance, config)
    return STEPS[passed] if passed < len(STEPS) else KEPT


def check_box(mask: np.ndarray, flow_image: np.ndarray, box: Box, config: PseudoLabelConfig) -> BoxCheck:
    """Steps 2-4 for one box of a boolean mask (pruned or not: only the pixels inside the box count)."""
    overlap = box_overlap(mask, box)
    fill = box_fill(mask, box)
    distance = flow_contrast(flow_image, box, config.box_scale, config.flow_context)
    return BoxCheck(overlap, fill, distance, box_reason(overlap, fill, distance, config))


def frame_kept(reasons: Sequence[str], config: PseudoLabelConfig) -> bool:
    """Whether a frame whose boxes got these reasons enters the training set."""
    if not reasons:
        return False
    passed = [reason == KEPT for reason in reasons]
    return all(passed) if config.multi_box == "frame" else any(passed)


def pseudo_label(
    mask: np.ndarray, boxes: Sequence[Box], reasons: Sequence[str], config: PseudoLabelConfig
) -> np.ndarray:
    """The label map (0/1/255) of a frame: the (pruned) mask, with failed boxes ignored in "mask" mode."""
    fg = prune_outside_boxes(mask, boxes) if config.prune else mask.astype(bool)
    label = np.where(fg, FOREGROUND, BACKGROUND).astype(np.uint8)
    if config.multi_box == "mask":
        failed = np.zeros(mask.shape[:2], dtype=bool)
        passed = np.zeros(mask.shape[:2], dtype=bool)
        for box, reason in zip(boxes, reasons, strict=True):
            (passed if reason == KEPT else failed)[box_pixels(box, mask.shape)] = True
        label[failed & ~passed] = IGNORE
    return label


def foreground(segmentation: np.ndarray, shape: tuple[int, int], threshold: float = 0.5) -> np.ndarray:
    """A segmenter's output as a boolean mask of `shape` (probabilities: p > threshold; resized nearest)."""
    array = np.asarray(segmentation)
    mask = array if array.dtype == bool else array > threshold
    return match_size(mask, shape)


# --------------------------------------------------------------------------------------------
# Weak sources: boxes from masks (DAVIS in the real-lite profile)


def boxes_from_masks(
    mask: np.ndarray, min_area: float = 0.002, merge: Literal["none", "overlapping", "all"] = "all"
) -> list[Box]:
    """Boxes around the connected components (8-connectivity) of a boolean mask.

    Components smaller than `min_area` (a fraction of the image's pixels) are dropped, as an
    annotator would not box a speck. `merge="all"` (default) gives one box around every kept
    component: DAVIS 2016 annotates one (possibly compound) object per sequence, and its
    components are mostly pieces of it cut apart by occluders (the bus behind a tree, the dog
    behind a hurdle), which an ImageNet VID annotator boxes once. `"overlapping"` merges boxes
    that intersect until none do; `"none"` gives one box per component."""
    if merge not in ("none", "overlapping", "all"):
        raise ValueError(f"merge must be 'none', 'overlapping' or 'all', got {merge!r}")
    components, count = ndimage.label(np.asarray(mask, dtype=bool), structure=np.ones((3, 3)))
    sizes = ndimage.sum_labels(np.ones_like(components), components, index=np.arange(1, count + 1))
    boxes = [
        Box(float(cols.start), float(rows.start), float(cols.stop), float(rows.stop))
        for (rows, cols), size in zip(ndimage.find_objects(components), sizes, strict=True)
        if size >= min_area * mask.size
    ]
    if merge == "all" and boxes:
        return [_union(boxes)]
    if merge == "overlapping":
        return _merge_overlapping(boxes)
    return boxes


def _union(boxes: Sequence[Box]) -> Box:
    return Box(
        min(b.x0 for b in boxes), min(b.y0 for b in boxes), max(b.x1 for b in boxes), max(b.y1 for b in boxes)
    )


def _intersect(a: Box, b: Box) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _merge_overlapping(boxes: Sequence[Box]) -> list[Box]:
    merged = list(boxes)
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                if _intersect(merged[i], merged[j]):
                    merged[i] = _union([merged[i], merged[j]])
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return merged


def _scale_box(box: Box, sx: float, sy: float) -> Box:
    return dataclasses.replace(box, x0=box.x0 * sx, y0=box.y0 * sy, x1=box.x1 * sx, y1=box.y1 * sy)


def boxed_from_masks(video: Video, min_area: float = 0.002, merge: str = "all") -> Video:
    """A copy of an annotated video whose frames carry boxes derived from their masks, *and no masks*.

    The boxes are scaled from the annotation's size to the frame's (the real DAVIS copy has 427x240
    frames and 854x480 annotations), so that the masks never reach the pipeline except as boxes."""
    frames = []
    for index, frame in enumerate(video.frames):
        if not frame.annotated:
            frames.append(Frame(frame.image_path))
            continue
        mask = video.mask(index)
        height, width = image_size(frame.image_path)
        sx, sy = width / mask.shape[1], height / mask.shape[0]
        boxes = tuple(_scale_box(b, sx, sy) for b in boxes_from_masks(mask, min_area, merge))
        frames.append(Frame(frame.image_path, boxes=boxes))
    return dataclasses.replace(video, frames=frames)


# --------------------------------------------------------------------------------------------
# The pipeline over videos: records, pseudo-labelled frames, manifest and funnel

RECORD_COLUMNS = [
    "video",
    "frame",
    "height",
    "width",
    "box",
    "x0",
    "y0",
    "x1",
    "y1",
    "overlap",
    "fill",
    "flow_distance",
]
FUNNEL_STAGES = ("frames in", "with boxes (1: pruned)", "2: box test", "3: fill test", "4: flow test (kept)")


def frame_key(video: str, frame: str) -> str:
    """The file stem of a frame in the pseudo-labelled set: `<video>_<frame>` (no path separators)."""
    return f"{video}_{frame}".replace("/", "_")


def _records_path(out: Path, video: str) -> Path:
    return out / "records" / f"{video}.csv"


def _box_rows(
    video: str, frame: str, shape: tuple[int, int], boxes: Sequence[Box], checks: Sequence[BoxCheck]
) -> list[dict]:
    return [
        {
            "video": video,
            "frame": frame,
            "height": shape[0],
            "width": shape[1],
            "box": index,
            "x0": box.x0,
            "y0": box.y0,
            "x1": box.x1,
            "y1": box.y1,
            "overlap": check.overlap,
            "fill": check.fill,
            "flow_distance": check.flow_distance,
        }
        for index, (box, check) in enumerate(zip(boxes, checks, strict=True))
    ]


def _write_training_frame(
    out: Path, key: str, rgb: np.ndarray, flow_image: np.ndarray, label: np.ndarray
) -> None:
    write_png(out / "images" / f"{key}.png", np.asarray(flow_image, dtype=np.uint8))
    write_png(out / "masks" / f"{key}.png", label)
    write_jpeg(out / "frames" / f"{key}.jpg", rgb)


def process_video(
    video: Video,
    segment: Segmenter,
    flow_images: FlowImages,
    config: PseudoLabelConfig,
    out: Path,
    keep_segmentation: bool = True,
) -> pd.DataFrame:
    """Run the four steps on every boxed frame of one video; write its kept frames and its records.

    Returns the records (one row per box; a frame without boxes gets one row with box = -1). The
    records file is written last, so its presence marks the video as done."""
    rows: list[dict] = []
    boxed = any(frame.boxes for frame in video.frames)
    segmentations = segment(video) if boxed else []
    flows = flow_images(video) if boxed else []
    if boxed and not (len(segmentations) == len(flows) == len(video)):
        raise DataError(
            f"{video.name}: {len(video)} frames but {len(segmentations)} segmentations and {len(flows)} flow images"
        )
    for index, frame in enumerate(video.frames):
        if not frame.boxes:
            rows.append({"video": video.name, "frame": frame.name, "box": -1})
            continue
        rgb = video.image(index)
        shape = rgb.shape[:2]
        if flows[index].shape[:2] != shape:
            raise DataError(f"{frame.image_path}: flow image of size {flows[index].shape[:2]}, frame {shape}")
        mask = foreground(segmentations[index], shape, config.fg_threshold)
        checks = [check_box(mask, flows[index], box, config) for box in frame.boxes]
        key = frame_key(video.name, frame.name)
        if keep_segmentation:
            write_png(out / "segmentation" / f"{key}.png", mask)
        reasons = [check.reason for check in checks]
        if frame_kept(reasons, config):
            _write_training_frame(
                out, key, rgb, flows[index], pseudo_label(mask, frame.boxes, reasons, config)
            )
        rows.extend(_box_rows(video.name, frame.name, shape, frame.boxes, checks))
    records = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    _write_csv(records, _records_path(out, video.name))
    return records


def read_records(path: Path) -> pd.DataFrame:
    """A video's records file (frame names stay strings: "00000" is not 0)."""
    return pd.read_csv(path, dtype={"video": str, "frame": str})


def _check_config(out: Path, config: PseudoLabelConfig) -> None:
    """Refuse to resume into a folder made with another configuration (its kept frames would differ)."""
    path = out / "config.json"
    wanted = json.loads(json.dumps(dataclasses.asdict(config)))
    if path.is_file():
        found = json.loads(path.read_text())
        if found != wanted:
            raise DataError(f"{path}: made with {found}, not {wanted}; use another --out folder")
    else:
        write_json(path, wanted)


def run_pipeline(
    videos: Sequence[Video],
    segment: Segmenter,
    flow_images: FlowImages,
    config: PseudoLabelConfig,
    out: Path,
    keep_segmentation: bool = True,
) -> pd.DataFrame:
    """Pseudo-label every video into `out` (skipping videos already done) and write the manifest and funnel.

    Returns all records (one row per box)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_config(out, config)
    tables = []
    for video in tqdm(videos, desc="pseudo-labels", unit="video"):
        done = _records_path(out, video.name)
        if done.is_file():
            tables.append(read_records(done))
        else:
            tables.append(process_video(video, segment, flow_images, config, out, keep_segmentation))
    records = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=RECORD_COLUMNS)
    _write_csv(manifest(records, config), out / "manifest.csv")
    _write_csv(funnel(records, config), out / "funnel.csv")
    return records


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def _stages(records: pd.DataFrame, config: PseudoLabelConfig) -> pd.DataFrame:
    """The records with a `stage` column: tests passed by the box (0..3), -1 for a frame without boxes."""
    table = records.copy()
    measures = zip(table["box"], table["overlap"], table["fill"], table["flow_distance"], strict=True)
    table["stage"] = [
        tests_passed(float(o), float(f), float(d), config) if box >= 0 else -1 for box, o, f, d in measures
    ]
    return table


def frame_decisions(records: pd.DataFrame, config: PseudoLabelConfig) -> pd.DataFrame:
    """One row per frame: n_boxes, n_kept_boxes, stage (tests passed by the frame) and kept."""
    return _frame_decisions(_stages(records, config), config)


def _frame_decisions(stages: pd.DataFrame, config: PseudoLabelConfig) -> pd.DataFrame:
    """`frame_decisions` from records that already carry their `stage` column (`_stages`)."""
    boxes = stages.assign(box_kept=stages["stage"] == len(STEPS))
    combine = "min" if config.multi_box == "frame" else "max"
    frames = boxes.groupby(["video", "frame"], sort=False).agg(
        n_boxes=("box", lambda b: int((b >= 0).sum())),
        n_kept_boxes=("box_kept", "sum"),
        stage=("stage", combine),
    )
    frames = frames.reset_index()
    frames["kept"] = frames["stage"] == len(STEPS)
    return frames


def funnel(records: pd.DataFrame, config: PseudoLabelConfig) -> pd.DataFrame:
    """Frames (and boxes) in, and left after each step: the table the paper summarises as 84,929 kept."""
    boxes = _stages(records, config)
    frames = _frame_decisions(boxes, config)
    rows = []
    for minimum, stage in enumerate(FUNNEL_STAGES, start=-1):
        rows.append(
            {
                "stage": stage,
                "frames": int((frames["stage"] >= minimum).sum()),
                "boxes": int((boxes["stage"] >= max(minimum, 0)).sum()),
            }
        )
    table = pd.DataFrame(rows)
    table["frames_fraction"] = table["frames"] / max(int(table["frames"].iloc[0]), 1)
    return table


def manifest(records: pd.DataFrame, config: PseudoLabelConfig) -> pd.DataFrame:
    """The kept frames and their files (paths relative to the output folder)."""
    frames = frame_decisions(records, config)
    kept = frames[frames["kept"]].copy()
    keys = [frame_key(v, f) for v, f in zip(kept["video"], kept["frame"].astype(str), strict=True)]
    kept["image"] = [f"images/{k}.png" for k in keys]
    kept["mask"] = [f"masks/{k}.png" for k in keys]
    kept["rgb"] = [f"frames/{k}.jpg" for k in keys]
    return kept[["video", "frame", "image", "mask", "rgb", "n_boxes", "n_kept_boxes"]].reset_index(drop=True)


def pseudo_label_rule(raw: np.ndarray) -> np.ndarray:
    """Mask rule of the pseudo-label files: the values are already a label map (0/1/255)."""
    if not np.isin(raw, (BACKGROUND, FOREGROUND, IGNORE)).all():
        raise DataError(f"pseudo-label mask with values {np.unique(raw)[:8]}, expected 0/1/255")
    return raw


def load_pseudo_labels(out: Path, exclude_videos: Collection[str] = ()) -> ImageSet:
    """The pseudo-labelled set as an ImageSet of (flow image, label map) pairs, for motion training;
    without the frames of `exclude_videos` (a held-out part, for `fusionseg select-recipe`)."""
    out = Path(out)
    path = out / "manifest.csv"
    if not path.is_file():
        raise DataError(f"{path}: not found; run `fusionseg pseudo-labels` to make the pseudo-labelled set")
    table = pd.read_csv(path, dtype={"video": str, "frame": str})
    table = table[~table["video"].isin(set(exclude_videos))]
    items = [
        ImagePair(out / image, out / mask) for image, mask in zip(table["image"], table["mask"], strict=True)
    ]
    return ImageSet(name=out.name, items=items, mask_rule=pseudo_label_rule)


# --------------------------------------------------------------------------------------------
# The quality study (the paper's crowd check, with DAVIS train annotations as the crowd)

PAPER_JACCARD = {"all steps": 77.8, "all steps, before pruning": 70.2}


def ablation_configs(config: PseudoLabelConfig) -> dict[str, PseudoLabelConfig]:
    """The full pipeline, its labels before pruning, and each test switched off in turn."""
    variants = {
        "all steps": config,
        "all steps, before pruning": dataclasses.replace(config, prune=False),
    }
    for step in STEPS:
        variants[f"without {step.replace('_', ' ')}"] = dataclasses.replace(
            config, steps=tuple(s for s in config.steps if s != step)
        )
    variants["no tests (pruning only)"] = dataclasses.replace(config, steps=())
    return variants


def _frame_boxes(records: pd.DataFrame) -> dict[tuple[str, str], list[Box]]:
    boxes: dict[tuple[str, str], list[Box]] = {}
    for row in records[records["box"] >= 0].itertuples(index=False):
        boxes.setdefault((row.video, row.frame), []).append(Box(row.x0, row.y0, row.x1, row.y1))
    return boxes


def label_jaccard(label: np.ndarray, human: np.ndarray) -> float:
    """Jaccard (%) of a pseudo-label map against a human mask, at the human mask's size.

    The label map is upsampled (nearest) to the annotation's size; its 255 pixels are left out."""
    fg = match_size(label == FOREGROUND, human.shape)
    ignored = match_size(label == IGNORE, human.shape)
    reference = np.where(ignored, IGNORE, human.astype(np.uint8))
    return 100.0 * iou(fg, reference, ignore=IGNORE)


def _frame_jaccards(
    frames: pd.DataFrame,
    boxes: dict[tuple[str, str], list[Box]],
    measures: Any,
    out: Path,
    humans: dict[str, Video],
    config: PseudoLabelConfig,
    cache: dict[tuple, float],
) -> list[float]:
    """Per frame, Jaccard of its pseudo-label under `config`; `cache` reuses equal labels across variants.

    `boxes` is `_frame_boxes(records)` and `measures` the records of real boxes grouped by frame,
    both computed once by the caller for every variant."""
    values = []
    for video, frame in zip(frames["video"], frames["frame"], strict=True):
        group = measures.get_group((video, frame))
        reasons = [
            box_reason(o, f, d, config)
            for o, f, d in zip(group["overlap"], group["fill"], group["flow_distance"], strict=True)
        ]
        key = (
            video,
            frame,
            config.prune,
            config.multi_box,
            tuple(reasons) if config.multi_box == "mask" else (),
        )
        if key not in cache:
            mask = read_gray(out / "segmentation" / f"{frame_key(video, frame)}.png") > 0
            label = pseudo_label(mask, boxes[(video, frame)], reasons, config)
            cache[key] = label_jaccard(label, _human_mask(humans, video, frame))
        values.append(cache[key])
    return values


def _frame_index(video: Video, frame: str) -> int:
    names = [f.name for f in video.frames]
    if frame not in names:
        raise DataError(f"{video.name}: no frame {frame!r}")
    return names.index(frame)


def _human_mask(humans: dict[str, Video], video: str, frame: str) -> np.ndarray:
    if video not in humans:
        raise DataError(f"no annotated video {video!r} for the quality study")
    human = humans[video].mask(_frame_index(humans[video], frame))
    if human is None:
        raise DataError(f"{video}/{frame}: no human mask for the quality study")
    return human


def quality_study(
    records: pd.DataFrame,
    out: Path,
    humans: Sequence[Video],
    config: PseudoLabelConfig,
    n_frames: int = 100,
    seed: int = 0,
) -> pd.DataFrame:
    """Jaccard of the pseudo-labels against human masks on `n_frames` random kept frames, per variant.

    Variants: the full pipeline, its labels before pruning (same frames: pruning decides nothing,
    see the module docstring), and each test switched off in turn. Each variant samples its own
    kept frames with the same seed; `jaccard_all` is the mean over every frame the variant keeps."""
    by_name = {video.name: video for video in humans}
    boxes = _frame_boxes(records)
    measures = records[records["box"] >= 0].groupby(["video", "frame"], sort=False)
    cache: dict[tuple, float] = {}
    rows = []
    for variant, variant_config in tqdm(
        ablation_configs(config).items(), desc="quality study", unit="variant"
    ):
        decisions = frame_decisions(records, variant_config)
        kept = decisions[decisions["kept"]].reset_index(drop=True)
        rng = np.random.default_rng(seed)
        sample = kept.iloc[np.sort(rng.choice(len(kept), size=min(n_frames, len(kept)), replace=False))]
        sampled = _frame_jaccards(sample, boxes, measures, out, by_name, variant_config, cache)
        every = _frame_jaccards(kept, boxes, measures, out, by_name, variant_config, cache)
        rows.append(
            {
                "variant": variant,
                "prune": variant_config.prune,
                "tests": "+".join(variant_config.steps) or "none",
                "frames_kept": len(kept),
                "frames_sampled": len(sample),
                "jaccard_sample": float(np.mean(sampled)) if sampled else float("nan"),
                "jaccard_all": float(np.mean(every)) if every else float("nan"),
                "paper_jaccard": PAPER_JACCARD.get(variant, float("nan")),
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Figure 3 of the paper: the steps on a few frames


def pick_examples(
    records: pd.DataFrame, config: PseudoLabelConfig, per_outcome: int = 1, seed: int = 0
) -> pd.DataFrame:
    """A few frames per outcome (kept, or the test that discarded it), seeded, for the figure."""
    frames = frame_decisions(records, config)
    frames = frames[frames["n_boxes"] > 0].copy()
    frames["outcome"] = [
        KEPT if kept else STEPS[stage] for kept, stage in zip(frames["kept"], frames["stage"], strict=True)
    ]
    rng = np.random.default_rng(seed)
    picked = []
    for outcome in (KEPT, *STEPS):
        candidates = frames[frames["outcome"] == outcome]
        count = per_outcome * (2 if outcome == KEPT else 1)
        if len(candidates):
            picked.append(
                candidates.iloc[
                    np.sort(rng.choice(len(candidates), min(count, len(candidates)), replace=False))
                ]
            )
    return pd.concat(picked, ignore_index=True) if picked else frames.iloc[:0]


def _draw_box(axis: Any, box: Box, color: str, width: float = 1.5) -> None:
    from matplotlib.patches import Rectangle

    axis.add_patch(
        Rectangle(
            (box.x0 - 0.5, box.y0 - 0.5), box.width, box.height, fill=False, edgecolor=color, linewidth=width
        )
    )


def _overlay(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The frame with the segment tinted green (as in the paper's Fig. 3)."""
    from fusionseg.infer import overlay

    return overlay(rgb, mask, (0, 255, 0), alpha=0.55)


def plot_examples(
    examples: pd.DataFrame,
    records: pd.DataFrame,
    out: Path,
    videos: Sequence[Video],
    flow_images: FlowImages,
    config: PseudoLabelConfig,
) -> Any:
    """Fig. 3-style figure: per example (columns), the frame with its boxes, the initial segmentation,
    the pruned one, the box test (box yellow, enclosing rectangle blue) and the flow test (flow
    image with the box and the doubled box)."""
    import matplotlib.pyplot as plt

    by_name = {video.name: video for video in videos}
    boxes = _frame_boxes(records)
    row_titles = ["frame + box", "initial segmentation", "pruned", "box test", "flow test"]
    figure, axes = plt.subplots(
        len(row_titles), len(examples), figsize=(2.6 * len(examples), 1.6 * len(row_titles)), squeeze=False
    )
    flows: dict[str, Sequence[np.ndarray]] = {}
    for column, example in enumerate(examples.itertuples(index=False)):
        video = by_name[example.video]
        index = _frame_index(video, example.frame)
        rgb = video.image(index)
        frame_boxes = boxes[(example.video, example.frame)]
        mask = foreground(
            read_gray(out / "segmentation" / f"{frame_key(example.video, example.frame)}.png") > 0,
            rgb.shape[:2],
        )
        pruned = prune_outside_boxes(mask, frame_boxes)
        if example.video not in flows:
            flows = {example.video: flow_images(video)}
        flow = flows[example.video][index]
        panels = [rgb, _overlay(rgb, mask), _overlay(rgb, pruned), _overlay(rgb, pruned), flow]
        for row, panel in enumerate(panels):
            axis = axes[row, column]
            axis.imshow(panel)
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(row_titles[row], fontsize=8)
        labels: list[list[str]] = [[], []]
        for box in frame_boxes:
            check = check_box(pruned, flow, box, config)
            _draw_box(axes[0, column], box, "yellow")
            _draw_box(axes[3, column], box, "yellow")
            rect = enclosing_rectangle(pruned, box)
            if rect is not None:
                _draw_box(axes[3, column], rect, "blue")
            _draw_box(axes[4, column], box, "yellow")
            _draw_box(axes[4, column], scaled_box(box, config.box_scale, rgb.shape), "white", 1.0)
            labels[0].append(f"overlap {check.overlap:.2f}, fill {check.fill:.2f}")
            labels[1].append(f"flow distance {check.flow_distance:.1f}")
        axes[3, column].set_xlabel("\n".join(labels[0]), fontsize=7)
        axes[4, column].set_xlabel("\n".join(labels[1]), fontsize=7)
        outcome = "kept" if example.outcome == KEPT else f"discarded: {example.outcome.replace('_', ' ')}"
        axes[0, column].set_title(f"{example.video}/{example.frame}\n{outcome}", fontsize=8)
    figure.tight_layout()
    return figure


# --------------------------------------------------------------------------------------------
# Sources, the appearance model, and the command line

SOURCES = ("davis", "imagenet_vid")


def weak_videos(
    source: str,
    root: Path,
    split: str | None,
    min_area: float = 0.002,
    merge: str = "all",
    max_videos: int | None = None,
) -> list[Video]:
    """Videos with boxes: ImageNet VID (paper profile; the synthetic world uses its layout) as they
    are, DAVIS (real-lite) with boxes derived from its masks and the masks removed."""
    from fusionseg.data import load_videos

    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    videos = load_videos(source, Path(root), split)[:max_videos]
    if source == "davis":
        videos = [boxed_from_masks(video, min_area, merge) for video in videos]
    return videos


def appearance_segmenter(
    weights: Path, device: str = "cpu", size: tuple[int, int] | None = None
) -> Segmenter:
    """The trained appearance stream as a Segmenter (foreground probability per frame, at the frame's
    size), via `fusionseg.infer.predict_video`; `size` is an optional working (H, W)."""
    import torch

    from fusionseg import infer
    from fusionseg.checkpoints import load_stream

    torch.set_num_threads(min(2, torch.get_num_threads()))
    model = load_stream(Path(weights)).to(device)
    return lambda video: infer.predict_video(model, infer.video_frames(video), size=size)


def config_from_args(args: argparse.Namespace) -> PseudoLabelConfig:
    return PseudoLabelConfig(
        box_overlap=args.box_overlap,
        max_fill=args.max_fill,
        flow_threshold=args.flow_threshold,
        box_scale=args.box_scale,
        flow_context=args.flow_context,
        multi_box=args.multi_box,
    )


def configure_parser(parser: argparse.ArgumentParser) -> None:
    defaults = PseudoLabelConfig()
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default="davis",
        help="boxed videos: imagenet_vid, or davis (boxes from masks)",
    )
    parser.add_argument("--root", type=Path, help="dataset folder (default: $FUSIONSEG_DATA/DAVIS for davis)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--out", type=Path, help="output folder (default: .cache/pseudo_labels/<source>)")
    parser.add_argument(
        "--appearance-weights", type=Path, required=True, help="trained appearance stream (model.pt)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--flow-method", default="dis")
    parser.add_argument("--max-videos", type=int, default=None)
    parser.add_argument("--box-overlap", type=float, default=defaults.box_overlap)
    parser.add_argument("--max-fill", type=float, default=defaults.max_fill)
    parser.add_argument("--flow-threshold", type=float, default=defaults.flow_threshold)
    parser.add_argument("--box-scale", type=float, default=defaults.box_scale)
    parser.add_argument("--flow-context", choices=["box", "ring"], default=defaults.flow_context)
    parser.add_argument("--multi-box", choices=["frame", "mask"], default=defaults.multi_box)
    parser.add_argument(
        "--min-box-area",
        type=float,
        default=0.002,
        help="davis: smallest component boxed (fraction of the image)",
    )
    parser.add_argument(
        "--box-merge",
        choices=["all", "overlapping", "none"],
        default="all",
        help="davis: one box around all components, around intersecting ones, or per component",
    )


def _default_out(name: str) -> Path:
    from fusionseg.io import REPO_ROOT

    return REPO_ROOT / ".cache" / "pseudo_labels" / name


def run_command(args: argparse.Namespace) -> int:
    from fusionseg.flow import FlowCache
    from fusionseg.io import data_root

    config = config_from_args(args)
    root = args.root or (data_root() / "DAVIS" if args.source == "davis" else None)
    if root is None:
        raise DataError("--root is required for --source imagenet_vid")
    out = args.out or _default_out(args.source)
    videos = weak_videos(args.source, root, args.split, args.min_box_area, args.box_merge, args.max_videos)
    segment = appearance_segmenter(args.appearance_weights, args.device)
    cache = FlowCache()
    records = run_pipeline(
        videos, segment, lambda video: cache.flow_image_arrays(video, args.flow_method), config, out
    )
    print(funnel(records, config).to_string(index=False))
    print(f"pseudo-labelled frames: {out / 'manifest.csv'}")
    return 0
