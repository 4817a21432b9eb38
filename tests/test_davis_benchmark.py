"""The DAVIS benchmark's published FusionSeg results: the reader against the real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fusionseg.data import load_videos
from fusionseg.data.davis_benchmark import PER_FRAME_FILE, read_published_frames, read_published_summary
from fusionseg.data.types import Frame, Video
from fusionseg.evaluate import sequence_table, summarize
from fusionseg.io import DataError


def test_official_val_scores_recomputed_from_the_published_frames(benchmark_root, davis_root):
    """Per-frame values (frames 1..N-2) -> sequence statistics -> the published val summary."""
    videos = load_videos("davis", davis_root, "val")
    frames = read_published_frames(benchmark_root, videos)
    bear_like = videos[0]
    first = frames[frames["sequence"] == bear_like.name]
    assert list(first["index"]) == list(range(1, len(bear_like) - 1))
    per_sequence = sequence_table(frames, "davis", trimmed=True)
    assert len(per_sequence) == 20
    assert (per_sequence["n_frames"] == [len(v) - 2 for v in videos]).all()
    summary = summarize(per_sequence)
    published = read_published_summary(benchmark_root, "val")
    assert round(summary["J_mean"], 3) == published["Jmean"] == 0.707
    assert round(summary["F_mean"], 3) == published["Fmean"] == 0.653
    assert round(summary["J_decay"], 3) == published["Jdecay"]


def _video(name: str, n: int) -> Video:
    return Video(
        name=name, frames=[Frame(image_path=Path(f"{k:05d}.jpg")) for k in range(n)], dataset="davis"
    )


def test_a_list_of_the_wrong_length_names_the_file_and_sequence(tmp_path):
    (tmp_path / PER_FRAME_FILE).write_text(
        json.dumps({"id": "fseg", "cows": {"J": ["0.5"] * 3, "F": ["0.5"] * 3}})
    )
    with pytest.raises(DataError, match=rf"{PER_FRAME_FILE}.*cows has 3 J .* expected 4"):
        read_published_frames(tmp_path, [_video("cows", 6)])
    with pytest.raises(DataError, match="no 'J' and 'F' lists for sequence 'dog'"):
        read_published_frames(tmp_path, [_video("dog", 5)])
    frames = read_published_frames(tmp_path, [_video("cows", 5)])
    assert list(frames["frame"]) == ["00001", "00002", "00003"] and frames["J"].tolist() == [0.5] * 3


def test_missing_or_broken_summary_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="global_eval_val_2016.js: not found"):
        read_published_summary(tmp_path, "val")
    (tmp_path / "global_eval_val_2016.js").write_text('var x = {"osvos": {"Jmean": "0.8"}};')
    with pytest.raises(DataError, match="entry 'fseg'"):
        read_published_summary(tmp_path, "val")
