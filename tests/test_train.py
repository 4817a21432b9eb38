"""Training: poly schedule, augmentation alignment and padding, ignored labels, data order, resume."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fusionseg.checkpoints import latest_checkpoint, load_checkpoint
from fusionseg.data.types import IGNORE
from fusionseg.io import DataError, write_png
from fusionseg.train.fusion import FusionData, train_fusion
from fusionseg.train.stream import (
    AugmentedStream,
    FolderPairs,
    StreamSampler,
    TrainConfig,
    make_optimizer,
    poly_lr,
    segmentation_loss,
    train_stream,
)
from fusionseg.transforms import TrainAugment

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TinyNet(nn.Module):
    """A stand-in stream: two convs, 2-channel logits at the input size (seeded initialisation)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class RandomPairs:
    """Seeded random images of varied sizes whose labels are the bright pixels (plus some ignore)."""

    def __init__(self, n: int = 6, seed: int = 0, crash_after: int | None = None) -> None:
        rng = np.random.default_rng(seed)
        self.items = []
        for _ in range(n):
            h, w = rng.integers(12, 30, size=2)
            image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            label = (image[..., 0] > 127).astype(np.uint8)
            label[0, :] = IGNORE
            self.items.append((image, label))
        self.crash_after, self.reads = crash_after, 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        self.reads += 1
        if self.crash_after is not None and self.reads > self.crash_after:
            raise RuntimeError("simulated crash")
        return self.items[index]


def tiny_config(tmp_path: Path, **overrides) -> TrainConfig:
    values = dict(
        out_dir=str(tmp_path / "run"),
        iterations=6,
        batch_size=2,
        crop_size=16,
        lr=0.1,
        precision="fp32",
        workers=0,
        checkpoint_every=3,
        keep_checkpoints=5,
        progress=False,
    )
    return TrainConfig(**(values | overrides))


def test_poly_lr_matches_hand_computation():
    assert poly_lr(0.01, 0, 100) == 0.01
    assert poly_lr(0.01, 50, 100) == pytest.approx(0.01 * 0.535887, rel=1e-5)  # 0.5 ** 0.9
    assert poly_lr(0.01, 99, 100) == pytest.approx(1.584893e-4, rel=1e-5)  # 0.01 * 10 ** -1.8
    assert poly_lr(1.0, 3, 4, power=1.0) == 0.25


def test_loop_applies_the_poly_schedule(tmp_path):
    config = tiny_config(tmp_path, iterations=4, checkpoint_every=4)
    train_stream(config, RandomPairs(), TinyNet())
    state = load_checkpoint(latest_checkpoint(config.out_dir))
    assert state["iteration"] == 4
    # the last step (iteration 3 of 4) ran at 0.1 * (1/4) ** 0.9
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.1 * 0.25**0.9)


def test_a_diverging_run_stops_with_the_iteration_and_writes_no_weights(tmp_path):
    config = tiny_config(tmp_path, lr=1e30, iterations=20)
    with pytest.raises(FloatingPointError, match=r"the loss is (nan|inf) at iteration \d+"):
        train_stream(config, RandomPairs(), TinyNet())
    assert not (Path(config.out_dir) / "model.pt").exists()


