"""The four run profiles: one parameter that sets the data, the model, the budget and every knob of a run.

| profile     | data                          | backbone  | runs on          | purpose                          |
|-------------|-------------------------------|-----------|------------------|----------------------------------|
| `smoke`     | synthetic world, tiny         | lite0     | CPU, minutes     | CI: every notebook executes      |
| `mini`      | synthetic world               | lite0     | 2-core CPU, 25 m | the README's default book        |
| `real-lite` | DAVIS 2016 + DUTS             | lite0     | CPU h / GPU min  | the real reproduction we can run |
| `paper`     | VOC+SBD, ImageNet VID, ...    | resnet101 | GPU              | the paper's full recipe          |

A profile is a frozen dataclass and the one place for each knob of a run: which dataset plays which
role (`plan`), the synthetic world's size (`world`), the training budget, the pseudo-label filters
(`pseudo_labels`), the fusion's learning rates, the extra tables of the real-data run. The pipeline
(`fusionseg.pipeline`) reads nothing else.

`resolve(name, overrides)` returns a preset with some fields changed (what a student does for an
ablation). A nested setting is reached with a dotted key or a dict::

    resolve("mini", {"pseudo_labels.flow_threshold": 20})
    resolve("mini", {"pseudo_labels": {"flow_threshold": 20}})   # the same profile

Overrides that change what is computed also change the profile's `label`
("mini+pseudo_labels.flow_threshold=20"), which names its folders in `runs/` and `results/`, so that an
ablation never overwrites the profile's own numbers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusionseg.data.types import Video
from fusionseg.io import REPO_ROOT, DataError, runs_root
from fusionseg.io import data_root as env_data_root
from fusionseg.pseudo_labels import PseudoLabelConfig
from fusionseg.synth.world import SynthConfig

# Overrides of these fields say where data is or where the code runs, not what is computed:
# they do not change a profile's label (the data fingerprint in the provenance records the data).
LABEL_NEUTRAL_FIELDS = frozenset({"data_root", "device"})


@dataclass(frozen=True)
class Plan:
    """Which dataset (and split) plays each role in a run."""

    appearance: tuple[str, str]  # still images for the appearance stream
    appearance_test: tuple[str, str] | None  # its held-out test set (IoU reported)
    weak: tuple[str, str]  # boxed videos for the pseudo-labels ("davis": boxes from masks)
    fusion: tuple[str, str]  # held-out annotated videos for the fusion layers
    benchmarks: tuple[tuple[str, str | None], ...]  # evaluated (dataset, split)
    moving_static: str  # the benchmark whose frames Table 4 ranks by motion

    def datasets(self) -> list[str]:
        """Every dataset the plan reads, each once, in role order."""
        names = [self.appearance[0], self.weak[0], self.fusion[0], *(d for d, _ in self.benchmarks)]
        return list(dict.fromkeys(names))


SYNTHETIC_PLAN = Plan(
    appearance=("duts", "train"),
    appearance_test=("duts", "test"),
    weak=("imagenet_vid", "train"),
    fusion=("davis", "train"),
    benchmarks=(("davis", "val"), ("youtube_objects", None), ("segtrack", None)),
    moving_static="youtube_objects",
)

# The flow baselines' variant table of the real-data run: (flow method, DAVIS split, baselines).
# Flow-Th with DIS on all 50 sequences (the paper's Table 1 set; the val rows are its val subset),
# the rest on val; each baseline plain and with camera-motion removal.
REAL_FLOW_BASELINES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("dis", "trainval", ("flow-th",)),
    ("dis", "val", ("flow-sal",)),
    ("deepflow", "val", ("flow-th", "flow-sal")),
)


@dataclass(frozen=True)
class Profile:
    """Everything the pipeline and the notebooks need to know about a run."""

    name: str
    description: str
    data: str  # "synthetic" (generated on the fly) or "real" (read from FUSIONSEG_DATA)
    plan: Plan  # which dataset plays which role
    iterations: int  # training iterations per stream (the paper: 20,000)
    fusion_iterations: int  # training iterations of the fusion layer
    crop_size: int  # square training crop, pixels
    batch_size: int
    backbone: str  # "lite0" (EfficientNet-Lite0) or "resnet101" (DeepLab-v2, the release's)
    output_stride: int
    device: str  # "cpu", "cuda" or "auto" (cuda when available)
    # the appearance stream's solver (fusionseg.train.stream.make_optimizer): "sgd" at 1e-3 is the
    # paper's; "adamw" is ours, for short budgets (chosen per profile by `fusionseg select-recipe`)
    optimizer: str = "sgd"
    lr: float = 1e-3
    # the appearance stream's decoder (fusionseg.models.decoder): "none" is the paper's network (the
    # release's head at output_stride); "skip4" refines it at stride 4 with the backbone's low-level features
    decoder: str = "none"
    motion_decoder: str = "none"  # the same choice for the motion stream
    motion_optimizer: str = "sgd"  # the motion stream's solver, a separate choice
    motion_lr: float = 1e-3
    # the motion stream's training iterations when they differ from the appearance stream's
    # (`iterations`, the paper's: both 20,000); None keeps them equal
    motion_iterations: int | None = None
    # what the motion stream starts from (fusionseg.pipeline.stream_init): "imagenet", the paper's
    # (the ImageNet backbone, a fresh head), or "appearance", ours (the trained appearance stream)
    motion_init: str = "imagenet"
    world: SynthConfig | None = None  # the synthetic world's size (synthetic data only)
    data_root: str | None = None  # None: the synthetic world's cache, or $FUSIONSEG_DATA for real data
    seed: int = 0
    flow_method: str = "dis"  # fusionseg.flow.compute_flow's method
    max_videos: int | None = None  # cap on videos per benchmark (None: all)
    pseudo_labels: PseudoLabelConfig = field(default_factory=PseudoLabelConfig)  # Sec. 3.2's filters
    quality_frames: int = 100  # the pseudo-label quality check: the paper's 100 random kept frames
    # Base learning rate of each fusion design (the paper gives none of its own; 1e-3 is its streams').
    # PaperFusion starts as identities; at 1e-3 its 24 parameters hardly move (mini and real-lite
    # choose 0.1 on held-out videos). ReleaseFusion starts at N(0, 0.01) and at 1e-3 learnt only its bias in 100
    # steps (all background on mini); 1e-2 moved it (train-frame IoU 0 -> 0.09 in 100 steps, 0.28 in 500).
    fusion_lr_paper: float = 1e-3
    fusion_lr_release: float = 1e-2
    # the fusion's weight decay (both designs; 5e-4 is the streams' solver's). The paper design's
    # inputs are two nearly collinear class logits, so some of its weights are barely determined by a
    # few videos; decay holds them near zero, and with them how far two runs' fusions drift apart
    fusion_weight_decay: float = 5e-4
    flow_baselines: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # the variant table (real DAVIS)
    flow_speed: bool = False  # time every flow method at 854x480 on a real DAVIS pair
    overrides: tuple[tuple[str, Any], ...] = ()  # what `resolve` changed, for the label

    def stream_iterations(self, stream: str) -> int:
        """Training iterations of `stream` ("appearance" or "motion")."""
        if stream == "motion" and self.motion_iterations is not None:
            return self.motion_iterations
        return self.iterations

    @property
    def label(self) -> str:
        """The name of this run's folders: the profile's name, plus the overrides that change results."""
        changed = [f"{key}={value}" for key, value in self.overrides if key not in LABEL_NEUTRAL_FIELDS]
        return self.name if not changed else self.name + "+" + ",".join(changed)

    @property
    def fusion_lr(self) -> dict[str, float]:
        """Base learning rate per fusion design."""
        return {"paper": self.fusion_lr_paper, "release": self.fusion_lr_release}

    def resolve_data_root(self) -> Path:
        """The folder this profile reads data from (the synthetic world's cache for synthetic data)."""
        if self.data_root is not None:
            return Path(self.data_root).expanduser()
        if self.data == "synthetic":
            return synthetic_cache_root() / self.world_folder_name()
        root = env_data_root(required=True)
        assert root is not None
        return root

    def world_folder_name(self) -> str:
        """The synthetic world's cache folder, `<name>-seed<seed>-<digest of the world's sizes>`: a run
        with other sizes (`-p world.davis_val=24`) gets a world of its own, instead of regenerating
        the profile's world in place under the profile's cached stages."""
        assert self.world is not None, f"profile {self.name}: synthetic data needs a world"
        sizes = json.dumps(self.world.as_dict(), sort_keys=True).encode()
        return f"{self.name}-seed{self.seed}-{hashlib.sha256(sizes).hexdigest()[:8]}"

    def dataset_folder(self, dataset: str) -> Path:
        """The folder to hand the reader of `dataset` (inside the synthetic world, or under the data root)."""
        root = self.resolve_data_root()
        if self.data == "synthetic":
            from fusionseg.synth.world import SynthManifest

            return SynthManifest.load(root).dataset_root(dataset)
        from fusionseg.data import DEFAULT_FOLDERS

        return root / DEFAULT_FOLDERS[dataset]

    def videos(self, dataset: str, split: str | None) -> list[Video]:
        """The videos of a dataset for this run, capped at `max_videos`."""
        from fusionseg.data import load_videos

        videos = load_videos(dataset, self.dataset_folder(dataset), split)
        return videos if self.max_videos is None else videos[: self.max_videos]

    def image_set(self, dataset: str, split: str) -> Any:
        """A still-image set of this run (e.g. DUTS-TR, VOC train_aug) as `fusionseg.data.load_image_set` reads it."""
        from fusionseg.data import load_image_set

        return load_image_set(dataset, self.dataset_folder(dataset), split)

    def work_dir(self) -> Path:
        """Where this run keeps what is not a result (weights, predicted masks): `runs/<label>/`
        (git-ignored; FUSIONSEG_RUNS moves it)."""
        return runs_root() / self.label

    def torch_device(self) -> str:
        """ "cuda" or "cpu": resolves "auto" by asking torch whether a GPU is there; asking for "cuda"
        where there is none fails at once, with what to do about it."""
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise DataError(
                f"profile {self.label} asks for device {self.device!r}, but torch sees no CUDA GPU here "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
                "run on a machine with a GPU, or pass -p device=cpu (slow for this profile)"
            )
        return self.device

    def as_dict(self) -> dict[str, Any]:
        """Plain fields (for provenance records and notebook display)."""
        fields = dataclasses.asdict(self)
        fields["overrides"] = dict(self.overrides)
        fields["label"] = self.label
        return fields


def synthetic_cache_root() -> Path:
    """Where the synthetic world is generated (git-ignored `.cache/synthetic`, or FUSIONSEG_CACHE)."""
    return Path(os.environ.get("FUSIONSEG_CACHE", REPO_ROOT / ".cache")) / "synthetic"


_LITE = dict(backbone="lite0", output_stride=16)

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="tiny synthetic world; checks that every notebook executes (CI)",
        data="synthetic",
        plan=SYNTHETIC_PLAN,
        world=SynthConfig(
            profile="smoke",
            image_size=(64, 64),
            train_images=24,
            test_images=8,
            vid_videos=4,
            vid_val_videos=1,
            vid_frames=6,
            vid_size=(48, 80),
            davis_train=2,
            davis_val=2,
            davis_frames=6,
            davis_size=(48, 80),
            yto_shots_per_category=1,
            yto_frames=6,
            yto_annotation_step=2,
            yto_size=(48, 80),
            segtrack_sequences=2,
            segtrack_frames=6,
            segtrack_size=(40, 64),
        ),
        iterations=20,
        fusion_iterations=10,
        crop_size=64,
        batch_size=4,
        device="cpu",
        **_LITE,
    ),
    "mini": Profile(
        name="mini",
        description="synthetic world generated on the fly; the whole book in about 15 minutes on 2 CPU cores",
        data="synthetic",
        plan=SYNTHETIC_PLAN,
        world=SynthConfig(profile="mini"),
        iterations=300,
        fusion_iterations=500,
        crop_size=128,
        batch_size=8,
        device="cpu",
        # the appearance stream's solver, chosen on 100 held-out synthetic training images
        # (`fusionseg select-recipe --profile mini --question solver`, 300 iterations): AdamW at 5e-4
        # scored IoU 0.625 against 0.386 for the paper's SGD at 1e-3. `-p optimizer=sgd -p lr=0.001`
        # is the paper's recipe
        optimizer="adamw",
        lr=5e-4,
        # the motion stream starts from the trained appearance stream, chosen on 6 held-out synthetic
        # weak videos (`select-recipe --stream motion --question init`, 300 iterations): J 46.7
        # against 36.1 from ImageNet weights (the paper's start, `-p motion_init=imagenet`)
        motion_init="appearance",
        # the paper fusion's learning rate, chosen on 4 held-out synthetic DAVIS-train videos
        # (`fusionseg select-recipe --stream fusion --heldout 4`, results/mini/recipe_selection_fusion.csv):
        # J 53.6 at 0.1 against 51.1 at 1e-3, rising with the rate; the release design keeps 1e-2,
        # its best there (54.5; 45.0 at 0.03)
        fusion_lr_paper=0.1,
        # the fusion's weight decay, for steadiness: at 0.1 the paper design's optimum moves far with a
        # small change in the streams. Chosen on training data: two CPU paths' fusions, trained on their
        # own runs' training logits, parted far less at 0.05 (an ad-hoc check, not kept). Measured
        # after the choice, by `fusionseg agreement` (results/mini+fusion_weight_decay=0.0005/ against
        # results/mini/): the paper fusion's SegTrack-like spread 12.8 at 5e-4, 2.9 at 0.05. Its cost on
        # the 4 held-out videos (results/mini/recipe_selection_fusion_weight_decay.csv): J 52.4
        # against 53.6 for the paper design, 54.4 against 54.5 for the release's
        fusion_weight_decay=0.05,
        **_LITE,
    ),
    "real-lite": Profile(
        name="real-lite",
        description="DAVIS 2016 + DUTS from FUSIONSEG_DATA with EfficientNet-Lite0; committed results",
        data="real",
        plan=Plan(
            appearance=("duts", "train"),
            appearance_test=("duts", "test"),
            weak=("davis", "train"),
            fusion=("davis", "train"),
            # SegTrack-v2: whatever part of it the data folder holds (4 of its 14 sequences here);
            # test data only, never trained on
            benchmarks=(("davis", "val"), ("segtrack", None)),
            moving_static="davis",
        ),
        # sized to fit the whole chain in under 2 hours on a 2-core CPU (each stream ~30 min at
        # about 1 s per batch of 8 at 192 px); on a GPU, raise iterations and crop_size
        iterations=2000,
        fusion_iterations=1000,
        crop_size=192,
        batch_size=8,
        device="auto",
        flow_baselines=REAL_FLOW_BASELINES,
        flow_speed=True,
        # chosen on 300 held-out DUTS-TR images, by the procedure `fusionseg select-recipe` runs (an
        # earlier script of it): after 400 iterations the decoder scored IoU 0.648, the head alone 0.634
        decoder="skip4",
        # the appearance stream's solver, chosen the same way (`select-recipe --question solver`, 400
        # iterations, 300 held-out DUTS-TR images): AdamW at 5e-4 scored IoU 0.741 against 0.664 for
        # the paper's SGD at 1e-3, at the same cost per step. The motion stream keeps the paper's SGD:
        # AdamW at 5e-4 collapsed mini's motion stream to background
        optimizer="adamw",
        lr=5e-4,
        # the motion stream keeps the paper's head. On 6 held-out DAVIS-train videos
        # (`fusionseg select-recipe --stream motion`, 400 iterations) the decoder scored J 26.9 against
        # 25.3 without it, a difference within the noise of so short a run; and at the full 2,000
        # iterations a motion stream with the decoder collapsed to background on its own training
        # frames (every prediction empty); without it, the stream is the paper's network
        motion_decoder="none",
        # the motion stream starts from the trained appearance stream (the paper starts it from
        # ImageNet weights, `-p motion_init=imagenet`). On 6 held-out DAVIS-train videos
        # (`fusionseg select-recipe --stream motion --question init`, 400 iterations,
        # results/real-lite/recipe_selection_motion_init.csv) it scored J 39.4 against 21.3
        motion_init="appearance",
        # the fusion's learning rates, chosen on 6 held-out DAVIS-train videos (`fusionseg select-recipe
        # --stream fusion`, results/real-lite/recipe_selection_fusion.csv, on this profile's streams):
        # the paper's design scored J 69.5 at 0.1 against 55.5 at 1e-3 (its 24 parameters hardly moved
        # there) and 63.8 at 1e-2; the release's 70.2 at 0.03 against 69.0 at 1e-2 (at 0.1 it diverged)
        fusion_lr_paper=0.1,
        fusion_lr_release=0.03,
        **_LITE,
    ),
    "paper": Profile(
        name="paper",
        description="the paper's recipe: VOC+SBD, ImageNet VID, ResNet-101 DeepLab-v2, 20,000 iterations",
        data="real",
        plan=Plan(
            appearance=("voc", "train_aug"),
            appearance_test=("voc", "val"),
            weak=("imagenet_vid", "train"),
            fusion=("davis", "train"),
            benchmarks=(("davis", "val"), ("youtube_objects", None), ("segtrack", None)),
            moving_static="youtube_objects",
        ),
        iterations=20000,
        fusion_iterations=20000,
        crop_size=321,
        batch_size=10,
        backbone="resnet101",
        output_stride=8,
        device="cuda",
    ),
}

