"""Optical flow, the Middlebury flow image, and the flow cache."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from fusionseg import flow as flowmod
from fusionseg.data.types import Frame, Video
from fusionseg.flow import (
    FlowCache,
    compute_flow,
    compute_videos,
    flow_pairs,
    flow_to_color,
    load_raw_flow,
    parse_shard,
    select_shard,
    video_flow,
)
from fusionseg.io import read_rgb, write_png

# --------------------------------------------------------------------------------------------------
# Flow images: known vectors, hand-computed from the wheel's definition


def _one_row(*vectors: tuple[float, float]) -> np.ndarray:
    return np.array([vectors], dtype=np.float64)


def test_wheel_colours_of_the_four_directions_at_full_radius():
    # angle a = atan2(-v, -u)/pi; wheel position (a + 1)/2 * 54 (0-based).
    # +u (v = +0): atan2(-0, -1) = -pi -> position 0 -> RY[0] = (255, 0, 0).
    # -u: atan2(-0, +1) = -0 -> position 27 = CB[2]: G = 255 - floor(255*2/11) = 209 -> (0, 209, 255).
    # +v (down): atan2(-1, -0) = -pi/2 -> position 13.5, halfway between RY[13] (G 221) and RY[14]
    #   (G 238): G = floor(229.5) = 229 -> (255, 229, 0).
    # -v (up): position 40.5, halfway between BM[4] (R 78) and BM[5] (R 98) -> (88, 0, 255).
    image = flow_to_color(_one_row((1, 0), (-1, 0), (0, 1), (0, -1)))
    assert image.dtype == np.uint8 and image.shape == (1, 4, 3)
    assert image[0].tolist() == [[255, 0, 0], [0, 209, 255], [255, 229, 0], [88, 0, 255]]


def test_radius_sets_saturation_and_zero_flow_is_white():
    # Normalised by the frame's largest radius (4): +u of 2 has radius 0.5, colour 1 - 0.5*(1 - wheel):
    # R = 255, G = B = floor(255 * 0.5) = 127. Zero flow is white.
    image = flow_to_color(_one_row((4, 0), (2, 0), (0, 0)))
    assert image[0].tolist() == [[255, 0, 0], [255, 127, 127], [255, 255, 255]]


def test_normalisation_is_per_frame_not_absolute():
    small = flow_to_color(_one_row((0.01, 0), (0.005, 0)))
    large = flow_to_color(_one_row((100, 0), (50, 0)))
    assert np.array_equal(small, large)


def test_all_zero_flow_is_white():
    assert (flow_to_color(np.zeros((3, 5, 2))) == 255).all()


def test_unknown_and_nan_flow_are_black_and_ignored_by_the_maximum():
    image = flow_to_color(_one_row((2, 0), (1e10, 0), (np.nan, 1.0), (1, 0)))
    assert image[0, 0].tolist() == [255, 0, 0]  # the maximum radius is 2, not 1e10
    assert image[0, 1].tolist() == [0, 0, 0]
    assert image[0, 2].tolist() == [0, 0, 0]
    assert image[0, 3].tolist() == [255, 127, 127]


def test_radius_above_one_with_a_fixed_maximum_is_darkened():
    # max_flow = 1: +u of 2 is out of range -> 0.75 * wheel colour: R = floor(255 * 0.75) = 191.
    image = flow_to_color(_one_row((2, 0)), max_flow=1.0)
    assert image[0, 0].tolist() == [191, 0, 0]


def _reference_flow_to_color(flow: np.ndarray, max_flow: float | None = None) -> np.ndarray:
    """An independent transcription of flowToColor.m + computeColor.m: per pixel, 1-based wheel.

    Returns 255 * colour *before* the final floor, so that the test can tell a real difference from
    a last-bit rounding difference of atan2 (libm's and NumPy's differ by one ulp now and then).
    """
    lengths = {"RY": 15, "YG": 6, "GC": 4, "CB": 11, "BM": 13, "MR": 6}
    wheel = []  # list of [r, g, b]
    for i in range(lengths["RY"]):
        wheel.append([255, math.floor(255 * i / lengths["RY"]), 0])
    for i in range(lengths["YG"]):
        wheel.append([255 - math.floor(255 * i / lengths["YG"]), 255, 0])
    for i in range(lengths["GC"]):
        wheel.append([0, 255, math.floor(255 * i / lengths["GC"])])
    for i in range(lengths["CB"]):
        wheel.append([0, 255 - math.floor(255 * i / lengths["CB"]), 255])
    for i in range(lengths["BM"]):
        wheel.append([math.floor(255 * i / lengths["BM"]), 0, 255])
    for i in range(lengths["MR"]):
        wheel.append([255, 0, 255 - math.floor(255 * i / lengths["MR"])])
    ncols = len(wheel)
    height, width = flow.shape[:2]
    maxrad = -1.0
    for y in range(height):
        for x in range(width):
            u, v = float(flow[y, x, 0]), float(flow[y, x, 1])
            if not (math.isnan(u) or math.isnan(v) or abs(u) > 1e9 or abs(v) > 1e9):
                maxrad = max(maxrad, math.sqrt(u * u + v * v))
    if max_flow is not None and max_flow > 0:
        maxrad = max_flow
    out = np.zeros((height, width, 3), dtype=np.float64)
    for y in range(height):
        for x in range(width):
            u, v = float(flow[y, x, 0]), float(flow[y, x, 1])
            if math.isnan(u) or math.isnan(v) or abs(u) > 1e9 or abs(v) > 1e9:
                continue  # black
            u /= maxrad + 2.220446049250313e-16
            v /= maxrad + 2.220446049250313e-16
            rad = math.sqrt(u * u + v * v)
            fk = (math.atan2(-v, -u) / math.pi + 1) / 2 * (ncols - 1) + 1  # 1 .. ncols
            k0 = math.floor(fk)
            k1 = 1 if k0 + 1 == ncols + 1 else k0 + 1
            f = fk - k0
            for c in range(3):
                col = (1 - f) * wheel[k0 - 1][c] / 255 + f * wheel[k1 - 1][c] / 255
                col = 1 - rad * (1 - col) if rad <= 1 else col * 0.75
                out[y, x, c] = 255 * col
    return out


@pytest.mark.parametrize("max_flow", [None, 3.0])
def test_whole_frame_matches_an_independent_per_pixel_transcription(max_flow):
    rng = np.random.default_rng(7)
    flow = rng.normal(scale=4.0, size=(23, 31, 2))
    flow[0, :4] = [[1, 0], [-1, 0], [0, 1], [0, -1]]  # exact axis directions (wheel ends)
    flow[1, 0] = [0, 0]
    flow[2, 0] = [np.nan, 0]
    flow[2, 1] = [0, 2e9]
    ours = flow_to_color(flow, max_flow).astype(np.int64)
    reference = _reference_flow_to_color(flow, max_flow)
    expected = np.floor(reference).astype(np.int64)
    at_an_integer = np.abs(reference - np.round(reference)) < 1e-9  # floor may go either way there
    assert np.array_equal(ours[~at_an_integer], expected[~at_an_integer])
    assert np.abs(ours - expected)[at_an_integer].max(initial=0) <= 1


def _previous_flow_to_color(flow: np.ndarray, max_flow: float | None = None) -> np.ndarray:
    """`flow_to_color` as it was before it was made faster, whole-frame and vectorised:
    the faster one must give exactly these bytes."""
    flow = np.asarray(flow, dtype=np.float64)
    u, v = flow[..., 0].copy(), flow[..., 1].copy()
    nan = np.isnan(u) | np.isnan(v)
    unknown = ~nan & ((np.abs(u) > 1e9) | (np.abs(v) > 1e9))
    u[nan | unknown] = 0.0
    v[nan | unknown] = 0.0
    max_radius = (
        float(np.sqrt(u**2 + v**2).max(initial=-1.0)) if max_flow is None or max_flow <= 0 else max_flow
    )
    u /= max_radius + flowmod.MATLAB_EPS
    v /= max_radius + flowmod.MATLAB_EPS
    wheel = flowmod.color_wheel() / 255.0
    n_colors = len(wheel)
    radius = np.sqrt(u**2 + v**2)
    position = (np.arctan2(-v, -u) / np.pi + 1) / 2 * (n_colors - 1) + 1
    k0 = np.floor(position)
    frac = (position - k0)[..., None]
    k0 = k0.astype(np.int64) - 1
    k1 = (k0 + 1) % n_colors
    color = (1 - frac) * wheel[k0] + frac * wheel[k1]
    inside = (radius <= 1)[..., None]
    color = np.where(inside, 1 - radius[..., None] * (1 - color), color * 0.75)
    color[nan | unknown] = 0.0
    return np.floor(255 * color).astype(np.uint8)


def _awkward_flow(seed: int, height: int, width: int, dtype: type = np.float32) -> np.ndarray:
    """Random flow of a few pixels with NaN, unknown (> 1e9, inf), zero, exact-axis and large
    vectors scattered over the frame (so over several of flow_to_color's row blocks)."""
    rng = np.random.default_rng(seed)
    flow = rng.normal(scale=3.0, size=(height, width, 2))
    flow[rng.random((height, width)) < 0.1] = 0.0
    axes = rng.random((height, width)) < 0.05
    flow[axes] = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]])[rng.integers(0, 4, axes.sum())]
    flow[rng.random((height, width)) < 0.01, 0] = np.nan
    flow[rng.random((height, width)) < 0.01, 1] = np.nan
    flow[rng.random((height, width)) < 0.01, 0] = 2e9
    flow[rng.random((height, width)) < 0.01, 1] = -np.inf
    flow[rng.integers(height), rng.integers(width)] = [25.0, -17.0]  # the largest known radius
    return flow.astype(dtype)


