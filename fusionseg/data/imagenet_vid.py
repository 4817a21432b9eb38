"""ImageNet VID (ILSVRC2015) reader: videos with per-frame boxes, track ids and flags, no masks.

Layout (root = the extracted `ILSVRC2015/` folder):
    Data/VID/train/<chunk>/<snippet>/%06d.JPEG        Data/VID/val/<snippet>/%06d.JPEG
    Annotations/VID/train/<chunk>/<snippet>/%06d.xml   Annotations/VID/val/<snippet>/%06d.xml
    ImageSets/VID/train_<k>.txt  ("<chunk>/<snippet> 1" per snippet holding class k; -1 = absent)
    ImageSets/VID/val.txt        ("<snippet>/%06d <index>" per frame)

Each XML holds the frame `size` and one `object` per box: `trackid` (the same object keeps its id
through the snippet), `name` (a WordNet synset, one of `VID_CLASSES`), `bndbox` (xmin, ymin, xmax,
ymax as inclusive pixel indices; `Box` is half-open, so x1 = xmax + 1), `occluded` and `generated`
(1 = the box was interpolated by the annotation tool rather than drawn by a person).
Snippets are listed from ImageSets when present, else from the folder tree; the boxes are parsed
from the (small) XML files, images are never decoded. 3,862 training snippets in full.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from tqdm import tqdm

from fusionseg.data._files import describe, list_by_stem, require_dir
from fusionseg.data.types import Box, Frame, Video
from fusionseg.io import DataError

SPLITS = ("train", "val")

# The 30 VID classes in the devkit's order (map_vid.txt: index 1..30), synset -> name.
VID_CLASS_NAMES = {
    "n02691156": "airplane",
    "n02419796": "antelope",
    "n02131653": "bear",
    "n02834778": "bicycle",
    "n01503061": "bird",
    "n02924116": "bus",
    "n02958343": "car",
    "n02402425": "cattle",
    "n02084071": "dog",
    "n02121808": "domestic_cat",
    "n02503517": "elephant",
    "n02118333": "fox",
    "n02510455": "giant_panda",
    "n02342885": "hamster",
    "n02374451": "horse",
    "n02129165": "lion",
    "n01674464": "lizard",
    "n02484322": "monkey",
    "n03790512": "motorcycle",
    "n02324045": "rabbit",
    "n02509815": "red_panda",
    "n02411705": "sheep",
    "n01726692": "snake",
    "n02355227": "squirrel",
    "n02129604": "tiger",
    "n04468005": "train",
    "n01662784": "turtle",
    "n04530566": "watercraft",
    "n02062744": "whale",
    "n02391049": "zebra",
}
VID_CLASSES = tuple(VID_CLASS_NAMES)


def _text(element: ET.Element, tag: str, path: Path) -> str:
    child = element.find(tag)
    if child is None or child.text is None:
        raise DataError(f"{path}: <{element.tag}> has no <{tag}>")
    return child.text.strip()


def parse_vid_xml(path: Path) -> tuple[tuple[int, int], tuple[Box, ...]]:
    """((height, width), boxes) of one frame's annotation file."""
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as exc:
        raise DataError(f"{path}: not a readable ImageNet VID annotation ({exc})") from exc
    root = tree.getroot()
    size = root.find("size")
    if size is None:
        raise DataError(f"{path}: no <size> element")
    try:
        shape = (int(_text(size, "height", path)), int(_text(size, "width", path)))
        boxes = tuple(_parse_object(obj, path) for obj in root.findall("object"))
    except ValueError as exc:
        raise DataError(f"{path}: bad number in annotation ({exc})") from exc
    return shape, boxes


def _parse_object(obj: ET.Element, path: Path) -> Box:
    bndbox = obj.find("bndbox")
    if bndbox is None:
        raise DataError(f"{path}: <object> has no <bndbox>")
    coords = {tag: float(_text(bndbox, tag, path)) for tag in ("xmin", "ymin", "xmax", "ymax")}
    flag = {tag: (obj.findtext(tag) or "0").strip() == "1" for tag in ("occluded", "generated")}
    return Box(
        x0=coords["xmin"],
        y0=coords["ymin"],
        x1=coords["xmax"] + 1,
        y1=coords["ymax"] + 1,
        track_id=int(_text(obj, "trackid", path)),
        label=_text(obj, "name", path),
        occluded=flag["occluded"],
        generated=flag["generated"],
    )


def list_snippets(root: Path, split: str = "train") -> list[str]:
    """Snippet paths relative to Data/VID/<split> ("<chunk>/<snippet>" for train, "<snippet>" for val)."""
    if split not in SPLITS:
        raise DataError(f"ImageNet VID has splits {SPLITS}, not {split!r}")
    sets = Path(root) / "ImageSets" / "VID"
    if split == "train":
        files = sorted(sets.glob("train_*.txt")) if sets.is_dir() else []
        lines = [line.split() for f in files for line in f.read_text().splitlines() if line.strip()]
        snippets = {parts[0] for parts in lines if len(parts) < 2 or parts[1] != "-1"}
    else:
        val = sets / "val.txt"
        lines = (
            [line.split() for line in val.read_text().splitlines() if line.strip()] if val.is_file() else []
        )
        snippets = {parts[0].rsplit("/", 1)[0] for parts in lines}
    if snippets:
        return sorted(snippets)
    data = require_dir(Path(root) / "Data" / "VID" / split, f"ImageNet VID {split} frames")
    pattern = "*/*" if split == "train" else "*"  # train snippets sit in chunk folders
    return sorted(str(p.relative_to(data)) for p in data.glob(pattern) if p.is_dir())


def load_snippet(root: Path, split: str, snippet: str) -> Video:
    """One snippet as a Video: frames in order, each with its parsed boxes."""
    root = Path(root)
    images = list_by_stem(root / "Data" / "VID" / split / snippet, (".jpeg", ".jpg"), "JPEG frames")
    if not images:
        raise DataError(f"{root / 'Data' / 'VID' / split / snippet}: no frames")
    xml_dir = root / "Annotations" / "VID" / split / snippet
    xmls = list_by_stem(xml_dir, (".xml",), "annotation files")
    missing = [images[s] for s in images if s not in xmls]
    if missing:
        raise DataError(f"{xml_dir}: {len(missing)} frame(s) without an annotation XML:{describe(missing)}")
    frames = [Frame(image_path=images[s], boxes=parse_vid_xml(xmls[s])[1]) for s in sorted(images)]
    labels = sorted({box.label for frame in frames for box in frame.boxes})
    return Video(name=Path(snippet).name, frames=frames, category=",".join(labels), dataset="imagenet_vid")


def load_vid_videos(root: Path, split: str | None = None, snippets: list[str] | None = None) -> list[Video]:
    """Every snippet of `split` (default "train"), or just `snippets`; category = its synsets, comma-joined."""
    split = split or "train"
    names = snippets if snippets is not None else list_snippets(root, split)
    return [
        load_snippet(root, split, s)
        for s in tqdm(names, desc=f"ImageNet VID {split}", disable=len(names) < 50)
    ]
