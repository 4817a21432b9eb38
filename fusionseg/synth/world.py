"""The synthetic world: the default profile's data, generated offline from a seed.

`generate(config, seed, out)` (or `fusionseg synth --profile mini --seed 0 --out DIR`) writes, in
the official on-disk layouts (through `fusionseg.data.layouts`, so the ordinary readers load them):

| dataset | folder under `out` | role | reader |
|---|---|---|---|
| DUTS-like image set | `DUTS/DUTS-TR`, `DUTS/DUTS-TE` | appearance training / test | `load_image_set("duts", out/"DUTS")` |
| ImageNet VID-like videos with boxes | `ILSVRC2015/` | weak labels for pseudo-labels | `load_videos("imagenet_vid", out/"ILSVRC2015")` |
| DAVIS 2016-like benchmark | `DAVIS/` (train / val) | motion + fusion training, evaluation | `load_videos("davis", out/"DAVIS")` |
| YouTube-Objects-like benchmark | `youtube_masks/` (10 real category names) | evaluation, static vs moving | `load_videos("youtube_objects", out/"youtube_masks")` |
| SegTrack-v2-like benchmark | `SegTrackv2/` (low resolution, several objects) | evaluation | `load_videos("segtrack", out/"SegTrackv2")` |

Objects are shape x texture categories (`fusionseg.synth.content`); the pairs in `UNSEEN_CATEGORIES` never
appear in the training sets (DUTS-TR, VID, DAVIS train) and make up part of every test set. Clips
mix camera pan and zoom, objects that stand still, occluders, background that moves without being an
object (water, swaying foliage), motion blur and sensor noise. `out/manifest.json` records the
config, the seed, the category lists and every clip's properties (camera motion, static objects,
...); `SynthManifest.record(dataset, video.name)` finds a loaded video's record. The VID-like set
also gets its true per-object masks in `ILSVRC2015/Masks/VID/<split>/...` (PNG, value = track id + 1;
not part of the official layout; `load_vid_with_masks` attaches them) for the pseudo-label quality check.

The same seed and config give byte-identical files: every random draw comes from a generator seeded
by (seed, dataset, item index), and the writers' PNG/JPEG encoders are deterministic. (Byte identity
holds for one machine and library set; another CPU or OpenCV/NumPy build may round differently.)
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from fusionseg.data import layouts, load_videos
from fusionseg.data.imagenet_vid import VID_CLASSES
from fusionseg.data.types import Video
from fusionseg.io import DataError, write_json, write_png
from fusionseg.synth import content, scenes

# The manifest's identity: the module's name when the format was fixed (fusionseg.data.synthetic); kept
# so that worlds already generated, and the cache keys derived from their manifests, stay valid.
GENERATOR = "fusionseg.data.synthetic"
GENERATOR_VERSION = 1  # bump whenever a change alters the generated files

DATASET_FOLDERS = {
    "duts": "DUTS",
    "imagenet_vid": "ILSVRC2015",
    "davis": "DAVIS",
    "youtube_objects": "youtube_masks",
    "segtrack": "SegTrackv2",
}
_DATASET_CODES = {
    "duts_train": 1,
    "duts_test": 2,
    "imagenet_vid": 3,
    "davis_train": 4,
    "davis_val": 5,
    "youtube_objects": 6,
    "segtrack": 7,
    "imagenet_vid_val": 8,
}

# The ten YouTube-Objects categories, each played by one synthetic category (half of them unseen).
YOUTUBE_OBJECTS_CATEGORIES: dict[str, tuple[str, str]] = {
    "aeroplane": ("star", "gradient"),
    "bird": ("crescent", "stripes"),
    "boat": ("squircle", "stripes"),
    "car": ("squircle", "checks"),
    "cat": ("quadruped", "stripes"),
    "cow": ("quadruped", "checks"),
    "dog": ("quadruped", "noise"),
    "horse": ("quadruped", "gradient"),
    "motorbike": ("ring", "dots"),
    "train": ("blob", "checks"),
}

# Each of the 30 shape x texture categories stands for one of the 30 ImageNet VID classes.
VID_SYNSETS: dict[str, str] = {
    content.category_name(*pair): synset
    for pair, synset in zip(content.ALL_CATEGORIES, VID_CLASSES, strict=True)
}


@dataclass(frozen=True)
class SynthConfig:
    """Sizes of the synthetic world. Frame sizes are (height, width)."""

    profile: str = "custom"
    image_size: tuple[int, int] = (128, 128)  # DUTS-like images (aspect varies around it)
    train_images: int = 600
    test_images: int = 100
    vid_videos: int = 40
    vid_val_videos: int = 4
    vid_frames: int = 12
    vid_size: tuple[int, int] = (96, 160)
    davis_train: int = 8
    davis_val: int = 6
    davis_frames: int = 16
    davis_size: tuple[int, int] = (96, 160)
    yto_shots_per_category: int = 2
    yto_frames: int = 16
    yto_annotation_step: int = 4  # YouTube-Objects annotates sparsely: every k-th frame
    yto_size: tuple[int, int] = (96, 160)
    segtrack_sequences: int = 6
    segtrack_frames: int = 12
    segtrack_size: tuple[int, int] = (72, 112)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (tuples as lists), as stored in the manifest."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class Recipe:
    """How a dataset's scenes are drawn: object count and size, camera, and how often each effect occurs."""

    objects: tuple[int, ...] = (1,)  # object counts, cycled through the items
    size: tuple[float, float] = (0.4, 0.6)  # object size as a fraction of sqrt(frame area)
    cameras: tuple[str, ...] = scenes.CAMERA_MOTIONS  # camera motions, cycled through the items
    static: float = 0.0  # fraction of clips whose objects stand still
    occluder: float = 0.0
    distractor: float = 0.0
    blur: float = 0.0
    unseen: float = 0.0  # fraction of objects drawn from the unseen categories
    noise: tuple[float, float] = (0.0, 4.0)


