"""Flow-Th / Flow-Sal on constructed flow and on a synthetic frame pair with a moving square."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from fusionseg import cli
from fusionseg.baselines import (
    camera_motion,
    flow_saliency,
    flow_threshold,
    remove_camera_motion,
    run_baseline,
    score_variants,
    segment_flow,
    upsample_mask,
    variant_file,
    variant_table,
)
from fusionseg.data import load_videos
from fusionseg.data.layouts import write_davis_sequence
from fusionseg.data.types import Video
from fusionseg.flow import FlowCache, compute_flow
from fusionseg.io import read_gray
from fusionseg.profiles import REAL_FLOW_BASELINES


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


# --------------------------------------------------------------------------------------------------
# Constructed flow fields


def test_flow_th_thresholds_at_mean_plus_one_std():
    # 10x10 field, 3x3 block of magnitude 5 (3-4-5 vectors): mean 0.45, std sqrt(2.25 - 0.2025) = 1.431,
    # threshold 1.881: exactly the block. A magnitude of 1.8 elsewhere stays below the threshold.
    flow = np.zeros((10, 10, 2), np.float32)
    flow[2:5, 3:6] = (3, 4)
    expected = np.zeros((10, 10), bool)
    expected[2:5, 3:6] = True
    assert np.array_equal(flow_threshold(flow), expected)
    flow[9, 9] = (1.8, 0)  # mean 0.468, std 1.446: threshold 1.914 > 1.8
    assert np.array_equal(flow_threshold(flow), expected)


def test_camera_motion_recovers_an_affine_pan_and_zoom_despite_an_object():
    height, width = 60, 80
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    matrix = np.array([[1.02, 0.0, 3.0], [0.0, 1.02, -1.5]])  # zoom 2 % and pan (3, -1.5)
    camera = np.stack([matrix[0, 0] * xs + matrix[0, 2] - xs, matrix[1, 1] * ys + matrix[1, 2] - ys], axis=2)
    flow = camera.copy()
    flow[20:35, 30:50] += (-6, 4)  # an object moving against the camera: RANSAC outliers
    assert np.allclose(camera_motion(flow), matrix, atol=1e-3)
    residual = remove_camera_motion(flow)
    assert np.allclose(residual[20:35, 30:50], (-6, 4), atol=0.01)
    outside = np.ones((height, width), bool)
    outside[20:35, 30:50] = False
    assert np.abs(residual[outside]).max() < 0.01


def test_without_a_fit_the_flow_is_left_as_it_is(monkeypatch):
    import fusionseg.baselines as baselines

    monkeypatch.setattr(baselines, "camera_motion", lambda *a, **k: None)
    flow = np.random.default_rng(0).normal(size=(8, 8, 2)).astype(np.float32)
    assert np.array_equal(remove_camera_motion(flow), flow)


def test_upsample_mask_is_nearest_neighbour():
    mask = np.array([[True, False], [False, True]])
    assert upsample_mask(mask, (4, 4)).tolist() == np.kron(mask, np.ones((2, 2), bool)).tolist()


def test_unknown_baseline_is_refused():
    with pytest.raises(ValueError, match="unknown baseline"):
        segment_flow(np.zeros((4, 4, 2), np.float32), "flow-magic")


# --------------------------------------------------------------------------------------------------
# A synthetic frame pair: a textured square moving over a textured background


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    noise = rng.random((height, width)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 2.0) * 1020 - 382, 0, 255).astype(np.uint8)


def _moving_square(
    pan: tuple[int, int], motion: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames a, b and the square's mask in a: the camera pans the background by `pan` and the square
    moves by `motion` relative to the background."""
    height, width, side, margin = 120, 160, 32, 16
    rng = np.random.default_rng(0)
    canvas, square = _texture(rng, height + 2 * margin, width + 2 * margin), _texture(rng, side, side)
    a = canvas[margin : margin + height, margin : margin + width].copy()
    b = canvas[margin - pan[1] : margin - pan[1] + height, margin - pan[0] : margin - pan[0] + width].copy()
    y0, x0 = 44, 64
    a[y0 : y0 + side, x0 : x0 + side] = square
    y1, x1 = y0 + pan[1] + motion[1], x0 + pan[0] + motion[0]
    b[y1 : y1 + side, x1 : x1 + side] = square
    mask = np.zeros((height, width), bool)
    mask[y0 : y0 + side, x0 : x0 + side] = True
    return a, b, mask


def test_flow_th_finds_a_moving_square_on_a_static_background():
    a, b, square = _moving_square(pan=(0, 0), motion=(-4, 3))
    flow = compute_flow(a, b, "dis")
    assert _iou(segment_flow(flow, "flow-th"), square) > 0.7
    assert _iou(segment_flow(flow, "flow-th", camera_compensation=True), square) > 0.7


