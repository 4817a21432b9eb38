"""PASCAL VOC 2012 + SBD reader: `train_aug` (10,582 images) as binary masks with 255 = ignore.

Layout (root = the folder holding both extracted archives):
    VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    VOCdevkit/VOC2012/SegmentationClass/<id>.png       palette PNG: 0 background, 1..20, 255 void
    VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val}.txt   (1,464 / 1,449 ids)
    benchmark_RELEASE/dataset/{train,val}.txt          SBD ids (8,498 / 2,857)
    benchmark_RELEASE/dataset/cls/<id>.mat             MATLAB struct GTcls; GTcls.Segmentation
                                                       holds the class indices (no void label)
    benchmark_RELEASE/dataset/img/<id>.jpg             (used only if VOC lacks the image)
Only these files are read. train_aug = (SBD train + SBD val + VOC train) minus VOC val = 10,582
ids. A mask comes from VOC's PNG when VOC annotates the id (it has the void border), else from
the SBD .mat. Labels become 1 for classes 1..20, 0 for background, 255 for void (`voc_labels`).
Splits: "train_aug" (default), "train" and "val" (VOC's own lists, VOC masks only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from fusionseg.data._files import describe, list_by_stem, require_file
from fusionseg.data.types import ImagePair, ImageSet, voc_labels
from fusionseg.io import DataError, read_gray

SPLITS = ("train_aug", "train", "val")


def read_sbd_mat(path: Path) -> np.ndarray:
    """GTcls.Segmentation of an SBD cls/<id>.mat file, as HxW uint8 class indices."""
    try:
        gtcls = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)["GTcls"]
        return np.ascontiguousarray(gtcls.Segmentation, dtype=np.uint8)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except (KeyError, AttributeError, ValueError, TypeError, OSError) as exc:
        raise DataError(
            f"{path}: not an SBD class file (expected a struct GTcls with Segmentation): {exc}"
        ) from exc


class VocImageSet(ImageSet):
    """An ImageSet whose masks are VOC PNGs or SBD .mat files."""

    def label(self, index: int) -> np.ndarray:
        path = self.items[index].mask_path
        raw = read_sbd_mat(path) if path.suffix == ".mat" else read_gray(path)
        return self.mask_rule(raw)


def _ids(path: Path, what: str) -> list[str]:
    return [line.strip() for line in require_file(path, what).read_text().splitlines() if line.strip()]


def train_aug_ids(root: Path) -> list[str]:
    """(SBD train + SBD val + VOC train) - VOC val, sorted."""
    voc_sets = Path(root) / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation"
    sbd = Path(root) / "benchmark_RELEASE" / "dataset"
    ids = set(_ids(sbd / "train.txt", "the SBD train list")) | set(_ids(sbd / "val.txt", "the SBD val list"))
    ids |= set(_ids(voc_sets / "train.txt", "the VOC train list"))
    return sorted(ids - set(_ids(voc_sets / "val.txt", "the VOC val list")))


def load_voc(root: Path, split: str = "train_aug") -> ImageSet:
    """VOC 2012 segmentation (+ SBD for train_aug) as binary label maps with 255 = ignore."""
    if split not in SPLITS:
        raise DataError(f"VOC has splits {SPLITS}, not {split!r}")
    root = Path(root)
    voc = root / "VOCdevkit" / "VOC2012"
    if split == "train_aug":
        ids = train_aug_ids(root)
    else:
        ids = _ids(voc / "ImageSets" / "Segmentation" / f"{split}.txt", f"the VOC {split} list")
    images = list_by_stem(voc / "JPEGImages", (".jpg",), "VOC images")
    voc_masks = list_by_stem(voc / "SegmentationClass", (".png",), "VOC class masks")
    sbd = root / "benchmark_RELEASE" / "dataset"
    if split == "train_aug":
        images = list_by_stem(sbd / "img", (".jpg",), "SBD images") | images
        sbd_masks = list_by_stem(sbd / "cls", (".mat",), "SBD class files")
    else:
        sbd_masks = {}
    masks = sbd_masks | voc_masks  # VOC's PNG wins where both exist
    no_image = [voc / "JPEGImages" / f"{i}.jpg" for i in ids if i not in images]
    no_mask = [i for i in ids if i not in masks]
    if no_image or no_mask:
        problems = [f"{len(no_image)} image(s) missing:{describe(no_image)}"] if no_image else []
        problems += (
            [f"{len(no_mask)} id(s) with neither a VOC PNG nor an SBD .mat:{describe(no_mask)}"]
            if no_mask
            else []
        )
        raise DataError(f"VOC {split} under {root}: " + "\n".join(problems))
    items = [ImagePair(images[i], masks[i]) for i in ids]
    return VocImageSet(name=f"voc_{split}", items=items, mask_rule=voc_labels)