RECIPES: dict[str, Recipe] = {
    "duts_train": Recipe(
        objects=(1, 1, 1, 2), size=(0.45, 0.8), cameras=("static",), occluder=0.1, noise=(0, 3)
    ),
    "duts_test": Recipe(
        objects=(1, 1, 1, 2), size=(0.45, 0.8), cameras=("static",), occluder=0.1, unseen=0.5, noise=(0, 3)
    ),
    "imagenet_vid": Recipe(
        objects=(1, 1, 2), size=(0.35, 0.6), static=0.2, occluder=0.25, distractor=0.3, blur=0.25
    ),
    "davis_train": Recipe(
        size=(0.5, 0.75),
        cameras=("pan", "pan_zoom", "static", "zoom"),
        occluder=0.3,
        distractor=0.35,
        blur=0.3,
    ),
    "davis_val": Recipe(
        size=(0.5, 0.75),
        cameras=("pan_zoom", "static", "pan", "zoom"),
        occluder=0.3,
        distractor=0.35,
        blur=0.3,
        unseen=0.5,
    ),
    "youtube_objects": Recipe(
        size=(0.4, 0.65),
        cameras=("static", "pan", "zoom", "pan_zoom", "pan"),
        static=0.4,
        occluder=0.2,
        distractor=0.3,
        blur=0.25,
    ),
    "segtrack": Recipe(
        objects=(2, 1, 3, 2),
        size=(0.3, 0.45),
        cameras=("static", "pan", "pan_zoom"),
        static=0.15,
        occluder=0.2,
        distractor=0.3,
        blur=0.2,
        unseen=0.4,
        noise=(1, 5),
    ),
}

_SALTS = {"static": 0.11, "occluder": 0.37, "distractor": 0.59, "blur": 0.83}


def _stratified(index: int, fraction: float, what: str) -> bool:
    """True for about `fraction` of the indices, spread evenly (a golden-ratio sequence), so that even a
    tiny profile gets its share of static clips, occluders, ... without relying on luck."""
    return ((index + 0.5) * 0.6180339887 + _SALTS[what]) % 1.0 < fraction


