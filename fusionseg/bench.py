"""`fusionseg bench`: measure speeds on this machine and record them in `results/bench/<machine>.json`.

What is measured (each after a warm-up; the median of the repeats is reported):

- `peak`: GFLOP/s of a large fp32 and bf16 matrix product, the practical ceiling of this CPU;
- `flow`: optical flow frames/s per method (and DIS preset) and resolution;
- `inference`: frames/s of one stream per backbone, output stride, resolution and dtype (fp32, or
  bf16 autocast; channels_last model and input for both, as the library runs them), with the forward pass's FLOPs (counted by
  `torch.utils.flop_counter.FlopCounterMode`) and the achieved GFLOP/s against `peak`; bf16 only
  on a CPU with bf16 instructions (`dtypes` in the record lists what was measured);
- `joint`: the whole joint pipeline (decode, flow, flow image, two Lite0 streams as `real-lite`
  builds them, with its decoder and folded BatchNorms, fusion, probabilities) frame by frame, with milliseconds per frame for each stage,
  and the library's own batched path (`fusionseg.infer.predict_joint` on a `JointModel`: folded
  BatchNorms, flow overlapped with the networks), also without each of these speed-ups;
- `segment`: `fusionseg segment` run as a user runs it, in a fresh process, on a 50-frame clip at
  427x240 with the joint model's weights files: start-up, network loop (frames/s), writing;
- `training`: images/s of a stream's training step (forward, backward, SGD update; data loading
  not included) per crop size and dtype;
- `book`: wall time and peak memory per notebook from `results/<profile>/provenance/book.json`.

Every measurement carries the 1/5/15-minute load averages at its start and end: on a shared machine
a number measured under load is slower than the hardware allows, and the record says so.
Frames are real where possible (a DAVIS video under `$FUSIONSEG_DATA`), else a synthetic textured
pair (a smooth random texture and its copy shifted by a few pixels). `--quick` runs a reduced set
(small sizes, one repeat) in well under a minute, for tests.

The appendix 'Performance' (`book/12_appendix_performance.md`) reads the newest record
(`latest_record`) through the table and figure functions at the end of this module, one per table
or figure it shows.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from fusionseg.flow import resize_frame
from fusionseg.io import DataError, data_root, read_rgb, write_jpeg, write_json
from fusionseg.profiles import get_profile
from fusionseg.results import (
    hardware,
    library_versions,
    reference_root,
    results_root,
    start_recording,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMAT = "fusionseg-bench-1"
Size = tuple[int, int]  # (height, width)
JOINT_TARGET_FPS = 10.0  # our speed target for the joint pipeline at 427x240 on the 2-core CPU
# the joint pipeline is timed as real-lite builds it: each stream's decoder
JOINT_DECODERS = {
    "appearance": get_profile("real-lite").decoder,
    "motion": get_profile("real-lite").motion_decoder,
}
JOINT_DECODER_LABEL = ", ".join(f"{stream} {decoder}" for stream, decoder in JOINT_DECODERS.items())


@dataclass(frozen=True)
class Plan:
    """Which settings to measure and how often: the full benchmark or the quick one."""

    repeats: int  # timed repeats of fast measurements (median reported)
    slow_repeats: int  # of slow ones (TV-L1, DeepFlow, ResNet-101, training)
    flow_sizes: tuple[Size, ...]
    flow_methods: tuple[tuple[str, dict[str, Any]], ...]  # (method, params); slow ones at the first size only
    slow_flow_methods: tuple[str, ...]
    inference: tuple[tuple[str, int, Size, int], ...]  # (backbone, output stride, size, batch)
    joint_size: Size
    joint_frames: int  # frames pushed through the joint pipeline per repeat
    segment_frames: int  # frames of the clip that `fusionseg segment` runs on (in its own process)
    training: tuple[tuple[str, int, int], ...]  # (backbone, crop size, batch)
    matmul_n: int
    wait_policy_probe: bool  # time a stream in fresh processes with OpenMP's default and passive waiting
    dtypes: tuple[str, ...] = ("fp32", "bf16")


SMALL: Size = (240, 427)
LARGE: Size = (480, 854)
FULL = Plan(
    repeats=5,
    slow_repeats=2,
    flow_sizes=(SMALL, LARGE),
    flow_methods=(
        ("dis", {"preset": "ultrafast"}),
        ("dis", {"preset": "fast"}),
        ("dis", {"preset": "medium"}),
        ("farneback", {}),
        ("deepflow", {}),
        ("tvl1", {}),
    ),
    slow_flow_methods=("deepflow", "tvl1"),
    inference=(
        ("lite0", 16, SMALL, 1),
        ("lite0", 16, SMALL, 8),
        ("lite0", 8, SMALL, 1),
        ("lite0", 16, LARGE, 1),
        ("lite0", 8, LARGE, 1),
        ("resnet101", 8, SMALL, 1),
    ),
    joint_size=SMALL,
    joint_frames=8,
    segment_frames=50,
    training=(("lite0", 128, 8), ("lite0", 256, 8)),
    matmul_n=2048,
    wait_policy_probe=True,
)
QUICK = Plan(
    repeats=1,
    slow_repeats=1,
    flow_sizes=((120, 214),),
    flow_methods=(("dis", {"preset": "medium"}), ("farneback", {})),
    slow_flow_methods=(),
    inference=(("lite0", 16, (96, 160), 1),),
    joint_size=(96, 160),
    joint_frames=2,
    segment_frames=3,
    training=(("lite0", 64, 2),),
    matmul_n=512,
    wait_policy_probe=False,
)


# ----------------------------------------------------------------------------------------------
# Timing and bookkeeping


def machine_name() -> str:
    """A file-name slug of the CPU model and core count, e.g. `intel-xeon-processor-2c`."""
    model = re.sub(r"\((r|tm)\)", "", str(hardware()["processor"]).lower())
    slug = re.sub(r"[^a-z0-9]+", "-", model).strip("-") or "unknown-cpu"
    return f"{slug}-{os.cpu_count()}c"


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load averages (runnable processes; this machine has os.cpu_count() cores)."""
    return [round(value, 2) for value in os.getloadavg()]


