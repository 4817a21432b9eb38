"""The four run profiles of the project: one parameter that sets data, model size and budget.

| profile     | data                          | backbone  | runs on          | purpose                          |
|-------------|-------------------------------|-----------|------------------|----------------------------------|
| `smoke`     | synthetic world, tiny         | lite0     | CPU, minutes     | CI: every notebook executes      |
| `mini`      | synthetic world               | lite0     | 2-core CPU, 15 m | the README's default book        |
| `real-lite` | DAVIS 2016 + DUTS             | lite0     | CPU h / GPU min  | the real reproduction we can run |
| `paper`     | VOC+SBD, ImageNet VID, ...    | resnet101 | GPU              | the paper's full recipe          |

A profile is a frozen dataclass; `resolve(name, **overrides)` returns it with a few fields changed
(what a student does for an ablation). Overrides that change what is computed also change the
profile's `label`, which names its folders in `results/` and in the book's build, so that an
ablation never overwrites the profile's own numbers.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fusionseg.io import data_root as env_data_root

REPO_ROOT = Path(__file__).resolve().parents[1]

# Overrides of these fields say where data is or where the code runs, not what is computed:
# they do not change a profile's label (the data fingerprint in the provenance records the data).
LABEL_NEUTRAL_FIELDS = frozenset({"data_root", "device"})


@dataclass(frozen=True)
class Profile:
    """Everything a notebook or command needs to know about the size of a run."""

    name: str
    description: str
    data: str  # "synthetic" (generated on the fly) or "real" (read from FUSIONSEG_DATA)
    data_root: str | None  # None: the synthetic world's cache, or $FUSIONSEG_DATA for real data
    iterations: int  # training iterations per stream (the paper: 20,000)
    fusion_iterations: int  # training iterations of the fusion layer
    crop_size: int  # square training crop, pixels
    batch_size: int
    backbone: str  # "lite0" (EfficientNet-Lite0) or "resnet101" (DeepLab-v2, the release's)
    output_stride: int
    device: str  # "cpu", "cuda" or "auto" (cuda when available)
    seed: int
    flow_method: str  # fusionseg.flow.compute_flow's method
    max_videos: int | None  # cap on videos per benchmark (None: all)
    overrides: tuple[tuple[str, Any], ...] = ()  # what `resolve` changed, for the label

    @property
    def label(self) -> str:
        """The name of this run's folders: the profile's name, plus the overrides that change results."""
        changed = [f"{key}={value}" for key, value in self.overrides if key not in LABEL_NEUTRAL_FIELDS]
        return self.name if not changed else self.name + "+" + ",".join(changed)

    def resolve_data_root(self) -> Path:
        """The folder this profile reads data from (the synthetic world's cache for synthetic data)."""
        if self.data_root is not None:
            return Path(self.data_root).expanduser()
        if self.data == "synthetic":  # sizes: fusionseg.data.synthetic.PROFILES[self.name]
            return synthetic_cache_root() / f"{self.name}-seed{self.seed}"
        root = env_data_root(required=True)
        assert root is not None
        return root

    def work_dir(self) -> Path:
        """Where this run keeps what is not a result (weights, predicted masks): `runs/<label>/`
        (git-ignored; FUSIONSEG_RUNS moves it)."""
        return Path(os.environ.get("FUSIONSEG_RUNS", REPO_ROOT / "runs")) / self.label

    def torch_device(self) -> str:
        """ "cuda" or "cpu": resolves "auto" by asking torch whether a GPU is there."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def as_dict(self) -> dict[str, Any]:
        """Plain fields (for provenance records and notebook display)."""
        fields = dataclasses.asdict(self)
        fields["overrides"] = dict(self.overrides)
        fields["label"] = self.label
        return fields


def synthetic_cache_root() -> Path:
    """Where the synthetic world is generated (git-ignored `.cache/synthetic`, or FUSIONSEG_CACHE)."""
    return Path(os.environ.get("FUSIONSEG_CACHE", REPO_ROOT / ".cache")) / "synthetic"


_COMMON = dict(seed=0, flow_method="dis", data_root=None, max_videos=None)
_LITE = dict(backbone="lite0", output_stride=16, **_COMMON)

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="tiny synthetic world; checks that every notebook executes (CI)",
        data="synthetic",
        iterations=20,
        fusion_iterations=10,
        crop_size=64,
        batch_size=4,
        device="cpu",
        **_LITE,
    ),
    "mini": Profile(
        name="mini",
        description="synthetic world generated on the fly; the whole book in 15 minutes on 2 CPU cores",
        data="synthetic",
        iterations=300,
        fusion_iterations=500,
        crop_size=128,
        batch_size=8,
        device="cpu",
        **_LITE,
    ),
    "real-lite": Profile(
        name="real-lite",
        description="DAVIS 2016 + DUTS from FUSIONSEG_DATA with EfficientNet-Lite0; committed results",
        data="real",
        # sized to fit the whole chain in under 3 hours on a 2-core CPU (each stream ~25 min at
        # 0.75 s per batch of 8 at 192 px); on a GPU, raise iterations and crop_size
        iterations=2000,
        fusion_iterations=1000,
        crop_size=192,
        batch_size=8,
        device="auto",
        **_LITE,
    ),
    "paper": Profile(
        name="paper",
        description="the paper's recipe: VOC+SBD, ImageNet VID, ResNet-101 DeepLab-v2, 20,000 iterations",
        data="real",
        iterations=20000,
        fusion_iterations=20000,
        crop_size=321,
        batch_size=10,
        backbone="resnet101",
        output_stride=8,
        device="cuda",
        **_COMMON,
    ),
}

DEFAULT_PROFILE = "mini"

# The parameters every notebook's papermill `parameters` cell declares (tests/test_book.py checks it):
# the profile's name, the most common overrides by name, and `overrides` for any other field.
NOTEBOOK_PARAMETERS = ("profile", "data_root", "iterations", "device", "seed", "overrides")


def profile_names() -> list[str]:
    """The profiles, smallest first."""
    return list(PROFILES)


def overridable_fields() -> list[str]:
    """Fields a user may override (`fusionseg book -p KEY=VALUE`, a notebook's parameters cell)."""
    return [
        f.name
        for f in dataclasses.fields(Profile)
        if f.name not in {"name", "description", "data", "overrides"}
    ]


def get_profile(name: str) -> Profile:
    """The preset called `name`; a ValueError lists the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}: expected one of {', '.join(PROFILES)}") from None


def resolve(name: str, overrides: Mapping[str, Any] | None = None, **fields: Any) -> Profile:
    """The preset `name` with some fields changed; None values mean "the profile's value".

    `overrides` (a dict, e.g. from `fusionseg book -p KEY=VALUE`) and keyword `fields` (a notebook's
    named parameters) are merged; giving one field two different values is an error.

    >>> resolve("mini", iterations=50).label
    'mini+iterations=50'
    """
    base = get_profile(name)
    merged = {key: value for key, value in dict(overrides or {}).items() if value is not None}
    for key, value in fields.items():
        if value is None:
            continue
        if key in merged and merged[key] != value:
            raise ValueError(f"profile field {key!r} given twice: {merged[key]!r} and {value!r}")
        merged[key] = value
    allowed = overridable_fields()
    unknown = sorted(set(merged) - set(allowed))
    if unknown:
        raise ValueError(f"unknown profile field(s) {unknown}: expected some of {', '.join(allowed)}")
    changed = {key: value for key, value in merged.items() if value != getattr(base, key)}
    if not changed:
        return base
    return dataclasses.replace(base, overrides=tuple(sorted(changed.items())), **changed)
