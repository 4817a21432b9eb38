"""Inference: probabilities at the original resolution, batching, joint models, the segment command."""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from fusionseg.checkpoints import load_stream, save_weights
from fusionseg.cli import main
from fusionseg.flow import resize_frame
from fusionseg.infer import (
    JointModel,
    flow_images_of,
    masks_from,
    overlay,
    predict_joint,
    predict_video,
    prefetch,
    read_frames,
    write_gif,
)
from fusionseg.io import DataError, read_gray, write_png
from fusionseg.models import ReleaseFusion, build_stream

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class RedIsForeground(nn.Module):
    """Logits (0, 4 * (red - 0.5)): p(foreground) = sigmoid(4 * (red - 0.5)), exactly computable."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(4.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fg = self.scale * (x[:, :1] - 0.5)
        return torch.cat([torch.zeros_like(fg), fg], dim=1)


class AddLogits(nn.Module):
    def forward(self, app: torch.Tensor, mot: torch.Tensor) -> torch.Tensor:
        return app + mot


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def random_frames(n: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8) for _ in range(n)]


def test_probabilities_match_hand_computation_at_native_size():
    frames = random_frames(5, 7, 9)
    probabilities = predict_video(RedIsForeground(), frames, batch_size=2, precision="fp32")
    for frame, p in zip(frames, probabilities, strict=True):
        expected = sigmoid(4 * (frame[..., 0] / 255 - 0.5))
        np.testing.assert_allclose(p, expected, rtol=1e-5, atol=1e-6)


def test_working_size_returns_probabilities_at_each_frames_original_size():
    left_red = np.zeros((40, 60, 3), np.uint8)
    left_red[:, :30, 0] = 255
    small = np.zeros((10, 16, 3), np.uint8)
    probabilities = predict_video(RedIsForeground(), [left_red, small], size=(20, 30), precision="fp32")
    assert [p.shape for p in probabilities] == [(40, 60), (10, 16)]
    mask = masks_from(probabilities)[0]
    assert mask[:, :29].all() and not mask[:, 31:].any()  # the boundary column may blend
    assert probabilities[1].max() < 0.5


def test_joint_model_fuses_the_streams_on_frames_and_flow_images():
    frames, flows = random_frames(3, 6, 8, seed=1), random_frames(3, 6, 8, seed=2)
    joint = JointModel(RedIsForeground(), RedIsForeground(), AddLogits())
    probabilities = predict_video(joint, frames, flow_images=flows, batch_size=2, precision="fp32")
    for frame, flow, p in zip(frames, flows, probabilities, strict=True):
        logit = 4 * (frame[..., 0] / 255 - 0.5) + 4 * (flow[..., 0] / 255 - 0.5)
        np.testing.assert_allclose(p, sigmoid(logit), rtol=1e-5, atol=1e-6)


@pytest.fixture()
def frame_folder(tmp_path) -> Path:
    """Four 64x96 frames of a bright square moving right on a dark textured background."""
    rng = np.random.default_rng(0)
    background = rng.integers(0, 60, size=(64, 96, 3), dtype=np.uint8)
    folder = tmp_path / "frames"
    for i in range(4):
        frame = background.copy()
        frame[20:44, 10 + 4 * i : 34 + 4 * i] = 230
        write_png(folder / f"{i:05d}.png", frame)
    return folder


@pytest.fixture()
def lite0_weights(tmp_path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "lite0.pt"
    save_weights(
        path, build_stream("lite0", 16, pretrained=False), {"backbone": "lite0", "output_stride": 16}
    )
    return path


def gif_frames(path: Path) -> int:
    with Image.open(path) as gif:
        return gif.n_frames


def test_write_gif_keeps_every_frame_and_its_colours(tmp_path):
    rng = np.random.default_rng(0)
    flat = np.zeros((40, 60, 3), np.uint8)
    flat[:, :30] = (255, 40, 40)  # an overlay's few colours come back exactly
    textured = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)  # noise: 256 colours approximate it
    write_gif(tmp_path / "o.gif", [flat, textured, flat], fps=10)
    with Image.open(tmp_path / "o.gif") as gif:
        back = []
        for index in range(gif.n_frames):
            gif.seek(index)
            back.append(np.asarray(gif.convert("RGB")))
    assert len(back) == 3
    assert np.array_equal(back[0], flat) and np.array_equal(back[2], flat)
    # uniform noise over the RGB cube is the worst case for any 256-colour palette: as close as
    # Pillow's default (median cut, about 40x slower) gets
    median_cut = np.asarray(
        Image.fromarray(textured).quantize(256, method=Image.Quantize.MEDIANCUT).convert("RGB")
    )
    error = np.abs(back[1].astype(int) - textured).mean()
    assert error <= np.abs(median_cut.astype(int) - textured).mean() + 1.0


def test_overlay_tints_the_masked_pixels_only():
    frame = np.full((2, 3, 3), 100, np.uint8)
    mask = np.array([[True, False, False], [False, False, True]])
    tinted = overlay(frame, mask, color=(255, 40, 0), alpha=0.5)
    assert tinted.dtype == np.uint8 and tinted.shape == frame.shape
    # (100 + 255) / 2 = 177.5 -> 178 (OpenCV rounds), (100 + 40) / 2 = 70, (100 + 0) / 2 = 50
    assert tinted[0, 0].tolist() == [178, 70, 50] and tinted[1, 2].tolist() == [178, 70, 50]
    assert (tinted[~mask] == 100).all()


def test_write_png_keeps_the_pixels_at_every_compression_level(tmp_path):
    mask = np.random.default_rng(0).random((30, 40)) > 0.5
    for level in (1, 6, 9):
        write_png(tmp_path / f"m{level}.png", mask, compress_level=level)
        assert np.array_equal(read_gray(tmp_path / f"m{level}.png"), mask.astype(np.uint8) * 255)


def test_segment_writes_masks_and_an_overlay_gif(frame_folder, lite0_weights, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(frame_folder), "--out", str(out), "--weights", str(lite0_weights)]) == 0
    masks = sorted((out / "masks").glob("*.png"))
    assert [m.name for m in masks] == [f"{i:05d}.png" for i in range(4)]
    assert read_gray(masks[0]).shape == (64, 96)
    assert set(np.unique(read_gray(masks[0]))) <= {0, 255}
    assert gif_frames(out / "overlay.gif") == 4
    assert "4 frames" in capsys.readouterr().out


def test_segment_runs_a_joint_model_with_flow(frame_folder, lite0_weights, tmp_path):
    fusion = tmp_path / "fusion.pt"
    save_weights(fusion, ReleaseFusion(), {"kind": "fusion"})
    out = tmp_path / "joint"
    args = [
        "--weights",
        str(lite0_weights),
        "--motion-weights",
        str(lite0_weights),
        "--fusion-weights",
        str(fusion),
    ]
    assert main(["segment", str(frame_folder), "--out", str(out), *args, "--size", "32", "48"]) == 0
    assert len(list((out / "masks").glob("*.png"))) == 4
    assert read_gray(out / "masks" / "00003.png").shape == (64, 96)


def test_segment_without_weights_says_how_to_get_them(frame_folder, tmp_path, capsys):
    assert main(["segment", str(frame_folder), "--out", str(tmp_path / "o")]) == 2
    message = capsys.readouterr().err
    assert "fusionseg train" in message and "fusionseg import-caffe" in message


def test_segment_names_a_missing_weights_file(frame_folder, tmp_path, capsys):
    missing = tmp_path / "nope.pt"
    assert main(["segment", str(frame_folder), "--out", str(tmp_path / "o"), "--weights", str(missing)]) == 2
    message = capsys.readouterr().err
    assert f"{missing}: weights file not found" in message and "fusionseg train" in message
    assert not (tmp_path / "o").exists()


def test_video_files_are_decoded_with_opencv(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 24))
    assert writer.isOpened()
    for i in range(3):
        writer.write(np.full((24, 32, 3), 80 * i, np.uint8))
    writer.release()
    names, frames, fps = read_frames(path)
    assert names == ["00000", "00001", "00002"]
    assert [f.shape for f in frames] == [(24, 32, 3)] * 3
    assert math.isclose(fps, 10.0) and abs(int(frames[2].mean()) - 160) < 8


# ----------------------------------------------------------------------------------------------
# Folded BatchNorms and the overlapped flow of the joint path (the fast inference path)


def test_load_stream_folds_batchnorm_without_changing_the_logits(lite0_weights):
    folded, unfolded = load_stream(lite0_weights), load_stream(lite0_weights, fold_bn=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in unfolded.modules())
    x = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = unfolded(x)
        assert float((folded(x) - expected).abs().max()) <= 1e-4 * float(expected.abs().max())


def moving_square_frames(n: int = 5, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """A bright square moving right by 3 px per frame on a dark random background."""
    background = np.random.default_rng(0).integers(0, 60, size=(height, width, 3), dtype=np.uint8)
    frames = []
    for i in range(n):
        frame = background.copy()
        frame[12:36, 6 + 3 * i : 30 + 3 * i] = 230
        frames.append(frame)
    return frames


class CountingFrames(list):
    """A list of frames that counts how often each one is read."""

    def __init__(self, frames: list[np.ndarray]):
        super().__init__(frames)
        self.reads = [0] * len(frames)

    def __getitem__(self, index):
        self.reads[index] += 1
        return super().__getitem__(index)


@pytest.fixture(scope="module")
def lite0_joint() -> JointModel:
    torch.manual_seed(0)
    streams = [build_stream("lite0", 16, pretrained=False) for _ in range(2)]
    return JointModel(*streams, ReleaseFusion()).eval()


def _at_size(probabilities: list[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
    """Each probability map resized (bilinear) to `size`, as the joint path resizes it back."""
    return [
        p
        if p.shape == tuple(size)
        else F.interpolate(torch.from_numpy(p)[None, None], size=size, mode="bilinear", align_corners=False)[
            0, 0
        ].numpy()
        for p in probabilities
    ]


@pytest.mark.parametrize("size", [None, (32, 40)])
def test_overlapped_flow_gives_the_sequential_paths_probabilities(lite0_joint, size):
    """The joint path equals flow images + predict_video; with a working size, both the flow and the
    networks work on the resized frames and the probabilities come back at the frames' own size."""
    frames = moving_square_frames()
    working = [resize_frame(frame, size) for frame in frames]
    expected = predict_video(
        lite0_joint, working, batch_size=2, flow_images=flow_images_of(working), precision="fp32"
    )
    expected = _at_size(expected, frames[0].shape[:2])
    for overlap in (True, False):
        got = predict_joint(lite0_joint, frames, batch_size=2, size=size, precision="fp32", overlap=overlap)
        assert len(got) == len(expected)
        for p, q in zip(got, expected, strict=True):
            assert p.shape == q.shape and np.array_equal(p, q)


