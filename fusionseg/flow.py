"""Optical flow, the release's flow images, and an on-disk cache of both.

The paper's motion stream and flow baselines read optical flow computed with the release's pairing:
frame i -> i+1, and for the last frame i -> i-1 (so every frame has a flow field). The release used
Ce Liu's Coarse2Fine flow; here the flow comes from OpenCV contrib: DIS (the default: fast), DeepFlow,
TV-L1 (slow) or Farneback.

The flow *image* is the Middlebury colour coding (Baker et al., `flowToColor.m` / `computeColor.m`)
exactly as the release makes it: each frame's u, v are divided by that frame's largest flow radius,
the direction picks a colour on a 55-colour wheel and the radius its saturation.

`FlowCache` keeps raw flow (float16 .npy) and flow images (PNG) per video on disk, keyed by the video,
its frame count, the method, its parameters and the size, so that nothing is recomputed unless one of
these changes. `fusionseg flow` fills the cache for a dataset, in parallel and optionally as one shard
of many (`--shard K/N`), whose caches merge by copying folders together.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from fusionseg.data.types import Video
from fusionseg.io import DataError, atomic_path, write_json, write_png

METHODS = ("dis", "deepflow", "tvl1", "farneback")
DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
# Every method's parameters with their defaults: the cache key always holds the full set.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "dis": {"preset": "medium"},
    "deepflow": {},
    "tvl1": {},  # OpenCV's defaults (tau 0.25, lambda 0.15, theta 0.3, 5 scales, 5 warps)
    "farneback": {  # the values of OpenCV's own Farneback sample
        "pyr_scale": 0.5,
        "levels": 3,
        "winsize": 15,
        "iterations": 3,
        "poly_n": 5,
        "poly_sigma": 1.2,
    },
}
CACHE_VERSION = 1  # bump when the cache's file layout or the flow image definition changes


# --------------------------------------------------------------------------------------------------
# Flow


def resolve_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """`params` completed with the method's defaults; unknown methods or parameter names raise."""
    if method not in DEFAULT_PARAMS:
        raise ValueError(f"unknown flow method {method!r}; expected one of {', '.join(METHODS)}")
    unknown = set(params) - set(DEFAULT_PARAMS[method])
    if unknown:
        raise ValueError(f"flow method {method!r} has no parameter(s) {sorted(unknown)}")
    resolved = {**DEFAULT_PARAMS[method], **params}
    if method == "dis" and resolved["preset"] not in DIS_PRESETS:
        raise ValueError(f"DIS preset {resolved['preset']!r}; expected one of {', '.join(DIS_PRESETS)}")
    return resolved


def _dense_flow(method: str, params: dict[str, Any]) -> Any:
    """A fresh OpenCV dense-flow object (creating one costs microseconds).

    Never reused: a DIS object that has seen a smaller image gives different flow afterwards
    (stale internal buffers in OpenCV 5.0), which would make results depend on call history.
    """
    if method == "dis":
        return cv2.DISOpticalFlow_create(DIS_PRESETS[params["preset"]])
    if method == "deepflow":
        return cv2.optflow.createOptFlow_DeepFlow()
    if method == "tvl1":
        return cv2.optflow.DualTVL1OpticalFlow_create()
    raise AssertionError(method)