@pytest.mark.parametrize("max_flow", [None, 0.0, 1.0, 3.0, 40.0])
@pytest.mark.parametrize(("height", "width", "dtype"), [(240, 427, np.float32), (37, 1000, np.float64)])
def test_flow_to_color_is_bit_identical_to_the_previous_implementation(max_flow, height, width, dtype):
    flow = _awkward_flow(3, height, width, dtype)
    assert np.array_equal(flow_to_color(flow, max_flow), _previous_flow_to_color(flow, max_flow))
    clean = np.nan_to_num(flow, nan=0.0, posinf=0.0, neginf=0.0)
    clean[np.abs(clean) > 1e9] = 0.0
    assert np.array_equal(flow_to_color(clean, max_flow), _previous_flow_to_color(clean, max_flow))


@pytest.mark.parametrize("max_flow", [None, 1.0, 2.5, 3.0, 10.0])
def test_flow_to_color_matches_the_previous_implementation_on_a_grid_of_exact_vectors(max_flow):
    """Quarter-pixel vectors: exact directions and radii (e.g. 1 with a given max_flow) put
    255 * colour on or next to integers, where any change in rounding would show in the bytes
    (random flow almost never does)."""
    steps = np.arange(-40, 41) / 4
    grid = np.stack(np.meshgrid(steps, steps), axis=-1)
    assert np.array_equal(flow_to_color(grid, max_flow), _previous_flow_to_color(grid, max_flow))


