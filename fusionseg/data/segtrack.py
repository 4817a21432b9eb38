"""SegTrack-v2 reader (14 sequences, 1,066 frames), with every quirk of the official zip.

Layout (root = the extracted `SegTrackv2/` folder):
    JPEGImages/<seq>/<stem>.png|.bmp       frames; the extension differs between sequences
    GroundTruth/<seq>/<stem>.png|.bmp      one object; GT is sometimes 3-channel
    GroundTruth/<seq>/<k>/<stem>.*         k = 1, 2, ... for multi-object sequences (bmx, cheetah,
                                           drift, hummingbird, monkeydog: 2 objects; penguin: 6)
    ImageSets/all.txt                      sequence list, one "*<seq>" per line
    ImageSets/<seq>.txt                    "<seq>/" then one frame stem per line
    JPEGImages/CSI_NY.jpg                  a stray file in the official zip: ignored

Frames come from ImageSets/<seq>.txt when present (else the folder listing, in natural order) and
are matched to ground truth by file stem, whatever the extensions. A frame's `mask_paths` holds one
path per object that has a mask there; decoding ORs them (any channel > 0 is foreground), because
the paper treats all objects as one foreground.

A partial copy (some sequences of ImageSets/all.txt without their JPEGImages/<seq>/ folder, e.g. a
partial download) is read as the subset it is: `present_sequences` says which, `load_segtrack` loads
the present ones and warns "N of 14 sequences present", and `fusionseg data verify segtrack` reports it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from fusionseg.data._files import check_pairs, describe, list_by_stem, list_subdirs, natural_key, require_dir
from fusionseg.data.types import Frame, Video, nonzero_is_foreground
from fusionseg.io import DataError

SPLITS = ("all",)


def list_sequences(root: Path) -> list[str]:
    """Sequence names from ImageSets/all.txt, else the sub-folders of JPEGImages (stray files ignored)."""
    all_txt = Path(root) / "ImageSets" / "all.txt"
    if all_txt.is_file():
        names = [line.strip().lstrip("*").strip("/") for line in all_txt.read_text().splitlines()]
        return [name for name in names if name]
    return [p.name for p in list_subdirs(Path(root) / "JPEGImages", "SegTrack-v2 frame folders")]


def _frame_stems(root: Path, name: str, images: dict[str, Path]) -> list[str]:
    """The sequence's frame stems: ImageSets/<seq>.txt (after its path-prefix line), else the listing."""
    listing = Path(root) / "ImageSets" / f"{name}.txt"
    if not listing.is_file():
        return sorted(images, key=natural_key)
    stems = [line.strip() for line in listing.read_text().splitlines()[1:] if line.strip()]
    missing = [s for s in stems if s not in images]
    if missing:
        raise DataError(
            f"{listing}: {len(missing)} listed frame(s) have no image in JPEGImages/{name}:{describe(missing)}"
        )
    return stems


def _object_folders(gt_dir: Path) -> list[Path]:
    """Numbered per-object sub-folders (1, 2, ...) in numeric order, or the GT folder itself."""
    numbered = [p for p in list_subdirs(gt_dir, "a ground-truth folder") if p.name.isdigit()]
    return sorted(numbered, key=lambda p: int(p.name)) or [gt_dir]


def load_sequence(root: Path, name: str) -> Video:
    """One SegTrack-v2 sequence; every frame must have at least one object mask."""
    root = Path(root)
    images = list_by_stem(root / "JPEGImages" / name, what="frames")
    stems = _frame_stems(root, name, images)
    gt_dir = require_dir(root / "GroundTruth" / name, f"ground truth for {name}")
    objects = [list_by_stem(folder, what="masks") for folder in _object_folders(gt_dir)]
    for folder_masks in objects:
        check_pairs(images, folder_masks, f"SegTrack-v2 {name}", every_image_annotated=False)
    frames = [Frame(images[s], tuple(masks[s] for masks in objects if s in masks)) for s in stems]
    unannotated = [f.image_path for f in frames if not f.annotated]
    if unannotated:
        raise DataError(
            f"SegTrack-v2 {name}: {len(unannotated)} frame(s) without ground truth in {gt_dir}:{describe(unannotated)}"
        )
    return Video(name=name, frames=frames, mask_rule=nonzero_is_foreground, dataset="segtrack")


def present_sequences(root: Path) -> tuple[list[str], list[str]]:
    """(present, missing): the listed sequences with and without their JPEGImages/<seq>/ folder."""
    listed = list_sequences(root)
    present = [name for name in listed if (Path(root) / "JPEGImages" / name).is_dir()]
    return present, [name for name in listed if name not in present]


def load_segtrack(root: Path, split: str = "all") -> list[Video]:
    """Every SegTrack-v2 sequence present (the dataset has no splits; "all" is the only one).

    Listed sequences whose frame folder is absent are left out with a warning that names them; a copy
    with none of them is an error."""
    if split not in SPLITS:
        raise DataError(f"SegTrack-v2 has splits {SPLITS}, not {split!r}")
    present, missing = present_sequences(root)
    if not present:
        raise DataError(
            f"{Path(root) / 'JPEGImages'}: none of the {len(missing)} listed SegTrack-v2 sequences is there"
        )
    if missing:
        warnings.warn(
            f"SegTrack-v2 at {root}: {len(present)} of {len(present) + len(missing)} sequences present "
            f"({', '.join(present)}); missing: {', '.join(missing)}",
            stacklevel=2,
        )
    return [load_sequence(root, name) for name in present]