def time_call(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> dict[str, Any]:
    """Median wall seconds of `fn()` over `repeats` calls after `warmup` calls, with the load averages."""
    for _ in range(warmup):
        fn()
    load_start = load_average()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return {
        "seconds": statistics.median(seconds),
        "seconds_all": [round(s, 6) for s in seconds],
        "repeats": repeats,
        "load_start": load_start,
        "load_end": load_average(),
    }


def count_flops(fn: Callable[[], Any]) -> int:
    """Floating-point operations of the matrix products and convolutions `fn()` runs (2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def autocast(dtype: str) -> Any:
    """bf16 autocast on the CPU for "bf16", a no-op context for "fp32"."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16")


def prepare_model(model: nn.Module) -> nn.Module:
    """The model in eval mode and channels_last (oneDNN's fast layout, as `fusionseg.infer` feeds
    it on a CPU, for both dtypes)."""
    return model.eval().to(memory_format=torch.channels_last)


def random_input(batch: int, size: Size) -> torch.Tensor:
    """A (batch, 3, H, W) input in [0, 1], channels_last (as `fusionseg.infer` makes it)."""
    x = torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(0))
    return x.contiguous(memory_format=torch.channels_last)


# ----------------------------------------------------------------------------------------------
# Frames: a real DAVIS video where available, else a synthetic textured sequence


def synthetic_frames(
    n: int, size: Size = LARGE, shift: tuple[int, int] = (3, 2), seed: int = 0
) -> list[np.ndarray]:
    """`n` RGB frames: a smooth random colour texture translated by `shift` (dx, dy) pixels per frame."""
    height, width = size
    margin = 8 + n * max(abs(shift[0]), abs(shift[1]))
    rng = np.random.default_rng(seed)
    noise = rng.random((height + 2 * margin, width + 2 * margin, 3)).astype(np.float32)
    texture = cv2.GaussianBlur(noise, (0, 0), 3)
    texture = (255 * (texture - texture.min()) / np.ptp(texture)).astype(np.uint8)
    frames = []
    for k in range(n):
        y, x = margin - k * shift[1], margin - k * shift[0]
        frames.append(np.ascontiguousarray(texture[y : y + height, x : x + width]))
    return frames


def davis_frame_paths(n: int) -> tuple[str, list[Path]] | None:
    """The first `n` 480p frames of the first DAVIS video with that many, or None without DAVIS."""
    root = data_root(required=False)
    if root is None:
        return None
    videos = root / "DAVIS" / "JPEGImages" / "480p"
    if not videos.is_dir():
        return None
    for folder in sorted(p for p in videos.iterdir() if p.is_dir()):
        paths = sorted(folder.glob("*.jpg"))[:n]
        if len(paths) == n:
            return f"DAVIS 480p {folder.name} frames {paths[0].stem}..{paths[-1].stem}", paths
    return None


@contextmanager
def frame_files(n: int) -> Iterator[tuple[str, list[Path]]]:
    """JPEG files of `n` consecutive frames (DAVIS if available, else synthetic ones in a temporary folder)."""
    found = davis_frame_paths(n)
    if found is not None:
        yield found
        return
    with tempfile.TemporaryDirectory(prefix="fusionseg-bench-") as tmp:
        paths = [Path(tmp) / f"{k:05d}.jpg" for k in range(n)]
        for path, frame in zip(paths, synthetic_frames(n), strict=True):
            write_jpeg(path, frame, quality=95)
        yield "synthetic textured frames (smooth noise shifted by (3, 2) px per frame)", paths


def resized(frame: np.ndarray, size: Size) -> np.ndarray:
    """`frame` at (H, W) = `size` (area interpolation when shrinking, as the library resizes)."""
    return resize_frame(frame, size)


# ----------------------------------------------------------------------------------------------
# Measurements


def measure_peak(n: int, repeats: int) -> list[dict[str, Any]]:
    """GFLOP/s of an n x n x n matrix product in fp32 and bf16 (2 n^3 operations): the median
    (`gflops`) and the fastest repeat (`gflops_best`, the ceiling the networks are compared with)."""
    rows = []
    for dtype, torch_dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        generator = torch.Generator().manual_seed(0)
        a = torch.randn(n, n, generator=generator).to(torch_dtype)
        b = torch.randn(n, n, generator=generator).to(torch_dtype)
        timing = time_call(lambda a=a, b=b: torch.mm(a, b), max(repeats, 3))
        flops = 2 * n**3
        rows.append(
            {
                "dtype": dtype,
                "n": n,
                "gflops": flops / timing["seconds"] / 1e9,
                "gflops_best": flops / min(timing["seconds_all"]) / 1e9,
                **timing,
            }
        )
    return rows


def measure_flow(frames: list[np.ndarray], plan: Plan) -> list[dict[str, Any]]:
    """Frames/s of each flow method at each size (slow methods at the first size, fewer repeats)."""
    from fusionseg.flow import compute_flow

    rows = []
    for size in plan.flow_sizes:
        a, b = resized(frames[0], size), resized(frames[1], size)
        for method, params in plan.flow_methods:
            slow = method in plan.slow_flow_methods
            if slow and size != plan.flow_sizes[0]:
                continue
            repeats = plan.slow_repeats if slow else plan.repeats
            timing = time_call(lambda m=method, p=params, a=a, b=b: compute_flow(a, b, m, **p), repeats)
            label = method if method != "dis" else f"dis-{params['preset']}"
            rows.append(
                {"method": label, "height": size[0], "width": size[1], "fps": 1 / timing["seconds"], **timing}
            )
    return rows


