"""The paper's chain, end to end, as cached and resumable stages (`fusionseg reproduce`).

One place runs the whole of FusionSeg for a profile (`fusionseg.profiles`)::

    data -> flow -> appearance -> pseudo_labels -> motion -> fusion -> evaluate

| stage | what it does | depends on |
|---|---|---|
| `data` | synthetic world (smoke, mini: `fusionseg.synth.world.generate`) or a check of the real folders | - |
| `flow` | optical flow + flow images of every video the chain reads (`flow_cache(profile)`) | data |
| `appearance` | appearance stream on the still images (synthetic DUTS-TR, DUTS-TR, VOC train_aug); IoU on their test set | data |
| `pseudo_labels` | Sec. 3.2 on boxed videos (VID-like; DAVIS train with boxes from masks for real-lite); funnel and quality | appearance, flow |
| `motion` | motion stream (ImageNet-initialised) on the pseudo-labelled flow images | pseudo_labels |
| `fusion` | PaperFusion and ReleaseFusion on the frozen streams' logits of the held-out videos (DAVIS train) | appearance, motion, flow |
| `evaluate` | Flow-Th, Flow-Sal, Ours-A, Ours-M, Ours-Joint (both designs) on every benchmark; Tables 1-4 | fusion, flow |
| `flow_baselines` | real DAVIS only: the flow baselines' variants (DIS, DeepFlow; camera motion removed or not) | flow |
| `flow_speed` | real DAVIS only: every flow method's speed at 854x480 on this machine | data |

Each stage is a function of the profile (`data(profile)`, ..., `evaluate(profile)`) that returns a
`fusionseg.stages.StageResult` (its folder and output paths), running or reusing what it depends on
first. The engine (keys, stamps, resume, provenance) is `fusionseg.stages`; the profile holds every
knob a stage reads, so a notebook's override reaches the stage (and its key) without other code.

**Results** go to `results/<profile label>/` with a provenance record per stage (`fusionseg.results`,
which lists every file and its columns).

The methods and the benchmark conventions are `fusionseg.evaluate`'s; on the real DAVIS, when
`$FUSIONSEG_DATA/davis_benchmark/` is there, the tables also hold "FusionSeg (official)": the
authors' published per-frame J and F (`fusionseg.data.davis_benchmark`), a reference we did not compute.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionseg.data.types import Video
from fusionseg.evaluate import TABLES
from fusionseg.io import DataError, write_json
from fusionseg.profiles import Profile
from fusionseg.results import listing_fingerprint
from fusionseg.stages import (
    Chain,
    Stage,
    StageResult,
    log,
    read_stamp,
    run_chain,
    run_stage,
    stage_dir,
)

MOTION_INITS = ("imagenet", "appearance")  # Profile.motion_init
TORCH_THREADS = 2  # the machine has 2 cores (shared)
FUSION_MAX_BYTES = 512 * 2**20  # memory for the precomputed stream logits of the fusion stage
FALLBACK = "pruned segmentations of every boxed frame (no test passed)"
SPEED_SEQUENCE = "blackswan"  # the flow-speed pair: frames 0 -> 1 of this DAVIS sequence


def flow_cache(profile: Profile) -> Any:
    """The flow stage's `FlowCache`: `<FUSIONSEG_CACHE or .cache>/flow/pipeline-<data key>/`, shared by
    every run label on the same data (an ablation of the training does not recompute the flow)."""
    from fusionseg.flow import FlowCache, default_cache_root

    stamp = read_stamp(profile, "data")
    if stamp is None:
        raise DataError(f"{stage_dir(profile, 'data') / 'stage.json'}: not found; run the data stage first")
    return FlowCache(default_cache_root() / f"pipeline-{stamp['key']}")


def flow_image_arrays(profile: Profile) -> Callable[[Video], list[np.ndarray]]:
    """A video -> its flow images (HxWx3 uint8) from the profile's flow cache."""
    cache = flow_cache(profile)
    return lambda video: cache.flow_image_arrays(video, profile.flow_method)


def _set_threads() -> None:
    import torch

    torch.set_num_threads(min(TORCH_THREADS, torch.get_num_threads()))


