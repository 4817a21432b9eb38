"""`fusionseg data verify DATASET --root DIR`: check a local copy of a dataset and say what is wrong.

Checks, per split: the reader lists it without error (missing folders, images without masks and
masks without images, unparsable index files are all reported by the readers with their paths);
the counts match the official release (fewer is a warning for a detected subset, or a note with
`--expect-subset`; more is a problem); no stray image sits in a video's folders unlisted; and, unless
`--quick`, every image and mask decodes, masks have one size per video, and each mask is the size of
its image (a uniform scale, like the local DAVIS copy's 2x-downsampled frames, is a warning).
Exit status 0 when there is no problem (warnings allowed), 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from fusionseg.data import DEFAULT_FOLDERS, VIDEO_READERS, load_image_set, load_videos
from fusionseg.data._files import IMAGE_SUFFIXES, describe
from fusionseg.data.davis import DAVIS_SET_NAMES, read_db_info
from fusionseg.data.types import ImageSet, Video
from fusionseg.data.youtube_objects import CATEGORIES
from fusionseg.io import DataError, read_rgb

# Official counts: dataset -> split -> {what: count}
EXPECTED: dict[str, dict[str, dict[str, int]]] = {
    "davis": {
        "train": {"sequences": 30, "frames": 2079},
        "val": {"sequences": 20, "frames": 1376},
        "trainval": {"sequences": 50, "frames": 3455},
    },
    "segtrack": {"all": {"sequences": 14, "frames": 1066}},
    "youtube_objects": {"all": {"shots": 126, "categories": 10}},
    "imagenet_vid": {"train": {"snippets": 3862}, "val": {"snippets": 555}},
    "duts": {"train": {"images": 10553}, "test": {"images": 5019}},
    "voc": {"train_aug": {"images": 10582}, "val": {"images": 1449}},
}


@dataclass
class Report:
    """What verify found: count lines, problems (fail), warnings and notes (do not fail)."""

    dataset: str
    root: Path
    counts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        lines = [f"{self.dataset} at {self.root}"]
        lines += [f"  {line}" for line in self.counts]
        lines += [f"NOTE: {line}" for line in self.notes]
        lines += [f"WARNING: {line}" for line in self.warnings]
        lines += [f"PROBLEM: {line}" for line in self.problems]
        verdict = "OK" if self.ok else f"FAILED: {len(self.problems)} problem(s)"
        lines.append(f"{verdict} ({len(self.warnings)} warning(s))")
        return "\n".join(lines)


# --- counts -------------------------------------------------------------------------------------------


def _counts(dataset: str, data: list[Video] | ImageSet) -> dict[str, int]:
    """The quantities EXPECTED names, measured on what the reader returned."""
    if isinstance(data, ImageSet):
        return {"images": len(data)}
    frames = sum(len(video) for video in data)
    if dataset == "youtube_objects":
        return {"shots": len(data), "categories": len({v.category for v in data}), "frames": frames}
    key = "snippets" if dataset == "imagenet_vid" else "sequences"
    return {key: len(data), "frames": frames}


def _check_counts(report: Report, split: str, found: dict[str, int], expect_subset: bool) -> None:
    expected = EXPECTED[report.dataset].get(split, {})
    parts = []
    for what, count in found.items():
        want = expected.get(what)
        parts.append(f"{count:,} {what}" + (f" (official {want:,})" if want is not None else ""))
        if want is None or count == want:
            continue
        message = f"{split}: {count:,} {what}, the official release has {want:,}"
        if count > want:
            report.problems.append(message)
        elif expect_subset:
            report.notes.append(message + " (a subset, as expected)")
        else:
            report.warnings.append(message + ": a subset? (pass --expect-subset if intended)")
    report.counts.append(f"{split}: " + ", ".join(parts))


# --- file checks ---------------------------------------------------------------------------------------


def _unlisted_files(videos: list[Video]) -> list[Path]:
    """Image files in the folders a split's frames and masks live in that no frame refers to."""
    used = {p for v in videos for f in v.frames for p in (f.image_path, *f.mask_paths)}
    folders = {p.parent for p in used}
    return sorted(
        p for d in folders for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p not in used
    )


