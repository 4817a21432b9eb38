"""The paper's chain, end to end, as cached and resumable stages: `fusionseg reproduce`.

One place runs the whole of FusionSeg for a profile (`fusionseg.profiles`)::

    data -> flow -> appearance -> pseudo_labels -> motion -> fusion -> evaluate

| stage | what it does | depends on |
|---|---|---|
| `data` | synthetic world (smoke, mini: `synthetic.generate`) or a check of the real folders | - |
| `appearance` | appearance stream on the still images (synthetic DUTS-TR, DUTS-TR, VOC train_aug); IoU on their test set | data |
| `flow` | optical flow + flow images of every video the chain reads (`flow_cache(profile)`, shared by all labels on the same data) | data |
| `pseudo_labels` | Sec. 3.2 on boxed videos (VID-like; DAVIS train with boxes from masks for real-lite); funnel and quality | appearance, flow |
| `motion` | motion stream (ImageNet-initialised) on the pseudo-labelled flow images | pseudo_labels |
| `fusion` | PaperFusion and ReleaseFusion on the frozen streams' logits of the held-out videos (DAVIS train) | appearance, motion, flow |
| `evaluate` | Flow-Th, Flow-Sal, Ours-A, Ours-M, Ours-Joint (both designs) on every benchmark; Tables 1-4 | fusion, flow |

Each stage is a function of the profile (`data(profile)`, ..., `evaluate(profile)`) that returns a
`StageResult` (its folder and output paths), running or reusing what it depends on first.

**Caching.** A stage's outputs live in `profile.work_dir()/<stage>/` beside `stage.json`, whose `key`
hashes the stage's parameters, the keys of the stages it depends on and, for `data`, a fingerprint
of the input files. A stage whose stamp has the same key, says `complete` and whose outputs exist is
skipped ("cached"). A changed key empties the stage's folder and recomputes it, and so every stage
downstream (their keys contain it). `force` recomputes a stage and everything downstream. An
interrupted stage (stamp with the same key, not complete) resumes: training from its latest
checkpoint, pseudo-labels and evaluation from the videos already done.

**Results** go to `results/<profile label>/` (`fusionseg.results`; FUSIONSEG_RESULTS moves it), with a
provenance record per stage in `provenance/<stage>.json` (command, parameters, data fingerprint,
wall time, peak memory). Scores in `*_detail.csv`, `per_sequence_*.csv` and `per_frame_*.csv` are
fractions in [0, 1]; the four comparison tables use the book's ledger format (`paper_numbers`):
columns `method, column, value`, value in percent, so that `notebook.comparison` shows them beside
the paper's. Column names (stable; the book reads them):

| file | columns |
|---|---|
| `table1_davis.csv`, `table2_youtube_objects.csv`, `table3_segtrack.csv`, `table4_moving_static.csv` | method, column, value (percent; column = "Avg. IoU", a YouTube-Objects category, or "Top 10% moving" / "Top 10% static") |
| `table1_davis_detail.csv` (and `table2_youtube_objects_detail.csv`, `table3_segtrack_detail.csv`) | method, J_mean, J_recall, J_decay, F_mean, F_recall, F_decay, n_sequences, n_frames |
| `per_sequence_<dataset>.csv` | method, sequence, category, J_mean, J_recall, J_decay, F_mean, F_recall, F_decay, n_frames |
| `per_frame_<dataset>.csv` | method, sequence, category, frame, index, J, F, motion |
| `table4_detail.csv` | dataset, method, subset, n_frames, motion_min, motion_max, J_mean |
| `appearance_test_iou.csv` | dataset, split, n_images, J_mean |
| `pseudo_label_funnel.csv`, `pseudo_label_quality.csv` | as `fusionseg.pseudo_labels.funnel` / `quality_study` |
| `fusion_training.csv` | design, parameters, frames, iterations, first_loss, final_loss |
| `pipeline_timings.csv` | stage, status, wall_time_s (this run), compute_time_s (when last computed), key |

Methods: "Flow-Th", "Flow-Sal", "Ours-A", "Ours-M", "Ours-Joint" (the paper's fusion, Sec. 3.3) and
"Ours-Joint (release)" (the released fusion net). F is NaN outside DAVIS (`fusionseg.evaluate`).
On the real DAVIS, when `$FUSIONSEG_DATA/davis_benchmark/` is there, the tables also hold
"FusionSeg (official)": the authors' published per-frame J and F from the DAVIS benchmark
(`fusionseg.data.davis_benchmark`) on the same sequences, a reference that we did not compute.

**Motion of a frame** (Table 4): the mean optical-flow magnitude over the frame divided by the frame's
diagonal (raw flow, camera motion included, as "amount of motion" in the frame); the top 10% of the
scored frames by it are "moving", the bottom 10% "static". The paper ranks YouTube-Objects frames;
profiles without YouTube-Objects (real-lite) rank DAVIS val frames.

Predictions: the streams run on each frame at its own size; the foreground probability is resized
bilinearly to the annotation's size before thresholding at 0.5 (the real DAVIS copy has 427x240
frames and 854x480 masks).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionseg import profiles as profiles_module
from fusionseg.data.types import Video
from fusionseg.io import DataError, image_size, write_json, write_png
from fusionseg.profiles import Profile

PIPELINE_VERSION = 1  # bump when a stage's outputs change meaning: every key changes
STAGES: tuple[str, ...] = ("data", "flow", "appearance", "pseudo_labels", "motion", "fusion", "evaluate")
DEPENDS: dict[str, tuple[str, ...]] = {
    "data": (),
    "appearance": ("data",),
    "flow": ("data",),
    "pseudo_labels": ("data", "appearance", "flow"),
    "motion": ("pseudo_labels",),
    "fusion": ("data", "appearance", "motion", "flow"),
    "evaluate": ("data", "appearance", "motion", "fusion", "flow"),
}
TORCH_THREADS = 2  # the machine has 2 cores (shared)
FUSION_MAX_BYTES = 512 * 2**20  # memory for the precomputed stream logits of the fusion stage
# Base learning rate per fusion design. PaperFusion starts as identities and trains well at 1e-3;
# ReleaseFusion starts at N(0, 0.01) and at 1e-3 learnt only its bias in 100 steps (all background
# on mini); 1e-2 moved it (train-frame IoU 0 -> 0.09 in 100 steps, 0.28 in 500).
FUSION_LR = {"paper": 1e-3, "release": 1e-2}
QUALITY_FRAMES = 100  # the paper's crowd check: 100 random kept frames
FALLBACK = "pruned segmentations of every boxed frame (no test passed)"
MOVING_FRACTION = 0.1  # Table 4: top 10% moving / static
METHODS = ("Flow-Th", "Flow-Sal", "Ours-A", "Ours-M", "Ours-Joint", "Ours-Joint (release)")
BASELINE_METHODS = {"Flow-Th": "flow-th", "Flow-Sal": "flow-sal"}
FUSION_DESIGNS = {"Ours-Joint": "paper", "Ours-Joint (release)": "release"}
REFERENCE = "FusionSeg (official)"  # the DAVIS benchmark's published FusionSeg results
TABLES = {"davis": "table1_davis", "youtube_objects": "table2_youtube_objects", "segtrack": "table3_segtrack"}


# ----------------------------------------------------------------------------------------------
# What each profile reads


@dataclass(frozen=True)
class Plan:
    """Which dataset (and split) plays each role for a profile."""

    appearance: tuple[str, str]  # still images for the appearance stream
    appearance_test: tuple[str, str] | None  # its held-out test set (IoU reported)
    weak: tuple[str, str]  # boxed videos for the pseudo-labels ("davis": boxes from masks)
    fusion: tuple[str, str]  # held-out annotated videos for the fusion layers
    benchmarks: tuple[tuple[str, str | None], ...]  # evaluated (dataset, split)
    moving_static: str  # the benchmark whose frames Table 4 ranks by motion


SYNTHETIC_PLAN = Plan(
    appearance=("duts", "train"),
    appearance_test=("duts", "test"),
    weak=("imagenet_vid", "train"),
    fusion=("davis", "train"),
    benchmarks=(("davis", "val"), ("youtube_objects", None), ("segtrack", None)),
    moving_static="youtube_objects",
)
PLANS: dict[str, Plan] = {
    "smoke": SYNTHETIC_PLAN,
    "mini": SYNTHETIC_PLAN,
    "real-lite": Plan(
        appearance=("duts", "train"),
        appearance_test=("duts", "test"),
        weak=("davis", "train"),
        fusion=("davis", "train"),
        benchmarks=(("davis", "val"),),
        moving_static="davis",
    ),
    "paper": Plan(
        appearance=("voc", "train_aug"),
        appearance_test=("voc", "val"),
        weak=("imagenet_vid", "train"),
        fusion=("davis", "train"),
        benchmarks=(("davis", "val"), ("youtube_objects", None), ("segtrack", None)),
        moving_static="youtube_objects",
    ),
}


def plan_of(profile: Profile) -> Plan:
    """The datasets of `profile` (by its preset name)."""
    if profile.name not in PLANS:
        raise ValueError(f"no pipeline plan for profile {profile.name!r}; expected one of {sorted(PLANS)}")
    return PLANS[profile.name]


def dataset_folder(profile: Profile, dataset: str) -> Path:
    """The folder to hand the reader of `dataset` (inside the synthetic world, or under the data root)."""
    root = profile.resolve_data_root()
    if profile.data == "synthetic":
        from fusionseg.data.synthetic import SynthManifest

        return SynthManifest.load(root).dataset_root(dataset)
    from fusionseg.data import DEFAULT_FOLDERS

    return root / DEFAULT_FOLDERS[dataset]


def load_role_videos(profile: Profile, dataset: str, split: str | None) -> list[Video]:
    """The videos of a dataset for this profile, capped at `profile.max_videos`."""
    from fusionseg.data import load_videos

    videos = load_videos(dataset, dataset_folder(profile, dataset), split)
    return videos if profile.max_videos is None else videos[: profile.max_videos]


def flow_cache(profile: Profile) -> Any:
    """The flow stage's `FlowCache`: `<FUSIONSEG_CACHE or .cache>/flow/pipeline-<data key>/`, shared by
    every run label on the same data (an ablation of the training does not recompute the flow)."""
    from fusionseg.flow import FlowCache, default_cache_root

    stamp = read_stamp(profile, "data")
    if stamp is None:
        raise DataError(f"{stamp_path(profile, 'data')}: not found; run the data stage first")
    return FlowCache(default_cache_root() / f"pipeline-{stamp['key']}")


# ----------------------------------------------------------------------------------------------
# Stage bookkeeping: keys, stamps, results


@dataclass
class StageResult:
    """What a stage made: its folder, its output paths (name -> path) and whether it ran now."""

    stage: str
    folder: Path
    key: str
    status: str  # "computed" or "cached"
    outputs: dict[str, str] = field(default_factory=dict)
    wall_time_s: float = 0.0  # in this call (0 when cached)
    info: dict[str, Any] = field(default_factory=dict)  # small facts (counts, scores) for the log
    compute_time_s: float = 0.0  # what computing it took (from the stamp when cached)

    def path(self, name: str) -> Path:
        """One output as a Path."""
        return Path(self.outputs[name])


def stage_dir(profile: Profile, stage: str) -> Path:
    return profile.work_dir() / stage


def stamp_path(profile: Profile, stage: str) -> Path:
    return stage_dir(profile, stage) / "stage.json"


def read_stamp(profile: Profile, stage: str) -> dict[str, Any] | None:
    """The stage's stamp, or None if absent or unreadable."""
    path = stamp_path(profile, stage)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def log(message: str) -> None:
    """Progress line of the pipeline (stdout, flushed so that notebooks and CI show it live)."""
    print(f"[reproduce] {message}", flush=True)


