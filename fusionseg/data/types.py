"""The one small representation that every dataset reader yields.

A `Video` is a named, ordered list of `Frame`s; a frame knows its image file, its ground-truth
mask files (zero or more: SegTrack-v2 stores one file per object) and its boxes (ImageNet VID).
An `ImageSet` is a list of image/mask pairs. Nothing is decoded until asked for, so listing a
1,000-frame video costs a directory listing, not 1,000 JPEG decodes.

Masks are decoded into *label maps*: uint8 arrays with 0 = background, 1 = foreground and
255 = ignore (VOC's void border). Each reader supplies the rule that turns its files' raw values
into a label map (`MaskRule`), because the datasets disagree: DAVIS is nonzero = foreground,
YouTube-Objects stores JPEG masks (threshold 127), VOC keeps 255 as void.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fusionseg.io import DataError, read_gray, read_rgb

BACKGROUND, FOREGROUND, IGNORE = 0, 1, 255

MaskRule = Callable[[np.ndarray], np.ndarray]
"""Raw mask values (HxW uint8) -> label map (HxW uint8 in {0, 1, 255})."""


def nonzero_is_foreground(raw: np.ndarray) -> np.ndarray:
    """DAVIS, SegTrack-v2, DUTS: any nonzero value is foreground."""
    return (raw > 0).astype(np.uint8)


def threshold_127(raw: np.ndarray) -> np.ndarray:
    """JPEG-compressed masks (YouTube-Objects): values above 127 are foreground."""
    return (raw > 127).astype(np.uint8)


def voc_labels(raw: np.ndarray) -> np.ndarray:
    """PASCAL VOC / SBD class maps: 1..20 object, 0 background, 255 void (ignored)."""
    label = ((raw >= 1) & (raw <= 20)).astype(np.uint8)
    label[raw == 255] = IGNORE
    return label


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel coordinates: x0, y0 inclusive; x1, y1 exclusive."""

    x0: float
    y0: float
    x1: float
    y1: float
    track_id: int = 0
    label: str = ""
    occluded: bool = False
    generated: bool = False  # ImageNet VID: the box was interpolated, not drawn

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)


@dataclass(frozen=True)
class Frame:
    """One frame of a video: an image file, its mask file(s) and boxes, all optional but the image."""

    image_path: Path
    mask_paths: tuple[Path, ...] = ()
    boxes: tuple[Box, ...] = ()

    @property
    def name(self) -> str:
        return self.image_path.stem

    @property
    def annotated(self) -> bool:
        return bool(self.mask_paths)


def merge_masks(paths: Sequence[Path], rule: MaskRule) -> np.ndarray:
    """Decode one or more mask files and merge them (foreground = logical OR; ignore where any says so)."""
    if not paths:
        raise ValueError("merge_masks needs at least one mask path")
    merged: np.ndarray | None = None
    for path in paths:
        label = rule(read_gray(path))
        if merged is None:
            merged = label.copy()
            continue
        if label.shape != merged.shape:
            raise DataError(f"{path}: mask of shape {label.shape}, expected {merged.shape} like {paths[0]}")
        fg = (merged == FOREGROUND) | (label == FOREGROUND)
        ignore = ((merged == IGNORE) | (label == IGNORE)) & ~fg
        merged = np.where(fg, FOREGROUND, np.where(ignore, IGNORE, BACKGROUND)).astype(np.uint8)
    assert merged is not None
    return merged


@dataclass
class Video:
    """A named, ordered sequence of frames with the rule that decodes its masks."""

    name: str
    frames: list[Frame]
    category: str = ""
    mask_rule: MaskRule = field(default=nonzero_is_foreground, repr=False)
    dataset: str = ""

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self) -> Iterator[Frame]:
        return iter(self.frames)

    def image(self, index: int) -> np.ndarray:
        """Frame `index` as HxWx3 uint8 RGB."""
        return read_rgb(self.frames[index].image_path)

    def label(self, index: int) -> np.ndarray | None:
        """Frame `index`'s label map (0/1/255), or None where the frame has no annotation."""
        frame = self.frames[index]
        return merge_masks(frame.mask_paths, self.mask_rule) if frame.annotated else None

    def mask(self, index: int) -> np.ndarray | None:
        """Frame `index`'s foreground as a boolean array, or None where the frame has no annotation."""
        label = self.label(index)
        return None if label is None else label == FOREGROUND

    @property
    def annotated_indices(self) -> list[int]:
        return [i for i, frame in enumerate(self.frames) if frame.annotated]


@dataclass(frozen=True)
class ImagePair:
    image_path: Path
    mask_path: Path

    @property
    def name(self) -> str:
        return self.image_path.stem


@dataclass
class ImageSet:
    """Image/mask pairs for training or evaluating a single-image (appearance) model."""

    name: str
    items: list[ImagePair]
    mask_rule: MaskRule = field(default=nonzero_is_foreground, repr=False)

    def __len__(self) -> int:
        return len(self.items)

    def image(self, index: int) -> np.ndarray:
        return read_rgb(self.items[index].image_path)

    def label(self, index: int) -> np.ndarray:
        return self.mask_rule(read_gray(self.items[index].mask_path))