def _pairs(data: list[Video] | ImageSet) -> Iterator[tuple[str | None, Path, Video | ImageSet, int]]:
    """(video name or None, image path, container, index) for every image of a split."""
    if isinstance(data, ImageSet):
        for index, item in enumerate(data.items):
            yield None, item.image_path, data, index
        return
    for video in data:
        for index, frame in enumerate(video.frames):
            yield video.name, frame.image_path, video, index


def _decode_all(report: Report, split: str, data: list[Video] | ImageSet, seen: set[Path]) -> None:
    """Decode every image and mask once; check mask sizes per group and against their image."""
    items = [item for item in _pairs(data) if item[1] not in seen]
    if not items:  # e.g. DAVIS trainval after train and val
        return
    mask_shapes: dict[str, set[tuple[int, int]]] = {}  # per video: one size expected
    scales: Counter[tuple[float, float]] = Counter()
    example: dict[tuple[float, float], tuple[Path, tuple, tuple]] = {}
    unreadable, bad_size, boxes_outside = [], [], []
    for group, image_path, container, index in tqdm(
        items, desc=f"decoding {report.dataset} {split}", unit="frame"
    ):
        seen.add(image_path)
        try:
            image_shape = read_rgb(image_path).shape[:2]
            label = container.label(index)
        except DataError as exc:
            unreadable.append(str(exc))
            continue
        boxes = container.frames[index].boxes if isinstance(container, Video) else ()
        if any(b.x0 < 0 or b.y0 < 0 or b.x1 > image_shape[1] or b.y1 > image_shape[0] for b in boxes):
            boxes_outside.append(image_path)
        if label is None:
            continue
        if group is not None:
            mask_shapes.setdefault(group, set()).add(label.shape)
        if label.shape != image_shape:
            scale = (round(label.shape[0] / image_shape[0], 2), round(label.shape[1] / image_shape[1], 2))
            scales[scale] += 1
            example.setdefault(scale, (image_path, image_shape, label.shape))
            if scale[0] != scale[1]:
                bad_size.append(f"{image_path}: image {image_shape}, mask {label.shape}")
    if unreadable:
        report.problems.append(f"{split}: {len(unreadable)} unreadable file(s):{describe(unreadable)}")
    if bad_size:
        report.problems.append(
            f"{split}: {len(bad_size)} mask(s) not a uniform scale of their image:{describe(bad_size)}"
        )
    mixed = sorted(g for g, shapes in mask_shapes.items() if len(shapes) > 1)
    if mixed:
        report.problems.append(f"{split}: masks of several sizes within one video:{describe(mixed)}")
    for scale, count in scales.items():
        if scale[0] == scale[1]:
            path, image_shape, mask_shape = example[scale]
            report.warnings.append(
                f"{split}: {count:,} mask(s) are {scale[0]}x their image's size (e.g. {path}: image "
                f"{image_shape[1]}x{image_shape[0]}, mask {mask_shape[1]}x{mask_shape[0]}); evaluate at mask size"
            )
    if boxes_outside:
        report.warnings.append(
            f"{split}: {len(boxes_outside)} frame(s) with boxes outside the image:{describe(boxes_outside)}"
        )


# --- dataset-specific checks -------------------------------------------------------------------------------


def _check_davis(report: Report, split: str, videos: list[Video]) -> None:
    """db_info.yml agrees with the split file (frame counts, training/test set)."""
    info = read_db_info(report.root)
    if not info:
        report.warnings.append(f"{report.root / 'Annotations' / 'db_info.yml'}: missing (no attributes)")
        return
    wrong = []
    for video in videos:
        entry = info.get(video.name)
        if entry is None:
            wrong.append(f"{video.name}: not in db_info.yml")
            continue
        if int(entry.get("num_frames", -1)) != len(video):
            wrong.append(
                f"{video.name}: db_info.yml says {entry.get('num_frames')} frames, {split}.txt lists {len(video)}"
            )
        if split in DAVIS_SET_NAMES and entry.get("set") != DAVIS_SET_NAMES[split]:
            wrong.append(f"{video.name}: db_info.yml set {entry.get('set')!r}, but listed in {split}.txt")
    if wrong:
        report.problems.append(f"{split}: db_info.yml disagrees with ImageSets:{describe(wrong)}")


