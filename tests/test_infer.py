"""Inference: probabilities at the original resolution, batching, joint models, the segment command."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from fusionseg.cli import main
from fusionseg.infer import JointModel, masks_from, predict_video, read_frames
from fusionseg.io import read_gray, write_png
from fusionseg.models import ReleaseFusion, build_stream
from fusionseg.train import save_weights

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