def to_gray(frame: np.ndarray) -> np.ndarray:
    """An RGB (HxWx3) or grey (HxW) uint8 frame as a contiguous grey uint8 array."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"expected a uint8 frame, got {frame.dtype}")
    if frame.ndim == 3:
        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if frame.ndim == 2:
        return np.ascontiguousarray(frame)
    raise ValueError(f"expected an HxW or HxWx3 frame, got shape {frame.shape}")


def compute_flow(frame_a: np.ndarray, frame_b: np.ndarray, method: str = "dis", **params: Any) -> np.ndarray:
    """Dense optical flow from `frame_a` to `frame_b` as (H, W, 2) float32 (u = x, v = y, in pixels).

    Frames are uint8 RGB or grey of the same size; flow is computed on grey. `params` are the
    method's parameters (see `DEFAULT_PARAMS`), e.g. `compute_flow(a, b, "dis", preset="fast")`.
    """
    params = resolve_params(method, params)
    gray_a, gray_b = to_gray(frame_a), to_gray(frame_b)
    if gray_a.shape != gray_b.shape:
        raise ValueError(f"frames differ in size: {gray_a.shape} vs {gray_b.shape}")
    if method == "farneback":
        flow = cv2.calcOpticalFlowFarneback(gray_a, gray_b, None, flags=0, **params)
    else:
        flow = _dense_flow(method, params).calc(gray_a, gray_b, None)
    return np.asarray(flow, dtype=np.float32)


def flow_pairs(n_frames: int) -> list[tuple[int, int]]:
    """The release's pairing: frame i -> i+1, and the last frame -> the one before it."""
    if n_frames < 2:
        raise ValueError(f"optical flow needs a video of at least 2 frames, got {n_frames}")
    return [(i, i + 1) for i in range(n_frames - 1)] + [(n_frames - 1, n_frames - 2)]