DEFAULT_PROFILE = "mini"

# The parameters every notebook's papermill `parameters` cell declares (tests/test_book.py checks it):
# the profile's name, the most common overrides by name, and `overrides` for any other field.
NOTEBOOK_PARAMETERS = ("profile", "data_root", "iterations", "device", "seed", "overrides")

# Fields that name the run or are not a user's to change.
_FIXED_FIELDS = frozenset({"name", "description", "data", "overrides"})


def profile_names() -> list[str]:
    """The profiles, smallest first."""
    return list(PROFILES)


def add_profile_arguments(parser: Any) -> None:
    """`--profile NAME` and repeatable `-p KEY=VALUE` overrides (`args.param`), as the commands that
    run the chain take them."""
    parser.add_argument("--profile", choices=profile_names(), default=DEFAULT_PROFILE, help="run profile")
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a profile field, e.g. -p iterations=100 -p pseudo_labels.flow_threshold=20 (repeatable)",
    )


def overridable_fields() -> list[str]:
    """Fields a user may override (`fusionseg book -p KEY=VALUE`, a notebook's parameters cell); a
    nested setting's fields as `field.sub` (e.g. `pseudo_labels.flow_threshold`)."""
    names = []
    for top in dataclasses.fields(Profile):
        if top.name in _FIXED_FIELDS:
            continue
        names.append(top.name)
        nested = getattr(PROFILES[DEFAULT_PROFILE], top.name)
        if dataclasses.is_dataclass(nested):
            names += [f"{top.name}.{sub.name}" for sub in dataclasses.fields(nested)]
    return names