def _write(profile: Profile, name: str, table: pd.DataFrame) -> str:
    """Write `results/<label>/<name>.csv`; return its path."""
    from fusionseg.results import write_table

    return str(write_table(table, profile.label, name))


# ----------------------------------------------------------------------------------------------
# Stage: data


def _data_parameters(profile: Profile) -> dict[str, Any]:
    if profile.data == "synthetic":
        from fusionseg.synth.world import GENERATOR_VERSION

        assert profile.world is not None, f"profile {profile.name}: synthetic data needs a world"
        return {
            "kind": "synthetic",
            "world": profile.world.as_dict(),
            "seed": profile.seed,
            "generator_version": GENERATOR_VERSION,
            "root": str(profile.resolve_data_root()),
        }
    folders = {name: profile.dataset_folder(name) for name in profile.plan.datasets()}
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
        from fusionseg.synth.world import generate, summarize

        assert profile.world is not None
        manifest = generate(profile.world, profile.seed, root)
        fingerprint = hashlib.sha256((root / "manifest.json").read_bytes()).hexdigest()[:16]
        counts = {k: v["items"] for k, v in summarize(manifest).items()}
        outputs = {"root": str(root), "manifest": str(root / "manifest.json")}
        return outputs, {"fingerprint": fingerprint} | counts
    return {"root": str(root)}, {"fingerprint": _data_parameters(profile)["fingerprint"]}


# ----------------------------------------------------------------------------------------------
# Stages: appearance and motion (stream training)


STREAMS = ("appearance", "motion")


def trained_weights(profile: Profile, stream: str) -> Path:
    """Where `stream`'s stage leaves its trained weights (`train_stream` writes train/model.pt)."""
    return stage_dir(profile, stream) / "train" / "model.pt"


def stream_init(profile: Profile, stream: str, appearance_run: Profile | None = None) -> bool | str:
    """What `stream`'s weights start from: True, the ImageNet backbone (the paper's choice for both
    streams), or for the motion stream with motion_init="appearance", the trained appearance
    stream's weights file (backbone and head; our deviation, a lever for a short budget) of
    `appearance_run` (default: `profile`'s own run; select-recipe's variants use their base's)."""
    if profile.motion_init not in MOTION_INITS:
        raise ValueError(f"motion_init must be one of {MOTION_INITS}, not {profile.motion_init!r}")
    if stream == "appearance" or profile.motion_init == "imagenet":
        return True
    return str(trained_weights(appearance_run or profile, "appearance"))