class Models:
    """Stream networks built once per (backbone, output stride) and handed out as copies.

    Lite0 carries its ImageNet weights; ResNet-101 is random (its weights do not change its speed,
    and the release's may not be on this machine).
    """

    def __init__(self) -> None:
        self._built: dict[tuple[str, int, str], nn.Module] = {}

    @staticmethod
    def weights(backbone: str) -> str:
        return "ImageNet" if backbone == "lite0" else "random"

    def get(self, backbone: str, output_stride: int, decoder: str = "none") -> nn.Module:
        """A fresh copy of the stream (so that training or layout changes never leak into other measurements)."""
        from fusionseg.models import build_stream

        key = (backbone, output_stride, decoder)
        if key not in self._built:
            self._built[key] = build_stream(
                backbone, output_stride, pretrained=backbone == "lite0", decoder=decoder
            )
        return copy.deepcopy(self._built[key])


def measure_stream(
    model: nn.Module, size: Size, batch: int, dtype: str, repeats: int, peak: dict[str, float]
) -> dict[str, Any]:
    """Frames/s, FLOPs and achieved GFLOP/s of one stream's forward pass."""
    model = prepare_model(model)
    x = random_input(batch, size)

    def forward() -> torch.Tensor:
        with torch.inference_mode(), autocast(dtype):
            return model(x)

    flops = count_flops(forward) / batch
    timing = time_call(forward, repeats)
    achieved = flops * batch / timing["seconds"] / 1e9
    return {
        "fps": batch / timing["seconds"],
        "gflop_per_frame": flops / 1e9,
        "achieved_gflops": achieved,
        "peak_gflops": peak[dtype],
        "fraction_of_peak": achieved / peak[dtype],
        **timing,
    }


def measure_inference(plan: Plan, models: Models, peak: dict[str, float], bar: tqdm) -> list[dict[str, Any]]:
    """One row per (backbone, output stride, size, batch, dtype) of `plan.inference`."""
    rows = []
    for backbone, stride, size, batch in plan.inference:
        model = models.get(backbone, stride)
        repeats = plan.slow_repeats if backbone == "resnet101" else plan.repeats
        for dtype in plan.dtypes:
            bar.set_postfix_str(f"{backbone} OS{stride} {size[1]}x{size[0]} b{batch} {dtype}")
            row = measure_stream(model, size, batch, dtype, repeats, peak)
            rows.append(
                {
                    "backbone": backbone,
                    "output_stride": stride,
                    "weights": Models.weights(backbone),
                    "height": size[0],
                    "width": size[1],
                    "batch": batch,
                    "dtype": dtype,
                    **row,
                }
            )
    return rows


def measure_threads(plan: Plan, models: Models, peak: dict[str, float], bar: tqdm) -> list[dict[str, Any]]:
    """Lite0 (OS 16, batch 1, joint size) frames/s with 1 thread and with every core, per dtype:
    shows what a second thread buys (little or nothing when other processes hold the cores)."""
    rows = []
    before = torch.get_num_threads()
    try:
        for threads in sorted({1, os.cpu_count() or 1}):
            torch.set_num_threads(threads)
            for dtype in plan.dtypes:
                bar.set_postfix_str(f"threads {threads} {dtype}")
                row = measure_stream(models.get("lite0", 16), plan.joint_size, 1, dtype, plan.repeats, peak)
                rows.append(
                    {
                        "threads": threads,
                        "height": plan.joint_size[0],
                        "width": plan.joint_size[1],
                        "dtype": dtype,
                        **row,
                    }
                )
    finally:
        torch.set_num_threads(before)
    return rows


def stream_fps(size: Size, threads: int, repeats: int) -> float:
    """Frames/s of a random-weight Lite0 stream (OS 16, fp32, batch 1) with `threads` threads."""
    from fusionseg.models import build_stream

    torch.set_num_threads(threads)
    model = build_stream("lite0", 16, pretrained=False).eval()
    x = random_input(1, size)

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    return 1 / time_call(forward, repeats)["seconds"]


def measure_wait_policy(plan: Plan, bar: tqdm) -> list[dict[str, Any]]:
    """`stream_fps` with every core in fresh processes, with OpenMP's default waiting (threads spin
    before they sleep) and with OMP_WAIT_POLICY=passive: on a busy machine spinning threads take
    the cores that the working ones need. (The policy is read once, when a process starts OpenMP.)"""
    if not plan.wait_policy_probe:
        return []
    rows = []
    threads = os.cpu_count() or 1
    for policy in ("default", "passive"):
        bar.set_postfix_str(f"OMP wait policy {policy}")
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        if policy != "default":
            env["OMP_WAIT_POLICY"] = policy
        code = (
            "from fusionseg.bench import stream_fps; "
            f"print(stream_fps({tuple(plan.joint_size)}, {threads}, {plan.repeats}))"
        )
        load_start = load_average()
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"the wait-policy probe failed:\n{done.stderr[-2000:]}")
        fps = float(done.stdout.strip().splitlines()[-1])
        rows.append(
            {
                "omp_wait_policy": policy,
                "threads": threads,
                "height": plan.joint_size[0],
                "width": plan.joint_size[1],
                "dtype": "fp32",
                "fps": fps,
                "load_start": load_start,
                "load_end": load_average(),
            }
        )
    return rows


def build_joint(models: Models, dtype: str, fold_bn: bool = True) -> nn.Module:
    """Two ImageNet-initialised Lite0 streams as the real-data profile builds them (OS 16, its
    decoders) and the release's fusion, as one JointModel, with the streams' BatchNorms folded into
    their convs as `fusionseg.infer.load_stream` does (unless `fold_bn` is False)."""
    from fusionseg.infer import JointModel
    from fusionseg.models import ReleaseFusion, fold_batchnorm

    streams = [models.get("lite0", 16, decoder).eval() for decoder in JOINT_DECODERS.values()]
    if fold_bn:
        streams = [fold_batchnorm(stream) for stream in streams]
    return prepare_model(JointModel(*streams, ReleaseFusion()))