def command_line(profile: Profile) -> str:
    """The `fusionseg reproduce` command that makes this profile's results."""
    overrides = "".join(f" -p {key}={value}" for key, value in profile.overrides)
    return f"fusionseg reproduce --profile {profile.name}{overrides}"


def _downstream(stages: Sequence[str]) -> set[str]:
    """`stages` and every stage that depends on one of them, directly or not."""
    found = set(stages)
    for stage in STAGES:  # STAGES is in dependency order
        if any(dep in found for dep in DEPENDS[stage]):
            found.add(stage)
    return found


def _outputs_exist(outputs: dict[str, str]) -> bool:
    return all(Path(path).exists() for path in outputs.values())


def run_stage(
    profile: Profile, stage: str, force: Sequence[str] = (), _done: dict | None = None
) -> StageResult:
    """Run `stage` for `profile` (its dependencies first), or reuse it when its key is unchanged.

    `force`: stage names to recompute regardless of their stamps (their downstream stages too).
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    done = {} if _done is None else _done
    if stage in done:
        return done[stage]
    forced = _downstream(force)
    deps = {dep: run_stage(profile, dep, force, done) for dep in DEPENDS[stage]}
    spec = STAGE_FUNCTIONS[stage]
    parameters = spec.parameters(profile)
    depends = {name: result.key for name, result in deps.items()}
    key = _digest({"stage": stage, "version": PIPELINE_VERSION, "parameters": parameters, "depends": depends})
    stamp = read_stamp(profile, stage)
    folder = stage_dir(profile, stage)
    if (
        stage not in forced
        and stamp is not None
        and stamp.get("key") == key
        and stamp.get("complete")
        and _outputs_exist(stamp.get("outputs", {}))
    ):
        log(f"{stage:<14} cached (key {key})")
        info, seconds = stamp.get("info", {}), stamp.get("wall_time_s", 0.0)
        result = StageResult(stage, folder, key, "cached", stamp["outputs"], 0.0, info, seconds)
        done[stage] = result
        return result
    resuming = (
        stamp is not None and stamp.get("key") == key and not stamp.get("complete") and stage not in forced
    )
    if folder.exists() and not resuming:
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    log(f"{stage:<14} {'resuming' if resuming else 'running'} (key {key})")
    stamp = {"stage": stage, "key": key, "complete": False, "parameters": parameters, "depends": depends}
    write_json(stamp_path(profile, stage), stamp)
    result = _timed_run(profile, stage, spec, parameters, deps, key)
    write_json(
        stamp_path(profile, stage),
        stamp
        | {
            "complete": True,
            "outputs": result.outputs,
            "info": result.info,
            "wall_time_s": result.wall_time_s,
        },
    )
    summary = ", ".join(f"{k}={_short(v)}" for k, v in result.info.items())
    log(f"{stage:<14} done in {result.wall_time_s:.1f} s" + (f" ({summary})" if summary else ""))
    done[stage] = result
    return result


def _short(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _timed_run(
    profile: Profile, stage: str, spec: StageSpec, parameters: dict, deps: dict[str, StageResult], key: str
) -> StageResult:
    """Run the stage's body with a provenance record (wall time, peak memory) in the results ledger."""
    from fusionseg.results import Provenance, timed_stage

    fingerprint = deps["data"].info.get("fingerprint") if "data" in deps else None
    provenance = Provenance(
        stage=stage, profile=profile.label, command=command_line(profile), parameters=parameters
    )
    with timed_stage(provenance):
        outputs, info = spec.body(profile, deps)
        provenance.data_fingerprint = fingerprint or info.get("fingerprint")
        provenance.parameters = parameters | {"key": key, "profile": profile.as_dict(), "info": info}
        provenance.outputs = [str(path) for path in outputs.values()]
    seconds = provenance.wall_time_s  # timed_stage's clock: the stamp and the provenance agree
    return StageResult(stage, stage_dir(profile, stage), key, "computed", outputs, seconds, info, seconds)


