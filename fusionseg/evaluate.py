"""Score predicted masks against a video benchmark, with each benchmark's own conventions.

`score_frames` gives one row per scored frame, `score_videos` one row per sequence and `summarize`
the dataset score (the mean over sequences). Conventions, as each benchmark's own toolkit scores:

- davis: J (region IoU; both masks empty counts 1) and F (boundary F-measure, `fusionseg.metrics`)
  per frame; per sequence Mean, Recall (fraction of frames above 0.5) and Decay (the mean of the
  first quarter of the frames minus that of the last) over frames 1..N-2: the DAVIS 2016 toolkit
  drops the first and the last frame. The dataset score is the mean over sequences.
- segtrack: IoU (J) per annotated frame; per sequence the mean over all annotated frames.
- youtube_objects: IoU (J) per annotated frame; per shot the mean; `category_table` averages the
  shots of each category (the paper's Table 2 rows) and over all shots (its "Avg." row).

Predictions are either a folder laid out like DAVIS's `Annotations/480p` (`<pred>/<sequence>/<frame
stem>.png`, nonzero = foreground) or a callable returning one mask per frame of a video. A
prediction of another size is resized (nearest) to the annotation's size before scoring.

Command line: `fusionseg eval --dataset davis --root DIR --split val --pred PRED_DIR [--out CSV]`.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from fusionseg import metrics
from fusionseg.data import load_videos
from fusionseg.data.types import FOREGROUND, IGNORE, Video
from fusionseg.io import DataError, atomic_path, read_gray
from fusionseg.paper_numbers import AVG, MOVING, STATIC

Predictions = Callable[[Video], Sequence[np.ndarray]] | Path
STAT_NAMES = ("mean", "recall", "decay")
SEQUENCE_COLUMNS = ["sequence", "category", *[f"{m}_{s}" for m in "JF" for s in STAT_NAMES], "n_frames"]

# The methods of the paper's tables, as the book names them.
METHODS = ("Flow-Th", "Flow-Sal", "Ours-A", "Ours-M", "Ours-Joint", "Ours-Joint (release)")
BASELINE_METHODS = {"Flow-Th": "flow-th", "Flow-Sal": "flow-sal"}  # method -> `fusionseg.baselines` name
FUSION_DESIGNS = {"Ours-Joint": "paper", "Ours-Joint (release)": "release"}  # method -> fusion design
REFERENCE = "FusionSeg (official)"  # the DAVIS benchmark's published FusionSeg results (not ours)
TABLES = {"davis": "table1_davis", "youtube_objects": "table2_youtube_objects", "segtrack": "table3_segtrack"}
MOVING_FRACTION = 0.1  # Table 4: top 10% moving / static frames


@dataclass(frozen=True)
class Convention:
    """How a benchmark scores a sequence."""

    drop_first_last: bool  # DAVIS: frames 1..N-2 only
    boundary: bool  # also compute F (DAVIS); otherwise the F columns are NaN
    per_category: bool  # report per-category means (YouTube-Objects)


CONVENTIONS: dict[str, Convention] = {
    "davis": Convention(drop_first_last=True, boundary=True, per_category=False),
    "segtrack": Convention(drop_first_last=False, boundary=False, per_category=False),
    "youtube_objects": Convention(drop_first_last=False, boundary=False, per_category=True),
}


def convention(dataset: str) -> Convention:
    """The scoring convention of `dataset` (one of `CONVENTIONS`)."""
    try:
        return CONVENTIONS[dataset]
    except KeyError:
        raise ValueError(
            f"no evaluation convention for dataset {dataset!r}; known: {sorted(CONVENTIONS)}"
        ) from None


# --- predictions --------------------------------------------------------------------------------------


def _read_prediction(folder: Path, video: Video, index: int) -> np.ndarray:
    """Frame `index`'s predicted mask from `<folder>/<video>/<frame stem>.png` (nonzero = foreground)."""
    path = Path(folder) / video.name / f"{video.frames[index].name}.png"
    if not path.is_file():
        raise DataError(
            f"{path}: prediction not found (expected one PNG per annotated frame, named like "
            f"the frame, in {Path(folder) / video.name})"
        )
    return read_gray(path) > 0


def _predicted_masks(video: Video, indices: Sequence[int], predictions: Predictions) -> list[np.ndarray]:
    """The predicted masks for frames `indices` of `video`, from a folder or a callable."""
    if isinstance(predictions, (str, Path)):
        return [_read_prediction(Path(predictions), video, i) for i in indices]
    masks = list(predictions(video))
    if len(masks) != len(video):
        raise ValueError(f"predictions for {video.name}: {len(masks)} masks for {len(video)} frames")
    return [np.asarray(masks[i]) for i in indices]


# --- scoring ------------------------------------------------------------------------------------------