def _rng(seed: int, dataset: str, index: int) -> np.random.Generator:
    """The generator for one item: independent of every other item and of the profile's sizes."""
    return np.random.default_rng([seed, _DATASET_CODES[dataset], index])


def _pick_category(rng: np.random.Generator, unseen_fraction: float) -> tuple[str, str]:
    pool = content.UNSEEN_CATEGORIES if rng.random() < unseen_fraction else content.SEEN_CATEGORIES
    return pool[int(rng.integers(len(pool)))]


def build_scene(
    rng: np.random.Generator,
    recipe_name: str,
    index: int,
    n_frames: int,
    size: tuple[int, int],
    categories: list[tuple[str, str]] | None = None,
) -> scenes.Scene:
    """Scene number `index` of a dataset's recipe; `categories` (shape, texture pairs) overrides the draw.

    Camera motions and object counts cycle with the index and the effects are stratified over it,
    so that every profile, however small, gets each kind of clip."""
    recipe = RECIPES[recipe_name]
    height, width = size
    camera = recipe.cameras[index % len(recipe.cameras)] if n_frames > 1 else "static"
    # decided per cycle of camera motions, so that every camera motion meets both static and moving objects
    static = _stratified(index // len(recipe.cameras), recipe.static, "static")
    if categories is None:
        count = recipe.objects[index % len(recipe.objects)]
        categories = [_pick_category(rng, recipe.unseen) for _ in range(count)]
    kind = content.BACKGROUNDS[int(rng.integers(len(content.BACKGROUNDS)))]
    world = scenes.world_background(rng, kind, height, width)
    cameras = scenes.camera_path(rng, camera, n_frames, height, width)
    scale = np.sqrt(height * width)
    objects = [
        scenes.make_object(
            rng,
            track,
            shape,
            texture,
            cameras,
            height,
            width,
            rng.uniform(*recipe.size) * scale,
            moving=not static and n_frames > 1,
        )
        for track, (shape, texture) in enumerate(categories)
    ]
    scene = scenes.Scene(
        height, width, n_frames, world, cameras, objects, camera_motion=camera, background=kind
    )
    if _stratified(index, recipe.occluder, "occluder"):
        scene.occluder = scenes.make_occluder(rng, objects[0], n_frames, height, width)
    if n_frames > 1 and _stratified(index, recipe.distractor, "distractor"):
        scene.distractor = scenes.make_distractor(rng, scenes.DISTRACTORS[index % 2], world)
    scene.blur = n_frames > 1 and _stratified(index, recipe.blur, "blur")
    scene.noise = float(rng.uniform(*recipe.noise))
    scene.noise_seed = int(rng.integers(2**31))
    return scene


def _render_all(scene: scenes.Scene, labels: dict[int, str] | None = None) -> list[scenes.RenderedFrame]:
    return list(scenes.render(scene, labels))


def _union(frame: scenes.RenderedFrame) -> np.ndarray:
    """The frame's foreground: every object's visible mask merged."""
    return np.logical_or.reduce(frame.masks) if frame.masks else np.zeros(frame.image.shape[:2], bool)


def _davis_attributes(scene: scenes.Scene) -> list[str]:
    """DAVIS 2016 attribute codes that the scene has (CS camera shake, SV scale variation, ...)."""
    codes = {
        "CS": scene.camera_motion != "static",
        "SV": "zoom" in scene.camera_motion,
        "OCC": scene.occluder is not None,
        "DB": scene.distractor is not None,
        "MB": scene.blur,
        "BC": scene.background in ("clutter", "photo"),
        "DEF": any(o.wobble > 0.03 for o in scene.objects),
    }
    return sorted(code for code, present in codes.items() if present)


# ----------------------------------------------------------------------------------------------
# One writer per dataset: build scenes, render them, hand the arrays to fusionseg.data.layouts


def _image_size(rng: np.random.Generator, base: tuple[int, int]) -> tuple[int, int]:
    """DUTS images vary in aspect: square, landscape or portrait around `base`, multiples of 8."""
    aspect = [(1.0, 1.0), (0.75, 1.0), (1.0, 0.75)][int(rng.integers(3))]
    return tuple(max(8 * round(b * a / 8), 16) for b, a in zip(base, aspect, strict=True))


def write_image_sets(config: SynthConfig, seed: int, out: Path) -> list[dict]:
    """DUTS-TR (seen categories only) and DUTS-TE (half unseen): one still image + mask per item."""
    records = []
    for split, set_name, count in (
        ("train", "DUTS-TR", config.train_images),
        ("test", "DUTS-TE", config.test_images),
    ):
        recipe = f"duts_{split}"
        for index in tqdm(range(count), desc=f"synth {set_name}", leave=False):
            rng = _rng(seed, recipe, index)
            scene = build_scene(rng, recipe, index, 1, _image_size(rng, config.image_size))
            (frame,) = _render_all(scene)
            stem = f"synth_{split}_{index:05d}"
            layouts.write_saliency_pair(
                out / DATASET_FOLDERS["duts"], set_name, stem, frame.image, _union(frame)
            )
            records.append({"dataset": "duts", "split": split, "name": stem} | scene.describe())
    return records


def write_vid(config: SynthConfig, seed: int, out: Path) -> list[dict]:
    """ImageNet VID-like snippets (seen categories only) with per-frame boxes, track ids and true masks.

    Train snippets live in chunk folders, val snippets directly under val/ (as in the release).
    """
    root = out / DATASET_FOLDERS["imagenet_vid"]
    records = []
    for split, count in (("train", config.vid_videos), ("val", config.vid_val_videos)):
        code = "imagenet_vid" if split == "train" else "imagenet_vid_val"
        for index in tqdm(range(count), desc=f"synth ImageNet VID {split}", leave=False):
            scene = build_scene(
                _rng(seed, code, index), "imagenet_vid", index, config.vid_frames, config.vid_size
            )
            frames = _render_all(scene, {o.track_id: VID_SYNSETS[o.category] for o in scene.objects})
            chunk = f"ILSVRC2015_VID_train_{index // 1000:04d}" if split == "train" else ""
            snippet = f"ILSVRC2015_{split}_{index:08d}"
            boxes = [[b for b in f.boxes if b is not None] for f in frames]
            layouts.write_vid_snippet(root, chunk, snippet, [f.image for f in frames], boxes, split)
            relative = f"{chunk}/{snippet}" if chunk else snippet
            for t, frame in enumerate(frames):
                instances = np.zeros(frame.image.shape[:2], np.uint8)
                for obj, mask in zip(scene.objects, frame.masks, strict=True):
                    instances[mask] = obj.track_id + 1
                write_png(root / "Masks" / "VID" / split / relative / f"{t:06d}.png", instances)
            record = {"dataset": "imagenet_vid", "split": split, "name": snippet, "path": relative}
            records.append(record | scene.describe())
    return records


def write_davis(config: SynthConfig, seed: int, out: Path) -> list[dict]:
    """DAVIS 2016-like sequences: one prominent moving object, every frame annotated, train/val split."""
    records = []
    for split, count in (("train", config.davis_train), ("val", config.davis_val)):
        recipe = f"davis_{split}"
        for index in tqdm(range(count), desc=f"synth DAVIS {split}", leave=False):
            scene = build_scene(
                _rng(seed, recipe, index), recipe, index, config.davis_frames, config.davis_size
            )
            frames = _render_all(scene)
            category = scene.objects[0].category
            name = f"{split}{index:02d}-{category}"
            layouts.write_davis_sequence(
                out / DATASET_FOLDERS["davis"],
                name,
                [f.image for f in frames],
                [_union(f) for f in frames],
                split,
                category=category,
                attributes=_davis_attributes(scene),
            )
            records.append(
                {"dataset": "davis", "split": split, "name": name, "category": category} | scene.describe()
            )
    return records


def write_youtube_objects(config: SynthConfig, seed: int, out: Path) -> list[dict]:
    """YouTube-Objects-like shots: 10 categories, static and moving objects, sparse annotations."""
    records = []
    shots = [(c, k) for c in YOUTUBE_OBJECTS_CATEGORIES for k in range(1, config.yto_shots_per_category + 1)]
    for index, (category, video_id) in enumerate(tqdm(shots, desc="synth YouTube-Objects", leave=False)):
        pair = YOUTUBE_OBJECTS_CATEGORIES[category]
        scene = build_scene(
            _rng(seed, "youtube_objects", index),
            "youtube_objects",
            index,
            config.yto_frames,
            config.yto_size,
            categories=[pair],
        )
        frames = _render_all(scene)
        annotated = list(range(0, config.yto_frames, config.yto_annotation_step))
        masks = [_union(f) if t in annotated else None for t, f in enumerate(frames)]
        layouts.write_youtube_objects_shot(out, category, video_id, [f.image for f in frames], masks)
        name = f"{category}-{video_id:04d}-001"  # the reader's Video.name
        records.append(
            {
                "dataset": "youtube_objects",
                "split": "all",
                "name": name,
                "category": category,
                "annotated_frames": annotated,
            }
            | scene.describe()
        )
    return records


def write_segtrack(config: SynthConfig, seed: int, out: Path) -> list[dict]:
    """SegTrack-v2-like sequences: low resolution, several objects stored as separate ground truths.

    The real set's file quirks are reproduced on some sequences (.bmp frames, 3-channel GT).
    """
    records = []
    for index in tqdm(range(config.segtrack_sequences), desc="synth SegTrack-v2", leave=False):
        scene = build_scene(
            _rng(seed, "segtrack", index), "segtrack", index, config.segtrack_frames, config.segtrack_size
        )
        frames = _render_all(scene)
        name = f"synth{index:02d}"
        object_masks = [[f.masks[k] for f in frames] for k in range(len(scene.objects))]
        layouts.write_segtrack_sequence(
            out / DATASET_FOLDERS["segtrack"],
            name,
            [f.image for f in frames],
            object_masks,
            frame_ext=".bmp" if index % 3 == 1 else ".png",
            gt_channels=3 if index % 2 == 1 else 1,
        )
        records.append({"dataset": "segtrack", "split": "all", "name": name} | scene.describe())
    return records


# ----------------------------------------------------------------------------------------------
# Manifest and the public entry point


@dataclass
class SynthManifest:
    """What `generate` wrote: config, seed, categories and one record per image / clip."""

    root: Path
    seed: int
    config: dict[str, Any]
    version: int = GENERATOR_VERSION
    complete: bool = True
    categories: dict[str, Any] = field(default_factory=dict)
    items: list[dict] = field(default_factory=list)

    def dataset_root(self, dataset: str) -> Path:
        """The folder to pass to `load_videos` / `load_image_set` for `dataset`."""
        if dataset not in DATASET_FOLDERS:
            raise DataError(
                f"the synthetic world has no dataset {dataset!r}; expected one of {sorted(DATASET_FOLDERS)}"
            )
        return self.root / DATASET_FOLDERS[dataset]

    def records(self, dataset: str, **where: Any) -> list[dict]:
        """The item records of `dataset` whose fields equal `where` (e.g. camera_motion="pan")."""
        return [
            r for r in self.items if r["dataset"] == dataset and all(r.get(k) == v for k, v in where.items())
        ]

    def record(self, dataset: str, name: str) -> dict:
        """The record of one item, by the name its reader gives it (`Video.name`, `ImagePair.name`)."""
        found = [r for r in self.items if r["dataset"] == dataset and r["name"] == name]
        if len(found) != 1:
            raise KeyError(f"{dataset}/{name}: {len(found)} records in the synthetic world's manifest")
        return found[0]

    @property
    def unseen_categories(self) -> list[str]:
        return list(self.categories.get("unseen", []))

    def to_json(self) -> dict[str, Any]:
        """The manifest file's content (no absolute paths, no timings: it is part of the hashed output)."""
        return {
            "generator": GENERATOR,
            "version": self.version,
            "seed": self.seed,
            "config": self.config,
            "complete": self.complete,
            "dataset_folders": DATASET_FOLDERS,
            "categories": self.categories,
            "items": self.items,
        }

    @classmethod
    def load(cls, root: Path) -> SynthManifest:
        """Read `root/manifest.json` (DataError if it is missing or not a synthetic-world manifest)."""
        path = Path(root) / "manifest.json"
        if not path.is_file():
            raise DataError(f"{path}: file not found (expected the manifest of a synthetic world)")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc})") from exc
        if data.get("generator") != GENERATOR:
            raise DataError(f"{path}: not written by {GENERATOR} (generator = {data.get('generator')!r})")
        return cls(
            Path(root),
            data["seed"],
            data["config"],
            data["version"],
            data["complete"],
            data["categories"],
            data["items"],
        )