def test_the_joint_path_reads_each_frame_once():
    frames = CountingFrames(moving_square_frames(4))
    joint = JointModel(RedIsForeground(), RedIsForeground(), AddLogits())
    probabilities = predict_joint(joint, frames, batch_size=3, precision="fp32")
    assert frames.reads == [1, 1, 1, 1]
    # the motion stream saw the flow images: red channel of the flow image of frame 0
    flow_red = flow_images_of(list(frames))[0][..., 0] / 255
    expected = sigmoid(4 * (frames[0][..., 0] / 255 - 0.5) + 4 * (flow_red - 0.5))
    np.testing.assert_allclose(probabilities[0], expected, rtol=1e-5, atol=1e-6)


class BrokenFrames(list):
    """Frames whose frame `broken` cannot be read."""

    def __init__(self, frames: list[np.ndarray], broken: int):
        super().__init__(frames)
        self.broken = broken

    def __getitem__(self, index):
        if index == self.broken:
            raise OSError("truncated JPEG")
        return super().__getitem__(index)


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "fusionseg-prefetch"]


@pytest.mark.parametrize("overlap", [True, False])
def test_a_failing_frame_is_named_in_the_callers_error(overlap):
    frames = BrokenFrames(moving_square_frames(6), broken=4)
    joint = JointModel(RedIsForeground(), RedIsForeground(), AddLogits())
    names = [f"f{i:03d}" for i in range(6)]
    with pytest.raises(DataError, match=r"frame 4 \(f004\): truncated JPEG") as caught:
        predict_joint(joint, frames, batch_size=2, overlap=overlap, names=names)
    assert isinstance(caught.value.__cause__, OSError)
    assert prefetch_threads() == []