def score_frame(
    pred: np.ndarray, label: np.ndarray, boundary: bool, bound_th: float = 0.008
) -> tuple[float, float]:
    """(J, F) of one predicted mask against one label map; F is NaN when `boundary` is False.

    The prediction is resized (nearest) to the label's size; IGNORE pixels are skipped by J. F
    uses the label's foreground (DAVIS has no ignore pixels).
    """
    pred = metrics.match_size(pred, label.shape)
    j = metrics.iou(pred, label, ignore=IGNORE)
    f = metrics.f_measure(pred, label == FOREGROUND, bound_th) if boundary else float("nan")
    return j, f


def score_frames(
    videos: Sequence[Video], predictions: Predictions, dataset: str, progress: bool = True
) -> pd.DataFrame:
    """One row per annotated frame: sequence, category, frame, index, J, F (F NaN unless DAVIS).

    Every annotated frame is scored (DAVIS's first/last included; `score_videos` drops them), so
    that per-frame analyses (e.g. Table 4's motion ranking) see all of them.
    """
    conv = convention(dataset)
    rows = []
    for video in tqdm(videos, desc=f"eval {dataset}", unit="seq", disable=not progress):
        indices = video.annotated_indices
        if not indices:
            raise DataError(f"{video.name}: no annotated frame to score")
        for index, pred in zip(indices, _predicted_masks(video, indices, predictions), strict=True):
            label = video.label(index)
            j, f = score_frame(pred, label, conv.boundary)
            rows.append((video.name, video.category, video.frames[index].name, index, j, f))
    return pd.DataFrame(rows, columns=["sequence", "category", "frame", "index", "J", "F"])


def sequence_table(per_frame: pd.DataFrame, dataset: str, trimmed: bool = False) -> pd.DataFrame:
    """Per-sequence Mean / Recall / Decay of J and F from `score_frames` rows (sequence order kept).

    `trimmed`: the rows already leave out what the convention drops (the DAVIS benchmark's
    published per-frame values, `fusionseg.data.davis_benchmark`), so every row counts.
    """
    conv = convention(dataset)
    drop = conv.drop_first_last and not trimmed
    rows = []
    for name, frames in per_frame.groupby("sequence", sort=False):
        row: dict[str, object] = {"sequence": name, "category": frames["category"].iloc[0]}
        for measure in "JF":
            values = frames[measure].to_numpy()
            if np.isnan(values).all():
                stats = dict.fromkeys(STAT_NAMES, float("nan"))
            else:
                stats = metrics.sequence_statistics(values, drop)
            row |= {f"{measure}_{s}": stats[s] for s in STAT_NAMES}
        row["n_frames"] = len(frames) - (2 if drop else 0)
        rows.append(row)
    return pd.DataFrame(rows, columns=SEQUENCE_COLUMNS)


def score_videos(
    videos: Sequence[Video], predictions: Predictions, dataset: str, progress: bool = True
) -> pd.DataFrame:
    """One row per sequence: sequence, category, J_mean, J_recall, J_decay, F_mean, F_recall,
    F_decay, n_frames (frames scored), under the dataset's convention (`CONVENTIONS`)."""
    return sequence_table(score_frames(videos, predictions, dataset, progress), dataset)


def summarize(per_sequence: pd.DataFrame) -> dict[str, float]:
    """Dataset scores: each statistic's mean over sequences (measures that were not computed are left out)."""
    summary = {}
    for column in SEQUENCE_COLUMNS[2:-1]:
        values = per_sequence[column].to_numpy(dtype=float)
        if not np.isnan(values).all():
            summary[column] = float(values.mean())
    return summary


def category_table(per_sequence: pd.DataFrame) -> pd.DataFrame:
    """Mean J per category, then "Avg." = the mean over all sequences (YouTube-Objects' Table 2)."""
    means = metrics.category_means(per_sequence["J_mean"].tolist(), per_sequence["category"].tolist())
    counts = per_sequence["category"].value_counts()
    rows = [(name, value, int(counts[name])) for name, value in means.items()]
    rows.append(("Avg.", float(per_sequence["J_mean"].mean()), len(per_sequence)))
    return pd.DataFrame(rows, columns=["category", "J_mean", "n_sequences"])


# --- the paper's tables from per-frame scores -----------------------------------------------------


def frame_motion(flow_field: np.ndarray) -> float:
    """Amount of motion in a frame: mean flow magnitude divided by the frame's diagonal (Table 4)."""
    height, width = flow_field.shape[:2]
    magnitude = np.hypot(flow_field[..., 0].astype(np.float64), flow_field[..., 1].astype(np.float64))
    return float(magnitude.mean() / math.hypot(height, width))