@dataclass(frozen=True)
class StageSpec:
    """A stage's parameters (what its key hashes) and its body: (profile, deps) -> (outputs, info)."""

    parameters: Callable[[Profile], dict[str, Any]]
    body: Callable[[Profile, dict[str, StageResult]], tuple[dict[str, str], dict[str, Any]]]


def _set_threads() -> None:
    import torch

    torch.set_num_threads(min(TORCH_THREADS, torch.get_num_threads()))


# ----------------------------------------------------------------------------------------------
# Stage: data


def listing_fingerprint(folders: Sequence[Path]) -> str:
    """A cheap fingerprint of folders: every file's relative path and size (no file is read).

    Computed once per process (a notebook calling several stages walks the folders once)."""
    return _listing_fingerprint(tuple(str(folder) for folder in folders))


@functools.lru_cache(maxsize=8)
def _listing_fingerprint(folders: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for folder in map(Path, folders):
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                digest.update(f"{path.relative_to(folder.parent)}:{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def _plan_datasets(plan: Plan) -> list[str]:
    names = [plan.appearance[0], plan.weak[0], plan.fusion[0], *(d for d, _ in plan.benchmarks)]
    return list(dict.fromkeys(names))


def _data_parameters(profile: Profile) -> dict[str, Any]:
    plan = plan_of(profile)
    if profile.data == "synthetic":
        from fusionseg.data import synthetic

        return {
            "kind": "synthetic",
            "world": synthetic.resolve_config(profile.name).as_dict(),
            "seed": profile.seed,
            "generator_version": synthetic.GENERATOR_VERSION,
            "root": str(profile.resolve_data_root()),
        }
    folders = {name: dataset_folder(profile, name) for name in _plan_datasets(plan)}
    missing = [f"{name}: {path}" for name, path in folders.items() if not path.is_dir()]
    if missing:
        raise DataError(
            f"profile {profile.name} needs these dataset folders, not found: {'; '.join(missing)} "
            "(set FUSIONSEG_DATA or -p data_root=DIR; see data_scripts/README.md)"
        )
    return {
        "kind": "real",
        "root": str(profile.resolve_data_root()),
        "datasets": {name: str(path) for name, path in folders.items()},
        "fingerprint": listing_fingerprint(list(folders.values())),
    }


def _data_body(profile: Profile, deps: dict[str, StageResult]) -> tuple[dict[str, str], dict[str, Any]]:
    root = profile.resolve_data_root()
    if profile.data == "synthetic":
        from fusionseg.data import synthetic

        manifest = synthetic.generate(profile.name, profile.seed, root)
        fingerprint = hashlib.sha256((root / "manifest.json").read_bytes()).hexdigest()[:16]
        counts = {k: v["items"] for k, v in synthetic.summarize(manifest).items()}
        return {"root": str(root), "manifest": str(root / "manifest.json")}, {
            "fingerprint": fingerprint
        } | counts
    parameters = _data_parameters(profile)
    return {"root": str(root)}, {"fingerprint": parameters["fingerprint"]}


def data(profile: Profile, force: Sequence[str] = ()) -> StageResult:
    """The profile's data: the synthetic world generated (smoke, mini) or the real folders checked."""
    return run_stage(profile, "data", force)


# ----------------------------------------------------------------------------------------------
# Stages: appearance and motion (stream training)


def _train_parameters(profile: Profile, source: Any) -> dict[str, Any]:
    return {
        "source": source,
        "backbone": profile.backbone,
        "output_stride": profile.output_stride,
        "iterations": profile.iterations,
        "crop_size": profile.crop_size,
        "batch_size": profile.batch_size,
        "seed": profile.seed,
        "pretrained": "imagenet",
        "device": profile.torch_device(),
    }


def _train(profile: Profile, pairs: Any, folder: Path) -> Path:
    """Train one stream into `folder/train` (resuming from its latest checkpoint); return model.pt."""
    from fusionseg.train import TrainConfig, train_stream

    config = TrainConfig(
        out_dir=str(folder / "train"),
        iterations=profile.iterations,
        batch_size=profile.batch_size,
        crop_size=profile.crop_size,
        backbone=profile.backbone,
        output_stride=profile.output_stride,
        pretrained=True,
        seed=profile.seed,
        # data loading in this process: a forked loader worker can deadlock once OpenCV's thread
        # pool has run here (the flow stage), and decoding small images is cheap beside a step
        workers=0,
        threads=TORCH_THREADS,
        checkpoint_every=max(50, profile.iterations // 4),
        resume=True,
    )
    train_stream(config, pairs)
    return folder / "train" / "model.pt"


def _load_image_set(profile: Profile, dataset: str, split: str) -> Any:
    from fusionseg.data import load_image_set

    return load_image_set(dataset, dataset_folder(profile, dataset), split)


def _appearance_parameters(profile: Profile) -> dict[str, Any]:
    plan = plan_of(profile)
    return _train_parameters(profile, list(plan.appearance)) | {"test": plan.appearance_test}


def _appearance_body(profile: Profile, deps: dict[str, StageResult]) -> tuple[dict[str, str], dict[str, Any]]:
    from fusionseg.infer import image_set_iou, load_stream
    from fusionseg.results import write_table
    from fusionseg.train import ImageSetPairs

    _set_threads()
    plan = plan_of(profile)
    weights = _train(
        profile, ImageSetPairs(_load_image_set(profile, *plan.appearance)), stage_dir(profile, "appearance")
    )
    outputs, info = {"weights": str(weights)}, {}
    if plan.appearance_test is not None:
        test_set = _load_image_set(profile, *plan.appearance_test)
        model = load_stream(weights).to(profile.torch_device())
        scores = image_set_iou(model, test_set, progress=False)
        info["test_iou"] = float(np.mean(scores))
        table = pd.DataFrame(
            [
                {
                    "dataset": test_set.name,
                    "split": plan.appearance_test[1],
                    "n_images": len(scores),
                    "J_mean": info["test_iou"],
                }
            ]
        )
        outputs["test_iou"] = str(write_table(table, profile.label, "appearance_test_iou"))
    return outputs, info


def appearance(profile: Profile, force: Sequence[str] = ()) -> StageResult:
    """The trained appearance stream (`outputs["weights"]`) and its test-set IoU."""
    return run_stage(profile, "appearance", force)


def _motion_parameters(profile: Profile) -> dict[str, Any]:
    return _train_parameters(profile, "pseudo_labels")


def _motion_body(profile: Profile, deps: dict[str, StageResult]) -> tuple[dict[str, str], dict[str, Any]]:
    from fusionseg.pseudo_labels import load_pseudo_labels
    from fusionseg.train import ImageSetPairs

    _set_threads()
    pairs = load_pseudo_labels(deps["pseudo_labels"].path("set"))
    if len(pairs) == 0:
        raise DataError(
            f"{deps['pseudo_labels'].path('set')}: the pseudo-label stage kept no frame; the motion stream "
            "has nothing to train on (see pseudo_label_funnel.csv)"
        )
    weights = _train(profile, ImageSetPairs(pairs), stage_dir(profile, "motion"))
    return {"weights": str(weights)}, {"training_frames": len(pairs)}


def motion(profile: Profile, force: Sequence[str] = ()) -> StageResult:
    """The trained motion stream (`outputs["weights"]`)."""
    return run_stage(profile, "motion", force)


# ----------------------------------------------------------------------------------------------
# Stage: flow


def _all_videos(profile: Profile) -> list[Video]:
    """Every video the chain reads: weak, fusion and benchmark videos (each once)."""
    plan = plan_of(profile)
    roles = [plan.weak, plan.fusion, *plan.benchmarks]
    videos: dict[tuple[str, str], Video] = {}
    for dataset, split in dict.fromkeys(roles):
        for video in load_role_videos(profile, dataset, split):
            videos.setdefault((video.dataset, video.name), video)
    return list(videos.values())


def _flow_parameters(profile: Profile) -> dict[str, Any]:
    return {"method": profile.flow_method, "size": None, "max_videos": profile.max_videos}


def _flow_body(profile: Profile, deps: dict[str, StageResult]) -> tuple[dict[str, str], dict[str, Any]]:
    from fusionseg.flow import compute_videos

    videos = _all_videos(profile)
    cache = flow_cache(profile)
    compute_videos(videos, profile.flow_method, None, cache, workers=1)
    return {"cache": str(cache.root)}, {"videos": len(videos), "frames": sum(len(v) for v in videos)}


def flow(profile: Profile, force: Sequence[str] = ()) -> StageResult:
    """Optical flow and flow images of every video the chain reads (`flow_cache(profile)`)."""
    return run_stage(profile, "flow", force)


def flow_image_arrays(profile: Profile) -> Callable[[Video], list[np.ndarray]]:
    """A video -> its cached flow images (HxWx3 uint8), for the pseudo-label pipeline."""
    from fusionseg.io import read_rgb

    cache = flow_cache(profile)
    return lambda video: [read_rgb(path) for path in cache.flow_images(video, profile.flow_method)]


# ----------------------------------------------------------------------------------------------
# Stage: pseudo-labels


def _pseudo_label_config() -> Any:
    from fusionseg.pseudo_labels import PseudoLabelConfig

    return PseudoLabelConfig()


def _pseudo_label_parameters(profile: Profile) -> dict[str, Any]:
    plan = plan_of(profile)
    return {
        "config": dataclasses.asdict(_pseudo_label_config()),
        "source": list(plan.weak),
        "boxes": "from masks (min_area 0.002, merge all)" if plan.weak[0] == "davis" else "annotated",
        "max_videos": profile.max_videos,
        "quality_frames": QUALITY_FRAMES,
        "seed": profile.seed,
    }


def _human_masks(profile: Profile, names: set[str]) -> list[Video] | None:
    """Videos with true masks for the quality check: the synthetic VID masks, DAVIS train, else None."""
    plan = plan_of(profile)
    if profile.data == "synthetic":
        from fusionseg.data.synthetic import SynthManifest, load_vid_with_masks

        videos = load_vid_with_masks(SynthManifest.load(profile.resolve_data_root()), plan.weak[1])
    elif plan.weak[0] == "davis":
        videos = load_role_videos(profile, *plan.weak)
    else:
        return None
    return [video for video in videos if video.name in names]


def _pseudo_label_body(
    profile: Profile, deps: dict[str, StageResult]
) -> tuple[dict[str, str], dict[str, Any]]:
    from fusionseg.pseudo_labels import appearance_segmenter, funnel, quality_study, run_pipeline, weak_videos
    from fusionseg.results import write_table

    _set_threads()
    plan = plan_of(profile)
    config = _pseudo_label_config()
    source, split = plan.weak
    videos = weak_videos(source, dataset_folder(profile, source), split, max_videos=profile.max_videos)
    segment = appearance_segmenter(deps["appearance"].path("weights"), profile.torch_device())
    flow_images = flow_image_arrays(profile)
    out = stage_dir(profile, "pseudo_labels") / "set"
    records = run_pipeline(videos, segment, flow_images, config, out)
    table = funnel(records, config)
    outputs = {"set": str(out), "manifest": str(out / "manifest.csv")}
    outputs["funnel"] = str(write_table(table, profile.label, "pseudo_label_funnel"))
    info = {
        "videos": len(videos),
        "frames_in": int(table["frames"].iloc[0]),
        "frames_kept": int(table["frames"].iloc[-1]),
    }
    humans = _human_masks(profile, {video.name for video in videos})
    if humans and info["frames_kept"]:
        quality = quality_study(records, out, humans, config, QUALITY_FRAMES, profile.seed)
        outputs["quality"] = str(write_table(quality, profile.label, "pseudo_label_quality"))
        info["jaccard_kept"] = float(quality["jaccard_all"].iloc[0])
    if not info["frames_kept"]:
        # A barely trained appearance stream (smoke) passes no test: keep the chain running on the
        # pruned segmentations alone (the quality study's "no tests" variant), and say so.
        fallback = dataclasses.replace(config, steps=())
        log(f"WARNING: no frame passed the tests; the motion stream trains on {FALLBACK}")
        out = stage_dir(profile, "pseudo_labels") / "set_pruning_only"
        run_pipeline(videos, segment, flow_images, fallback, out)
        outputs |= {"set": str(out), "manifest": str(out / "manifest.csv")}
        info["fallback"] = FALLBACK
    return outputs, info


def pseudo_labels(profile: Profile, force: Sequence[str] = ()) -> StageResult:
    """The pseudo-labelled set (`outputs["set"]`, for `load_pseudo_labels`), funnel and quality tables."""
    return run_stage(profile, "pseudo_labels", force)


# ----------------------------------------------------------------------------------------------
# Stage: fusion


def _fusion_every(videos: Sequence[Video]) -> int:
    """Use every k-th annotated frame so that both streams' float16 logits fit FUSION_MAX_BYTES."""
    frames = sum(len(video.annotated_indices) for video in videos)
    if not frames:
        raise DataError("the fusion videos have no annotated frame")
    height, width = image_size(videos[0].frames[0].image_path)
    per_frame = 2 * 2 * height * width * 2  # two streams x two channels x float16
    return max(1, math.ceil(frames * per_frame / FUSION_MAX_BYTES))


def _fusion_parameters(profile: Profile) -> dict[str, Any]:
    return {
        "videos": list(plan_of(profile).fusion),
        "iterations": profile.fusion_iterations,
        "batch_size": profile.batch_size,
        "lr": FUSION_LR,
        "seed": profile.seed,
        "max_videos": profile.max_videos,
        "max_logit_bytes": FUSION_MAX_BYTES,
    }


def _fusion_data(profile: Profile, deps: dict[str, StageResult], path: Path) -> Any:
    """The frozen streams' logits on the held-out videos: computed once, kept in `path` for a resume."""
    import torch

    from fusionseg.infer import collect_fusion_data, load_stream
    from fusionseg.train import FusionData

    if path.is_file():
        return FusionData(**torch.load(path, weights_only=True))
    videos = load_role_videos(profile, *plan_of(profile).fusion)
    device = profile.torch_device()
    cache = flow_cache(profile)
    fusion_data = collect_fusion_data(
        load_stream(deps["appearance"].path("weights")).to(device),
        load_stream(deps["motion"].path("weights")).to(device),
        videos,
        flow_images=lambda video: cache.flow_images(video, profile.flow_method),
        every=_fusion_every(videos),
        progress=False,
    )
    torch.save(dataclasses.asdict(fusion_data), path)
    return fusion_data


def _fusion_body(profile: Profile, deps: dict[str, StageResult]) -> tuple[dict[str, str], dict[str, Any]]:
    import torch

    from fusionseg.models import PaperFusion, ReleaseFusion
    from fusionseg.results import write_table
    from fusionseg.train import save_weights, train_fusion

    _set_threads()
    folder = stage_dir(profile, "fusion")
    fusion_data = _fusion_data(profile, deps, folder / "logits.pt")
    outputs, rows = {}, []
    for design, module_type in (("paper", PaperFusion), ("release", ReleaseFusion)):
        torch.manual_seed(profile.seed)
        module = module_type()
        losses = train_fusion(
            module,
            fusion_data,
            profile.fusion_iterations,
            profile.batch_size,
            FUSION_LR[design],
            seed=profile.seed,
        )
        path = folder / f"{design}.pt"
        config = {"kind": "fusion", "fusion": design, "frames": len(fusion_data), "final_loss": losses[-1]}
        save_weights(path, module, config, profile.fusion_iterations)
        outputs[design] = str(path)
        rows.append(
            {
                "design": design,
                "parameters": sum(p.numel() for p in module.parameters()),
                "frames": len(fusion_data),
                "iterations": profile.fusion_iterations,
                "first_loss": losses[0],
                "final_loss": float(np.mean(losses[-10:])),
            }
        )
    outputs["table"] = str(write_table(pd.DataFrame(rows), profile.label, "fusion_training"))
    return outputs, {"frames": len(fusion_data)} | {f"{r['design']}_loss": r["final_loss"] for r in rows}


def fusion(profile: Profile, force: Sequence[str] = ()) -> StageResult:
    """The trained fusion layers: `outputs["paper"]` (PaperFusion) and `outputs["release"]` (ReleaseFusion)."""
    return run_stage(profile, "fusion", force)


# ----------------------------------------------------------------------------------------------
# Stage: evaluate


def _slug(method: str) -> str:
    return method.lower().replace(" ", "_").replace("(", "").replace(")", "")


def mask_folder(profile: Profile, dataset: str, method: str) -> Path:
    """Where the evaluate stage writes `method`'s masks on `dataset`: `<folder>/<video>/<frame>.png`
    ({0, 255}, at the annotation's size; annotated frames only for Ours-*, every frame for Flow-*)."""
    return stage_dir(profile, "evaluate") / "masks" / dataset / _slug(method)


def frame_motion(flow_field: np.ndarray) -> float:
    """Amount of motion in a frame: mean flow magnitude divided by the frame's diagonal (Table 4)."""
    height, width = flow_field.shape[:2]
    magnitude = np.hypot(flow_field[..., 0].astype(np.float64), flow_field[..., 1].astype(np.float64))
    return float(magnitude.mean() / math.hypot(height, width))


def _stream_logits(model: Any, images: Sequence[np.ndarray]) -> list[Any]:
    """Per-image float32 logits (2, H, W) at the image's own size."""
    from fusionseg.infer import iter_logits

    logits: list[Any] = [None] * len(images)
    for batch, _, values in iter_logits(model, [images]):
        for row, index in enumerate(batch):
            logits[index] = values[row].float().cpu()
    return logits


def _foreground(logits: Any, size: tuple[int, int]) -> np.ndarray:
    """Softmax foreground probability resized (bilinear) to `size`, thresholded at 0.5."""
    import torch.nn.functional as F

    probability = logits.softmax(dim=0)[1:2][None]
    if tuple(probability.shape[-2:]) != tuple(size):
        probability = F.interpolate(probability, size=size, mode="bilinear", align_corners=False)
    return probability[0, 0].numpy() > 0.5


@dataclass
class _Models:
    """The trained networks of the evaluate stage."""

    appearance: Any
    motion: Any
    fusions: dict[str, Any]  # method name -> fusion module


def _load_models(profile: Profile, deps: dict[str, StageResult]) -> _Models:
    from fusionseg.infer import load_fusion, load_stream

    device = profile.torch_device()
    return _Models(
        load_stream(deps["appearance"].path("weights")).to(device),
        load_stream(deps["motion"].path("weights")).to(device),
        {
            method: load_fusion(deps["fusion"].path(design)).to(device)
            for method, design in FUSION_DESIGNS.items()
        },
    )


def _ours_methods() -> list[str]:
    return ["Ours-A", "Ours-M", *FUSION_DESIGNS]


def _video_done(masks: Path, methods: Sequence[str], video: Video, indices: Sequence[int]) -> bool:
    return all(
        (masks / _slug(m) / video.name / f"{video.frames[i].name}.png").is_file()
        for m in methods
        for i in indices
    )


def _segment_video(profile: Profile, models: _Models, video: Video, masks: Path) -> None:
    """Ours-A, Ours-M and both joint models on the annotated frames of one video; masks written as PNG."""
    import torch

    from fusionseg.infer import LazyImages

    indices = video.annotated_indices
    if _video_done(masks, _ours_methods(), video, indices):
        return
    flows = flow_cache(profile).flow_images(video, profile.flow_method)
    app = _stream_logits(models.appearance, LazyImages([video.frames[i].image_path for i in indices]))
    mot = _stream_logits(models.motion, LazyImages([flows[i] for i in indices]))
    for index, a, m in zip(indices, app, mot, strict=True):
        size = image_size(video.frames[index].mask_paths[0])
        predictions = {"Ours-A": a, "Ours-M": m}
        with torch.inference_mode():
            for method, module in models.fusions.items():
                predictions[method] = module(a[None], m[None])[0].float()
        for method, logits in predictions.items():
            write_png(
                masks / _slug(method) / video.name / f"{video.frames[index].name}.png",
                _foreground(logits, size),
            )


def _baseline_masks(profile: Profile, videos: Sequence[Video], masks: Path) -> None:
    """Flow-Th and Flow-Sal masks of every frame (skipping videos already written)."""
    from fusionseg.baselines import video_masks, write_video_masks

    cache = flow_cache(profile)
    for method, baseline in BASELINE_METHODS.items():
        for video in videos:
            if not _video_done(masks, [method], video, range(len(video))):
                frames = video_masks(video, baseline, cache, profile.flow_method)
                write_video_masks(video, masks / _slug(method), frames)


def _motion_column(profile: Profile, videos: Sequence[Video]) -> dict[tuple[str, int], float]:
    """(sequence, frame index) -> `frame_motion` of every annotated frame."""
    from fusionseg.flow import load_raw_flow

    cache = flow_cache(profile)
    values = {}
    for video in videos:
        paths = cache.raw_flow_paths(video, profile.flow_method)
        for index in video.annotated_indices:
            values[(video.name, index)] = frame_motion(load_raw_flow(paths[index]))
    return values


def reference_frames(profile: Profile, dataset: str, videos: Sequence[Video]) -> pd.DataFrame | None:
    """The official FusionSeg per-frame J and F on `videos` (`REFERENCE`), or None when the profile
    has no copy of the DAVIS benchmark's data (synthetic profiles, other datasets)."""
    from fusionseg.data.davis_benchmark import PER_FRAME_FILE, read_published_frames

    if profile.data != "real" or dataset != "davis":
        return None
    root = dataset_folder(profile, "davis_benchmark")
    if not (root / PER_FRAME_FILE).is_file():
        log(f"no {root / PER_FRAME_FILE}: the tables have no official FusionSeg reference")
        return None
    return read_published_frames(root, videos)


def score_benchmark(
    profile: Profile, dataset: str, split: str | None, models: _Models, folder: Path
) -> pd.DataFrame:
    """Every method on one benchmark: one row per (method, annotated frame) with J, F and motion
    (plus the `REFERENCE` rows, frames 1..N-2, where `reference_frames` finds them)."""
    from tqdm import tqdm

    from fusionseg.evaluate import score_frames

    videos = load_role_videos(profile, dataset, split)
    masks = folder / "masks" / dataset
    for video in tqdm(videos, desc=f"segment {dataset}", unit="video"):
        _segment_video(profile, models, video, masks)
    _baseline_masks(profile, videos, masks)
    motion_of = _motion_column(profile, videos)
    tables = []
    for method in METHODS:
        per_frame = score_frames(videos, masks / _slug(method), dataset, progress=False)
        per_frame.insert(0, "method", method)
        tables.append(per_frame)
    reference = reference_frames(profile, dataset, videos)
    if reference is not None:
        tables.append(reference.assign(method=REFERENCE)[tables[0].columns])
    frames = pd.concat(tables, ignore_index=True)
    frames["motion"] = [
        motion_of[(s, int(i))] for s, i in zip(frames["sequence"], frames["index"], strict=True)
    ]
    return frames


def sequence_scores(per_frame: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Per (method, sequence): the benchmark's statistics (`fusionseg.evaluate.sequence_table`;
    the `REFERENCE` rows come trimmed already)."""
    from fusionseg.evaluate import sequence_table

    tables = []
    for method, frames in per_frame.groupby("method", sort=False):
        table = sequence_table(frames.drop(columns=["method"]), dataset, trimmed=method == REFERENCE)
        table.insert(0, "method", method)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def detail_table(per_sequence: pd.DataFrame) -> pd.DataFrame:
    """Per method: dataset scores (means over sequences), the number of sequences and of frames scored."""
    from fusionseg.evaluate import SEQUENCE_COLUMNS

    rows = []
    for method, table in per_sequence.groupby("method", sort=False):
        row = {"method": method} | {c: float(table[c].mean()) for c in SEQUENCE_COLUMNS[2:-1]}
        rows.append(row | {"n_sequences": len(table), "n_frames": int(table["n_frames"].sum())})
    return pd.DataFrame(rows)


def ledger_table(per_sequence: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The book's comparison format (method, column, value in percent): "Avg. IoU" = mean J over
    sequences; YouTube-Objects also per category (`fusionseg.evaluate.category_table`)."""
    from fusionseg.evaluate import category_table
    from fusionseg.paper_numbers import AVG

    rows = []
    for method, table in per_sequence.groupby("method", sort=False):
        if dataset == "youtube_objects":
            categories = category_table(table)
            for category, value in zip(categories["category"], categories["J_mean"], strict=True):
                rows.append((method, AVG if category == "Avg." else category, 100 * value))
        else:
            rows.append((method, AVG, 100 * float(table["J_mean"].mean())))
    return pd.DataFrame(rows, columns=["method", "column", "value"])


def moving_static(per_frame: pd.DataFrame, fraction: float = MOVING_FRACTION) -> pd.DataFrame:
    """Table 4: per method, mean J over the `fraction` most moving and the `fraction` most static frames.

    Frames are ranked by the `motion` column (`frame_motion`); ties keep the frames' order. Only the
    frames every method has are ranked (the `REFERENCE` has no first and last frames), so that
    all methods are scored on the same frames."""
    from fusionseg.paper_numbers import MOVING, STATIC

    rows = []
    chosen_methods = per_frame[per_frame["method"].isin(["Ours-A", *FUSION_DESIGNS, REFERENCE])]
    keys = chosen_methods.set_index(["sequence", "index"]).index
    counts = keys.value_counts()
    common = keys.isin(counts.index[counts == chosen_methods["method"].nunique()])
    for method, frames in chosen_methods[common].groupby("method", sort=False):
        ranked = frames.sort_values("motion", kind="stable")
        count = max(1, math.ceil(fraction * len(ranked)))
        for subset, chosen in ((MOVING, ranked.tail(count)), (STATIC, ranked.head(count))):
            rows.append(
                {
                    "method": method,
                    "subset": subset,
                    "n_frames": len(chosen),
                    "motion_min": float(chosen["motion"].min()),
                    "motion_max": float(chosen["motion"].max()),
                    "J_mean": float(chosen["J"].mean()),
                }
            )
    return pd.DataFrame(rows)


def _evaluate_parameters(profile: Profile) -> dict[str, Any]:
    plan = plan_of(profile)
    return {
        "benchmarks": [list(b) for b in plan.benchmarks],
        "methods": list(METHODS),
        "moving_static": plan.moving_static,
        "moving_fraction": MOVING_FRACTION,
        "max_videos": profile.max_videos,
        "threshold": 0.5,
        "reference": REFERENCE if profile.data == "real" else None,
    }


def _evaluate_body(profile: Profile, deps: dict[str, StageResult]) -> tuple[dict[str, str], dict[str, Any]]:
    from fusionseg.results import write_table

    _set_threads()
    plan = plan_of(profile)
    folder = stage_dir(profile, "evaluate")
    models = _load_models(profile, deps)
    outputs, info = {}, {}

    def write(name: str, table: pd.DataFrame) -> None:
        outputs[name] = str(write_table(table, profile.label, name))

    for dataset, split in plan.benchmarks:
        per_frame = score_benchmark(profile, dataset, split, models, folder)
        per_sequence = sequence_scores(per_frame, dataset)
        detail = detail_table(per_sequence)
        write(f"per_frame_{dataset}", per_frame)
        write(f"per_sequence_{dataset}", per_sequence)
        write(f"{TABLES[dataset]}_detail", detail)
        write(TABLES[dataset], ledger_table(per_sequence, dataset))
        info |= {f"{dataset}:{m}": float(j) for m, j in zip(detail["method"], detail["J_mean"], strict=True)}
        if dataset == plan.moving_static:
            table4 = moving_static(per_frame, MOVING_FRACTION).assign(dataset=dataset)
            table4 = table4[["dataset", "method", "subset", "n_frames", "motion_min", "motion_max", "J_mean"]]
            write("table4_detail", table4)
            ledger = pd.DataFrame(
                {"method": table4["method"], "column": table4["subset"], "value": 100 * table4["J_mean"]}
            )
            write("table4_moving_static", ledger)
    return outputs, info


def evaluate(profile: Profile, force: Sequence[str] = ()) -> StageResult:
    """Every method on every benchmark of the profile; the tables in `results/<label>/`."""
    return run_stage(profile, "evaluate", force)


STAGE_FUNCTIONS: dict[str, StageSpec] = {
    "data": StageSpec(_data_parameters, _data_body),
    "appearance": StageSpec(_appearance_parameters, _appearance_body),
    "flow": StageSpec(_flow_parameters, _flow_body),
    "pseudo_labels": StageSpec(_pseudo_label_parameters, _pseudo_label_body),
    "motion": StageSpec(_motion_parameters, _motion_body),
    "fusion": StageSpec(_fusion_parameters, _fusion_body),
    "evaluate": StageSpec(_evaluate_parameters, _evaluate_body),
}


# ----------------------------------------------------------------------------------------------
# The whole chain


def run_all(profile: Profile, until: str | None = None, force: Sequence[str] = ()) -> dict[str, StageResult]:
    """Run (or reuse) every stage in order, up to and including `until`; return their results.

    `force`: stages to recompute (with their downstream stages); "all" recomputes everything.
    Writes `results/<label>/pipeline_timings.csv` (stage, status, wall times, key).
    """
    from fusionseg.results import write_table

    if until is not None and until not in STAGES:
        raise ValueError(f"unknown stage {until!r}; expected one of {', '.join(STAGES)}")
    force = STAGES if "all" in force else tuple(force)
    unknown = sorted(set(force) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown} to force; expected some of {', '.join(STAGES)}")
    stages = STAGES[: STAGES.index(until) + 1] if until else STAGES
    done: dict[str, StageResult] = {}
    for stage in stages:
        run_stage(profile, stage, force, done)
    results = {stage: done[stage] for stage in stages}
    timings = pd.DataFrame(
        [
            {"stage": s, "status": r.status, "wall_time_s": r.wall_time_s, "compute_time_s": r.compute_time_s}
            | {"key": r.key}
            for s, r in results.items()
        ]
    )
    write_table(timings, profile.label, "pipeline_timings")
    return results


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile", choices=profiles_module.profile_names(), default=profiles_module.DEFAULT_PROFILE
    )
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a profile field, e.g. -p iterations=100 -p max_videos=2 (repeatable)",
    )
    parser.add_argument("--until", choices=STAGES, help="stop after this stage")
    parser.add_argument(
        "--force",
        action="append",
        default=[],
        choices=[*STAGES, "all"],
        help="recompute this stage and its downstream ones",
    )


def run_command(args: argparse.Namespace) -> int:
    from fusionseg.book import BookError, parse_overrides
    from fusionseg.results import results_dir

    try:
        profile = profiles_module.resolve(args.profile, parse_overrides(args.param))
    except (BookError, ValueError) as exc:
        raise DataError(str(exc)) from exc
    log(f"profile {profile.label}: {profile.description}; work dir {profile.work_dir()}")
    start = time.perf_counter()
    results = run_all(profile, args.until, args.force)
    for stage, result in results.items():
        log(f"{stage:<14} {result.status:<8} {result.wall_time_s:8.1f} s  {result.folder}")
    log(f"finished in {time.perf_counter() - start:.1f} s; results in {results_dir(profile.label)}")
    return 0