def get_profile(name: str) -> Profile:
    """The preset called `name`; a ValueError lists the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}: expected one of {', '.join(PROFILES)}") from None


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings (`-p` on the command line) to a dict; values are read as YAML (numbers,
    null, true, lists). Nested settings take dotted keys: `-p pseudo_labels.flow_threshold=20`."""
    import yaml

    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"-p {pair!r}: expected KEY=VALUE, e.g. -p iterations=100")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def flatten_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """{"pseudo_labels": {"flow_threshold": 20}} -> {"pseudo_labels.flow_threshold": 20}; None values
    (a notebook's "the profile's value") are dropped."""
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            flat |= {f"{key}.{sub}": inner for sub, inner in flatten_overrides(value).items()}
        elif value is not None:
            flat[key] = value
    return flat


def _current(base: Profile, key: str) -> Any:
    top, _, sub = key.partition(".")
    value = getattr(base, top)
    if sub and value is None:
        raise ValueError(f"profile {base.name} has no {top} settings, so {key!r} cannot be overridden")
    return getattr(value, sub) if sub else value


def _coerce(value: Any, current: Any) -> Any:
    """A tuple where the field holds one (JSON and papermill give lists)."""
    return tuple(value) if isinstance(current, tuple) and isinstance(value, list) else value