def sequence_scores(per_frame: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Per (method, sequence): the benchmark's statistics (`sequence_table`; the `REFERENCE` rows come
    trimmed already)."""
    tables = []
    for method, frames in per_frame.groupby("method", sort=False):
        table = sequence_table(frames.drop(columns=["method"]), dataset, trimmed=method == REFERENCE)
        table.insert(0, "method", method)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def detail_table(per_sequence: pd.DataFrame) -> pd.DataFrame:
    """Per method: dataset scores (means over sequences), the number of sequences and of frames scored."""
    rows = []
    for method, table in per_sequence.groupby("method", sort=False):
        row = {"method": method} | {c: float(table[c].mean()) for c in SEQUENCE_COLUMNS[2:-1]}
        rows.append(row | {"n_sequences": len(table), "n_frames": int(table["n_frames"].sum())})
    return pd.DataFrame(rows)


def comparison_rows(per_sequence: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The book's comparison format (method, column, value in percent), as `fusionseg.paper_numbers`
    holds the paper's tables: "Avg. IoU" = mean J over sequences; YouTube-Objects also per category
    (`category_table`)."""
    rows = []
    for method, table in per_sequence.groupby("method", sort=False):
        if dataset == "youtube_objects":
            categories = category_table(table)
            for category, value in zip(categories["category"], categories["J_mean"], strict=True):
                rows.append((method, AVG if category == "Avg." else category, 100 * value))
        else:
            rows.append((method, AVG, 100 * float(table["J_mean"].mean())))
    return pd.DataFrame(rows, columns=["method", "column", "value"])


def moving_static(per_frame: pd.DataFrame, fraction: float = MOVING_FRACTION) -> pd.DataFrame:
    """Table 4: per method, mean J over the `fraction` most moving and the `fraction` most static frames.

    Frames are ranked by the `motion` column (`frame_motion`); ties keep the frames' order. Only the
    frames every method has are ranked (the `REFERENCE` has no first and last frames), so that
    all methods are scored on the same frames."""
    rows = []
    chosen_methods = per_frame[per_frame["method"].isin(["Ours-A", *FUSION_DESIGNS, REFERENCE])]
    keys = chosen_methods.set_index(["sequence", "index"]).index
    counts = keys.value_counts()
    common = keys.isin(counts.index[counts == chosen_methods["method"].nunique()])
    for method, frames in chosen_methods[common].groupby("method", sort=False):
        ranked = frames.sort_values("motion", kind="stable")
        count = max(1, math.ceil(fraction * len(ranked)))
        for subset, chosen in ((MOVING, ranked.tail(count)), (STATIC, ranked.head(count))):
            rows.append(
                {
                    "method": method,
                    "subset": subset,
                    "n_frames": len(chosen),
                    "motion_min": float(chosen["motion"].min()),
                    "motion_max": float(chosen["motion"].max()),
                    "J_mean": float(chosen["J"].mean()),
                }
            )
    return pd.DataFrame(rows)


# --- command line -------------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, choices=sorted(CONVENTIONS), help="benchmark to score")
    parser.add_argument("--root", required=True, type=Path, help="the dataset's folder (e.g. .../DAVIS)")
    parser.add_argument("--split", default=None, help="split to score (DAVIS: train, val, trainval)")
    parser.add_argument(
        "--pred",
        required=True,
        type=Path,
        help="predicted masks: PRED/<sequence>/<frame stem>.png, nonzero = fg",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the per-sequence table to this CSV")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _format_summary(summary: dict[str, float]) -> str:
    """The summary as a small table: one line per measure, columns mean / recall / decay."""
    lines = [f"{'':<4}{'mean':>8}{'recall':>8}{'decay':>8}"]
    for measure in "JF":
        if f"{measure}_mean" in summary:
            cells = "".join(f"{summary[f'{measure}_{s}']:>8.3f}" for s in STAT_NAMES)
            lines.append(f"{measure:<4}{cells}")
    return "\n".join(lines)


def run_command(args: argparse.Namespace) -> int:
    if not args.pred.is_dir():
        raise DataError(f"{args.pred}: prediction folder not found")
    videos = load_videos(args.dataset, args.root, args.split)
    per_sequence = score_videos(videos, args.pred, args.dataset, progress=not args.no_progress)
    columns = [c for c in SEQUENCE_COLUMNS if not per_sequence[c].isna().all()]
    print(per_sequence[columns].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    if convention(args.dataset).per_category:
        print()
        print(category_table(per_sequence).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    summary = summarize(per_sequence)
    title = " ".join(filter(None, [args.dataset, args.split]))
    print(f"\n{title}: {len(per_sequence)} sequences, {per_sequence['n_frames'].sum()} frames scored")
    print(_format_summary(summary))
    if args.out is not None:
        with atomic_path(args.out) as tmp:
            per_sequence.to_csv(tmp, index=False)
        print(f"wrote {args.out}")
    return 0
