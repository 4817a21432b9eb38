"""Writers for every dataset's official on-disk layout (used by the tests and the synthetic world).

Each writer puts arrays on disk exactly where the official release keeps them, and keeps the
dataset's index files (split lists, db_info.yml, ...) up to date after every call, so there is no
separate "finalise" step: write sequences one by one, then read them with `fusionseg.data`.
Images are HxWx3 uint8 RGB arrays; masks are HxW arrays, bool or uint8 (nonzero = foreground)
unless stated otherwise. Every file is written atomically through `fusionseg.io`.

Signatures (root is the dataset's own folder, e.g. `.../DAVIS`):

- `write_davis_sequence(root, name, frames, masks, split, category="", attributes=(), resolution="480p")`
  JPEGImages/480p/<name>/%05d.jpg, Annotations/480p/<name>/%05d.png ({0,255}); then rewrites
  Annotations/db_info.yml (split "train" -> set "training", "val" -> "test"; `category` is stored
  only when non-empty: the real file has none) and ImageSets/480p/{train,val,trainval}.txt.
- `write_segtrack_sequence(root, name, frames, object_masks, frame_ext=".png", gt_ext=".png",
  gt_channels=1, stems=None)`  JPEGImages/<name>/<stem><frame_ext>; GroundTruth/<name>/<stem><gt_ext>
  for one object, GroundTruth/<name>/<k>/<stem><gt_ext> (k = 1, 2, ...) for several; updates
  ImageSets/all.txt ("*<name>") and ImageSets/<name>.txt ("<name>/" then one stem per line).
  `object_masks[k][i]` is object k's mask in frame i (None: no file).
- `write_youtube_objects_shot(root, category, video_id, frames, masks, shot="001", stems=None)`
  youtube_masks/<category>/data/<video_id:04d>/shots/<shot>/images/<stem>.jpg and labels/<stem>.jpg
  (greyscale JPEG {0,255}) for the frames whose mask is not None.
- `write_saliency_pair(root, set_name, stem, image, mask)`  <set_name>/<set_name>-Image/<stem>.jpg and
  <set_name>-Mask/<stem>.png ({0,255}); e.g. set_name "DUTS-TR".
- `write_voc_image(root, image_id, image, label=None, splits=())`  VOCdevkit/VOC2012/JPEGImages/<id>.jpg,
  SegmentationClass/<id>.png (palette PNG of class indices 0..20, 255 void) and the id appended to
  ImageSets/Segmentation/<split>.txt for each split ("train", "val"; "trainval" is kept as their union).
- `write_sbd_image(root, image_id, image, label, split)`  benchmark_RELEASE/dataset/img/<id>.jpg,
  cls/<id>.mat (MATLAB struct GTcls with Segmentation = class indices, CategoriesPresent) and the id
  appended to benchmark_RELEASE/dataset/<split>.txt ("train" or "val").
- `write_vid_snippet(root, chunk, snippet, frames, boxes_per_frame, split="train")`
  Data/VID/<split>/[<chunk>/]<snippet>/%06d.JPEG and Annotations/VID/<split>/[<chunk>/]<snippet>/%06d.xml
  (size, then per Box: trackid, name = Box.label (a synset), bndbox, occluded, generated); updates
  ImageSets/VID/train_<class>.txt ("<chunk>/<snippet> 1" for each class present; 1..30 in
  `VID_CLASSES` order) or, for split "val" (no chunk), ImageSets/VID/val.txt ("<snippet>/%06d <running index>").
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import scipy.io
import yaml
from PIL import Image

from fusionseg.data.davis import DAVIS_SET_NAMES
from fusionseg.data.imagenet_vid import VID_CLASSES
from fusionseg.data.types import Box
from fusionseg.io import atomic_path, write_jpeg, write_png, write_text

_PIL_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP"}


# --- small shared helpers -------------------------------------------------------------------------


def _binary(mask: np.ndarray) -> np.ndarray:
    """A mask as uint8 {0, 255} (nonzero = foreground)."""
    return np.where(np.asarray(mask) > 0, 255, 0).astype(np.uint8)


def _write_image(path: Path, array: np.ndarray) -> None:
    """Write an image in the format its suffix names (.jpg/.png/.bmp), atomically."""
    fmt = _PIL_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unsupported image suffix (expected one of {sorted(_PIL_FORMATS)})")
    array = np.ascontiguousarray(array, dtype=np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))


def _add_lines(path: Path, lines: Iterable[str]) -> None:
    """Append lines to a list file unless already present (keeps the file's order)."""
    existing = path.read_text().splitlines() if path.is_file() else []
    new = [line for line in lines if line not in existing]
    if new or not path.is_file():
        write_text(path, "".join(f"{line}\n" for line in existing + new))


def _check_lengths(what: str, frames: Sequence, other: Sequence) -> None:
    if len(frames) != len(other):
        raise ValueError(f"{what}: {len(frames)} frames but {len(other)} entries")


def _stems(stems: Sequence[str] | None, count: int, pattern: str) -> list[str]:
    names = list(stems) if stems is not None else [pattern.format(i) for i in range(count)]
    if len(names) != count:
        raise ValueError(f"{len(names)} stems given for {count} frames")
    return names


# --- DAVIS 2016 ---------------------------------------------------------------------------------------


def write_davis_sequence(
    root: Path,
    name: str,
    frames: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    split: str,
    category: str = "",
    attributes: Sequence[str] = (),
    resolution: str = "480p",
) -> None:
    """Write one DAVIS 2016 sequence (every frame annotated) and refresh db_info.yml and ImageSets."""
    if split not in DAVIS_SET_NAMES:
        raise ValueError(f"DAVIS split must be one of {sorted(DAVIS_SET_NAMES)}, got {split!r}")
    _check_lengths(f"DAVIS sequence {name}", frames, masks)
    root = Path(root)
    for index, (frame, mask) in enumerate(zip(frames, masks, strict=True)):
        write_jpeg(root / "JPEGImages" / resolution / name / f"{index:05d}.jpg", frame)
        write_png(root / "Annotations" / resolution / name / f"{index:05d}.png", _binary(mask))
    entry = {"attributes": list(attributes), "name": name, "num_frames": len(frames)}
    entry |= {"set": DAVIS_SET_NAMES[split], "eval_t": True}
    if category:
        entry["category"] = category
    _update_davis_index(root, entry, resolution)


def _update_davis_index(root: Path, entry: dict, resolution: str) -> None:
    """Insert/replace `entry` in Annotations/db_info.yml and rewrite the ImageSets split files."""
    info_path = root / "Annotations" / "db_info.yml"
    info = yaml.safe_load(info_path.read_text()) if info_path.is_file() else {}
    sequences = [s for s in info.get("sequences", []) if s["name"] != entry["name"]] + [entry]
    sequences.sort(key=lambda s: s["name"])
    all_attributes = sorted(set(info.get("attributes", [])) | set(entry["attributes"]))
    info = {"attributes": all_attributes, "sets": ["training", "test"], "sequences": sequences}
    write_text(info_path, yaml.safe_dump(info, sort_keys=False, default_flow_style=None))

    def lines(sets: set[str]) -> str:
        return "".join(
            f"/JPEGImages/{resolution}/{s['name']}/{i:05d}.jpg /Annotations/{resolution}/{s['name']}/{i:05d}.png\n"
            for s in sequences
            if s["set"] in sets
            for i in range(s["num_frames"])
        )

    sets_dir = root / "ImageSets" / resolution
    write_text(sets_dir / "train.txt", lines({"training"}))
    write_text(sets_dir / "val.txt", lines({"test"}))
    write_text(sets_dir / "trainval.txt", lines({"training", "test"}))


# --- SegTrack-v2 -------------------------------------------------------------------------------------


def write_segtrack_sequence(
    root: Path,
    name: str,
    frames: Sequence[np.ndarray],
    object_masks: Sequence[Sequence[np.ndarray | None]],
    frame_ext: str = ".png",
    gt_ext: str = ".png",
    gt_channels: int = 1,
    stems: Sequence[str] | None = None,
) -> None:
    """Write one SegTrack-v2 sequence: one GT folder, or numbered sub-folders for several objects."""
    if gt_channels not in (1, 3):
        raise ValueError(f"gt_channels must be 1 or 3, got {gt_channels}")
    if not object_masks:
        raise ValueError(f"SegTrack-v2 sequence {name}: needs at least one object")
    root = Path(root)
    names = _stems(stems, len(frames), name + "_{:05d}")
    for frame, stem in zip(frames, names, strict=True):
        _write_image(root / "JPEGImages" / name / f"{stem}{frame_ext}", frame)
    gt_dir = root / "GroundTruth" / name
    for k, masks in enumerate(object_masks, start=1):
        _check_lengths(f"SegTrack-v2 {name} object {k}", frames, masks)
        folder = gt_dir if len(object_masks) == 1 else gt_dir / str(k)
        for mask, stem in zip(masks, names, strict=True):
            if mask is None:
                continue
            gt = _binary(mask)
            _write_image(folder / f"{stem}{gt_ext}", np.dstack([gt] * 3) if gt_channels == 3 else gt)
    write_text(root / "ImageSets" / f"{name}.txt", f"{name}/\n" + "".join(f"{s}\n" for s in names))
    _add_lines(root / "ImageSets" / "all.txt", [f"*{name}"])


# --- YouTube-Objects (Jain & Grauman masks) -------------------------------------------------------------


def write_youtube_objects_shot(
    root: Path,
    category: str,
    video_id: int,
    frames: Sequence[np.ndarray],
    masks: Sequence[np.ndarray | None],
    shot: str = "001",
    stems: Sequence[str] | None = None,
) -> None:
    """Write one shot: every frame under images/, a greyscale JPEG label for each non-None mask."""
    _check_lengths(f"YouTube-Objects {category}/{video_id}", frames, masks)
    shot_dir = Path(root) / "youtube_masks" / category / "data" / f"{int(video_id):04d}" / "shots" / shot
    for frame, mask, stem in zip(frames, masks, _stems(stems, len(frames), "{:05d}"), strict=True):
        write_jpeg(shot_dir / "images" / f"{stem}.jpg", frame)
        if mask is not None:
            _write_image(shot_dir / "labels" / f"{stem}.jpg", _binary(mask))


# --- DUTS-style saliency sets ----------------------------------------------------------------------------


def write_saliency_pair(root: Path, set_name: str, stem: str, image: np.ndarray, mask: np.ndarray) -> None:
    """Write <set_name>/<set_name>-Image/<stem>.jpg and <set_name>-Mask/<stem>.png ({0,255})."""
    base = Path(root) / set_name
    write_jpeg(base / f"{set_name}-Image" / f"{stem}.jpg", image)
    write_png(base / f"{set_name}-Mask" / f"{stem}.png", _binary(mask))


# --- PASCAL VOC 2012 + SBD ---------------------------------------------------------------------------------


def voc_palette() -> list[int]:
    """The PASCAL VOC colour map (bit-interleaved), as a flat 768-entry PIL palette."""
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette += [r, g, b]
    return palette


def write_voc_image(
    root: Path,
    image_id: str,
    image: np.ndarray,
    label: np.ndarray | None = None,
    splits: Sequence[str] = (),
) -> None:
    """Write a VOC2012 JPEG, its palette SegmentationClass PNG (class indices) and split entries."""
    voc = Path(root) / "VOCdevkit" / "VOC2012"
    write_jpeg(voc / "JPEGImages" / f"{image_id}.jpg", image)
    if label is not None:
        png = Image.fromarray(np.asarray(label, dtype=np.uint8), mode="P")
        png.putpalette(voc_palette())
        with atomic_path(voc / "SegmentationClass" / f"{image_id}.png") as tmp:
            png.save(tmp, format="PNG")
    for split in splits:
        if split not in ("train", "val"):
            raise ValueError(f"VOC segmentation split must be 'train' or 'val', got {split!r}")
        _add_lines(voc / "ImageSets" / "Segmentation" / f"{split}.txt", [image_id])
        _add_lines(voc / "ImageSets" / "Segmentation" / "trainval.txt", [image_id])


def write_sbd_image(root: Path, image_id: str, image: np.ndarray, label: np.ndarray, split: str) -> None:
    """Write an SBD image, its cls/<id>.mat (GTcls.Segmentation = class indices) and split entry."""
    if split not in ("train", "val"):
        raise ValueError(f"SBD split must be 'train' or 'val', got {split!r}")
    dataset = Path(root) / "benchmark_RELEASE" / "dataset"
    write_jpeg(dataset / "img" / f"{image_id}.jpg", image)
    label = np.asarray(label, dtype=np.uint8)
    present = np.array([c for c in np.unique(label) if 1 <= c <= 20], dtype=np.uint8)
    with atomic_path(dataset / "cls" / f"{image_id}.mat") as tmp:
        with open(tmp, "wb") as handle:
            scipy.io.savemat(handle, {"GTcls": {"Segmentation": label, "CategoriesPresent": present}})
    _add_lines(dataset / f"{split}.txt", [image_id])


# --- ImageNet VID (ILSVRC2015) -----------------------------------------------------------------------------


def _vid_xml(folder: str, index: int, height: int, width: int, boxes: Sequence[Box]) -> str:
    """One frame's annotation XML as ILSVRC2015 writes it (inclusive pixel bounds)."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = f"{index:06d}"
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "ILSVRC_2015"
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(width)
    ET.SubElement(size, "height").text = str(height)
    for box in boxes:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "trackid").text = str(box.track_id)
        ET.SubElement(obj, "name").text = box.label
        bndbox = ET.SubElement(obj, "bndbox")
        for tag, value in (("xmax", box.x1 - 1), ("xmin", box.x0), ("ymax", box.y1 - 1), ("ymin", box.y0)):
            ET.SubElement(bndbox, tag).text = str(int(round(value)))
        ET.SubElement(obj, "occluded").text = str(int(box.occluded))
        ET.SubElement(obj, "generated").text = str(int(box.generated))
    ET.indent(root, space="\t")
    return ET.tostring(root, encoding="unicode") + "\n"


def write_vid_snippet(
    root: Path,
    chunk: str,
    snippet: str,
    frames: Sequence[np.ndarray],
    boxes_per_frame: Sequence[Sequence[Box]],
    split: str = "train",
) -> None:
    """Write one ImageNet VID snippet (JPEG frames + one XML per frame) and its ImageSets entries.

    Box labels must be VID synsets (`VID_CLASSES`); boxes are half-open, stored as inclusive bounds.
    """
    if split not in ("train", "val"):
        raise ValueError(f"ImageNet VID split must be 'train' or 'val', got {split!r}")
    if split == "train" and not chunk:
        raise ValueError(
            "ImageNet VID train snippets live in a chunk folder (e.g. ILSVRC2015_VID_train_0000)"
        )
    _check_lengths(f"ImageNet VID {snippet}", frames, boxes_per_frame)
    root = Path(root)
    relative = f"{chunk}/{snippet}" if split == "train" else snippet
    for index, (frame, boxes) in enumerate(zip(frames, boxes_per_frame, strict=True)):
        height, width = np.asarray(frame).shape[:2]
        write_jpeg(root / "Data" / "VID" / split / relative / f"{index:06d}.JPEG", frame)
        xml = _vid_xml(relative, index, height, width, boxes)
        write_text(root / "Annotations" / "VID" / split / relative / f"{index:06d}.xml", xml)
    sets = root / "ImageSets" / "VID"
    if split == "val":
        val_list = sets / "val.txt"
        first = len(val_list.read_text().splitlines()) + 1 if val_list.is_file() else 1
        _add_lines(val_list, [f"{snippet}/{i:06d} {first + i}" for i in range(len(frames))])
        return
    labels = {box.label for boxes in boxes_per_frame for box in boxes}
    unknown = sorted(labels - set(VID_CLASSES))
    if unknown:
        raise ValueError(f"ImageNet VID {snippet}: labels {unknown} are not VID synsets")
    for label in sorted(labels):
        _add_lines(sets / f"train_{VID_CLASSES.index(label) + 1}.txt", [f"{relative} 1"])