def _apply(base: Profile, changed: Mapping[str, Any]) -> Profile:
    top_level = {key: value for key, value in changed.items() if "." not in key}
    for key, value in changed.items():
        if "." in key:
            top, sub = key.split(".", 1)
            nested = top_level.get(top, getattr(base, top))
            top_level[top] = dataclasses.replace(nested, **{sub: value})
    return dataclasses.replace(base, overrides=tuple(sorted(changed.items())), **top_level)


def resolve(name: str, overrides: Mapping[str, Any] | None = None, **fields: Any) -> Profile:
    """The preset `name` with some fields changed; None values mean "the profile's value".

    `overrides` (a dict, e.g. from `fusionseg book -p KEY=VALUE` or a notebook's `overrides`) and keyword
    `fields` (a notebook's named parameters) are merged; giving one field two different values is an
    error. Nested settings take dotted keys or dicts (see the module's docstring).

    >>> resolve("mini", iterations=50).label
    'mini+iterations=50'
    >>> resolve("mini", {"pseudo_labels": {"flow_threshold": 20}}).pseudo_labels.flow_threshold
    20
    """
    base = get_profile(name)
    merged = flatten_overrides(dict(overrides or {}))
    for key, value in flatten_overrides(fields).items():
        if key in merged and merged[key] != value:
            raise ValueError(f"profile field {key!r} given twice: {merged[key]!r} and {value!r}")
        merged[key] = value
    allowed = overridable_fields()
    unknown = sorted(set(merged) - set(allowed))
    if unknown:
        raise ValueError(f"unknown profile field(s) {unknown}: expected some of {', '.join(allowed)}")
    merged = {key: _coerce(value, _current(base, key)) for key, value in merged.items()}
    changed = {key: value for key, value in merged.items() if value != _current(base, key)}
    if not changed:
        return base
    return _apply(base, changed)
