"""YouTube-Objects reader for the Jain & Grauman (ECCV 2014) pixel masks: 126 shots, 10 categories.

Layout (root = the folder that holds `youtube_masks/`, or `youtube_masks/` itself):
    youtube_masks/<category>/data/<NNNN>/shots/<shot>/images/<stem>.jpg
    youtube_masks/<category>/data/<NNNN>/shots/<shot>/labels/<stem>.jpg   (annotated frames only)
Labels are JPEG-compressed, so they are thresholded at 127 (`threshold_127`), and matched to
frames by file stem. Each shot is one `Video` named "<category>-<NNNN>-<shot>" whose category is
the folder's; frames without a label have no mask (`Frame.annotated` is False).
"""

from __future__ import annotations

from pathlib import Path

from fusionseg.data._files import check_pairs, list_by_stem, list_subdirs, natural_key
from fusionseg.data.types import Frame, Video, threshold_127
from fusionseg.io import DataError

SPLITS = ("all",)
CATEGORIES = ("aeroplane", "bird", "boat", "car", "cat", "cow", "dog", "horse", "motorbike", "train")


def masks_root(root: Path) -> Path:
    """The `youtube_masks` folder under (or at) `root`."""
    root = Path(root)
    return root if root.name == "youtube_masks" else root / "youtube_masks"


def list_shots(root: Path) -> list[tuple[str, str, Path]]:
    """(category, video id, shot folder) for every shot, sorted by category, video and shot."""
    shots = []
    for category_dir in list_subdirs(masks_root(root), "one folder per YouTube-Objects category"):
        for video_dir in list_subdirs(category_dir / "data", f"{category_dir.name}'s numbered video folders"):
            for shot_dir in list_subdirs(video_dir / "shots", f"shot folders of {video_dir}"):
                shots.append((category_dir.name, video_dir.name, shot_dir))
    return shots


def load_shot(category: str, video_id: str, shot_dir: Path) -> Video:
    """One shot: all its frames in natural order; labels (a subset) attached by stem."""
    images = list_by_stem(shot_dir / "images", what="frames")
    labels = list_by_stem(shot_dir / "labels", what="labels")
    check_pairs(images, labels, f"YouTube-Objects shot {shot_dir}", every_image_annotated=False)
    if not images:
        raise DataError(f"{shot_dir / 'images'}: no frames")
    frames = [Frame(images[s], (labels[s],) if s in labels else ()) for s in sorted(images, key=natural_key)]
    name = f"{category}-{video_id}-{shot_dir.name}"
    return Video(
        name=name, frames=frames, category=category, mask_rule=threshold_127, dataset="youtube_objects"
    )


def load_youtube_objects(root: Path, split: str = "all") -> list[Video]:
    """Every annotated shot (the masks come as one test set; "all" is the only split)."""
    if split not in SPLITS:
        raise DataError(f"YouTube-Objects has splits {SPLITS}, not {split!r}")
    return [load_shot(category, video_id, shot_dir) for category, video_id, shot_dir in list_shots(root)]
