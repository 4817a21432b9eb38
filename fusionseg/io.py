"""Small, strict file helpers shared by every module.

Reading: images come back as uint8 RGB arrays, masks as 2-D arrays; a missing or unreadable file
raises `DataError` naming the file and what was expected. Writing: always to a temporary file in
the same folder, then renamed, so that an interrupted run never leaves a half-written output.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

_UMASK = os.umask(0)
os.umask(_UMASK)


class DataError(RuntimeError):
    """A dataset file is missing, unreadable or not what the reader expected."""


REPO_ROOT = Path(__file__).resolve().parents[1]
"""This checkout's root: where `results/`, `runs/`, `.cache/` and `book/` live by default."""


def runs_root() -> Path:
    """Where runs keep what is not committed (weights, caches of stages, a reader's results):
    `runs/` of this checkout (git-ignored), or the folder FUSIONSEG_RUNS names."""
    return Path(os.environ.get("FUSIONSEG_RUNS", REPO_ROOT / "runs"))


def data_root(required: bool = True) -> Path | None:
    """The real-data folder from the environment variable `FUSIONSEG_DATA`."""
    value = os.environ.get("FUSIONSEG_DATA")
    if not value:
        if required:
            raise DataError(
                "FUSIONSEG_DATA is not set: point it at the folder that holds DAVIS/, DUTS/, ... "
                "(see data_scripts/README.md)"
            )
        return None
    root = Path(value).expanduser()
    if not root.is_dir():
        raise DataError(f"FUSIONSEG_DATA={value} is not a folder")
    return root


def _open_image(path: Path) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from exc
    return image


def read_rgb(path: Path) -> np.ndarray:
    """An image file as an HxWx3 uint8 RGB array (grey and RGBA are converted)."""
    return np.asarray(_open_image(path).convert("RGB"))


def read_gray(path: Path) -> np.ndarray:
    """A mask file as an HxW uint8 array of its raw values.

    Palette PNGs keep their indices (VOC labels); colour masks are reduced with the channel
    maximum, so that "any channel > 0" tests work on 3-channel ground truth.
    """
    image = _open_image(path)
    if image.mode in {"P", "L", "1"}:
        array = np.asarray(image)
    elif image.mode in {"I;16", "I"}:
        array = np.asarray(image).astype(np.int64)
        if array.max(initial=0) > 255:
            raise DataError(f"{path}: expected 8-bit mask values, found a maximum of {array.max()}")
        array = array.astype(np.uint8)
    else:
        array = np.asarray(image.convert("RGB")).max(axis=2)
    return np.ascontiguousarray(array, dtype=np.uint8)


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file, read from its header only."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from exc
    return height, width


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix + ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs get the usual mode
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_png(path: Path, array: np.ndarray, compress_level: int = 6) -> None:
    """Write a uint8 (HxW or HxWx3) array as PNG, atomically. Booleans become {0, 255}.
    `compress_level` is zlib's (0-9; Pillow's default 6): lower writes faster, larger files."""
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        raise ValueError(f"write_png({path}): expected uint8 or bool, got {array.dtype}")
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG", compress_level=compress_level)


def write_jpeg(path: Path, array: np.ndarray, quality: int = 90) -> None:
    """Write an HxWx3 uint8 RGB array as JPEG, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(array, dtype=np.uint8)).save(tmp, format="JPEG", quality=quality)


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON (indented, keys in insertion order) atomically."""
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")