def coordinate_pair(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Channel 0 = x + 1, channel 1 = y + 1 (0 is left for padding); label a function of (x, y)."""
    y, x = np.mgrid[:height, :width]
    image = np.stack([x + 1, y + 1, np.full_like(x, 7)], axis=2).astype(np.uint8)
    label = ((x // 3 + y // 5) % 2).astype(np.uint8)
    return image, label


def test_crop_and_flip_keep_image_and_label_aligned():
    image, label = coordinate_pair(20, 30)
    augment = TrainAugment(crop_size=12, scale_range=(1.0, 1.0), flip=True)
    flips = set()
    for seed in range(20):
        out_image, out_label = augment(image, label, np.random.default_rng(seed))
        assert out_image.shape == (12, 12, 3) and out_label.shape == (12, 12)
        x, y = out_image[..., 0].astype(int) - 1, out_image[..., 1].astype(int) - 1
        np.testing.assert_array_equal(out_label, (x // 3 + y // 5) % 2)
        flips.add(bool(x[0, 0] > x[0, -1]))
    assert flips == {True, False}  # both flipped and unflipped crops occur


def test_small_images_are_padded_with_ignore_labels_and_zero_pixels():
    image, label = coordinate_pair(5, 8)
    out_image, out_label = TrainAugment(10, (1.0, 1.0), flip=False)(image, label, np.random.default_rng(0))
    np.testing.assert_array_equal(out_label[:5, :8], label)
    np.testing.assert_array_equal(out_image[:5, :8], image)
    assert (out_label[5:] == IGNORE).all() and (out_label[:, 8:] == IGNORE).all()
    assert (out_image[5:] == 0).all() and (out_image[:, 8:] == 0).all()


def test_scaling_keeps_image_and_label_aligned():
    image = np.zeros((40, 60, 3), np.uint8)
    image[10:30, 15:45] = 200
    label = (image[..., 0] > 0).astype(np.uint8)
    augment = TrainAugment(crop_size=48, scale_range=(0.5, 2.0), flip=True)
    for seed in range(10):
        out_image, out_label = augment(image, label, np.random.default_rng(seed))
        # away from the rectangle's edge (where bilinear blends), bright pixels are exactly the label-1 ones
        padded = np.pad(out_label, 1, mode="edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3))
        interior = (windows == out_label[..., None, None]).all(axis=(2, 3)) & (out_label != IGNORE)
        assert interior.sum() > 500
        np.testing.assert_array_equal((out_image[..., 0] > 100)[interior], (out_label == 1)[interior])
        assert set(np.unique(out_label)) <= {0, 1, IGNORE}


def test_loss_ignores_255_and_averages_over_labelled_pixels():
    # pixel 0: p(fg) = 3/4, label fg; pixel 1: confidently wrong but ignored; pixel 2: p(bg) = 1/2
    logits = torch.tensor([[0.0, math.log(3.0)], [50.0, -50.0], [0.0, 0.0]]).T.reshape(1, 2, 1, 3)
    labels = torch.tensor([[[1, IGNORE, 0]]], dtype=torch.uint8)
    expected = (-math.log(3 / 4) - math.log(1 / 2)) / 2
    assert segmentation_loss(logits, labels, 2).item() == pytest.approx(expected, rel=1e-6)
    all_ignored = torch.full((1, 1, 3), IGNORE, dtype=torch.uint8)
    assert segmentation_loss(logits, all_ignored, 0).item() == 0.0


def test_data_order_is_a_seeded_permutation_per_epoch():
    stream = AugmentedStream(RandomPairs(n=5), TrainAugment(8), seed=3)
    epochs = [[stream.index_at(e * 5 + i) for i in range(5)] for e in range(3)]
    assert all(sorted(order) == list(range(5)) for order in epochs)
    assert epochs[0] != epochs[1] or epochs[1] != epochs[2]
    again = AugmentedStream(RandomPairs(n=5), TrainAugment(8), seed=3)
    assert [again.index_at(p) for p in range(15)] == sum(epochs, [])
    a, b = stream[7], again[7]
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_processes_split_each_global_batch_into_contiguous_slices():
    single = list(StreamSampler(2, 4, global_batch=4))
    assert single == [8, 9, 10, 11, 12, 13, 14, 15]
    rank0, rank1 = (list(StreamSampler(2, 4, 4, rank=r, world=2)) for r in (0, 1))
    assert rank0 == [8, 9, 12, 13] and rank1 == [10, 11, 14, 15]
    with pytest.raises(ValueError, match="not divisible"):
        StreamSampler(0, 1, global_batch=3, rank=0, world=2)


@pytest.mark.parametrize("solver", [{}, {"optimizer": "adamw", "lr": 0.01}], ids=["sgd", "adamw"])
def test_resume_continues_bit_identically(tmp_path, solver):
    uninterrupted = train_stream(tiny_config(tmp_path / "a", **solver), RandomPairs(), TinyNet())

    config = tiny_config(tmp_path / "b", **solver)
    with pytest.raises(RuntimeError, match="simulated crash"):  # dies reading iteration 4's batch
        train_stream(config, RandomPairs(crash_after=6), TinyNet())
    assert latest_checkpoint(config.out_dir).name == "checkpoint-0000003.pt"
    resumed = train_stream(tiny_config(tmp_path / "b", resume=True, **solver), RandomPairs(), TinyNet())

    for (name, a), (_, b) in zip(
        uninterrupted.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert not torch.equal(next(TinyNet().parameters()), next(resumed.parameters()))  # it trained
    saved = load_checkpoint(Path(config.out_dir) / "model.pt")
    assert saved["iteration"] == 6 and saved["config"]["kind"] == "stream"


def test_adamw_caps_the_head_multipliers_and_decays_what_sgd_decays():
    from fusionseg.models import build_stream

    model = build_stream("lite0", pretrained=False)
    sgd = make_optimizer(model, TrainConfig(lr=1e-3))
    adamw = make_optimizer(model, TrainConfig(lr=5e-4, optimizer="adamw"))
    assert isinstance(sgd, torch.optim.SGD) and isinstance(adamw, torch.optim.AdamW)
    assert [g["lr_mult"] for g in sgd.param_groups] == [1, 10, 20]
    assert [g["lr_mult"] for g in adamw.param_groups] == [1, 5, 5]
    assert [g["lr"] for g in adamw.param_groups] == pytest.approx([5e-4, 2.5e-3, 2.5e-3])
    assert [g["weight_decay"] for g in adamw.param_groups] == [1e-2, 1e-2, 0.0]  # no decay on biases
    with pytest.raises(ValueError, match="optimizer must be one of"):
        TrainConfig(optimizer="adam")


def test_resume_refuses_a_changed_configuration(tmp_path):
    train_stream(tiny_config(tmp_path, iterations=3), RandomPairs(), TinyNet())
    with pytest.raises(ValueError, match="lr: 0.1 -> 0.2"):
        train_stream(tiny_config(tmp_path, iterations=3, lr=0.2, resume=True), RandomPairs(), TinyNet())


def test_folder_pairs_reads_the_documented_layout(tmp_path):
    image, label = coordinate_pair(6, 9)
    label[0, 0] = IGNORE
    write_png(tmp_path / "images" / "f001.png", image)
    write_png(tmp_path / "masks" / "f001.png", label)
    pairs = FolderPairs(tmp_path)
    assert len(pairs) == 1
    got_image, got_label = pairs[0]
    np.testing.assert_array_equal(got_image, image)
    np.testing.assert_array_equal(got_label, label)

    write_png(tmp_path / "masks" / "f001.png", (label > 0).astype(np.uint8) * 128)
    with pytest.raises(DataError, match=r"f001.png: label values \[128\]"):
        FolderPairs(tmp_path)[0]
    write_png(tmp_path / "images" / "f002.png", image)
    with pytest.raises(DataError, match="masks missing"):
        FolderPairs(tmp_path)


class SumFusion(nn.Module):
    """A stand-in fusion: a 1x1 conv over the concatenated logits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 2, 1)

    def forward(self, app: torch.Tensor, mot: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([app, mot], dim=1))