@pytest.mark.parametrize(
    "flow",
    [
        np.zeros((5, 4, 2), np.float32),  # all zero: white
        np.full((3, 3, 2), np.nan),  # all unknown: black
        np.zeros((0, 7, 2)),  # empty
        np.full((2, 20000, 2), 0.5, np.float16),  # rows wider than a block, float16 input
    ],
)
def test_flow_to_color_edge_cases_match_the_previous_implementation(flow):
    ours = flow_to_color(flow)
    assert ours.shape == (*flow.shape[:2], 3) and ours.dtype == np.uint8
    assert np.array_equal(ours, _previous_flow_to_color(flow))


# --------------------------------------------------------------------------------------------------
# Flow methods and the release's pairing


def _texture(seed: int, height: int, width: int) -> np.ndarray:
    """Smooth random grey texture (trackable by every flow method)."""
    noise = np.random.default_rng(seed).random((height, width)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 2.0) * 1020 - 382, 0, 255).astype(np.uint8)


def _shifted_pair(dx: int, dy: int, height: int = 96, width: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Two frames of a texture whose content moves by (dx, dy) pixels from the first to the second."""
    margin = 16
    canvas = _texture(1, height + 2 * margin, width + 2 * margin)
    first = canvas[margin : margin + height, margin : margin + width]
    second = canvas[margin - dy : margin - dy + height, margin - dx : margin - dx + width]
    return first, second


@pytest.mark.parametrize("method", ["dis", "deepflow", "tvl1", "farneback"])
def test_every_method_recovers_a_translation(method):
    first, second = _shifted_pair(3, -2)
    flow = compute_flow(first, second, method)
    assert flow.shape == (96, 128, 2) and flow.dtype == np.float32
    inner = flow[16:-16, 16:-16].reshape(-1, 2)
    assert np.allclose(np.median(inner, axis=0), [3, -2], atol=0.25)


def test_rgb_and_grey_frames_give_the_same_flow():
    first, second = _shifted_pair(2, 1)
    rgb = [np.repeat(f[..., None], 3, axis=2) for f in (first, second)]
    assert np.allclose(compute_flow(*rgb), compute_flow(first, second), atol=1e-5)


def test_flow_does_not_depend_on_earlier_calls():
    # Regression: a reused OpenCV DIS object gives different flow after seeing a smaller image.
    first, second = _shifted_pair(2, 0, 64, 80)
    before = compute_flow(first, second, "dis")
    compute_flow(*_shifted_pair(2, 0, 32, 40), "dis")
    assert np.array_equal(compute_flow(first, second, "dis"), before)


def test_dis_preset_and_bad_parameters():
    first, second = _shifted_pair(2, 0)
    assert compute_flow(first, second, "dis", preset="ultrafast").shape == (96, 128, 2)
    with pytest.raises(ValueError, match="preset"):
        compute_flow(first, second, "dis", preset="slowest")
    with pytest.raises(ValueError, match="no parameter"):
        compute_flow(first, second, "deepflow", alpha=1.0)
    with pytest.raises(ValueError, match="unknown flow method"):
        compute_flow(first, second, "liu")


def test_pairing_is_next_frame_and_previous_for_the_last():
    assert flow_pairs(4) == [(0, 1), (1, 2), (2, 3), (3, 2)]
    with pytest.raises(ValueError):
        flow_pairs(1)


def _write_video(folder: Path, name: str, n_frames: int, step: tuple[int, int] = (2, 1)) -> Video:
    """A video whose texture moves by `step` pixels per frame, written as lossless PNG frames."""
    margin, height, width = 24, 64, 80
    canvas = _texture(3, height + 2 * margin, width + 2 * margin)
    frames = []
    for i in range(n_frames):
        dx, dy = step[0] * i, step[1] * i
        crop = canvas[margin - dy : margin - dy + height, margin - dx : margin - dx + width]
        path = folder / name / f"{i:05d}.png"
        write_png(path, np.repeat(crop[..., None], 3, axis=2))
        frames.append(Frame(image_path=path))
    return Video(name=name, frames=frames, dataset="synthetic")


def test_video_flow_uses_the_release_pairing(tmp_path):
    video = _write_video(tmp_path, "pan", 3, step=(2, 1))
    flows = video_flow(video, "dis")
    assert len(flows) == 3
    median = [np.median(f[12:-12, 12:-12].reshape(-1, 2), axis=0) for f in flows]
    assert np.allclose(median[0], [2, 1], atol=0.25)
    assert np.allclose(median[1], [2, 1], atol=0.25)
    assert np.allclose(median[2], [-2, -1], atol=0.25)  # last frame: towards the previous one


def test_video_flow_at_a_given_size(tmp_path):
    video = _write_video(tmp_path, "pan", 2)
    assert video_flow(video, "farneback", size=(32, 40))[0].shape == (32, 40, 2)


# --------------------------------------------------------------------------------------------------
# Cache


def test_cache_writes_float16_flow_and_flow_images(tmp_path):
    video = _write_video(tmp_path / "frames", "clip", 3)
    cache = FlowCache(tmp_path / "cache")
    images = cache.flow_images(video, "dis")
    raw = cache.raw_flow_paths(video, "dis")
    assert [p.stem for p in images] == ["00000", "00001", "00002"] == [p.stem for p in raw]
    assert np.load(raw[0]).dtype == np.float16
    expected = video_flow(video, "dis")
    for path_raw, path_image, flow in zip(raw, images, expected, strict=True):
        assert np.allclose(load_raw_flow(path_raw), flow, atol=0.01)
        assert np.array_equal(read_rgb(path_image), flow_to_color(flow))
    key = (images[0].parents[1] / "key.json").read_text()
    assert '"n_frames": 3' in key and '"preset": "medium"' in key


def test_cache_is_not_recomputed_unless_the_key_changes(tmp_path, monkeypatch):
    video = _write_video(tmp_path / "frames", "clip", 3)
    cache = FlowCache(tmp_path / "cache")
    folder = cache.ensure(video, "dis")
    calls = []
    original = flowmod.compute_flow
    monkeypatch.setattr(flowmod, "compute_flow", lambda *a, **k: calls.append(1) or original(*a, **k))
    assert cache.ensure(video, "dis") == folder and calls == []
    # Each change of the key gives a new folder, computed afresh.
    changed = [
        cache.ensure(video, "dis", preset="fast"),
        cache.ensure(video, "farneback"),
        cache.ensure(video, "dis", size=(32, 40)),
        cache.ensure(Video(video.name, video.frames[:2], dataset=video.dataset), "dis"),
    ]
    assert len({folder, *changed}) == 5 and len(calls) == 3 + 3 + 3 + 2


def test_interrupted_cache_resumes_missing_frames_only(tmp_path, monkeypatch):
    video = _write_video(tmp_path / "frames", "clip", 4)
    cache = FlowCache(tmp_path / "cache")
    folder = cache.ensure(video, "dis")
    (folder / "key.json").unlink()  # as if interrupted before completion...
    (folder / "flow" / "00002.npy").unlink()  # ...with one frame missing
    written = []
    original = FlowCache._write_frame
    monkeypatch.setattr(
        FlowCache,
        "_write_frame",
        staticmethod(lambda f, name, flow: written.append(name) or original(f, name, flow)),
    )
    cache.ensure(video, "dis")
    assert written == ["00002"] and (folder / "key.json").is_file()


def test_parallel_workers_compute_what_one_single_threaded_process_does(tmp_path):
    # Workers run OpenCV single-threaded; the result must not depend on which process computed it.
    videos = [_write_video(tmp_path / "frames", f"clip{i}", 2, step=(i + 1, 0)) for i in range(3)]
    cache = compute_videos(videos, "dis", cache=FlowCache(tmp_path / "cache"), workers=2)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for video in videos:
            expected = video_flow(video, "dis")
            for path, flow in zip(cache.raw_flow_paths(video), expected, strict=True):
                assert np.array_equal(np.load(path), flow.astype(np.float16))
    finally:
        cv2.setNumThreads(threads)


def test_shards_partition_the_videos_deterministically():
    videos = [Video(name=f"v{i:03d}", frames=[], dataset="davis") for i in range(60)]
    shards = [select_shard(videos, (k, 4)) for k in range(4)]
    names = [v.name for shard in shards for v in shard]
    assert sorted(names) == [v.name for v in videos]  # every video in exactly one shard
    assert all(shards)  # 60 videos over 4 shards: none empty
    assert [v.name for v in select_shard(list(reversed(videos)), (1, 4))] == [
        v.name for v in reversed(shards[1])
    ]
    assert parse_shard("3/4") == (3, 4)
    for bad in ("4/4", "1", "a/b", "-1/2"):
        with pytest.raises(ValueError):
            parse_shard(bad)


# --------------------------------------------------------------------------------------------------
# Real DAVIS


def test_flow_of_a_real_davis_pair(davis_root, tmp_path):
    from fusionseg.data import load_videos

    video = next(v for v in load_videos("davis", davis_root, "val") if v.name == "blackswan")
    short = Video(video.name, video.frames[:2], category=video.category, dataset=video.dataset)
    images = FlowCache(tmp_path).flow_images(short, "dis")
    image = read_rgb(images[0])
    assert image.shape == (240, 427, 3)  # the real copy's frames are 427x240
    assert (image == 0).all(axis=2).sum() == 0  # no unknown flow
