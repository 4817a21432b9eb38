"""Small datasets written in each official layout (through fusionseg.data.layouts) for the reader,
layout and verify tests. Every mask is a hand-placed rectangle, so tests know the exact answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fusionseg.data import layouts
from fusionseg.data.types import Box
from fusionseg.io import write_jpeg

H, W = 12, 16


def frames(count: int, height: int = H, width: int = W) -> list[np.ndarray]:
    """`count` flat-coloured RGB frames (frame i has value 20 * i in every channel)."""
    return [np.full((height, width, 3), (20 * i) % 256, np.uint8) for i in range(count)]


def rect(y0: int, y1: int, x0: int, x1: int, height: int = H, width: int = W) -> np.ndarray:
    """A boolean mask that is True on rows y0:y1 and columns x0:x1."""
    mask = np.zeros((height, width), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def write_davis(root: Path) -> Path:
    """Two train sequences (3 and 2 frames) and one val sequence (4 frames)."""
    layouts.write_davis_sequence(root, "bear", frames(3), [rect(2, 6, 3, 9)] * 3, "train", category="animal")
    layouts.write_davis_sequence(root, "boat", frames(2), [rect(0, 4, 0, 4)] * 2, "train", attributes=["OCC"])
    layouts.write_davis_sequence(root, "car", frames(4), [rect(5, 9, 5, 15)] * 4, "val")
    return root


def write_segtrack(root: Path) -> Path:
    """SegTrack-v2 with its quirks: .bmp frames, 3-channel GT in another format, two objects in
    numbered sub-folders, and the stray JPEGImages/CSI_NY.jpg of the official zip."""
    layouts.write_segtrack_sequence(root, "birdfall", frames(3), [[rect(1, 3, 1, 3)] * 3])
    layouts.write_segtrack_sequence(
        root,
        "bmx",
        frames(2),
        [[rect(0, 2, 0, 2)] * 2, [rect(5, 7, 5, 7), rect(8, 10, 8, 10)]],
        frame_ext=".bmp",
        gt_ext=".png",
        gt_channels=3,
    )
    layouts.write_segtrack_sequence(
        root, "worm", frames(2), [[rect(4, 6, 0, 16)] * 2], frame_ext=".png", gt_ext=".bmp"
    )
    write_jpeg(root / "JPEGImages" / "CSI_NY.jpg", frames(1)[0])
    return root


def write_youtube_objects(root: Path) -> Path:
    """Two categories; cat-0001 has 4 frames with labels on frames 0 and 2 only."""
    layouts.write_youtube_objects_shot(
        root, "cat", 1, frames(4), [rect(2, 8, 2, 8), None, rect(3, 9, 3, 9), None]
    )
    layouts.write_youtube_objects_shot(root, "dog", 7, frames(2), [None, rect(0, 6, 0, 16)])
    return root


def voc_label() -> np.ndarray:
    """Class 15 (person) on a rectangle, class 0 elsewhere, void (255) on the top row."""
    label = np.zeros((H, W), np.uint8)
    label[3:7, 2:10] = 15
    label[0] = 255
    return label


def write_voc_sbd(root: Path) -> Path:
    """VOC train {a, b}, VOC val {c}; SBD train {d, c}, SBD val {e, a}.
    train_aug = {a, b, d, e} (c is VOC val); a's mask comes from VOC, d's and e's from SBD."""
    for image_id, splits in (
        ("2008_00000a", ["train"]),
        ("2008_00000b", ["train"]),
        ("2008_00000c", ["val"]),
    ):
        layouts.write_voc_image(root, image_id, frames(1)[0], voc_label(), splits)
    sbd_label = np.where(voc_label() == 255, 0, voc_label()).astype(np.uint8)  # SBD has no void
    for image_id, split in (
        ("2008_00000d", "train"),
        ("2008_00000c", "train"),
        ("2008_00000e", "val"),
        ("2008_00000a", "val"),
    ):
        layouts.write_sbd_image(root, image_id, frames(1)[0], sbd_label, split)
    return root


VID_CHUNK, VID_SNIPPET = "ILSVRC2015_VID_train_0000", "ILSVRC2015_train_00000000"


def vid_boxes() -> list[list[Box]]:
    """Three frames: track 0 (dog) throughout, interpolated in frame 1; track 1 (airplane) from frame 1, occluded."""
    dog, plane = "n02084071", "n02691156"
    return [
        [Box(1, 2, 5, 6, track_id=0, label=dog)],
        [
            Box(2, 2, 6, 6, track_id=0, label=dog, generated=True),
            Box(8, 1, 15, 9, track_id=1, label=plane, occluded=True),
        ],
        [Box(3, 2, 7, 6, track_id=0, label=dog), Box(9, 1, 16, 9, track_id=1, label=plane)],
    ]


def write_vid(root: Path) -> Path:
    layouts.write_vid_snippet(root, VID_CHUNK, VID_SNIPPET, frames(3), vid_boxes())
    return root


def write_duts(root: Path) -> Path:
    """DUTS-TR with 3 pairs and DUTS-TE with 2."""
    for name, count in (("DUTS-TR", 3), ("DUTS-TE", 2)):
        for i in range(count):
            layouts.write_saliency_pair(root, name, f"img_{i}", frames(1)[0], rect(i, i + 4, 0, 5))
    return root