def _check_youtube_objects(report: Report, split: str, videos: list[Video]) -> None:
    """Known categories only; every shot has at least one annotated frame."""
    unknown = sorted({v.category for v in videos} - set(CATEGORIES))
    if unknown:
        report.problems.append(f"unknown categories {unknown}: expected {list(CATEGORIES)}")
    empty = [v.frames[0].image_path.parent.parent for v in videos if not v.annotated_indices]
    if empty:
        report.warnings.append(f"{len(empty)} shot(s) without any label:{describe(empty)}")


# --- driver --------------------------------------------------------------------------------------------------


def _check_segtrack(report: Report, split: str, videos: list[Video]) -> None:
    """Say plainly which of the listed sequences a partial copy holds."""
    from fusionseg.data.segtrack import present_sequences

    present, missing = present_sequences(report.root)
    if missing:
        report.notes.append(
            f"{len(present)} of {len(present) + len(missing)} sequences present ({', '.join(present)}); "
            f"missing: {', '.join(missing)}"
        )


EXTRA_CHECKS = {"davis": _check_davis, "youtube_objects": _check_youtube_objects, "segtrack": _check_segtrack}


def verify_dataset(
    dataset: str,
    root: Path,
    splits: list[str] | None = None,
    expect_subset: bool = False,
    decode: bool = True,
) -> Report:
    """Run every check on `splits` (default: each split with official counts) of `dataset` at `root`."""
    if dataset not in EXPECTED:
        raise DataError(f"unknown dataset {dataset!r}: expected one of {sorted(EXPECTED)}")
    report = Report(dataset, Path(root))
    seen: set[Path] = set()
    for split in splits or list(EXPECTED[dataset]):
        try:
            if dataset in VIDEO_READERS:
                with warnings.catch_warnings():  # a subset is reported below, not warned about
                    warnings.simplefilter("ignore")
                    data: list[Video] | ImageSet = load_videos(dataset, root, split)
            else:
                data = load_image_set(dataset, root, split)
        except DataError as exc:
            report.problems.append(f"{split}: {exc}")
            continue
        _check_counts(report, split, _counts(dataset, data), expect_subset)
        if isinstance(data, list):
            stray = _unlisted_files(data)
            if stray:
                report.problems.append(
                    f"{split}: {len(stray)} image file(s) no frame refers to:{describe(stray)}"
                )
            if dataset in EXTRA_CHECKS:
                EXTRA_CHECKS[dataset](report, split, data)
        if decode:
            _decode_all(report, split, data, seen)
    return report


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """`data verify DATASET [--root DIR] [--split S ...] [--expect-subset] [--quick]`."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = actions.add_parser("verify", help="check a local copy: counts, missing files, decoding, sizes")
    verify.add_argument("dataset", choices=sorted(EXPECTED))
    verify.add_argument(
        "--root", type=Path, help="the dataset's folder (default: $FUSIONSEG_DATA/<its folder>)"
    )
    verify.add_argument("--split", action="append", help="check only this split (repeatable)")
    verify.add_argument(
        "--expect-subset", action="store_true", help="fewer items than the release is expected"
    )
    verify.add_argument("--quick", action="store_true", help="skip decoding every image and mask")


def _default_root(dataset: str) -> Path:
    value = os.environ.get("FUSIONSEG_DATA")
    if not value:
        raise DataError("no --root given and FUSIONSEG_DATA is not set")
    return Path(value) / DEFAULT_FOLDERS[dataset]


def run_command(args: argparse.Namespace) -> int:
    """Print the report; exit 1 on problems (or a bad root), 0 otherwise."""
    try:
        root = args.root or _default_root(args.dataset)
        report = verify_dataset(args.dataset, root, args.split, args.expect_subset, decode=not args.quick)
    except DataError as exc:
        print(f"PROBLEM: {exc}")
        return 1
    print(report.render())
    return 0 if report.ok else 1