def test_under_a_camera_pan_only_the_compensated_flow_th_finds_the_square():
    # The background moves by 6 px, the square by |(2, 3)| = 3.6 px: plain Flow-Th picks the background.
    a, b, square = _moving_square(pan=(6, 0), motion=(-4, 3))
    flow = compute_flow(a, b, "dis")
    assert _iou(segment_flow(flow, "flow-th"), square) < 0.1
    assert _iou(segment_flow(flow, "flow-th", camera_compensation=True), square) > 0.7


def test_flow_sal_prefers_the_moving_square():
    a, b, square = _moving_square(pan=(0, 0), motion=(-4, 3))
    flow = compute_flow(a, b, "dis")
    for method in ("fine_grained", "spectral_residual"):
        mask = flow_saliency(flow, method)
        # Far more of the square than of the background is called salient.
        assert mask[square].mean() > 3 * mask[~square].mean()


# --------------------------------------------------------------------------------------------------
# Whole videos: masks on disk at the annotation size, scored by fusionseg.evaluate


def _write_square_davis(root, name: str = "square", split: str = "val") -> Video:
    """A DAVIS-layout sequence (val): a square moving right 3 px per frame over a static texture;
    annotations at twice the frame size, like the real copy (427x240 frames, 854x480 masks)."""
    rng = np.random.default_rng(1)
    background, square = _texture(rng, 96, 128), _texture(rng, 24, 24)
    frames, masks = [], []
    for i in range(4):
        image = background.copy()
        image[36:60, 40 + 3 * i : 64 + 3 * i] = square
        mask = np.zeros((96, 128), np.uint8)
        mask[36:60, 40 + 3 * i : 64 + 3 * i] = 255
        frames.append(np.repeat(image[..., None], 3, axis=2))
        masks.append(np.kron(mask, np.ones((2, 2), np.uint8)))
    write_davis_sequence(root, name, frames, masks, split=split)
    return next(v for v in load_videos("davis", root, split) if v.name == name)


def test_run_baseline_writes_annotation_sized_masks_and_scores_them(tmp_path):
    video = _write_square_davis(tmp_path / "DAVIS")
    out = tmp_path / "masks"
    table = run_baseline([video], "davis", out, "flow-th", cache=FlowCache(tmp_path / "cache"))
    written = sorted(p.name for p in (out / "square").iterdir())
    assert written == ["00000.png", "00001.png", "00002.png", "00003.png"]
    mask = read_gray(out / "square" / "00001.png")
    assert mask.shape == (192, 256) and set(np.unique(mask)) <= {0, 255}
    assert isinstance(table, pd.DataFrame) and table["sequence"].tolist() == ["square"]
    assert table.loc[0, "J_mean"] > 0.6  # scored on frames 1..2 (DAVIS drops the first and last)


def test_flow_and_baseline_commands(tmp_path, capsys):
    root = tmp_path / "DAVIS"
    _write_square_davis(root)
    cache, out = tmp_path / "cache", tmp_path / "masks"
    common = ["--dataset", "davis", "--root", str(root), "--split", "val", "--cache", str(cache)]
    assert cli.main(["flow", *common, "--method", "farneback", "--shard", "0/1", "--size", "48x64"]) == 0
    (folder,) = (cache / "davis").iterdir()
    assert np.load(folder / "flow" / "00000.npy").shape == (48, 64, 2)
    args = ["baseline", "flow-sal", *common, "--out", str(out), "--camera-compensation", "--preset", "fast"]
    assert cli.main(args) == 0
    assert len(list((out / "square").glob("*.png"))) == 4
    assert pd.read_csv(out / "per_sequence.csv")["sequence"].tolist() == ["square"]
    assert "J_mean=" in capsys.readouterr().out


@pytest.mark.slow
def test_variant_table_scores_every_variant_of_the_real_run_beside_the_papers_rows(tmp_path):
    root = tmp_path / "DAVIS"
    _write_square_davis(root, "square", "val")
    _write_square_davis(root, "square-train", "train")
    videos = load_videos("davis", root, "trainval")
    val_names = {video.name for video in load_videos("davis", root, "val")}
    scores = score_variants(videos, val_names, REAL_FLOW_BASELINES, FlowCache(tmp_path / "cache"))
    # Flow-Th with DIS on trainval, Flow-Sal with DIS on val, both with DeepFlow on val; each x2 (camera)
    assert len({variant_file(variant) for variant in scores}) == len(scores) == 2 + 2 + 4
    table = variant_table(scores, val_names)
    ours = table[table["source"] == "ours"]
    # the trainval variants also get a row for their val subset
    assert len(ours) == 2 * 2 + 2 + 4
    assert ours.groupby("split")["n_sequences"].unique().to_dict() == {"trainval": [2], "val": [1]}
    paper = table[table["source"] == "paper Table 1"].set_index("baseline")["J_mean"]
    assert paper.to_dict() == pytest.approx({"flow-th": 0.4295, "flow-sal": 0.3022})