def resize_frame(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Resize to (H, W) (area interpolation down, linear up); None keeps the frame's size."""
    if size is None or frame.shape[:2] == tuple(size):
        return frame
    height, width = size
    shrink = height * width < frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def iter_video_flow(
    video: Video, method: str = "dis", size: tuple[int, int] | None = None, **params: Any
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (frame index, flow) for every frame, holding at most three decoded frames at a time."""
    gray: dict[int, np.ndarray] = {}
    for index, other in flow_pairs(len(video)):
        for needed in (index, other):
            if needed not in gray:
                gray[needed] = to_gray(resize_frame(video.image(needed), size))
        yield index, compute_flow(gray[index], gray[other], method, **params)
        for stale in [k for k in gray if k < index]:
            del gray[stale]


def video_flow(
    video: Video, method: str = "dis", size: tuple[int, int] | None = None, **params: Any
) -> list[np.ndarray]:
    """Flow for every frame of `video` with the release's pairing (a list; use `FlowCache` for long videos)."""
    return [flow for _, flow in iter_video_flow(video, method, size, **params)]


# --------------------------------------------------------------------------------------------------
# Flow images (Middlebury colour coding)

UNKNOWN_FLOW_THRESH = 1e9  # |u| or |v| above this is "unknown" flow in the Middlebury code
MATLAB_EPS = float(np.finfo(np.float64).eps)  # flowToColor divides by (maxrad + eps)


def color_wheel() -> np.ndarray:
    """The Middlebury 55-colour wheel as a (55, 3) float array of RGB values in [0, 255].

    Six segments, whose lengths were chosen for perceptual spacing: red->yellow (15), yellow->green
    (6), green->cyan (4), cyan->blue (11), blue->magenta (13), magenta->red (6). In each segment one
    channel is 255 and another ramps as floor(255 * i / length), i = 0 .. length-1.
    """
    segments = [  # (length, channel held at 255, ramping channel, ramp rises?)
        (15, 0, 1, True),  # RY
        (6, 1, 0, False),  # YG
        (4, 1, 2, True),  # GC
        (11, 2, 1, False),  # CB
        (13, 2, 0, True),  # BM
        (6, 0, 2, False),  # MR
    ]
    rows = []
    for length, full, ramp_channel, rising in segments:
        ramp = np.floor(255 * np.arange(length) / length)
        block = np.zeros((length, 3))
        block[:, full] = 255
        block[:, ramp_channel] = ramp if rising else 255 - ramp
        rows.append(block)
    return np.concatenate(rows)


def _wheel_tables() -> tuple[np.ndarray, np.ndarray]:
    """The wheel as (3, 55) channel rows in [0, 1], and the same rows shifted by one colour
    (column k holds colour k + 1, wrapping to colour 0): the two ends of each interpolation."""
    wheel = color_wheel() / 255.0
    return np.ascontiguousarray(wheel.T), np.ascontiguousarray(np.roll(wheel, -1, axis=0).T)


WHEEL_ROWS, NEXT_WHEEL_ROWS = _wheel_tables()
# flow_to_color works on blocks of about this many pixels: its dozen float64 temporaries then stay
# in the CPU's L2 cache and are not page-faulted in afresh for every frame (4x faster at 427x240).
BLOCK_PIXELS = 16384


def _row_blocks(height: int, width: int) -> list[slice]:
    rows = max(1, BLOCK_PIXELS // max(width, 1))
    return [slice(top, top + rows) for top in range(0, height, rows)]


def _known_uv(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """u and v of a block of flow as float64, zero where the flow is unknown (NaN, or |u| or |v|
    above UNKNOWN_FLOW_THRESH), and the mask of those unknown pixels (None if there are none)."""
    u, v = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    known = np.abs(u) <= UNKNOWN_FLOW_THRESH  # False for NaN
    known &= np.abs(v) <= UNKNOWN_FLOW_THRESH
    if known.all():
        return u, v, None
    unknown = ~known
    u[unknown] = 0.0
    v[unknown] = 0.0
    return u, v, unknown


def _max_radius(flow: np.ndarray) -> float:
    """The largest radius sqrt(u^2 + v^2) (float64) with unknown flow counted as 0, or -1 for an
    empty field. sqrt is monotonic, so it is taken of the largest squared radius only."""
    largest = -1.0
    for rows in _row_blocks(*flow.shape[:2]):
        u, v, _ = _known_uv(flow[rows])
        squared = u * u
        squared += v * v
        largest = max(largest, float(np.sqrt(squared.max(initial=0.0))))
    return largest


def _color_block(flow: np.ndarray, scale: float, out: np.ndarray) -> None:
    """The colour coding of a block of rows of flow, normalised by `scale`, into `out` (uint8).

    The arithmetic is computeColor.m's, operation by operation in float64, so the output is bit
    for bit that of the whole-frame formula; it is only reordered to run in place. u and v are
    divided by -scale, which gives exactly the -u/scale and -v/scale that atan2 takes (the radius
    does not see the sign).
    """
    u, v, unknown = _known_uv(flow)
    np.divide(u, -scale, out=u)
    np.divide(v, -scale, out=v)
    radius = u * u
    radius += v * v
    np.sqrt(radius, out=radius)
    # 1-based wheel position (atan2(-v, -u) / pi + 1) / 2 * (n - 1) + 1, as in computeColor.m
    position = np.arctan2(v, u, out=v)
    position /= np.pi
    position += 1
    position /= 2
    position *= WHEEL_ROWS.shape[1] - 1
    position += 1
    floor = np.floor(position, out=u)
    frac = position
    frac -= floor
    index = floor.astype(np.intp)
    index -= 1  # 0-based
    rest = 1 - frac
    outside = ~(radius <= 1)  # only possible with a given max_flow
    any_outside = bool(outside.any())
    color, following = np.empty_like(frac), np.empty_like(frac)
    for channel in range(3):
        np.take(WHEEL_ROWS[channel], index, out=color)
        color *= rest
        np.take(NEXT_WHEEL_ROWS[channel], index, out=following)
        following *= frac
        color += following
        darker = color[outside] * 0.75 if any_outside else None
        np.subtract(1, color, out=color)  # 1 - radius * (1 - colour)
        color *= radius
        np.subtract(1, color, out=color)
        if darker is not None:
            color[outside] = darker
        color *= 255
        np.floor(color, out=color)
        np.copyto(out[..., channel], color, casting="unsafe")
    if unknown is not None:
        out[unknown] = 0


def flow_to_color(flow: np.ndarray, max_flow: float | None = None) -> np.ndarray:
    """The Middlebury colour coding of a flow field: (H, W, 2) -> (H, W, 3) uint8 RGB.

    u, v are divided by the frame's largest flow radius (or `max_flow` when given); the angle
    atan2(-v, -u)/pi picks a point between two neighbouring wheel colours (linear interpolation);
    colour = 1 - radius * (1 - wheel colour), so zero flow is white and the largest flow fully
    saturated; radii above 1 (only possible with `max_flow`) are darkened to 0.75 of the wheel
    colour; unknown flow (|u| or |v| > 1e9) and NaN flow are black and do not count towards the
    maximum. Output is floor(255 * colour), computed in float64 block by block of rows.
    """
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"expected flow of shape (H, W, 2), got {flow.shape}")
    max_radius = _max_radius(flow) if max_flow is None or max_flow <= 0 else max_flow
    out = np.empty((*flow.shape[:2], 3), np.uint8)
    for rows in _row_blocks(*flow.shape[:2]):
        _color_block(flow[rows], max_radius + MATLAB_EPS, out[rows])
    return out


# --------------------------------------------------------------------------------------------------
# Cache


def default_cache_root() -> Path:
    """$FUSIONSEG_CACHE/flow if set, else `.cache/flow` in the repository (ignored by git)."""
    env = os.environ.get("FUSIONSEG_CACHE")
    if env:
        return Path(env).expanduser() / "flow"
    return Path(__file__).resolve().parents[1] / ".cache" / "flow"


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


class FlowCache:
    """Raw flow (float16 .npy) and flow images (PNG) per video, under `root`.

    One folder per (dataset, video, frame count, method, parameters, size):
    `<root>/<dataset>/<video>-<hash>/` with `key.json` (the key, written last: its presence means
    the folder is complete), `flow/<frame>.npy` and `image/<frame>.png`. Frames already present are
    kept when an interrupted computation is resumed.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_root()

    @staticmethod
    def key(
        video: Video, method: str = "dis", size: tuple[int, int] | None = None, **params: Any
    ) -> dict[str, Any]:
        """Everything the cached files depend on."""
        return {
            "version": CACHE_VERSION,
            "dataset": video.dataset,
            "video": video.name,
            "n_frames": len(video),
            "method": method,
            "params": resolve_params(method, params),
            "size": None if size is None else [int(size[0]), int(size[1])],
        }

    def folder(
        self, video: Video, method: str = "dis", size: tuple[int, int] | None = None, **params: Any
    ) -> Path:
        """The folder that holds (or will hold) this video's flow."""
        return self._folder(video, self.key(video, method, size, **params))

    def _folder(self, video: Video, key: dict[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
        return self.root / _safe_name(video.dataset or "videos") / f"{_safe_name(video.name)}-{digest}"

    def is_complete(
        self, video: Video, method: str = "dis", size: tuple[int, int] | None = None, **params: Any
    ) -> bool:
        return (self.folder(video, method, size, **params) / "key.json").is_file()

    def ensure(
        self, video: Video, method: str = "dis", size: tuple[int, int] | None = None, **params: Any
    ) -> Path:
        """Compute whatever is missing for this video (frame by frame, streaming) and return its folder."""
        key = self.key(video, method, size, **params)
        folder = self._folder(video, key)
        if (folder / "key.json").is_file():
            return folder
        names = [frame.name for frame in video.frames]
        missing = {
            i
            for i, name in enumerate(names)
            if not (folder / "flow" / f"{name}.npy").is_file()
            or not (folder / "image" / f"{name}.png").is_file()
        }
        if missing:
            for index, flow in iter_video_flow(video, method, size, **params):
                if index in missing:
                    self._write_frame(folder, names[index], flow)
        write_json(folder / "key.json", key)
        return folder

    @staticmethod
    def _write_frame(folder: Path, name: str, flow: np.ndarray) -> None:
        with atomic_path(folder / "flow" / f"{name}.npy") as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, flow.astype(np.float16))
        write_png(folder / "image" / f"{name}.png", flow_to_color(flow))

    def raw_flow_paths(
        self, video: Video, method: str = "dis", size: tuple[int, int] | None = None, **params: Any
    ) -> list[Path]:
        """The .npy files of the video's raw flow (float16, HxWx2), one per frame, computed if needed."""
        folder = self.ensure(video, method, size, **params)
        return [folder / "flow" / f"{frame.name}.npy" for frame in video.frames]

    def flow_images(
        self, video: Video, method: str = "dis", size: tuple[int, int] | None = None, **params: Any
    ) -> list[Path]:
        """The PNG flow images of the video, one per frame (read with `fusionseg.io.read_rgb`), computed if needed."""
        folder = self.ensure(video, method, size, **params)
        return [folder / "image" / f"{frame.name}.png" for frame in video.frames]

    def flow_image_arrays(
        self, video: Video, method: str = "dis", size: tuple[int, int] | None = None, **params: Any
    ) -> list[np.ndarray]:
        """The video's flow images as HxWx3 uint8 arrays (the networks' and the filters' input)."""
        from fusionseg.io import read_rgb

        return [read_rgb(path) for path in self.flow_images(video, method, size, **params)]

    def iter_raw_flow(
        self, video: Video, method: str = "dis", size: tuple[int, int] | None = None, **params: Any
    ) -> Iterator[np.ndarray]:
        """Yield each frame's raw flow as float32 (H, W, 2), one frame in memory at a time."""
        for path in self.raw_flow_paths(video, method, size, **params):
            yield load_raw_flow(path)


def load_raw_flow(path: Path) -> np.ndarray:
    """A cached raw-flow .npy file as float32 (H, W, 2)."""
    try:
        flow = np.load(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npy flow file ({exc})") from exc
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise DataError(f"{path}: expected flow of shape (H, W, 2), found {flow.shape}")
    return flow.astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Many videos: shards and parallel workers


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N) with 0 <= K < N (shards are numbered from 0)."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError as exc:
        raise ValueError(f"--shard {text!r}: expected K/N, e.g. 0/4") from exc
    if not 0 <= k < n:
        raise ValueError(f"--shard {text!r}: need 0 <= K < N")
    return k, n


def shard_of(video: Video, n_shards: int) -> int:
    """The shard a video belongs to: a stable hash of dataset/name, so any scheduler agrees."""
    digest = hashlib.sha256(f"{video.dataset}/{video.name}".encode()).hexdigest()
    return int(digest, 16) % n_shards


def select_shard(videos: Sequence[Video], shard: tuple[int, int] | None) -> list[Video]:
    if shard is None:
        return list(videos)
    k, n = shard
    return [video for video in videos if shard_of(video, n) == k]


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one OpenCV thread per process: the processes are the parallelism


def _ensure_job(job: tuple[FlowCache, Video, str, tuple[int, int] | None, dict[str, Any]]) -> int:
    cache, video, method, size, params = job
    cache.ensure(video, method, size, **params)
    return len(video)


def compute_videos(
    videos: Sequence[Video],
    method: str = "dis",
    size: tuple[int, int] | None = None,
    cache: FlowCache | None = None,
    workers: int = 1,
    **params: Any,
) -> FlowCache:
    """Fill the cache for every video (those already complete are skipped), `workers` processes in parallel."""
    cache = cache or FlowCache()
    resolve_params(method, params)  # fail before starting workers
    todo = [v for v in videos if not cache.is_complete(v, method, size, **params)]
    jobs = [(cache, video, method, size, params) for video in todo]
    bar = tqdm(total=sum(len(v) for v in todo), desc=f"flow {method}", unit="frame", disable=not todo)
    if workers <= 1:
        for job in jobs:
            bar.update(_ensure_job(job))
    else:
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init) as pool:
            for n_frames in pool.imap_unordered(_ensure_job, jobs):
                bar.update(n_frames)
    bar.close()
    return cache


# --------------------------------------------------------------------------------------------------
# Speed


def measure_speed(
    frame_a: np.ndarray, frame_b: np.ndarray, method: str, repeats: int, **params: Any
) -> dict[str, Any]:
    """Speed of one method on one frame pair (after one warm-up call): wall-clock seconds and frames
    per second, and CPU seconds per frame (all of this process's threads; less sensitive than wall
    time to other processes sharing the machine)."""
    compute_flow(frame_a, frame_b, method, **params)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        compute_flow(frame_a, frame_b, method, **params)
    seconds = (time.perf_counter() - wall) / repeats
    cpu_seconds = (time.process_time() - cpu) / repeats
    return {
        "seconds_per_frame": seconds,
        "fps": 1.0 / seconds,
        "cpu_seconds_per_frame": cpu_seconds,
        "repeats": repeats,
    }


SPEED_SIZE = (480, 854)  # DAVIS 2016's full 480p resolution
# (method, parameters, timed repeats): few for the slow methods
SPEED_RUNS: tuple[tuple[str, dict[str, Any], int], ...] = (
    *(("dis", {"preset": preset}, 20) for preset in DIS_PRESETS),
    ("farneback", {}, 10),
    ("deepflow", {}, 3),
    ("tvl1", {}, 1),
)


def speed_table(frame_a: np.ndarray, frame_b: np.ndarray) -> Any:
    """Flow speed of every method of `SPEED_RUNS` on one pair at `SPEED_SIZE` (the pipeline's
    `flow_speed` stage; the pair is resized bilinearly to 854x480, OpenCV at its default thread count)."""
    import pandas as pd

    pair = [
        cv2.resize(frame, SPEED_SIZE[::-1], interpolation=cv2.INTER_LINEAR) for frame in (frame_a, frame_b)
    ]
    rows = []
    for method, params, repeats in tqdm(SPEED_RUNS, desc="flow speed", unit="method"):
        timing = measure_speed(*pair, method, repeats, **params)
        size = f"{SPEED_SIZE[1]}x{SPEED_SIZE[0]}"
        rows.append({"method": method, "preset": params.get("preset", ""), "size": size, **timing})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# Command line: fusionseg flow


def parse_size(text: str | None) -> tuple[int, int] | None:
    """'HxW' -> (H, W); None stays None (native frame size)."""
    if text is None:
        return None
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError as exc:
        raise ValueError(f"--size {text!r}: expected HxW, e.g. 240x427") from exc
    return height, width


def add_flow_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by the commands that read flow (`fusionseg flow`, `fusionseg baseline`)."""
    parser.add_argument(
        "--method", "--flow", dest="method", choices=METHODS, default="dis", help="flow method"
    )
    parser.add_argument(
        "--preset", choices=sorted(DIS_PRESETS), default=None, help="DIS preset (default medium)"
    )
    parser.add_argument("--size", default=None, help="compute flow at HxW (default: the frames' size)")
    parser.add_argument(
        "--cache", type=Path, default=None, help="cache root (default $FUSIONSEG_CACHE/flow or .cache/flow)"
    )
    parser.add_argument("--workers", type=int, default=1, help="parallel processes over videos")


def flow_params(args: argparse.Namespace) -> dict[str, Any]:
    """Method parameters from parsed arguments."""
    if args.preset is not None:
        if args.method != "dis":
            raise ValueError("--preset applies to --method dis only")
        return {"preset": args.preset}
    return {}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="dataset name, e.g. davis")
    parser.add_argument("--root", type=Path, required=True, help="the dataset's folder")
    parser.add_argument("--split", default=None, help="split, e.g. val")
    parser.add_argument("--shard", default=None, help="K/N: only this shard's videos (K from 0)")
    add_flow_arguments(parser)


def run_command(args: argparse.Namespace) -> int:
    from fusionseg.data import load_videos

    videos = select_shard(
        load_videos(args.dataset, args.root, args.split), parse_shard(args.shard) if args.shard else None
    )
    cache = compute_videos(
        videos, args.method, parse_size(args.size), FlowCache(args.cache), args.workers, **flow_params(args)
    )
    print(f"flow for {len(videos)} videos in {cache.root}")
    return 0
