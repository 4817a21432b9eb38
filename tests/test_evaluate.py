"""`fusionseg.evaluate` and `fusionseg eval`: per-dataset conventions on hand-made videos, the
command on written DAVIS layouts, and the real DAVIS val set (ground truth and an eroded copy
scored against an independent re-implementation of J and F)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from fusionseg import evaluate
from fusionseg.cli import main
from fusionseg.data import load_videos
from fusionseg.data.layouts import write_davis_sequence, write_segtrack_sequence, write_youtube_objects_shot
from fusionseg.data.types import Frame, Video
from fusionseg.io import DataError, read_gray, write_png


def square(shape: tuple[int, int], top: int, left: int, size: int) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


def make_video(folder: Path, name: str, masks: list[np.ndarray], category: str = "") -> Video:
    """A video whose frames' masks are PNG files (the images are never read when scoring)."""
    frames = []
    for index, mask in enumerate(masks):
        path = folder / name / f"{index:05d}.png"
        write_png(path, mask)
        frames.append(Frame(image_path=folder / "images" / name / f"{index:05d}.jpg", mask_paths=(path,)))
    return Video(name=name, frames=frames, category=category)


# --- conventions on hand-made videos ----------------------------------------------------------------


def test_davis_convention_drops_first_and_last_frame(tmp_path):
    gt = square((20, 20), 5, 5, 10)
    video = make_video(tmp_path, "seq", [gt] * 5)
    empty = np.zeros_like(gt)
    half = gt.copy()
    half[:, 10:] = False  # J 0.5, F 23/35 (tests/test_metrics.py works these out by hand)
    preds = [empty, gt, half, gt, empty]  # first and last frame wrong: not scored
    table = evaluate.score_videos([video], lambda v: preds, "davis", progress=False)
    row = table.iloc[0]
    assert list(table.columns) == evaluate.SEQUENCE_COLUMNS
    assert row["n_frames"] == 3
    assert row["J_mean"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert row["F_mean"] == pytest.approx((1 + 23 / 35 + 1) / 3)
    assert row["J_recall"] == pytest.approx(2 / 3)  # 0.5 is not > 0.5
    assert row["F_recall"] == 1.0
    # 3 frames: linspace(1, 3, 5) = [1, 1.5, 2, 2.5, 3] -> edges [0, 1, 1, 2, 2]; bins [0..1], [2..2]
    assert row["J_decay"] == pytest.approx((1 + 0.5) / 2 - 1)
    frames = evaluate.score_frames([video], lambda v: preds, "davis", progress=False)
    assert frames["J"].tolist() == pytest.approx([0, 1, 0.5, 1, 0])  # every frame, for analyses


def test_predictions_at_half_size_are_resized_to_the_annotation(tmp_path):
    gt = square((40, 60), 10, 20, 16)  # even offsets: exactly representable at half size
    video = make_video(tmp_path / "gt", "seq", [gt] * 4)
    pred_dir = tmp_path / "pred"
    for index in range(4):
        write_png(pred_dir / "seq" / f"{index:05d}.png", gt[::2, ::2])
    row = evaluate.score_videos([video], pred_dir, "davis", progress=False).iloc[0]
    assert (row["J_mean"], row["F_mean"]) == (1.0, 1.0)
    # shifted by one half-size pixel (2 px at full size): J = 16*14 / (16*18)
    shifted = np.roll(gt, 2, axis=1)[::2, ::2]
    row = evaluate.score_videos([video], lambda v: [shifted] * 4, "davis", progress=False).iloc[0]
    assert row["J_mean"] == pytest.approx(14 / 18)


def test_missing_prediction_file_is_named(tmp_path):
    video = make_video(tmp_path / "gt", "seq", [square((8, 8), 2, 2, 4)] * 3)
    pred_dir = tmp_path / "pred"
    write_png(pred_dir / "seq" / "00000.png", np.zeros((8, 8), bool))
    with pytest.raises(DataError, match=r"pred/seq/00001\.png: prediction not found"):
        evaluate.score_videos([video], pred_dir, "davis", progress=False)
    with pytest.raises(ValueError, match="2 masks for 3 frames"):
        evaluate.score_videos([video], lambda v: [np.zeros((8, 8))] * 2, "davis", progress=False)
    with pytest.raises(ValueError, match="no evaluation convention"):
        evaluate.score_videos([video], pred_dir, "voc", progress=False)


def test_segtrack_convention_scores_every_annotated_frame_with_iou_only(tmp_path):
    gt = square((20, 20), 5, 5, 10)
    video = make_video(tmp_path, "seq", [gt, gt, gt])
    # an unannotated middle frame (SegTrack-v2 / YouTube-Objects) is not scored
    video.frames.insert(1, Frame(image_path=tmp_path / "images" / "x.jpg"))
    half = gt.copy()
    half[:, 10:] = False
    preds = [half, np.ones_like(gt), gt, gt]  # the unannotated frame's prediction is ignored
    table = evaluate.score_videos([video], lambda v: preds, "segtrack", progress=False)
    row = table.iloc[0]
    assert row["n_frames"] == 3
    assert row["J_mean"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert math.isnan(row["F_mean"])
    summary = evaluate.summarize(table)
    assert summary == pytest.approx({"J_mean": 2.5 / 3, "J_recall": 2 / 3, "J_decay": (0.5 + 1) / 2 - 1})


def test_youtube_objects_category_table(tmp_path):
    gt = square((20, 20), 5, 5, 10)
    half = gt.copy()
    half[:, 10:] = False
    videos = [
        make_video(tmp_path, "cat-1", [gt, gt], "cat"),  # mean IoU 1
        make_video(tmp_path, "cat-2", [half, half], "cat"),  # prediction gt: IoU 0.5 per frame
        make_video(tmp_path, "dog-1", [gt, half], "dog"),  # (1 + 0.5) / 2 = 0.75
    ]
    table = evaluate.score_videos(videos, lambda v: [gt, gt], "youtube_objects", progress=False)
    assert table["J_mean"].tolist() == pytest.approx([1.0, 0.5, 0.75])
    categories = evaluate.category_table(table)
    assert categories["category"].tolist() == ["cat", "dog", "Avg."]
    # per category: cat (1 + 0.5) / 2 = 0.75, dog 0.75; Avg. over all shots (1 + 0.5 + 0.75) / 3
    assert categories["J_mean"].tolist() == pytest.approx([0.75, 0.75, 0.75])
    assert categories["n_sequences"].tolist() == [2, 1, 3]
    assert evaluate.summarize(table)["J_mean"] == pytest.approx(0.75)


# --- the command on a written DAVIS layout ----------------------------------------------------------


def test_eval_command_on_written_davis_layout(tmp_path, capsys):
    root, pred_dir = tmp_path / "DAVIS", tmp_path / "pred"
    frames = [np.zeros((20, 20, 3), np.uint8)] * 4
    gt = square((20, 20), 5, 5, 10)
    write_davis_sequence(root, "a", frames, [gt] * 4, split="val")
    write_davis_sequence(root, "b", frames, [gt] * 4, split="val")
    write_davis_sequence(root, "c", frames, [gt] * 4, split="train")  # not in val: not scored
    half = gt.copy()
    half[:, 10:] = False
    for index in range(4):
        write_png(pred_dir / "a" / f"{index:05d}.png", gt)
        write_png(pred_dir / "b" / f"{index:05d}.png", half)
    out = tmp_path / "out" / "scores.csv"
    argv = ["eval", "--dataset", "davis", "--root", str(root), "--split", "val", "--pred", str(pred_dir)]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out)
    assert table["sequence"].tolist() == ["a", "b"]
    assert table["J_mean"].tolist() == pytest.approx([1.0, 0.5])
    assert table["F_mean"].tolist() == pytest.approx([1.0, 23 / 35])
    assert table["n_frames"].tolist() == [2, 2]
    # summary: J mean 0.75, recall (1 + 0) / 2 = 0.5, decay 0; F mean (1 + 23/35) / 2 = 0.829
    assert "J      0.750   0.500   0.000" in printed
    assert "F      0.829   1.000   0.000" in printed
    assert not list(out.parent.glob(".*tmp"))  # written atomically, no leftovers
    # a missing prediction: exit status 1 and a message naming the file
    (pred_dir / "b" / "00002.png").unlink()
    assert main([*argv, "--no-progress"]) == 1
    assert f"{pred_dir / 'b' / '00002.png'}: prediction not found" in capsys.readouterr().err


def test_eval_command_on_written_segtrack_layout(tmp_path, capsys):
    """SegTrack-v2: two objects merged with OR; IoU per sequence over all frames; no F."""
    root, pred_dir = tmp_path / "SegTrackv2", tmp_path / "pred"
    frames = [np.zeros((20, 20, 3), np.uint8)] * 3
    first, second = square((20, 20), 2, 2, 6), square((20, 20), 10, 10, 8)  # 36 and 64 px
    write_segtrack_sequence(root, "bmx", frames, [[first] * 3, [second] * 3])
    for index in range(3):
        write_png(pred_dir / "bmx" / f"bmx_{index:05d}.png", first)  # finds only the first object
    argv = ["eval", "--dataset", "segtrack", "--root", str(root), "--pred", str(pred_dir)]
    assert main([*argv, "--no-progress", "--out", str(tmp_path / "s.csv")]) == 0
    table = pd.read_csv(tmp_path / "s.csv")
    assert table["J_mean"].tolist() == pytest.approx([36 / (36 + 64)])
    assert table["n_frames"].tolist() == [3]  # no frame dropped
    assert table["F_mean"].isna().all()
    printed = capsys.readouterr().out
    assert "J      0.360" in printed and "F_mean" not in printed


def test_eval_command_on_written_youtube_objects_layout(tmp_path, capsys):
    """YouTube-Objects: only annotated frames are scored; per-category means and the Avg. row."""
    root, pred_dir = tmp_path / "yto", tmp_path / "pred"
    frames = [np.zeros((24, 24, 3), np.uint8)] * 3
    gt = square((24, 24), 4, 4, 16)
    half = gt.copy()
    half[:, 12:] = False  # IoU 0.5 against gt
    shots = [("cat", 1, half), ("cat", 2, gt), ("dog", 1, half)]  # (category, video, prediction)
    for category, video_id, prediction in shots:
        write_youtube_objects_shot(root, category, video_id, frames, [gt, None, gt])  # frame 1 unannotated
        for stem in ("00000", "00002"):
            write_png(pred_dir / f"{category}-{video_id:04d}-001" / f"{stem}.png", prediction)
    argv = ["eval", "--dataset", "youtube_objects", "--root", str(root), "--pred", str(pred_dir)]
    assert main([*argv, "--no-progress", "--out", str(tmp_path / "y.csv")]) == 0
    table = pd.read_csv(tmp_path / "y.csv")
    assert table["J_mean"].tolist() == pytest.approx([0.5, 1.0, 0.5])
    assert table["n_frames"].tolist() == [2, 2, 2]
    printed = capsys.readouterr().out
    # cat (0.5 + 1) / 2 = 0.75, dog 0.5, Avg. over the three shots 2/3
    assert "cat   0.750" in printed and "dog   0.500" in printed and "Avg.   0.667" in printed


# --- real DAVIS val ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_eval_ground_truth_against_itself_on_davis_val(davis_root, tmp_path, capsys):
    """All of DAVIS val (20 sequences, 1,376 frames; 12-20 s here): the ground truth scores J = F = 1."""
    out = tmp_path / "gt.csv"
    argv = ["eval", "--dataset", "davis", "--root", str(davis_root), "--split", "val"]
    assert main([*argv, "--pred", str(davis_root / "Annotations" / "480p"), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert len(table) == 20 and table["n_frames"].sum() == 1376 - 2 * 20
    for column in evaluate.SEQUENCE_COLUMNS[2:-1]:
        expected = 0.0 if column.endswith("decay") else 1.0
        assert table[column].tolist() == [expected] * 20, column
    assert "J      1.000   1.000   0.000" in capsys.readouterr().out


def independent_boundary(mask: np.ndarray) -> np.ndarray:
    """seg2bmap again, written differently: compare each pixel with its right, bottom and
    bottom-right neighbours in an edge-replicated copy (replicated neighbours never differ)."""
    padded = np.pad(mask, ((0, 1), (0, 1)), mode="edge")
    return (mask != padded[:-1, 1:]) | (mask != padded[1:, :-1]) | (mask != padded[1:, 1:])


def independent_f(pred: np.ndarray, gt: np.ndarray) -> float:
    """Boundary F with distance transforms: a boundary pixel matches when the other boundary is
    within Euclidean distance ceil(0.008 * diagonal) (the disk of that radius)."""
    radius = math.ceil(0.008 * math.hypot(*gt.shape))
    pred_b, gt_b = independent_boundary(pred), independent_boundary(gt)
    if not pred_b.any() or not gt_b.any():
        return 1.0 if pred_b.any() == gt_b.any() else 0.0
    precision = np.mean(ndimage.distance_transform_edt(~gt_b)[pred_b] <= radius)
    recall = np.mean(ndimage.distance_transform_edt(~pred_b)[gt_b] <= radius)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def independent_j(pred: np.ndarray, gt: np.ndarray) -> float:
    union = np.logical_or(pred, gt).sum()
    return 1.0 if union == 0 else np.logical_and(pred, gt).sum() / union


def independent_statistics(values: list[float]) -> tuple[float, float, float]:
    """Mean / recall / decay over frames 1..N-2, bins from round-half-up of linspace(1, n, 5)."""
    x = np.asarray(values[1:-1])
    n = len(x)
    edges = [int(1 + i * (n - 1) / 4 + 0.5) - 1 for i in range(5)]
    first, last = x[edges[0] : edges[1] + 1], x[edges[3] : edges[4] + 1]
    return x.mean(), np.mean(x > 0.5), first.mean() - last.mean()


@pytest.mark.parametrize("half_size", [False, True], ids=["full-size", "half-size"])
def test_eroded_ground_truth_matches_independent_computation(davis_root, tmp_path, half_size):
    """Three short val sequences (121 frames), ground truth eroded with a 17x17 square (8 px, the F tolerance:
    matches at distance 8 count, at 9 do not, so the disk must be exact); half-size
    predictions (the real frames' 427x240) are upsampled by pixel repetition in the reference."""
    names = ["car-shadow", "motocross-jump", "scooter-black"]
    videos = [v for v in load_videos("davis", davis_root, "val") if v.name in names]
    assert [v.name for v in videos] == names
    pred_dir = tmp_path / "pred"
    kernel = np.ones((17, 17), np.uint8)
    expected = {}
    for video in videos:
        j_values, f_values = [], []
        for frame in video.frames:
            gt = read_gray(frame.mask_paths[0]) > 0
            eroded = cv2.erode(gt.astype(np.uint8), kernel)
            if half_size:
                eroded = eroded[::2, ::2]
            write_png(pred_dir / video.name / f"{frame.name}.png", eroded.astype(bool))
            pred = np.repeat(np.repeat(eroded, 2, 0), 2, 1) if half_size else eroded
            j_values.append(independent_j(pred > 0, gt))
            f_values.append(independent_f(pred > 0, gt))
        expected[video.name] = (*independent_statistics(j_values), *independent_statistics(f_values))
    table = evaluate.score_videos(videos, pred_dir, "davis", progress=False).set_index("sequence")
    columns = ["J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay"]
    for name, values in expected.items():
        assert table.loc[name, columns].tolist() == pytest.approx(values, abs=1e-12), name
    # an eroded mask is a clearly imperfect one: the test would notice a metric stuck at 1
    assert table["J_mean"].max() < 0.97 and table["F_mean"].max() < 1.0