def _categories_info() -> dict[str, Any]:
    return {
        "shapes": list(content.SHAPES),
        "textures": list(content.TEXTURES),
        "seen": [content.category_name(*c) for c in content.SEEN_CATEGORIES],
        "unseen": [content.category_name(*c) for c in content.UNSEEN_CATEGORIES],
        "youtube_objects": {k: content.category_name(*v) for k, v in YOUTUBE_OBJECTS_CATEGORIES.items()},
        "vid_synsets": VID_SYNSETS,
    }


def _existing(out: Path, config: SynthConfig, seed: int) -> SynthManifest | None:
    """The manifest already in `out` if it is complete and matches config, seed and version."""
    try:
        manifest = SynthManifest.load(out)
    except DataError:
        return None
    same = manifest.complete and manifest.version == GENERATOR_VERSION and manifest.seed == seed
    return manifest if same and manifest.config == config.as_dict() else None


def _clear(out: Path) -> None:
    """Empty `out` of a previous world; refuse to touch a folder that holds anything else."""
    if not out.exists():
        return
    if any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise DataError(
            f"{out}: exists, is not empty and has no manifest.json: not a synthetic world, refusing to overwrite"
        )
    if (out / "manifest.json").is_file():
        SynthManifest.load(out)  # raises unless it is ours
    for name in [*DATASET_FOLDERS.values(), "manifest.json"]:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def generate(config: SynthConfig, seed: int, out: Path, force: bool = False) -> SynthManifest:
    """Write the synthetic world of `config` (a profile's `world`) and `seed` into `out`, or reuse it.

    Reuse needs `out/manifest.json` to name the same config, seed and generator version; otherwise
    the previous world in `out` is removed and generated again (`force` regenerates regardless).
    """
    out = Path(out)
    if not force and (manifest := _existing(out, config, seed)) is not None:
        return manifest
    _clear(out)
    manifest = SynthManifest(out, seed, config.as_dict(), complete=False, categories=_categories_info())
    write_json(out / "manifest.json", manifest.to_json())  # marks the folder as ours while writing
    for writer in (write_image_sets, write_vid, write_davis, write_youtube_objects, write_segtrack):
        manifest.items.extend(writer(config, seed, out))
    manifest.complete = True
    write_json(out / "manifest.json", manifest.to_json())
    return manifest


def load_vid_with_masks(manifest: SynthManifest, split: str = "train") -> list[Video]:
    """The VID-like videos (boxes as usual) with their true masks attached: `video.mask(i)` is the union
    of the objects' visible masks. The pseudo-label quality check compares against these."""
    root = manifest.dataset_root("imagenet_vid")
    videos = load_videos("imagenet_vid", root, split)
    for video in videos:
        video.frames = [
            dataclasses.replace(
                f, mask_paths=(root / "Masks" / f.image_path.relative_to(root / "Data").with_suffix(".png"),)
            )
            for f in video.frames
        ]
    return videos


def summarize(manifest: SynthManifest) -> dict[str, dict[str, int]]:
    """Per dataset: number of items and of frames (an image counts as one frame)."""
    summary: dict[str, dict[str, int]] = {}
    for record in manifest.items:
        entry = summary.setdefault(record["dataset"], {"items": 0, "frames": 0})
        entry["items"] += 1
        entry["frames"] += record["n_frames"]
    return summary