def train_config(profile: Profile, folder: Path, stream: str, appearance_run: Profile | None = None) -> Any:
    """The `TrainConfig` of `stream` trained for `profile` into `folder/train`: the one mapping from a
    profile to its training run, used both to train and (`_train_parameters`) for the cache key.
    `appearance_run`: see `stream_init`."""
    from fusionseg.train.stream import TrainConfig

    if stream not in STREAMS:
        raise ValueError(f"stream must be one of {STREAMS}, got {stream!r}")
    appearance = stream == "appearance"  # each stream has its own decoder and solver
    iterations = profile.stream_iterations(stream)
    return TrainConfig(
        out_dir=str(folder / "train"),
        iterations=iterations,
        batch_size=profile.batch_size,
        crop_size=profile.crop_size,
        lr=profile.lr if appearance else profile.motion_lr,
        optimizer=profile.optimizer if appearance else profile.motion_optimizer,
        backbone=profile.backbone,
        output_stride=profile.output_stride,
        decoder=profile.decoder if appearance else profile.motion_decoder,
        pretrained=stream_init(profile, stream, appearance_run),
        seed=profile.seed,
        # data loading in this process: a forked loader worker can deadlock once OpenCV's thread
        # pool has run here (the flow stage), and decoding small images is cheap beside a step
        workers=0,
        threads=TORCH_THREADS,
        checkpoint_every=max(50, iterations // 4),
        resume=True,
    )


def _train_parameters(profile: Profile, stream: str, source: Any) -> dict[str, Any]:
    """What a stream's key hashes: its training data and every `TrainConfig` field that changes the
    weights (not where they go, how often they are saved, or the thread count)."""
    from fusionseg.train.stream import RESUMABLE_CHANGES

    config = dataclasses.asdict(train_config(profile, Path("."), stream))
    recipe = {name: value for name, value in config.items() if name not in RESUMABLE_CHANGES}
    if recipe["pretrained"] is not True:  # the appearance stream's weights: their stage's key (in
        recipe["pretrained"] = "appearance"  # the pseudo-labels' key) stands for them, not a path
    return {"source": source, "config": recipe, "device": profile.torch_device()}


def _train(profile: Profile, stream: str, pairs: Any) -> Path:
    """Train `stream` into its stage folder's `train/` (resuming from its latest checkpoint); return
    model.pt."""
    from fusionseg.train.stream import train_stream

    train_stream(train_config(profile, stage_dir(profile, stream), stream), pairs)
    return trained_weights(profile, stream)


def _appearance_parameters(profile: Profile) -> dict[str, Any]:
    plan = profile.plan
    return _train_parameters(profile, "appearance", list(plan.appearance)) | {"test": plan.appearance_test}


def _appearance_body(profile: Profile, deps: dict[str, StageResult]) -> tuple[dict[str, str], dict[str, Any]]:
    from fusionseg.checkpoints import load_stream
    from fusionseg.infer import image_set_iou
    from fusionseg.train.stream import ImageSetPairs

    _set_threads()
    plan = profile.plan
    pairs = ImageSetPairs(profile.image_set(*plan.appearance))
    weights = _train(profile, "appearance", pairs)
    outputs, info = {"weights": str(weights)}, {}
    if plan.appearance_test is not None:
        test_set = profile.image_set(*plan.appearance_test)
        model = load_stream(weights).to(profile.torch_device())
        scores = image_set_iou(model, test_set, progress=False)
        info["test_iou"] = float(np.mean(scores))
        row = {"dataset": test_set.name, "split": plan.appearance_test[1], "n_images": len(scores)}
        outputs["test_iou"] = _write(
            profile, "appearance_test_iou", pd.DataFrame([row | {"J_mean": info["test_iou"]}])
        )
    return outputs, info


def _motion_parameters(profile: Profile) -> dict[str, Any]:
    return _train_parameters(profile, "motion", "pseudo_labels")


def _motion_body(profile: Profile, deps: dict[str, StageResult]) -> tuple[dict[str, str], dict[str, Any]]:
    from fusionseg.pseudo_labels import load_pseudo_labels
    from fusionseg.train.stream import ImageSetPairs

    _set_threads()
    init = stream_init(profile, "motion")
    if init is not True and not Path(init).is_file():
        raise DataError(
            f"{init}: not found; motion_init='appearance' starts from the appearance stage's weights"
        )
    pairs = load_pseudo_labels(deps["pseudo_labels"].path("set"))
    if len(pairs) == 0:
        raise DataError(
            f"{deps['pseudo_labels'].path('set')}: the pseudo-label stage kept no frame; the motion stream "
            "has nothing to train on (see pseudo_label_funnel.csv)"
        )
    weights = _train(profile, "motion", ImageSetPairs(pairs))
    return {"weights": str(weights)}, {"training_frames": len(pairs)}


# ----------------------------------------------------------------------------------------------
# Stage: flow


def _all_videos(profile: Profile) -> list[Video]:
    """Every video the chain reads: weak, fusion and benchmark videos (each once)."""
    plan = profile.plan
    videos: dict[tuple[str, str], Video] = {}
    for dataset, split in dict.fromkeys([plan.weak, plan.fusion, *plan.benchmarks]):
        for video in profile.videos(dataset, split):
            videos.setdefault((video.dataset, video.name), video)
    return list(videos.values())


def _flow_parameters(profile: Profile) -> dict[str, Any]:
    return {"method": profile.flow_method, "size": None, "max_videos": profile.max_videos}


def _flow_body(profile: Profile, deps: dict[str, StageResult]) -> tuple[dict[str, str], dict[str, Any]]:
    from fusionseg.flow import compute_videos

    videos = _all_videos(profile)
    cache = flow_cache(profile)
    compute_videos(videos, profile.flow_method, None, cache, workers=1)
    # the output lists this run's folders of the shared cache, which other runs add to harmlessly
    listing = stage_dir(profile, "flow") / "videos.json"
    write_json(listing, [str(cache.folder(video, profile.flow_method)) for video in videos])
    return {"videos": str(listing)}, {"videos": len(videos), "frames": sum(len(v) for v in videos)}


def flow_shard(profile: Profile, shard: tuple[int, int]) -> int:
    """Compute the flow of shard (K, N) of the chain's videos into the profile's flow cache (the data
    stage first), without completing the flow stage; return the number of videos in the shard."""
    from fusionseg.flow import compute_videos, select_shard

    data(profile)
    videos = select_shard(_all_videos(profile), shard)
    compute_videos(videos, profile.flow_method, None, flow_cache(profile), workers=1)
    return len(videos)


# ----------------------------------------------------------------------------------------------
# Stage: pseudo-labels


def _pseudo_label_parameters(profile: Profile) -> dict[str, Any]:
    weak = profile.plan.weak
    return {
        "config": dataclasses.asdict(profile.pseudo_labels),
        "source": list(weak),
        "boxes": "from masks (min_area 0.002, merge all)" if weak[0] == "davis" else "annotated",
        "max_videos": profile.max_videos,
        "quality_frames": profile.quality_frames,
        "seed": profile.seed,
    }


def weak_videos_of(profile: Profile) -> list[Video]:
    """The boxed videos the pseudo-label stage reads (DAVIS: boxes from its masks, masks removed)."""
    from fusionseg.pseudo_labels import weak_videos

    source, split = profile.plan.weak
    return weak_videos(source, profile.dataset_folder(source), split, max_videos=profile.max_videos)


def human_masks(profile: Profile, names: set[str]) -> list[Video] | None:
    """Videos with true masks for the quality check: the synthetic VID masks, DAVIS train, else None."""
    weak = profile.plan.weak
    if profile.data == "synthetic":
        from fusionseg.synth.world import SynthManifest, load_vid_with_masks

        videos = load_vid_with_masks(SynthManifest.load(profile.resolve_data_root()), weak[1])
    elif weak[0] == "davis":
        videos = profile.videos(*weak)
    else:
        return None
    return [video for video in videos if video.name in names]


def _pseudo_label_body(
    profile: Profile, deps: dict[str, StageResult]
) -> tuple[dict[str, str], dict[str, Any]]:
    from fusionseg.pseudo_labels import appearance_segmenter, funnel, quality_study, run_pipeline

    _set_threads()
    config = profile.pseudo_labels
    videos = weak_videos_of(profile)
    segment = appearance_segmenter(deps["appearance"].path("weights"), profile.torch_device())
    flow_images = flow_image_arrays(profile)
    out = stage_dir(profile, "pseudo_labels") / "set"
    records = run_pipeline(videos, segment, flow_images, config, out)
    table = funnel(records, config)
    outputs = {"set": str(out), "manifest": str(out / "manifest.csv")}
    outputs["funnel"] = _write(profile, "pseudo_label_funnel", table)
    info = {
        "videos": len(videos),
        "frames_in": int(table["frames"].iloc[0]),
        "frames_kept": int(table["frames"].iloc[-1]),
    }
    humans = human_masks(profile, {video.name for video in videos})
    if humans and info["frames_kept"]:
        quality = quality_study(records, out, humans, config, profile.quality_frames, profile.seed)
        outputs["quality"] = _write(profile, "pseudo_label_quality", quality)
        info["jaccard_kept"] = float(quality["jaccard_all"].iloc[0])
    if not info["frames_kept"]:
        # A barely trained appearance stream (smoke) passes no test: keep the chain running on the
        # pruned segmentations alone (the quality study's "no tests" variant), and say so.
        log(f"WARNING: no frame passed the tests; the motion stream trains on {FALLBACK}")
        out = stage_dir(profile, "pseudo_labels") / "set_pruning_only"
        run_pipeline(videos, segment, flow_images, dataclasses.replace(config, steps=()), out)
        outputs |= {"set": str(out), "manifest": str(out / "manifest.csv")}
        info["fallback"] = FALLBACK
    return outputs, info


# ----------------------------------------------------------------------------------------------
# Stage: fusion


def fusion_recipe(profile: Profile) -> dict[str, Any]:
    """The fusion layers' training recipe, as `fusionseg.train.fusion.train_designs` takes it. The
    fusion stage's key hashes the same dict, so no knob can reach the training but not the key."""
    return {
        "iterations": profile.fusion_iterations,
        "batch_size": profile.batch_size,
        "lr": profile.fusion_lr,
        "weight_decay": profile.fusion_weight_decay,
        "seed": profile.seed,
    }


def _fusion_parameters(profile: Profile) -> dict[str, Any]:
    return {
        "videos": list(profile.plan.fusion),
        **fusion_recipe(profile),
        "max_videos": profile.max_videos,
        "max_logit_bytes": FUSION_MAX_BYTES,
    }


def fusion_logits(profile: Profile, streams: Sequence[Any], videos: Sequence[Video], every: int) -> Any:
    """The frozen streams' (appearance, motion) logits and the labels of every `every`-th annotated
    frame of `videos`, from the profile's flow cache: what the fusion layers train on
    (`fusionseg.train.fusion.FusionData`)."""
    from fusionseg.train import fusion

    cache = flow_cache(profile)
    return fusion.collect_fusion_data(
        *streams,
        videos,
        flow_images=lambda video: cache.flow_images(video, profile.flow_method),
        every=every,
        progress=False,
    )


def train_fusion_designs(
    profile: Profile, data: Any, folder: Path
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Both fusion designs trained on `data` with the profile's `fusion_recipe`, saved in `folder`
    (`fusionseg.train.fusion.train_designs`)."""
    from fusionseg.train import fusion

    return fusion.train_designs(data, folder=folder, **fusion_recipe(profile))


def _fusion_body(profile: Profile, deps: dict[str, StageResult]) -> tuple[dict[str, str], dict[str, Any]]:
    from fusionseg.checkpoints import load_stream
    from fusionseg.train import fusion

    _set_threads()
    folder = stage_dir(profile, "fusion")
    logits = folder / "logits.pt"  # the frozen streams' logits: computed once, kept for a resume
    if logits.is_file():
        data = fusion.load_fusion_data(logits)
    else:
        videos = profile.videos(*profile.plan.fusion)
        device = profile.torch_device()
        streams = [load_stream(deps[name].path("weights")).to(device) for name in STREAMS]
        data = fusion_logits(profile, streams, videos, fusion.frame_step(videos, FUSION_MAX_BYTES))
        fusion.save_fusion_data(data, logits)
    outputs, rows = train_fusion_designs(profile, data, folder)
    outputs["table"] = _write(profile, "fusion_training", pd.DataFrame(rows))
    return outputs, {"frames": len(data)} | {f"{r['design']}_loss": r["final_loss"] for r in rows}


# ----------------------------------------------------------------------------------------------
# Stage: evaluate


def mask_folder(profile: Profile, dataset: str, method: str) -> Path:
    """Where the evaluate stage writes `method`'s masks on `dataset`: `<folder>/<video>/<frame>.png`
    ({0, 255}, at the annotation's size; annotated frames only for Ours-*, every frame for Flow-*)."""
    from fusionseg.benchmark import slug

    return stage_dir(profile, "evaluate") / "masks" / dataset / slug(method)


def reference_frames(profile: Profile, dataset: str, videos: Sequence[Video]) -> pd.DataFrame | None:
    """The official FusionSeg per-frame J and F on `videos`, or None when the profile has no copy of
    the DAVIS benchmark's data (synthetic profiles, other datasets)."""
    from fusionseg.data.davis_benchmark import PER_FRAME_FILE, read_published_frames

    if profile.data != "real" or dataset != "davis":
        return None
    root = profile.dataset_folder("davis_benchmark")
    if not (root / PER_FRAME_FILE).is_file():
        log(f"no {root / PER_FRAME_FILE}: the tables have no official FusionSeg reference")
        return None
    return read_published_frames(root, videos)


def _evaluate_parameters(profile: Profile) -> dict[str, Any]:
    from fusionseg.evaluate import METHODS, MOVING_FRACTION, REFERENCE

    plan = profile.plan
    return {
        "benchmarks": [list(b) for b in plan.benchmarks],
        "methods": list(METHODS),
        "moving_static": plan.moving_static,
        "moving_fraction": MOVING_FRACTION,
        "max_videos": profile.max_videos,
        "threshold": 0.5,
        "reference": REFERENCE if profile.data == "real" else None,
    }


def _load_models(profile: Profile, deps: dict[str, StageResult]) -> Any:
    from fusionseg.benchmark import Models
    from fusionseg.checkpoints import load_fusion, load_stream
    from fusionseg.evaluate import FUSION_DESIGNS

    device = profile.torch_device()
    fusions = {m: load_fusion(deps["fusion"].path(d)).to(device) for m, d in FUSION_DESIGNS.items()}
    appearance = load_stream(deps["appearance"].path("weights")).to(device)
    return Models(appearance, load_stream(deps["motion"].path("weights")).to(device), fusions)


def _evaluate_body(profile: Profile, deps: dict[str, StageResult]) -> tuple[dict[str, str], dict[str, Any]]:
    from fusionseg.benchmark import Flows, benchmark_tables, score_benchmark

    _set_threads()
    models = _load_models(profile, deps)
    flows = Flows(flow_cache(profile), profile.flow_method)
    outputs: dict[str, str] = {}
    info: dict[str, Any] = {}
    for dataset, split in profile.plan.benchmarks:
        videos = profile.videos(dataset, split)
        masks = stage_dir(profile, "evaluate") / "masks" / dataset
        per_frame = score_benchmark(
            videos, models, masks, flows, dataset, reference_frames(profile, dataset, videos)
        )
        tables = benchmark_tables(per_frame, dataset, rank_motion=dataset == profile.plan.moving_static)
        outputs |= {name: _write(profile, name, table) for name, table in tables.items()}
        detail = tables[f"{TABLES[dataset]}_detail"]
        info |= {f"{dataset}:{m}": float(j) for m, j in zip(detail["method"], detail["J_mean"], strict=True)}
    return outputs, info


# ----------------------------------------------------------------------------------------------
# Stages of the real-data run only: the flow baselines' variants and the flow speed table


def _flow_baselines_parameters(profile: Profile) -> dict[str, Any]:
    from fusionseg.baselines import DEFAULT_SALIENCY, METHOD_NOTES
    from fusionseg.flow import resolve_params

    runs = profile.flow_baselines
    runs = [[method, split, list(baselines)] for method, split, baselines in runs]
    flow_params = {method: resolve_params(method, {}) for method, _, _ in runs}
    return {"runs": runs, "flow_params": flow_params, "default_saliency": DEFAULT_SALIENCY} | METHOD_NOTES


def _flow_baselines_body(profile: Profile, deps: dict[str, StageResult]) -> tuple[dict[str, str], dict]:
    from fusionseg.baselines import score_variants, variant_file, variant_table, write_csv
    from fusionseg.results import results_dir

    all_videos = profile.videos("davis", "trainval")
    val_names = {v.name for v in profile.videos("davis", "val")}
    scores = score_variants(all_videos, val_names, profile.flow_baselines, flow_cache(profile))
    outputs: dict[str, str] = {}
    for variant, per_sequence in scores.items():
        path = results_dir(profile.label) / "flow_baselines" / variant_file(variant)
        write_csv(per_sequence, path)
        outputs[variant_file(variant)] = str(path)
    outputs["table1_flow_baselines"] = _write(
        profile, "table1_flow_baselines", variant_table(scores, val_names)
    )
    return outputs, {"variants": len(scores)}


def _flow_speed_parameters(profile: Profile) -> dict[str, Any]:
    from fusionseg.flow import SPEED_RUNS, SPEED_SIZE

    return {
        "pair": f"DAVIS {SPEED_SEQUENCE} frames 0 -> 1, resized bilinearly to {SPEED_SIZE[1]}x{SPEED_SIZE[0]}",
        "runs": [[method, params, repeats] for method, params, repeats in SPEED_RUNS],
    }


def _flow_speed_body(profile: Profile, deps: dict[str, StageResult]) -> tuple[dict[str, str], dict[str, Any]]:
    import cv2

    from fusionseg.flow import speed_table

    videos = profile.videos("davis", "trainval")
    video = next((v for v in videos if v.name == SPEED_SEQUENCE), None)
    if video is None:
        raise DataError(f"{profile.dataset_folder('davis')}: no DAVIS sequence {SPEED_SEQUENCE!r}")
    load = os.getloadavg()[0]
    outputs = {"flow_speed": _write(profile, "flow_speed", speed_table(video.image(0), video.image(1)))}
    info = {"opencv_threads": cv2.getNumThreads(), "load_before": load, "load_after": os.getloadavg()[0]}
    return outputs, info


# ----------------------------------------------------------------------------------------------
# The chain


def _real_davis(profile: Profile) -> bool:
    return profile.data == "real" and any(dataset == "davis" for dataset, _ in profile.plan.benchmarks)


CHAIN = Chain(
    stages=(
        Stage("data", (), _data_parameters, _data_body),
        Stage("flow", ("data",), _flow_parameters, _flow_body),
        Stage("appearance", ("data",), _appearance_parameters, _appearance_body),
        Stage("pseudo_labels", ("data", "appearance", "flow"), _pseudo_label_parameters, _pseudo_label_body),
        Stage("motion", ("pseudo_labels",), _motion_parameters, _motion_body),
        Stage("fusion", ("data", "appearance", "motion", "flow"), _fusion_parameters, _fusion_body),
        Stage(
            "evaluate",
            ("data", "appearance", "motion", "fusion", "flow"),
            _evaluate_parameters,
            _evaluate_body,
        ),
        Stage(
            "flow_baselines",
            ("data", "flow"),
            _flow_baselines_parameters,
            _flow_baselines_body,
            applies=lambda profile: bool(profile.flow_baselines) and _real_davis(profile),
        ),
        Stage(
            "flow_speed",
            ("data",),
            _flow_speed_parameters,
            _flow_speed_body,
            applies=lambda profile: profile.flow_speed and _real_davis(profile),
        ),
    ),
    version=1,  # bump when a stage's outputs change meaning: every key changes
)
STAGES = CHAIN.names


def stage(profile: Profile, name: str, force: Sequence[str] = ()) -> StageResult:
    """Run (or reuse) one stage of the chain and what it depends on."""
    return run_stage(CHAIN, profile, name, force)


def data(profile: Profile, force: Sequence[str] = ()) -> StageResult:
    """The profile's data: the synthetic world generated (smoke, mini) or the real folders checked."""
    return stage(profile, "data", force)


def flow(profile: Profile, force: Sequence[str] = ()) -> StageResult:
    """Optical flow and flow images of every video the chain reads (`flow_cache(profile)`)."""
    return stage(profile, "flow", force)


def appearance(profile: Profile, force: Sequence[str] = ()) -> StageResult:
    """The trained appearance stream (`outputs["weights"]`) and its test-set IoU (chapter 2)."""
    return stage(profile, "appearance", force)


def pseudo_labels(profile: Profile, force: Sequence[str] = ()) -> StageResult:
    """The pseudo-labelled set (`outputs["set"]`), funnel and quality tables (chapter 3)."""
    return stage(profile, "pseudo_labels", force)


def motion(profile: Profile, force: Sequence[str] = ()) -> StageResult:
    """The trained motion stream (`outputs["weights"]`) (chapter 4)."""
    return stage(profile, "motion", force)


def fusion(profile: Profile, force: Sequence[str] = ()) -> StageResult:
    """The trained fusion layers: `outputs["paper"]` (PaperFusion), `outputs["release"]` (chapter 5)."""
    return stage(profile, "fusion", force)


def evaluate(profile: Profile, force: Sequence[str] = ()) -> StageResult:
    """Every method on every benchmark of the profile; the tables in `results/<label>/` (chapters 6-9)."""
    return stage(profile, "evaluate", force)


def run_all(profile: Profile, until: str | None = None, force: Sequence[str] = ()) -> dict[str, StageResult]:
    """Run (or reuse) every stage of the profile in order, up to and including `until`; "all" in
    `force` recomputes everything. Writes `results/<label>/pipeline_timings.csv`."""
    return run_chain(CHAIN, profile, until, force)
