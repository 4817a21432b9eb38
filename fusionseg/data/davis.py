"""DAVIS 2016 reader.

Layout (root = the extracted `DAVIS/` folder):
    JPEGImages/<res>/<seq>/%05d.jpg      Annotations/<res>/<seq>/%05d.png  (values {0, 255})
    ImageSets/<res>/{train,val,trainval}.txt: one frame per line,
        "/JPEGImages/480p/bear/00000.jpg /Annotations/480p/bear/00000.png"
    Annotations/db_info.yml: per sequence name, attributes, num_frames, set (training/test), eval_t.
50 sequences, 3,455 frames: train 30 / 2,079, val 20 / 1,376. Every frame is annotated; masks are
nonzero = foreground. The split file is the source of truth for which frames belong to a split; the
frame and annotation folders are listed once per sequence to report missing files.

The real copy in $FUSIONSEG_DATA has frames downsampled to 427x240 and annotations at 854x480: the
reader reports files as they are and never resizes (evaluation resizes predictions to the
annotation). The official db_info.yml has no object categories, so `Video.category` is the
sequence entry's `category` key when a file has one (the synthetic world writes it), else "".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import yaml

from fusionseg.data._files import describe, list_by_stem, require_file
from fusionseg.data.types import Frame, Video, nonzero_is_foreground
from fusionseg.io import DataError

SPLITS = ("train", "val", "trainval")
DAVIS_SET_NAMES = {"train": "training", "val": "test"}  # split -> db_info.yml `set`


def read_db_info(root: Path) -> dict[str, dict]:
    """Annotations/db_info.yml's sequence entries keyed by name ({} if the file is absent)."""
    path = Path(root) / "Annotations" / "db_info.yml"
    if not path.is_file():
        return {}
    try:
        info = yaml.safe_load(path.read_text()) or {}
        return {str(entry["name"]): entry for entry in info.get("sequences", [])}
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(
            f"{path}: not a DAVIS db_info.yml (expected 'sequences' entries with a 'name'): {exc}"
        ) from exc


def _split_lines(path: Path) -> Iterator[tuple[str, str]]:
    """(image, annotation) relative paths, one pair per non-empty line of a split file."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DataError(f"{path}:{number}: expected '<image> <annotation>', got {line!r}")
        yield parts[0].lstrip("/"), parts[1].lstrip("/")


def read_split(root: Path, split: str, resolution: str = "480p") -> dict[str, list[tuple[str, str]]]:
    """Sequence name -> its (image, annotation) relative paths, in split-file order."""
    if split not in SPLITS:
        raise DataError(f"DAVIS has splits {SPLITS}, not {split!r}")
    path = require_file(
        Path(root) / "ImageSets" / resolution / f"{split}.txt", f"the DAVIS {split} split file"
    )
    sequences: dict[str, list[tuple[str, str]]] = {}
    for image, annotation in _split_lines(path):
        sequences.setdefault(Path(image).parent.name, []).append((image, annotation))
    if not sequences:
        raise DataError(f"{path}: the split file lists no frames")
    return sequences


def _sequence(root: Path, name: str, pairs: list[tuple[str, str]], category: str) -> Video:
    """One sequence's Video, after checking that every listed file is in its folder listing."""
    listed: dict[Path, set[str]] = {}
    missing = []
    for relative in (p for pair in pairs for p in pair):
        path = root / relative
        if path.parent not in listed:
            listed[path.parent] = set(list_by_stem(path.parent, (path.suffix,), "frames or masks"))
        if path.stem not in listed[path.parent]:
            missing.append(path)
    if missing:
        raise DataError(
            f"DAVIS sequence {name}: {len(missing)} file(s) named in ImageSets are missing:{describe(missing)}"
        )
    frames = [Frame(image_path=root / image, mask_paths=(root / annotation,)) for image, annotation in pairs]
    return Video(
        name=name, frames=frames, category=category, mask_rule=nonzero_is_foreground, dataset="davis"
    )


def load_davis(root: Path, split: str = "trainval", resolution: str = "480p") -> list[Video]:
    """The sequences of a DAVIS 2016 split, in split-file order, every frame with its annotation."""
    root = Path(root)
    info = read_db_info(root)
    return [
        _sequence(root, name, pairs, str(info.get(name, {}).get("category", "") or ""))
        for name, pairs in read_split(root, split, resolution).items()
    ]