def joint_stages(joint: nn.Module, paths: list[Path], size: Size, dtype: str) -> dict[str, float]:
    """Seconds spent in each stage while segmenting the frames in `paths` one at a time."""
    from fusionseg.checkpoints import to_input
    from fusionseg.flow import compute_flow, flow_pairs, flow_to_color

    stages = dict.fromkeys(
        ("decode", "flow", "flow_image", "to_tensor", "appearance", "motion", "fusion"), 0.0
    )

    def timed(stage: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = fn()
        stages[stage] += time.perf_counter() - start
        return value

    frames = [timed("decode", lambda p=p: resized(read_rgb(p), size)) for p in paths]
    for i, j in flow_pairs(len(frames)):
        flow = timed("flow", lambda i=i, j=j: compute_flow(frames[i], frames[j], "dis"))
        image = timed("flow_image", lambda flow=flow: flow_to_color(flow))
        rgb, mot = timed(
            "to_tensor",
            lambda i=i, image=image: [
                to_input(torch.from_numpy(np.stack([a])), channels_last=True)  # as fusionseg.infer
                for a in (frames[i], image)
            ],
        )
        with torch.inference_mode(), autocast(dtype):
            app_logits = timed("appearance", lambda rgb=rgb: joint.appearance(rgb))
            mot_logits = timed("motion", lambda mot=mot: joint.motion(mot))
            timed(
                "fusion",
                lambda a=app_logits, m=mot_logits: (
                    joint.fusion(a.float(), m.float()).softmax(1)[0, 1] > 0.5
                ).numpy(),
            )
    return stages


def measure_joint_stages(
    joint: nn.Module, paths: list[Path], size: Size, dtype: str, repeats: int
) -> dict[str, Any]:
    """Per-stage ms/frame (median over repeats) of the frame-by-frame joint pipeline and its frames/s."""
    joint_stages(joint, paths[:2], size, dtype)  # warm-up
    load_start = load_average()
    runs = [joint_stages(joint, paths, size, dtype) for _ in range(repeats)]
    per_frame = {
        stage: 1000 * statistics.median(run[stage] for run in runs) / len(paths) for stage in runs[0]
    }
    total = sum(per_frame.values())
    return {
        "stage_ms_per_frame": per_frame,
        "total_ms_per_frame": total,
        "fps": 1000 / total,
        "repeats": repeats,
        "load_start": load_start,
        "load_end": load_average(),
    }


# The library's joint path with and without each of its speed-ups (default path last).
JOINT_VARIANTS = (
    {"fold_batchnorm": False, "overlap_flow": False},
    {"fold_batchnorm": True, "overlap_flow": False},
    {"fold_batchnorm": True, "overlap_flow": True},
)


def measure_joint_library(
    joint: nn.Module, paths: list[Path], size: Size, dtype: str, repeats: int, overlap_flow: bool = True
) -> dict[str, Any]:
    """Frames/s of the library's own path: decode, then `predict_joint` (flow and flow images in a
    background thread overlapped with the networks, or computed on the way without overlap), with
    the default batch size."""
    from fusionseg.infer import INFERENCE_BATCH, predict_joint

    def run() -> None:
        frames = [resized(read_rgb(p), size) for p in paths]
        predict_joint(joint, frames, "dis", precision=dtype, overlap=overlap_flow)

    timing = time_call(run, repeats)
    return {"fps": len(paths) / timing["seconds"], "batch_size": INFERENCE_BATCH, **timing}


def measure_joint_variants(
    models: Models, paths: list[Path], size: Size, dtype: str, repeats: int
) -> list[dict[str, Any]]:
    """`measure_joint_library` for each of `JOINT_VARIANTS`: what folding the BatchNorms and
    overlapping the flow each buy. The library path as a user gets it (channels_last inputs)."""
    rows = []
    for variant in JOINT_VARIANTS:
        joint = build_joint(models, dtype, variant["fold_batchnorm"])
        rows.append(
            {**variant, **measure_joint_library(joint, paths, size, dtype, repeats, variant["overlap_flow"])}
        )
    return rows


def measure_joint(
    plan: Plan, models: Models, paths: list[Path], peak: dict[str, float], bar: tqdm
) -> list[dict[str, Any]]:
    """The joint pipeline per dtype: per-stage breakdown (folded BatchNorms), the library path
    (its default and the variants without each speed-up), and the networks' FLOPs."""
    rows = []
    size = plan.joint_size
    for dtype in plan.dtypes:
        bar.set_postfix_str(f"joint {size[1]}x{size[0]} {dtype}")
        joint = build_joint(models, dtype)
        x = random_input(1, size)
        with torch.inference_mode(), autocast(dtype):
            flops = count_flops(lambda joint=joint, x=x: joint(x, x))
        stages = measure_joint_stages(joint, paths, size, dtype, plan.repeats)
        variants = measure_joint_variants(models, paths, size, dtype, plan.repeats)
        network_s = sum(stages["stage_ms_per_frame"][s] for s in ("appearance", "motion", "fusion")) / 1000
        rows.append(
            {
                "height": size[0],
                "width": size[1],
                "dtype": dtype,
                "flow_method": "dis-medium",
                "decoder": JOINT_DECODER_LABEL,
                "fusion": "ReleaseFusion",
                "frames": len(paths),
                "gflop_per_frame": flops / 1e9,
                "network_achieved_gflops": flops / network_s / 1e9,
                "peak_gflops": peak[dtype],
                "target_fps": JOINT_TARGET_FPS,
                "per_frame": {**stages, "fold_batchnorm": True},
                "library_path": variants[-1],  # the default: folded BatchNorms, overlapped flow
                "library_variants": variants,
            }
        )
    return rows


def write_joint_weights(models: Models, folder: Path) -> dict[str, Path]:
    """Weights files of the benchmark's joint model (ImageNet Lite0 streams with real-lite's decoders,
    the release's fusion) as `fusionseg train` writes them: the speed does not depend on training."""
    from fusionseg.checkpoints import save_weights
    from fusionseg.models import ReleaseFusion

    paths = {name: folder / f"{name}.pt" for name in ("appearance", "motion", "fusion")}
    for name, decoder in JOINT_DECODERS.items():
        config = {"kind": "stream", "backbone": "lite0", "output_stride": 16, "decoder": decoder}
        save_weights(paths[name], models.get("lite0", 16, decoder), config)
    save_weights(paths["fusion"], ReleaseFusion(), {"kind": "fusion"})
    return paths


def measure_segment_command(models: Models, paths: list[Path], size: Size, dtype: str) -> dict[str, Any]:
    """`fusionseg segment` as a user runs it, in a fresh process: the frames in `paths` (a folder of
    their links), the joint model's three weights files, `--size`. Returns the command's own timing
    line (start-up, network loop, writing) and the process's wall time, imports included."""
    from fusionseg.infer import TIMING_PATTERN

    with tempfile.TemporaryDirectory(prefix="fusionseg-segment-") as tmp:
        folder = Path(tmp) / "frames"
        folder.mkdir()
        for path in paths:
            (folder / path.name).symlink_to(path.resolve())
        weights = write_joint_weights(models, Path(tmp))
        command = [sys.executable, "-m", "fusionseg", "segment", str(folder), "--out", str(Path(tmp) / "out")]
        command += ["--weights", str(weights["appearance"]), "--motion-weights", str(weights["motion"])]
        command += ["--fusion-weights", str(weights["fusion"]), "--size", str(size[0]), str(size[1])]
        command += ["--fp32"] if dtype == "fp32" else []
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=os.environ | {"TQDM_DISABLE": "1"})
        wall = time.perf_counter() - start
    found = re.search(TIMING_PATTERN, done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"fusionseg segment failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    timing = {key: float(value) for key, value in found.groupdict().items()}
    return {
        "frames": int(timing["frames"]),
        "height": size[0],
        "width": size[1],
        "dtype": dtype,
        "decoder": JOINT_DECODER_LABEL,
        "startup_s": timing["start"],
        "loop_s": timing["loop"],
        "loop_fps": timing["fps"],
        "write_s": timing["write"],
        "command_s": timing["total"],
        "process_s": wall,  # the command's time plus the interpreter's start and the imports
        "target_fps": JOINT_TARGET_FPS,
    }


def training_step(model: nn.Module, x: torch.Tensor, dtype: str) -> Callable[[], None]:
    """One SGD step (forward, loss, backward, update) on a fixed batch, as `train_stream` steps."""
    from fusionseg.train.stream import TrainConfig, make_optimizer, segmentation_loss

    optimizer = make_optimizer(model, TrainConfig())
    y = torch.randint(0, 2, (x.shape[0], *x.shape[-2:]), generator=torch.Generator().manual_seed(0))

    def step() -> None:
        with autocast(dtype):
            logits = model(x)
        loss = segmentation_loss(logits, y, y.numel())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def measure_training(plan: Plan, models: Models, peak: dict[str, float], bar: tqdm) -> list[dict[str, Any]]:
    """Training images/s (no data loading) per (backbone, crop, batch) and dtype.

    FLOPs per step are counted as 3 x the forward pass (the backward pass costs about twice the
    forward): FlopCounterMode's formula for the backward pass of grouped convolutions counts the
    weight gradient `groups` times over (torch 2.x), which would inflate Lite0's depthwise layers ~40x.
    """
    rows = []
    for backbone, crop, batch in plan.training:
        for dtype in plan.dtypes:
            bar.set_postfix_str(f"train {backbone} {crop}px b{batch} {dtype}")
            model = prepare_model(models.get(backbone, 16))
            x = random_input(batch, (crop, crop))
            with torch.no_grad(), autocast(dtype):
                flops = 3 * count_flops(lambda model=model, x=x: model(x))
            model.train()
            timing = time_call(training_step(model, x, dtype), plan.slow_repeats)
            achieved = flops / timing["seconds"] / 1e9
            rows.append(
                {
                    "backbone": backbone,
                    "output_stride": 16,
                    "weights": Models.weights(backbone),
                    "crop_size": crop,
                    "batch": batch,
                    "dtype": dtype,
                    "images_per_s": batch / timing["seconds"],
                    "gflop_per_image": flops / batch / 1e9,
                    "flop_rule": "3 x forward",
                    "achieved_gflops": achieved,
                    "fraction_of_peak": achieved / peak[dtype],
                    **timing,
                }
            )
    return rows


def book_timings(root: Path | None = None) -> dict[str, Any]:
    """Per profile: the book's total and per-notebook wall time and peak memory (from book.json), from
    `root`, by default this checkout's own runs and, for profiles they lack, the committed reference."""
    roots = [results_root(), reference_root()] if root is None else [root]
    found = {}
    paths = [path for folder in roots for path in sorted(folder.glob("*/provenance/book.json"))]
    for path in paths:
        if path.parts[-3] in found:
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable book provenance record ({exc})") from exc
        found[path.parts[-3]] = {
            "wall_time_s": record.get("wall_time_s"),
            "peak_memory_mb": record.get("peak_memory_mb"),
            "finished_at": record.get("finished_at"),
            "notebooks": record.get("notebooks", {}),
        }
    return found


# ----------------------------------------------------------------------------------------------
# The record


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "KMP_BLOCKTIME", "MKL_NUM_THREADS")