def test_train_fusion_learns_from_precomputed_logits():
    generator = torch.Generator().manual_seed(0)
    labels = (torch.rand(16, 8, 8, generator=generator) > 0.5).to(torch.uint8)
    truth = torch.stack([1 - labels.float(), labels.float()], dim=1) * 4 - 2
    noise = torch.randn(2, 16, 2, 8, 8, generator=generator) * 3
    data = FusionData(appearance=truth + noise[0], motion=truth + noise[1], labels=labels)
    torch.manual_seed(0)
    losses = train_fusion(SumFusion(), data, iterations=200, batch_size=4, lr=0.05, progress=False)
    assert np.mean(losses[-20:]) < 0.7 * np.mean(losses[:20])


def test_fusion_weight_decay_reaches_both_designs(tmp_path):
    """`train_designs(weight_decay=)` (the profile's `fusion_weight_decay`) decays both designs'
    weights: a strong decay ends with smaller weights than the streams' 5e-4, from the same start."""
    from fusionseg.checkpoints import load_fusion
    from fusionseg.train.fusion import train_designs

    generator = torch.Generator().manual_seed(0)
    labels = (torch.rand(8, 6, 6, generator=generator) > 0.5).to(torch.uint8)
    logits = torch.stack([1 - labels.float(), labels.float()], dim=1) * 2 - 1
    data = FusionData(appearance=logits, motion=-logits, labels=labels)
    norms = {}
    for decay in (5e-4, 0.5):
        folder = tmp_path / str(decay)
        folder.mkdir()
        paths, _ = train_designs(data, 50, 4, {"paper": 0.1, "release": 0.1}, 0, folder, weight_decay=decay)
        norms[decay] = {
            design: torch.cat([p.detach().flatten() for p in load_fusion(Path(path)).parameters()]).norm()
            for design, path in paths.items()
        }
    assert all(norms[0.5][design] < 0.8 * norms[5e-4][design] for design in ("paper", "release"))


