"""Inference: a video -> per-frame foreground probabilities and masks at the original resolution.

`predict_video(model, frames)` runs a stream (appearance on RGB frames, motion on colour-coded flow
images) or a `JointModel` (both streams + a fusion module; pass `flow_images=`) over a video in
batches. Optionally each input is resized to a working `size` first and the probabilities are
resized back (bilinear) to the frame's own size, so one call also serves images of different sizes.
Foreground = softmax probability > 0.5 (= argmax of the two logits, as in the release).

`predict_joint(joint, frames)` computes the flow images itself, in a background thread that runs
ahead of the networks (the path `fusionseg segment` takes for a joint model). `load_stream` folds
the loaded stream's BatchNorms into its convs (`fusionseg.models.fold_batchnorm`) for speed.

`fusionseg segment <video file | frame folder> --out DIR --weights APP.pt [--motion-weights MOT.pt
--fusion-weights FUS.pt]` writes `DIR/masks/<frame>.png` (0/255) and `DIR/overlay.gif` (or .mp4).

Weights files are those `fusionseg.train` writes (`fusionseg.checkpoints.save_weights`: a dict with "model" = state_dict
and "config" = {"backbone", "output_stride", ...}, or a full training checkpoint); a bare
state_dict also loads (built as `--backbone`/`--output-stride`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from queue import Full, Queue
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm import tqdm

from fusionseg.checkpoints import load_fusion, load_stream, to_input, use_bf16
from fusionseg.data.types import FOREGROUND, IGNORE, ImageSet, Video
from fusionseg.flow import resize_frame
from fusionseg.io import DataError, atomic_path, read_rgb, write_png
from fusionseg.metrics import iou

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
Size = tuple[int, int]

# Frames per forward pass. Small batches are faster on a CPU: Lite0 at 427x240 in fp32 ran at
# 24 frames/s with batch 2 against 18 with batch 8 on the quiet 2-core machine (cache-sized
# activations); the outputs do not depend on the batch size.
INFERENCE_BATCH = 2

# zlib level of the masks `fusionseg segment` writes: level 1 wrote 50 masks at 427x240 in 0.65 s
# against 1.7 s at Pillow's default 6 (on 2 busy cores); the files are a little larger, the pixels
# the same
MASK_PNG_COMPRESSION = 1


class JointModel(nn.Module):
    """Appearance stream on RGB + motion stream on flow images, fused: forward(rgb, flow) -> logits."""

    def __init__(self, appearance: nn.Module, motion: nn.Module, fusion: nn.Module):
        super().__init__()
        self.appearance, self.motion, self.fusion = appearance, motion, fusion

    def forward(self, rgb: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return self.fusion(self.appearance(rgb).float(), self.motion(flow).float())


class LazyImages(Sequence[np.ndarray]):
    """A sequence of image files decoded on access (e.g. a video's frames or cached flow images)."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        return read_rgb(self.paths[index])


def video_frames(video: Video) -> LazyImages:
    """A `Video`'s RGB frames as a lazy sequence for `predict_video`."""
    return LazyImages([frame.image_path for frame in video.frames])


# ----------------------------------------------------------------------------------------------
# Batched forward passes


def _device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


Item = tuple[int, list[np.ndarray]]  # (frame index, the model's inputs for that frame)


def iter_logits(
    model: nn.Module,
    inputs: Sequence[Sequence[np.ndarray]],
    batch_size: int = INFERENCE_BATCH,
    size: Size | None = None,
    precision: str = "auto",
    progress: bool = False,
) -> Iterator[tuple[list[int], list[Size], torch.Tensor]]:
    """Run `model(*batch)` over parallel input sequences (one per model argument), in batches.

    Yields (frame indices, their original (H, W) sizes, float32 logits (B, 2, h, w) at the working
    size). A batch holds consecutive frames of one working size. bf16 autocast where the hardware
    supports bf16; channels_last inputs on a CPU (oneDNN's fast layout: Lite0 at 427x240 in fp32
    took 29.6 instead of 38.1 ms per frame on the quiet 2-core machine; same logits to float
    rounding). Frames are decoded one batch at a time.
    """
    n = len(inputs[0])
    if any(len(seq) != n for seq in inputs):
        raise ValueError(f"input sequences differ in length: {[len(seq) for seq in inputs]}")
    indices = tqdm(range(n), desc="segment", disable=not progress, dynamic_ncols=True)
    items = ((index, [seq[index] for seq in inputs]) for index in indices)
    yield from iter_item_logits(model, items, batch_size, size, precision)


def iter_item_logits(
    model: nn.Module,
    items: Iterable[Item],
    batch_size: int = INFERENCE_BATCH,
    size: Size | None = None,
    precision: str = "auto",
) -> Iterator[tuple[list[int], list[Size], torch.Tensor]]:
    """`iter_logits` over (frame index, inputs) items as they come, e.g. from a background thread."""
    device = _device(model)
    bf16 = use_bf16(precision, device)
    channels_last = device.type == "cpu"
    model.eval()

    def forward(batch: list[Item]) -> tuple[list[int], list[Size], torch.Tensor]:
        tensors = []
        for k in range(len(batch[0][1])):
            stacked = np.stack([resize_frame(images[k], size) for _, images in batch])
            tensors.append(to_input(torch.from_numpy(stacked), channels_last).to(device))
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(*tensors).float()
        return [i for i, _ in batch], [images[0].shape[:2] for _, images in batch], logits

    pending: list[Item] = []
    pending_shape: Size | None = None
    for index, images in items:
        shape = tuple(size) if size is not None else images[0].shape[:2]
        if pending and shape != pending_shape:
            yield forward(pending)
            pending = []
        pending.append((index, images))
        pending_shape = shape
        if len(pending) == batch_size:  # run it now, not when the next item comes
            yield forward(pending)
            pending = []
    if pending:
        yield forward(pending)


def probabilities_of(
    batches: Iterable[tuple[list[int], list[Size], torch.Tensor]], n: int
) -> list[np.ndarray]:
    """Foreground probabilities (float32 HxW) of `n` frames from batches of logits, each resized
    back (bilinear) to its frame's original size."""
    probabilities: list[np.ndarray] = [np.empty(0)] * n
    for batch, originals, logits in batches:
        foreground = logits.softmax(dim=1)[:, FOREGROUND : FOREGROUND + 1]
        for row, (index, original) in enumerate(zip(batch, originals, strict=True)):
            p = foreground[row : row + 1]
            if tuple(p.shape[-2:]) != tuple(original):
                p = F.interpolate(p, size=original, mode="bilinear", align_corners=False)
            probabilities[index] = p[0, 0].cpu().numpy()
    return probabilities


def predict_video(
    model: nn.Module,
    frames: Sequence[np.ndarray],
    batch_size: int = INFERENCE_BATCH,
    size: Size | None = None,
    flow_images: Sequence[np.ndarray] | None = None,
    precision: str = "auto",
    progress: bool = False,
) -> list[np.ndarray]:
    """Per-frame foreground probabilities (float32 HxW, each at its frame's original size).

    `frames`: HxWx3 uint8 RGB frames (appearance), flow images (motion), or the RGB frames of a
    `JointModel`, whose flow images go in `flow_images` (`predict_joint` computes them itself).
    `size`: optional working (H, W) that every input is resized to; the probabilities are resized
    back bilinearly. Masks: `probabilities > 0.5`.
    """
    inputs = [frames] if flow_images is None else [frames, flow_images]
    return probabilities_of(iter_logits(model, inputs, batch_size, size, precision, progress), len(frames))


# ----------------------------------------------------------------------------------------------
# The joint model on a video whose flow is computed on the way, overlapped with the networks


def iter_frames_with_flow(
    frames: Sequence[np.ndarray],
    method: str = "dis",
    names: Sequence[str] | None = None,
    size: Size | None = None,
    original_sizes: dict[int, Size] | None = None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(index, frame, flow image) for every frame in order, with the release's pairing (`flow_images_of`).

    With a working `size` each frame is resized to it first, so the flow is computed at the size
    the networks see (as the pipeline computes it on the 427x240 DAVIS frames; DIS at 854x480
    costs about four times as much); `original_sizes` then receives each frame's own (H, W).
    Each frame is taken from `frames` once (a lazy sequence decodes it once) and converted to grey
    once; at most three frames are held. A failure is raised as a DataError that names the frame
    (its index, and its name from `names` if given).
    """
    from fusionseg.flow import compute_flow, flow_pairs, flow_to_color, to_gray

    def label(index: int) -> str:
        return f"frame {index}" + (f" ({names[index]})" if names is not None else "")

    def read(index: int) -> tuple[np.ndarray, np.ndarray]:
        try:
            frame = frames[index]
            if original_sizes is not None:
                original_sizes[index] = frame.shape[:2]
            frame = resize_frame(frame, size)
            return frame, to_gray(frame)
        except Exception as exc:
            raise DataError(f"{label(index)}: {exc}") from exc

    window: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # index -> (frame, grey frame)
    for index, other in flow_pairs(len(frames)):
        for needed in (index, other):
            if needed not in window:
                window[needed] = read(needed)
        frame, gray = window[index]
        try:
            image = flow_to_color(compute_flow(gray, window[other][1], method))
        except Exception as exc:
            raise DataError(f"{label(index)}: flow to frame {other} failed: {exc}") from exc
        yield index, frame, image
        for stale in [k for k in window if k < index]:
            del window[stale]


def prefetch(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """Iterate `items` in a background thread, at most `depth` items ahead of the caller.

    Meant for work that releases the GIL (OpenCV's flow, NumPy's flow image) and can run on
    another core while the caller runs the networks. An exception raised by `items` is raised in
    the caller when it reaches that item. When the caller stops early (close the generator, e.g.
    with `contextlib.closing`), the thread is told to stop and is waited for.
    """
    queue: Queue[tuple[bool, Any]] = Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                queue.put(entry, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
        except BaseException as exc:  # handed to the caller, raised there
            put((False, exc))
            return
        put((False, None))  # the end

    thread = threading.Thread(target=work, name="fusionseg-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            is_item, value = queue.get()
            if is_item:
                yield value
            elif value is None:
                return
            else:
                raise value
    finally:
        stop.set()
        thread.join()


def predict_joint(
    model: nn.Module,
    frames: Sequence[np.ndarray],
    flow_method: str = "dis",
    batch_size: int = INFERENCE_BATCH,
    size: Size | None = None,
    precision: str = "auto",
    progress: bool = False,
    overlap: bool = True,
    names: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """`predict_video` for a `JointModel` that computes the flow images itself (`flow_method`,
    the release's pairing): the same probabilities as `flow_images_of` + `predict_video`.

    With `overlap` (default) the flow and flow images of the coming frames are computed in a
    background thread, up to two batches ahead, while the networks run on the current batch
    (OpenCV and NumPy release the GIL, so they use a core the networks leave idle). Each frame is
    read from `frames` once, for both the flow and the appearance stream, and resized to the
    working `size` before the flow (the flow works at the networks' size). An error in the flow
    names the frame (its index, and its name from `names`).
    """
    from fusionseg.flow import flow_pairs, resolve_params

    flow_pairs(len(frames))  # fail here, before any work, on too short a video
    resolve_params(flow_method, {})  # and on an unknown method
    with contextlib.ExitStack() as stack:
        original_sizes: dict[int, Size] = {}  # filled as frames are read, before they reach the networks
        source = iter_frames_with_flow(frames, flow_method, names, size, original_sizes)
        if overlap:
            source = stack.enter_context(contextlib.closing(prefetch(source, 2 * batch_size)))
        bar = tqdm(source, total=len(frames), desc="segment", disable=not progress, dynamic_ncols=True)
        items = ((index, [frame, image]) for index, frame, image in bar)
        batches = (
            (indices, [original_sizes[i] for i in indices], logits)
            for indices, _, logits in iter_item_logits(model, items, batch_size, None, precision)
        )
        return probabilities_of(batches, len(frames))


def masks_from(probabilities: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Boolean foreground masks: probability > 0.5 (the argmax of the two classes)."""
    return [p > 0.5 for p in probabilities]


def image_set_iou(
    model: nn.Module,
    image_set: ImageSet,
    size: Size | None = None,
    batch_size: int = INFERENCE_BATCH,
    precision: str = "auto",
    progress: bool = True,
) -> list[float]:
    """Foreground IoU (255 ignored) of the model's mask on each image of an image set, e.g. DUTS-TE.

    Without a working `size`, images run at their own sizes (a batch holds consecutive images of
    one size, so mixed sizes mean small batches).
    """
    images = LazyImages([item.image_path for item in image_set.items])
    probabilities = predict_video(model, images, batch_size, size, precision=precision, progress=progress)
    return [iou(p > 0.5, image_set.label(i), ignore=IGNORE) for i, p in enumerate(probabilities)]


# ----------------------------------------------------------------------------------------------
# Loading weights

GET_WEIGHTS_HELP = """\
Trained weights are needed. Either train them:
  fusionseg train --dataset duts --out runs/appearance            -> runs/appearance/model.pt
  fusionseg train --pairs PSEUDO_LABELS_DIR --out runs/motion     -> runs/motion/model.pt
or convert the authors' released Caffe models (`python data_scripts/release_weights.py` fetches them):
  fusionseg import-caffe appearance_stream.caffemodel --arch appearance --out appearance.pt
  fusionseg import-caffe motion_stream.caffemodel --arch motion --out motion.pt
  fusionseg import-caffe joint_stream.caffemodel --arch joint --out joint.pt
then: fusionseg segment VIDEO --out DIR --weights appearance.pt [--motion-weights motion.pt --fusion-weights joint.pt]"""


def load_model(
    weights: Path, motion_weights: Path | None = None, fusion_weights: Path | None = None, **build: Any
) -> nn.Module:
    """One stream (`weights` only) or a `JointModel` (all three files)."""
    if (motion_weights is None) != (fusion_weights is None):
        raise ValueError("a joint model needs both --motion-weights and --fusion-weights")
    appearance = load_stream(weights, **build)
    if motion_weights is None:
        return appearance
    return JointModel(appearance, load_stream(motion_weights, **build), load_fusion(fusion_weights)).eval()


# ----------------------------------------------------------------------------------------------
# Reading videos, writing masks and overlays


def read_frames(source: Path) -> tuple[list[str], list[np.ndarray], float | None]:
    """Frame names, RGB frames and frame rate (None if unknown) of a frame folder or a video file."""
    source = Path(source)
    if source.is_dir():
        paths = sorted(p for p in source.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        if not paths:
            raise DataError(f"{source}: no {'/'.join(FRAME_SUFFIXES)} frames in this folder")
        return [p.stem for p in paths], [read_rgb(p) for p in paths], None
    if not source.is_file():
        raise DataError(f"{source}: no such video file or frame folder")
    capture = cv2.VideoCapture(str(source))
    frames = []
    while capture.isOpened():
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    fps = capture.get(cv2.CAP_PROP_FPS) or None
    capture.release()
    if not frames:
        raise DataError(f"{source}: OpenCV could not decode any frame (not a video file?)")
    return [f"{i:05d}" for i in range(len(frames))], frames, fps


def flow_images_of(frames: Sequence[np.ndarray], method: str = "dis") -> list[np.ndarray]:
    """Colour-coded flow images of in-memory frames, paired as the release pairs them (all at
    once; `predict_joint` computes them on the way, overlapped with the networks)."""
    from fusionseg.flow import compute_flow, flow_pairs, flow_to_color

    return [flow_to_color(compute_flow(frames[i], frames[j], method)) for i, j in flow_pairs(len(frames))]


def overlay(
    frame: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = (255, 40, 40), alpha: float = 0.5
) -> np.ndarray:
    """The frame with the mask tinted in `color` (weight `alpha`; default half transparent).

    One blend of the whole frame with OpenCV, then a select: about 5x faster than blending the
    masked pixels in float32 (0.5 s against 2.5 s for 50 frames at 427x240 on 2 busy cores)."""
    frame = np.asarray(frame, dtype=np.uint8)
    tint = np.empty_like(frame)
    tint[...] = color
    blended = cv2.addWeighted(frame, 1 - alpha, tint, alpha, 0.0)
    return np.where(np.asarray(mask, dtype=bool)[..., None], blended, frame)


def write_gif(path: Path, frames: Sequence[np.ndarray], fps: float) -> None:
    """An animated GIF (looping), written atomically.

    Each frame gets its own 256-colour palette by the fast octree method: Pillow's default for RGB
    frames (median cut) took 10 s for 50 textured 427x240 frames, longer than segmenting them, and
    the octree 0.2 s, with no visible difference in an overlay."""
    images = [Image.fromarray(frame).quantize(256, method=Image.Quantize.FASTOCTREE) for frame in frames]
    with atomic_path(path) as tmp:
        images[0].save(
            tmp, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0
        )


def write_mp4(path: Path, frames: Sequence[np.ndarray], fps: float) -> None:
    """An MP4 (OpenCV's mp4v codec), written to a temporary .mp4 beside `path` and renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".mp4", dir=path.parent)
    os.close(fd)
    try:
        height, width = frames[0].shape[:2]
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not writer.isOpened():
            raise DataError(f"{path}: OpenCV cannot write MP4 here; use --format gif")
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ----------------------------------------------------------------------------------------------
# Command line: `fusionseg segment`


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="a video file (read with OpenCV) or a folder of frames")
    parser.add_argument("--out", type=Path, required=True, help="output folder: masks/ and the overlay")
    parser.add_argument("--weights", type=Path, help="appearance stream weights (.pt)")
    parser.add_argument("--motion-weights", type=Path, help="motion stream weights (joint model)")
    parser.add_argument("--fusion-weights", type=Path, help="fusion weights (joint model)")
    parser.add_argument(
        "--size", type=int, nargs=2, metavar=("H", "W"), help="working size (default: native)"
    )
    parser.add_argument("--batch-size", type=int, default=INFERENCE_BATCH)
    parser.add_argument("--flow-method", default="dis", help="optical flow for the motion stream")
    parser.add_argument("--format", choices=["gif", "mp4"], default="gif", help="overlay video format")
    parser.add_argument("--fps", type=float, help="overlay frame rate (default: the video's, or 12)")
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    parser.add_argument("--backbone", default="lite0", help="for weights files without a config")
    parser.add_argument("--output-stride", type=int, default=16, help="for weights files without a config")
    parser.add_argument("--threads", type=int, help="torch threads")


def timing_line(frames: int, seconds: dict[str, float]) -> str:
    """The command's last line: where the time went (`fusionseg bench` reads it back)."""
    loop = seconds["loop"]
    return (
        f"timing: {frames} frames; start-up {seconds['start']:.2f} s, loop {loop:.2f} s "
        f"({frames / loop:.1f} frames/s), writing {seconds['write']:.2f} s, total {sum(seconds.values()):.2f} s"
    )


TIMING_PATTERN = (
    r"timing: (?P<frames>\d+) frames; start-up (?P<start>[\d.]+) s, loop (?P<loop>[\d.]+) s "
    r"\((?P<fps>[\d.]+) frames/s\), writing (?P<write>[\d.]+) s, total (?P<total>[\d.]+) s"
)


def run_command(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if args.weights is None:
        print(f"fusionseg segment: no --weights given.\n{GET_WEIGHTS_HELP}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model = load_model(
            args.weights,
            args.motion_weights,
            args.fusion_weights,
            backbone=args.backbone,
            output_stride=args.output_stride,
        )
        names, frames, video_fps = read_frames(args.source)
        size = tuple(args.size) if args.size else None
        precision = "fp32" if args.fp32 else "auto"
        loop_started = time.perf_counter()
        if isinstance(model, JointModel):  # flow computed in a background thread, overlapped
            probabilities = predict_joint(
                model, frames, args.flow_method, args.batch_size, size, precision, progress=True, names=names
            )
        else:
            probabilities = predict_video(
                model, frames, args.batch_size, size, precision=precision, progress=True
            )
    except (DataError, ValueError) as exc:
        hint = f"\n{GET_WEIGHTS_HELP}" if "weights file not found" in str(exc) else ""
        print(f"fusionseg segment: {exc}{hint}", file=sys.stderr)
        return 2
    write_started = time.perf_counter()
    masks = masks_from(probabilities)
    for name, mask in zip(names, masks, strict=True):
        write_png(args.out / "masks" / f"{name}.png", mask, compress_level=MASK_PNG_COMPRESSION)
    tinted = [overlay(frame, mask) for frame, mask in zip(frames, masks, strict=True)]
    fps = args.fps or video_fps or 12.0
    target = args.out / f"overlay.{args.format}"
    (write_gif if args.format == "gif" else write_mp4)(target, tinted, fps)
    coverage = float(np.mean([m.mean() for m in masks]))
    print(f"{len(masks)} frames -> {args.out / 'masks'}/*.png and {target} (mean foreground {coverage:.1%})")
    seconds = {
        "start": loop_started - started,  # after the imports: loading weights and reading the frames
        "loop": write_started - loop_started,
        "write": time.perf_counter() - write_started,
    }
    print(timing_line(len(masks), seconds))
    return 0
