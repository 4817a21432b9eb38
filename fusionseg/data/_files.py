"""Directory-listing helpers shared by the dataset readers (no file is ever decoded here).

Readers list folders once, match images to masks by file stem, and raise `DataError` naming every
mismatch (up to a limit), so that both a user and `fusionseg data verify` learn exactly what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from fusionseg.io import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
SHOWN = 10  # how many offending paths an error message names before summarising


def require_dir(path: Path, what: str) -> Path:
    """`path` if it is a folder, else a DataError saying which folder the layout needs."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: folder not found (expected {what})")
    return path


def require_file(path: Path, what: str) -> Path:
    """`path` if it is a file, else a DataError saying which file the layout needs."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected {what})")
    return path


def list_by_stem(
    folder: Path, suffixes: Iterable[str] = IMAGE_SUFFIXES, what: str = "images"
) -> dict[str, Path]:
    """Files of `folder` with one of `suffixes` (case-insensitive), keyed by stem, in sorted order.

    Two files with the same stem (e.g. 00001.png and 00001.bmp) are ambiguous: DataError.
    """
    folder = require_dir(folder, what)
    wanted = {s.lower() for s in suffixes}
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in wanted or not path.is_file():
            continue
        if path.stem in found:
            raise DataError(
                f"{folder}: both {found[path.stem].name} and {path.name} exist; which is the {what[:-1]}?"
            )
        found[path.stem] = path
    return found


def list_subdirs(folder: Path, what: str) -> list[Path]:
    """Sub-folders of `folder`, sorted by name (hidden ones skipped)."""
    folder = require_dir(folder, what)
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def describe(paths: Iterable[Path | str]) -> str:
    """A short, newline-separated list of paths (the first SHOWN, then a count)."""
    paths = [str(p) for p in paths]
    shown = "\n  ".join(paths[:SHOWN])
    more = f"\n  ... and {len(paths) - SHOWN} more" if len(paths) > SHOWN else ""
    return f"\n  {shown}{more}"


def check_pairs(
    images: Mapping[str, Path],
    masks: Mapping[str, Path],
    where: str,
    every_image_annotated: bool = True,
) -> None:
    """Raise DataError if a mask has no image, or (when required) an image has no mask."""
    problems = []
    orphans = [masks[s] for s in masks if s not in images]
    if orphans:
        problems.append(f"{len(orphans)} mask(s) without an image:{describe(orphans)}")
    if every_image_annotated:
        missing = [images[s] for s in images if s not in masks]
        if missing:
            problems.append(f"{len(missing)} image(s) without a mask:{describe(missing)}")
    if problems:
        raise DataError(f"{where}: " + "\n".join(problems))


def natural_key(name: str) -> tuple:
    """Sort key that orders "frame2" before "frame10" (numbers compared as numbers)."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))