def test_train_command_on_a_pairs_folder_writes_weights_that_load_as_trained(tmp_path, capsys):
    from fusionseg.checkpoints import load_stream
    from fusionseg.cli import main

    for i in range(3):
        image, label = coordinate_pair(24 + i, 40)
        write_png(tmp_path / "pairs" / "images" / f"{i}.png", image)
        write_png(tmp_path / "pairs" / "masks" / f"{i}.png", label)
    out = tmp_path / "run"
    args = ["--pairs", str(tmp_path / "pairs"), "--out", str(out), "--iterations", "2", "--batch-size", "2"]
    args += ["--crop", "32", "--no-pretrained", "--workers", "0", "--fp32", "--checkpoint-every", "1"]
    assert main(["train", *args, "--decoder", "skip4"]) == 0
    assert f"weights: {out / 'model.pt'}" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("checkpoint-*.pt")) == [
        "checkpoint-0000001.pt",
        "checkpoint-0000002.pt",
    ]
    model = load_stream(out / "model.pt")
    assert model.decoder is not None  # built as trained, from the weights file's config
    assert model(torch.rand(1, 3, 32, 48)).shape == (1, 2, 32, 48)


def test_train_command_reports_a_bad_pairs_folder(tmp_path, capsys):
    from fusionseg.cli import main

    assert main(["train", "--pairs", str(tmp_path / "missing"), "--out", str(tmp_path / "run")]) == 2
    assert f"{tmp_path / 'missing' / 'images'}: folder not found" in capsys.readouterr().err


def test_train_command_fits_fusion_layers_on_held_out_videos(tmp_path, monkeypatch, capsys):
    from fusionseg.checkpoints import load_fusion, save_weights
    from fusionseg.cli import main
    from fusionseg.data.layouts import write_davis_sequence
    from fusionseg.models import ReleaseFusion, build_stream

    monkeypatch.setenv("FUSIONSEG_CACHE", str(tmp_path / "cache"))
    frames, masks = [], []
    for i in range(3):
        frame = np.full((48, 64, 3), 30, np.uint8)
        frame[10:30, 5 + 6 * i : 25 + 6 * i] = 220
        frames.append(frame)
        masks.append(frame[..., 0] > 100)
    write_davis_sequence(tmp_path / "DAVIS", "square", frames, masks, split="val")
    torch.manual_seed(0)
    stream = tmp_path / "stream.pt"
    save_weights(
        stream, build_stream("lite0", 16, pretrained=False), {"backbone": "lite0", "output_stride": 16}
    )
    args = [
        "--fusion",
        "release",
        "--root",
        str(tmp_path / "DAVIS"),
        "--split",
        "val",
        "--out",
        str(tmp_path / "fus"),
    ]
    args += ["--appearance-weights", str(stream), "--motion-weights", str(stream), "--size", "24", "32"]
    assert main(["train", *args, "--iterations", "3", "--batch-size", "2"]) == 0
    assert isinstance(load_fusion(tmp_path / "fus" / "model.pt"), ReleaseFusion)
    saved = load_checkpoint(tmp_path / "fus" / "model.pt")
    assert saved["config"]["frames"] == 3 and saved["iteration"] == 3
