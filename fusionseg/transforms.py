"""Training augmentation for (image, label map) pairs: random scale, pad, crop and horizontal flip.

As in torchvision's `references/segmentation`: the pair is rescaled by a random factor (image
bilinear, labels nearest so they stay in {0, 1, 255}), padded bottom/right up to the crop size
(image with 0, labels with 255 = ignore, so padding never counts in the loss), cropped at a random
position and flipped left-right half of the time. Every random choice comes from the
`numpy.random.Generator` the caller passes in, so a sample's augmentation depends only on that
generator's seed (the training loop seeds it per sample; see `fusionseg.train.stream`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fusionseg.data.types import IGNORE


def rescale(image: np.ndarray, label: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Resize both by `factor` (image bilinear, labels nearest); sizes round to the nearest pixel."""
    height, width = label.shape
    size = (max(1, round(width * factor)), max(1, round(height * factor)))  # cv2 wants (w, h)
    image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
    return image, label


def pad_to(image: np.ndarray, label: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad bottom/right to at least `size` x `size`: image with 0, labels with 255 (ignored)."""
    height, width = label.shape
    pad_h, pad_w = max(0, size - height), max(0, size - width)
    if pad_h == 0 and pad_w == 0:
        return image, label
    image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=0)
    label = np.pad(label, ((0, pad_h), (0, pad_w)), constant_values=IGNORE)
    return image, label


def random_crop(
    image: np.ndarray, label: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A `size` x `size` window at a uniformly random position (pad first so the pair is big enough)."""
    height, width = label.shape
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    window = (slice(top, top + size), slice(left, left + size))
    return image[window], label[window]


@dataclass(frozen=True)
class TrainAugment:
    """Random scale in `scale_range`, pad, `crop_size` crop and (if `flip`) a left-right flip."""

    crop_size: int = 256
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip: bool = True

    def __call__(
        self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        if image.shape[:2] != label.shape:
            raise ValueError(f"image {image.shape[:2]} and label {label.shape} differ in size")
        low, high = self.scale_range
        factor = float(rng.uniform(low, high))
        if factor != 1.0:
            image, label = rescale(image, label, factor)
        image, label = pad_to(image, label, self.crop_size)
        image, label = random_crop(image, label, self.crop_size, rng)
        if self.flip and rng.random() < 0.5:
            image, label = image[:, ::-1], label[:, ::-1]
        return np.ascontiguousarray(image), np.ascontiguousarray(label)
