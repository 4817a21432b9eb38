"""The DAVIS 2016 benchmark's published evaluation data: the authors' own FusionSeg results.

Layout (root = the `davis_benchmark/` folder, byte-for-byte copies of the benchmark site's files):
    fseg_davis_raw_eval_2016.json   {"id": "fseg", "<sequence>": {"J": [...], "F": [...]}, ...}
    global_eval_{train,val,trainval}_2016.js   `var ... = {"<method>": {"Jmean": ..., ...}, ...};`

Quirks (checked against the real files by tests/test_metrics.py and tests/test_davis_benchmark.py):
- per-frame values are strings rounded to 3 decimals;
- each sequence's lists hold N - 2 values for its N frames: the toolkit already dropped the first
  and the last frame, so value k belongs to frame k + 1 and statistics are taken over the lists as
  they are (`fusionseg.evaluate.sequence_table(..., trimmed=True)`).

This is the reference our own numbers are compared with: FusionSeg's published masks scored by
the benchmark, not a number we computed from masks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fusionseg.data.types import Video
from fusionseg.io import DataError

PER_FRAME_FILE = "fseg_davis_raw_eval_2016.json"
METHOD_ID = "fseg"  # the benchmark's name for FusionSeg


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: not found (expected the DAVIS benchmark's {path.name})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not JSON: {exc}") from exc


def read_published_frames(root: Path, videos: Sequence[Video]) -> pd.DataFrame:
    """FusionSeg's published per-frame J and F on `videos` (DAVIS 2016), in `score_frames` form.

    One row per frame 1 .. N-2 of each video: sequence, category, frame, index, J, F (floats).
    A sequence missing from the file, or with a list of another length than N - 2, is an error
    that names the file and the sequence.
    """
    path = Path(root) / PER_FRAME_FILE
    raw = _read_json(path)
    rows = []
    for video in videos:
        entry = raw.get(video.name)
        if not isinstance(entry, dict) or "J" not in entry or "F" not in entry:
            raise DataError(f"{path}: no 'J' and 'F' lists for sequence {video.name!r}")
        if len(entry["J"]) != len(video) - 2 or len(entry["F"]) != len(video) - 2:
            raise DataError(
                f"{path}: {video.name} has {len(entry['J'])} J and {len(entry['F'])} F values; expected "
                f"{len(video) - 2} (its {len(video)} frames minus the first and the last)"
            )
        for k, (j, f) in enumerate(zip(entry["J"], entry["F"], strict=True)):
            index = k + 1
            rows.append((video.name, video.category, video.frames[index].name, index, float(j), float(f)))
    return pd.DataFrame(rows, columns=["sequence", "category", "frame", "index", "J", "F"])


def read_published_summary(root: Path, split: str, method: str = METHOD_ID) -> dict[str, float]:
    """The benchmark's summary of `method` on `split` ("train", "val" or "trainval"):
    {"Jmean": ..., "Jrecall": ..., "Jdecay": ..., "Fmean": ..., ...} from global_eval_<split>_2016.js."""
    path = Path(root) / f"global_eval_{split}_2016.js"
    if not path.is_file():
        raise DataError(f"{path}: not found (expected the DAVIS benchmark's summary for split {split!r})")
    text = path.read_text()
    try:
        table = json.loads(text[text.index("{") : text.rindex("}") + 1])
        return {key: float(value) for key, value in table[method].items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: expected `var x = {{...}};` with an entry {method!r}: {exc}") from exc