def machine_record() -> dict[str, Any]:
    """What the numbers were measured on, including the threading environment: on a busy machine
    OpenMP's default busy-waiting (OMP_WAIT_POLICY unset = active) slows multi-threaded torch badly."""
    from fusionseg.checkpoints import cpu_supports_bf16

    return {
        "name": machine_name(),
        **hardware(),
        "opencv_threads": cv2.getNumThreads(),
        "bf16_native": cpu_supports_bf16(),
        "environment": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "libraries": library_versions(),
    }


def run_benchmark(plan: Plan, threads: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Run every measurement of `plan` (with `threads` torch threads, restored afterwards) and
    return the record (see the module docstring)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _measure_all(plan, progress)
    finally:
        torch.set_num_threads(before)


def _measure_all(plan: Plan, progress: bool) -> dict[str, Any]:
    started, load_start = time.strftime("%Y-%m-%dT%H:%M:%S%z"), load_average()
    bar = tqdm(total=7, desc="bench", disable=not progress, dynamic_ncols=True)
    with frame_files(max(plan.joint_frames, 2)) as (source, paths):
        record: dict[str, Any] = {"format": FORMAT, "quick": replace(plan, dtypes=QUICK.dtypes) == QUICK}
        record |= {"machine": machine_record(), "dtypes": list(plan.dtypes)}
        record["frames"] = source
        bar.set_postfix_str("peak matmul")
        record["peak"] = measure_peak(plan.matmul_n, plan.repeats)
        peak = {row["dtype"]: row["gflops_best"] for row in record["peak"]}
        bar.update()
        bar.set_postfix_str("flow")
        record["flow"] = measure_flow([read_rgb(p) for p in paths[:2]], plan)
        bar.update()
        models = Models()
        record["inference"] = measure_inference(plan, models, peak, bar)
        bar.update()
        record["threads"] = measure_threads(plan, models, peak, bar)
        record["wait_policy"] = measure_wait_policy(plan, bar)
        bar.update()
        record["joint"] = measure_joint(plan, models, paths, peak, bar)
        with frame_files(plan.segment_frames) as (_, clip):
            bar.set_postfix_str(f"fusionseg segment, {len(clip)} frames")
            record["segment"] = [measure_segment_command(models, clip, plan.joint_size, "fp32")]
        bar.update()
        record["training"] = measure_training(plan, models, peak, bar)
        bar.update()
        record["book"] = book_timings()
        bar.update()
    bar.close()
    record.update(started_at=started, finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    record.update(load_start=load_start, load_end=load_average())
    return record


def default_output() -> Path:
    return results_root() / "bench" / f"{machine_name()}.json"


def latest_record(folder: Path | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The newest full record in `folder` by its finish time, or None. By default, this machine's own
    records (`runs/results/bench/`) and the committed ones (`results/bench/`).

    Quick records (from tests) are passed over when a full one exists.
    """
    folders = [results_root() / "bench", reference_root() / "bench"] if folder is None else [Path(folder)]
    records = []
    for path in sorted(path for folder in folders for path in folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable benchmark record ({exc})") from exc
        if record.get("format") == FORMAT:
            records.append((not record.get("quick", False), record.get("finished_at", ""), path, record))
    if not records:
        return None
    *_, path, record = max(records, key=lambda item: item[:2])
    return path, record


def variant_label(row: dict[str, Any]) -> str:
    """E.g. 'folded BN, overlapped flow: 9.1 frames/s'."""
    fold = "folded BN" if row["fold_batchnorm"] else "unfolded BN"
    flow = "overlapped flow" if row["overlap_flow"] else "sequential flow"
    return f"{fold}, {flow}: {row['fps']:.1f} frames/s"


def summary(record: dict[str, Any]) -> str:
    """A few lines for the terminal: the joint pipeline against its target, and the peak."""
    lines = ["peak: " + ", ".join(f"{r['dtype']} {r['gflops_best']:.0f} GFLOP/s" for r in record["peak"])]
    for row in record["joint"]:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in row["per_frame"]["stage_ms_per_frame"].items())
        lines.append(
            f"joint {row['width']}x{row['height']} {row['dtype']}: {row['per_frame']['fps']:.1f} frames/s "
            f"frame by frame ({stages} ms), {row['library_path']['fps']:.1f} frames/s via predict_joint "
            f"(target {row['target_fps']:.0f}); "
            + ", ".join(variant_label(v) for v in row["library_variants"])
        )
    for row in record.get("segment", []):
        lines.append(
            f"fusionseg segment, {row['frames']} frames at {row['width']}x{row['height']}: loop "
            f"{row['loop_fps']:.1f} frames/s (target {row['target_fps']:.0f}), start-up {row['startup_s']:.1f} s, "
            f"writing {row['write_s']:.1f} s, whole process {row['process_s']:.1f} s"
        )
    lines.append(f"load average {record['load_start']} at start, {record['load_end']} at end")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Reading a record: the tables and figures of the appendix 'Performance'
# (book/12_appendix_performance.md calls one of these per table or figure; the numbers are the
# record's, unrounded: the chapter rounds them for display). The figures are drawn with pyplot, so
# that a notebook shows them at the end of the cell as before; close them when not in a notebook.

DTYPE_COLORS = {"fp32": "tab:blue", "bf16": "tab:orange"}


def record_overview(path: Path, record: dict[str, Any]) -> str:
    """Lines naming the record (file, quick or full, finish time), the machine, its threading
    environment, the load averages (with a note when the load exceeded the core count) and the
    frames; printed by the appendix 'Performance' under its setup."""
    machine = record["machine"]
    lines = [
        f"record: {path.name}, {'quick' if record['quick'] else 'full'} run finished {record['finished_at']}",
        f"machine: {machine['processor']}, {machine['cpu_count']} cores, "
        f"torch threads {machine['torch_threads']}, native bf16: {machine['bf16_native']}",
        f"threading environment: {machine['environment']}",
        f"load average (1, 5, 15 min): {record['load_start']} at start, {record['load_end']} at end",
    ]
    busiest = max(record["load_start"][0], record["load_end"][0])
    if busiest > machine["cpu_count"]:
        lines.append(
            f"note: up to {busiest:.1f} runnable processes shared {machine['cpu_count']} cores during this run; "
            "every number below is slower than this hardware allows when idle"
        )
    lines.append(f"frames: {record['frames']}")
    return "\n".join(lines)


def peak_table(record: dict[str, Any]) -> pd.DataFrame:
    """The matrix-product ceiling, one row per dtype: n, `gflops_best` (fastest repeat), `gflops`
    (median) and the load at start and end; shown in the appendix 'Performance'."""
    return pd.DataFrame(record["peak"])[["dtype", "n", "gflops_best", "gflops", "load_start", "load_end"]]


def peak_gflops(record: dict[str, Any]) -> dict[str, float]:
    """The ceiling per dtype (`gflops_best` of the matrix product), e.g. {"fp32": 332.0, "bf16": 169.0}:
    the dashed lines of the achieved-against-peak figure shown in the appendix 'Performance'."""
    return {row["dtype"]: row["gflops_best"] for row in record["peak"]}


def flow_table(record: dict[str, Any]) -> pd.DataFrame:
    """Optical flow frames/s: one row per method, one column per size ("427x240"), fastest method
    first at the first measured size (NaN where a slow method was not run at a size); shown in the
    appendix 'Performance'."""
    flow = pd.DataFrame(record["flow"])
    flow["size"] = flow["width"].astype(str) + "x" + flow["height"].astype(str)
    table = flow.pivot(index="method", columns="size", values="fps")
    return table.sort_values(flow["size"].iloc[0], ascending=False)


def stream_setting(row: dict[str, Any]) -> str:
    """An inference row's setting, e.g. 'lite0 OS16 427x240 b1' (a row label of the inference tables
    shown in the appendix 'Performance')."""
    return f"{row['backbone']} OS{row['output_stride']} {row['width']}x{row['height']} b{row['batch']}"


def inference_table(record: dict[str, Any]) -> pd.DataFrame:
    """One stream's forward pass, one row per (setting, dtype): frames/s, GFLOP per frame, achieved
    GFLOP/s and its fraction of the dtype's peak; shown in the appendix 'Performance'."""
    columns = ["setting", "dtype", "fps", "gflop_per_frame", "achieved_gflops", "fraction_of_peak"]
    rows = [{"setting": stream_setting(row), **row} for row in record["inference"]]
    return pd.DataFrame(rows, columns=columns)


def inference_fps_table(record: dict[str, Any]) -> pd.DataFrame:
    """One stream's forward-pass frames/s, one row per setting and one column per dtype: the bars
    of the inference figure shown in the appendix 'Performance'."""
    return inference_table(record).pivot(index="setting", columns="dtype", values="fps")


def joint_stage_table(record: dict[str, Any]) -> pd.DataFrame:
    """Milliseconds per frame of each stage of the joint pipeline run frame by frame: one row per
    dtype, one column per stage (decode, flow, ..., fusion); shown in the appendix 'Performance'."""
    return pd.DataFrame({row["dtype"]: row["per_frame"]["stage_ms_per_frame"] for row in record["joint"]}).T


def joint_table(record: dict[str, Any]) -> pd.DataFrame:
    """The joint pipeline per dtype (the index): frames/s frame by frame and by the library path,
    the target, the networks' GFLOP per frame and achieved GFLOP/s; shown in the appendix 'Performance'."""
    rows = [
        {
            "dtype": row["dtype"],
            "frame by frame, frames/s": row["per_frame"]["fps"],
            "library path, frames/s": row["library_path"]["fps"],
            "target, frames/s": row["target_fps"],
            "networks, GFLOP/frame": row["gflop_per_frame"],
            "networks, achieved GFLOP/s": row["network_achieved_gflops"],
        }
        for row in record["joint"]
    ]
    return pd.DataFrame(rows).set_index("dtype")


def joint_variants_table(record: dict[str, Any]) -> pd.DataFrame:
    """The library path without each speed-up: frames/s and batch size per (dtype, BatchNorm folded
    or unfolded, flow overlapped or sequential); empty for records made before the variants were
    measured. Shown in the appendix 'Performance'."""
    rows = [
        {
            "dtype": row["dtype"],
            "BatchNorm": "folded" if variant["fold_batchnorm"] else "unfolded",
            "flow": "overlapped" if variant["overlap_flow"] else "sequential",
            "frames/s": variant["fps"],
            "batch": variant["batch_size"],
        }
        for row in record["joint"]
        for variant in row.get("library_variants", [])
    ]
    columns = ["dtype", "BatchNorm", "flow", "frames/s", "batch"]
    return pd.DataFrame(rows, columns=columns).set_index(["dtype", "BatchNorm", "flow"])


def segment_table(record: dict[str, Any]) -> pd.DataFrame:
    """`fusionseg segment` as a user runs it: frames, seconds of start-up, network loop, writing and
    the whole process, and the loop's frames/s against the target; empty for records made before
    it was measured. Shown in the appendix 'Performance'."""
    rows = [
        {
            "clip": f"{row['frames']} frames at {row['width']}x{row['height']}, {row['dtype']}",
            "start-up, s": row["startup_s"],
            "network loop, s": row["loop_s"],
            "loop, frames/s": row["loop_fps"],
            "target, frames/s": row["target_fps"],
            "writing masks and overlay, s": row["write_s"],
            "whole process, s": row["process_s"],
        }
        for row in record.get("segment", [])
    ]
    return pd.DataFrame(rows).set_index("clip") if rows else pd.DataFrame()


def training_table(record: dict[str, Any]) -> pd.DataFrame:
    """A stream's training step, one row per (backbone, crop size, batch, dtype): images/s, GFLOP per
    image, achieved GFLOP/s and its fraction of the peak; shown in the appendix 'Performance'."""
    columns = [
        "backbone",
        "crop_size",
        "batch",
        "dtype",
        "images_per_s",
        "gflop_per_image",
        "achieved_gflops",
        "fraction_of_peak",
    ]
    return pd.DataFrame(record["training"], columns=columns)


def achieved_table(record: dict[str, Any]) -> pd.DataFrame:
    """Every network measurement's achieved GFLOP/s (`what`, `dtype`, `achieved`): each inference
    setting, the joint pipeline's networks, each training setting, in that order: the bars of the
    achieved-against-peak figure shown in the appendix 'Performance'."""
    rows = [
        {"what": f"{stream_setting(r)} {r['dtype']}", "dtype": r["dtype"], "achieved": r["achieved_gflops"]}
        for r in record["inference"]
    ]
    rows += [
        {
            "what": f"joint networks {r['width']}x{r['height']} {r['dtype']}",
            "dtype": r["dtype"],
            "achieved": r["network_achieved_gflops"],
        }
        for r in record["joint"]
    ]
    rows += [
        {
            "what": f"train {r['backbone']} {r['crop_size']}px b{r['batch']} {r['dtype']}",
            "dtype": r["dtype"],
            "achieved": r["achieved_gflops"],
        }
        for r in record["training"]
    ]
    return pd.DataFrame(rows, columns=["what", "dtype", "achieved"])


def threads_table(record: dict[str, Any]) -> pd.DataFrame:
    """The Lite0 stream's frames/s, one row per thread count and one column per dtype; shown in the
    appendix 'Performance'."""
    return pd.DataFrame(record["threads"]).pivot(index="threads", columns="dtype", values="fps")


def wait_policy_table(record: dict[str, Any]) -> pd.DataFrame:
    """The stream's frames/s in fresh processes with OpenMP's default waiting and with
    OMP_WAIT_POLICY=passive (with threads, size, dtype and the load at start); empty for quick
    records and records without the probe. Shown in the appendix 'Performance'."""
    columns = ["omp_wait_policy", "threads", "width", "height", "dtype", "fps", "load_start"]
    return pd.DataFrame(record.get("wait_policy") or [], columns=columns)


@dataclass(frozen=True, eq=False)
class BookRun:
    """One profile's book run as the benchmark found it (`record["book"][label]`)."""

    label: str  # the run's profile label, e.g. "mini"
    wall_time_s: float | None  # the whole book
    notebooks: pd.DataFrame  # one row per notebook: status, wall_time_s, peak_memory_mb


def book_runs(record: dict[str, Any]) -> list[BookRun]:
    """The book's wall time and per-notebook time and memory for each profile the record holds
    (none when the benchmark found no book run); shown in the appendix 'Performance'."""
    return [
        BookRun(label, book["wall_time_s"], pd.DataFrame.from_dict(book["notebooks"], orient="index"))
        for label, book in (record.get("book") or {}).items()
    ]


def _frames_per_second_bars(table: pd.DataFrame, title: str, height: float) -> Figure:
    """Horizontal bars of a frames/s table, on a log scale."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, height))
    table.plot.barh(ax=ax, logx=True)
    ax.set_xlabel("frames/s (log scale)")
    ax.set_title(title)
    return fig


def flow_figure(record: dict[str, Any]) -> Figure:
    """Horizontal bars (log scale) of `flow_table`: the flow figure shown in the appendix 'Performance'."""
    return _frames_per_second_bars(flow_table(record), "optical flow", 3)


def inference_figure(record: dict[str, Any]) -> Figure:
    """Horizontal bars (log scale) of `inference_fps_table`: the inference figure shown in the
    appendix 'Performance'."""
    return _frames_per_second_bars(inference_fps_table(record), "one stream's forward pass", 3.2)


def joint_stages_figure(record: dict[str, Any]) -> Figure:
    """Stacked bars of `joint_stage_table` (ms per frame per stage, one bar per dtype): the
    joint-pipeline figure shown in the appendix 'Performance'."""
    import matplotlib.pyplot as plt

    first = record["joint"][0]
    fig, ax = plt.subplots(figsize=(7, 2.4))
    joint_stage_table(record).plot.barh(ax=ax, stacked=True)
    ax.set_xlabel("ms per frame")
    ax.set_title(f"joint pipeline at {first['width']}x{first['height']}, frame by frame")
    ax.legend(loc="center left", bbox_to_anchor=(1, 0.5))
    return fig


def achieved_figure(record: dict[str, Any]) -> Figure:
    """Bars of `achieved_table` coloured by dtype, with each dtype's matrix-product peak as a dashed
    line: the achieved-against-peak figure shown in the appendix 'Performance'."""
    import matplotlib.pyplot as plt

    achieved = achieved_table(record)
    peaks = peak_gflops(record)
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(achieved) + 1))
    ax.barh(achieved["what"], achieved["achieved"], color=achieved["dtype"].map(DTYPE_COLORS))
    for dtype, color in DTYPE_COLORS.items():
        ax.axvline(peaks[dtype], color=color, linestyle="--", label=f"{dtype} matmul peak {peaks[dtype]:.0f}")
    ax.set_xlabel("GFLOP/s")
    ax.legend(loc="lower right")
    ax.invert_yaxis()
    return fig


def book_figure(run: BookRun) -> Figure:
    """Wall time and peak memory per notebook of one book run, side by side: that profile's figure
    shown in the appendix 'Performance'."""
    import matplotlib.pyplot as plt

    notebooks = run.notebooks
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.3 * len(notebooks) + 1), sharey=True)
    notebooks["wall_time_s"].plot.barh(ax=axes[0], title="wall time (s)")
    notebooks["peak_memory_mb"].plot.barh(ax=axes[1], title="peak memory (MB)")
    axes[0].invert_yaxis()
    fig.suptitle(f"profile {run.label}: {run.wall_time_s} s in all")
    return fig


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="a reduced set in well under a minute (for tests)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON record (default runs/results/bench/<machine>.json)"
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="write the committed results/bench/<machine>.json (clean checkouts only)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")


def plan_for_this_cpu(plan: Plan) -> Plan:
    """`plan` without its bf16 model measurements on a CPU that has no bf16 instructions (emulated
    bf16 took most of a 27-minute bench and measured nothing useful); the peak matmul keeps both."""
    from fusionseg.checkpoints import cpu_has_bf16_instructions

    if cpu_has_bf16_instructions() or "bf16" not in plan.dtypes:
        return plan
    print("bench: this CPU has no bf16 instructions; the models are measured in fp32 only")
    return replace(plan, dtypes=tuple(dtype for dtype in plan.dtypes if dtype != "bf16"))


def run_command(args: argparse.Namespace) -> int:
    if args.record:
        start_recording()
    record = run_benchmark(plan_for_this_cpu(QUICK if args.quick else FULL), args.threads)
    out = args.out or default_output()
    write_json(out, record)
    print(summary(record))
    print(f"record: {out}")
    return 0
