"""Dataset readers: one module per dataset, one small common representation (`types.py`).

`load_videos(dataset, root, split)` returns `Video`s for "davis", "segtrack", "youtube_objects" and
"imagenet_vid"; `load_image_set(dataset, root, split)` returns an `ImageSet` for "duts" and "voc".
Listing is lazy: readers list folders and read small index files, and never decode an image.
`fusionseg.data.layouts` writes each dataset's official layout (tests, synthetic world);
`fusionseg data verify DATASET --root DIR` checks a local copy.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from fusionseg.data.types import ImageSet, Video
from fusionseg.io import DataError

# dataset name -> (module, function, splits; the first split is the default)
VIDEO_READERS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "davis": ("fusionseg.data.davis", "load_davis", ("trainval", "train", "val")),
    "segtrack": ("fusionseg.data.segtrack", "load_segtrack", ("all",)),
    "youtube_objects": ("fusionseg.data.youtube_objects", "load_youtube_objects", ("all",)),
    "imagenet_vid": ("fusionseg.data.imagenet_vid", "load_vid_videos", ("train", "val")),
}
IMAGE_SET_READERS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "duts": ("fusionseg.data.saliency", "load_duts", ("train", "test")),
    "voc": ("fusionseg.data.voc", "load_voc", ("train_aug", "train", "val")),
}

# Where each dataset lives under $FUSIONSEG_DATA (and where data_scripts/ put it by default).
DEFAULT_FOLDERS = {
    "davis": "DAVIS",
    "segtrack": "SegTrackv2",
    "youtube_objects": "YouTube-Objects",
    "imagenet_vid": "ILSVRC2015",
    "duts": "DUTS",
    "voc": "VOC",
    "davis_benchmark": "davis_benchmark",  # published results (fusionseg.data.davis_benchmark)
}


def _reader(table: dict, dataset: str, split: str | None):
    """The reader function for `dataset` and the split to pass it (checked against its list)."""
    if dataset not in table:
        hint = ""
        if dataset in VIDEO_READERS:
            hint = " (it is a video dataset: use load_videos)"
        elif dataset in IMAGE_SET_READERS:
            hint = " (it is an image set: use load_image_set)"
        raise DataError(f"unknown dataset {dataset!r}: expected one of {sorted(table)}{hint}")
    module_name, function, splits = table[dataset]
    split = split or splits[0]
    if split not in splits:
        raise DataError(f"{dataset} has no split {split!r}: expected one of {list(splits)}")
    return getattr(importlib.import_module(module_name), function), split


def load_videos(dataset: str, root: Path, split: str | None = None) -> list[Video]:
    """The videos of `dataset` under `root` (default split: DAVIS "trainval", VID "train", else "all")."""
    reader, split = _reader(VIDEO_READERS, dataset, split)
    return reader(Path(root), split)


def load_image_set(dataset: str, root: Path, split: str | None = None) -> ImageSet:
    """The image/mask pairs of `dataset` under `root` (default split: DUTS "train", VOC "train_aug")."""
    reader, split = _reader(IMAGE_SET_READERS, dataset, split)
    return reader(Path(root), split)