def test_frames_of_different_sizes_are_named():
    frames = moving_square_frames(3)
    frames[2] = frames[2][:40]
    joint = JointModel(RedIsForeground(), RedIsForeground(), AddLogits())
    with pytest.raises(DataError, match="frame 1: flow to frame 2 failed: frames differ in size"):
        predict_joint(joint, frames)


def test_prefetch_stops_its_thread_when_the_caller_stops_early():
    with contextlib.closing(prefetch(itertools.count(), depth=2)) as numbers:
        assert [next(numbers) for _ in range(5)] == [0, 1, 2, 3, 4]
    assert prefetch_threads() == []


def test_segment_names_the_frame_whose_flow_fails(frame_folder, lite0_weights, tmp_path, capsys):
    write_png(frame_folder / "00002.png", np.zeros((32, 32, 3), np.uint8))  # a frame of another size
    fusion = tmp_path / "fusion.pt"
    save_weights(fusion, ReleaseFusion(), {"kind": "fusion"})
    weights = ["--weights", str(lite0_weights), "--motion-weights", str(lite0_weights)]
    args = [
        "segment",
        str(frame_folder),
        "--out",
        str(tmp_path / "o"),
        *weights,
        "--fusion-weights",
        str(fusion),
    ]
    assert main(args) == 2
    assert "frame 1 (00001): flow to frame 2 failed" in capsys.readouterr().err
