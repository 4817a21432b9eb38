"""`fusionseg select-recipe`: choose a stream recipe on held-out *training* data, never a test set.

A reproduction that tunes on its benchmarks reports numbers it selected. So every recipe change of a
profile (a decoder, a learning rate, ...) is measured here first: each variant trains one stream
with the profile's recipe plus the variant's overrides, for a short `--iterations` budget, on the
stream's training data minus a held-out part, and is scored on that part:

- `--stream appearance`: the appearance training set (DUTS-TR) without its last `--heldout`
  images (default 300); scored by foreground IoU on those images.
- `--stream motion`: the pseudo-labelled flow images (the chain runs up to its pseudo-label stage,
  cached) without those of the last `--heldout` weak videos in name order (default 6 of DAVIS
  train's 30); scored by the J mean (per video, then over videos) of the motion stream on every
  annotated frame of those videos against their *true* masks. DAVIS train is training data.
  `--variant motion_iterations=N` compares budgets (a variant's own count wins over `--iterations`).
- `--stream fusion`: both fusion designs (the paper's and the release's) on the frozen streams of
  the chain (run up to its motion stage, cached), trained on the fusion videos (DAVIS train) without
  the last `--heldout` in name order (default 6) and scored by the J mean (per video, then over
  videos) on those, at the streams' output size. The variants change only the fusion's recipe
  (`fusion_lr_paper`, `fusion_lr_release`, `fusion_weight_decay`, `fusion_iterations`); each trains
  in seconds to minutes, since the streams' logits are computed once and kept.

The test sets (DUTS-TE, DAVIS val, SegTrack-v2) are never read.

    fusionseg select-recipe --profile real-lite --variant decoder=none --variant decoder=skip4
    fusionseg select-recipe --profile real-lite --stream motion \
        --variant motion_decoder=none --variant motion_decoder=skip4

write `<results>/<profile>/recipe_selection.csv` (appearance), `recipe_selection_motion.csv` or
`recipe_selection_fusion.csv`, one row per variant (the book's ablation tables), and keep each variant's weights under
`runs/<profile>/recipe_selection[_motion|_fusion]/` (a rerun resumes them). `--question NAME` names what a
comparison asks, and its table (`recipe_selection_solver.csv` for `--question solver`), so that a
second question does not overwrite the first one's table:

    fusionseg select-recipe --profile real-lite --question solver \
        --variant optimizer=sgd --variant optimizer=adamw,lr=0.0005
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionseg import pipeline
from fusionseg.data import DataError, Video
from fusionseg.pipeline import STREAMS, train_config
from fusionseg.profiles import Profile, flatten_overrides, get_profile, parse_overrides, resolve
from fusionseg.results import (
    Provenance,
    add_record_argument,
    start_recording,
    timed_stage,
    unrecorded,
    write_table,
)

# what is kept out of training, per stream: the last images of the appearance training set, or the
# last weak videos (in name order) of the pseudo-labelled set
DEFAULT_HELDOUT = {"appearance": 300, "motion": 6, "fusion": 6}
DEFAULT_ITERATIONS = 400
# the profile field that --iterations sets, per stream
ITERATION_FIELDS = {"appearance": "iterations", "motion": "motion_iterations"}
TABLES = {
    "appearance": "recipe_selection",
    "motion": "recipe_selection_motion",
    "fusion": "recipe_selection_fusion",
}
SELECTED = (*STREAMS, "fusion")  # what --stream may name

Scorer = Callable[[Any], dict[str, Any]]  # a trained stream -> its held-out scores (one table row's)


def split_training_set(profile: Profile, heldout: int) -> tuple[Any, Any]:
    """(the profile's appearance training set without its last `heldout` images, those images).
    The pipeline's `data` stage runs first (cached): it checks real data and generates the synthetic world."""
    pipeline.data(profile)
    image_set = profile.image_set(*profile.plan.appearance)
    _check_heldout(heldout, len(image_set), "images")
    train = dataclasses.replace(image_set, items=image_set.items[:-heldout])
    kept_out = dataclasses.replace(
        image_set, name=f"{image_set.name} (held out)", items=image_set.items[-heldout:]
    )
    return train, kept_out


def split_pseudo_labels(profile: Profile, heldout: int) -> tuple[Any, list[Video]]:
    """(the pseudo-labelled flow images of every weak video but the last `heldout` in name order,
    those held-out videos with their true masks). The chain runs up to its pseudo-label stage (cached)."""
    from fusionseg.pseudo_labels import load_pseudo_labels

    labelled = pipeline.pseudo_labels(profile)
    names = sorted(video.name for video in pipeline.weak_videos_of(profile))
    _check_heldout(heldout, len(names), "videos")
    kept_out = set(names[-heldout:])
    videos = pipeline.human_masks(profile, kept_out)
    if not videos:
        raise DataError(
            f"--stream motion scores the held-out weak videos against their true masks, and "
            f"{profile.plan.weak[0]} has none; choose the motion stream's recipe on a profile whose "
            "weak videos are annotated (real-lite: DAVIS train)"
        )
    return load_pseudo_labels(labelled.path("set"), exclude_videos=kept_out), videos


def check_keeps_the_inputs(base: Profile, variant: dict[str, Any], stage: str) -> None:
    """A motion or fusion variant must train on the base's inputs: it may not change a stage before
    `stage` (the pseudo-labels; for the fusion, also the streams), which this command does not rerun."""
    changed = resolve(base.name, dict(base.overrides) | flatten_overrides(variant))
    for name in pipeline.CHAIN.stages_before(stage):
        parameters = pipeline.CHAIN.stage(name).parameters
        if parameters(changed) != parameters(base):
            raise ValueError(
                f"variant {variant_name(variant)!r} changes the {name} stage, so the {stage} stage's "
                f"training data; --stream {stage} compares recipes on the inputs of one run"
            )


def split_fusion_logits(profile: Profile, heldout: int) -> tuple[Any, dict[str, Any]]:
    """(the frozen streams' logits and labels on the fusion videos but the last `heldout` in name
    order, {held-out video: its logits and labels}). The chain runs up to its motion stage (cached);
    the logits are computed once per pair of streams and kept beside the variants' weights (frames
    subsampled as the fusion stage does, `fusion.frame_step`)."""
    from fusionseg.checkpoints import load_stream
    from fusionseg.train import fusion

    appearance, motion = pipeline.appearance(profile), pipeline.motion(profile)
    videos = sorted(profile.videos(*profile.plan.fusion), key=lambda video: video.name)
    _check_heldout(heldout, len(videos), "videos")
    folder = profile.work_dir() / TABLES["fusion"] / f"logits-{motion.key}-heldout={heldout}"
    # one file for the training videos, one per held-out video (a video may be called "train": DAVIS's is)
    groups = {"training-videos": videos[:-heldout]} | {
        f"heldout-{video.name}": [video] for video in videos[-heldout:]
    }
    if not all((folder / f"{name}.pt").is_file() for name in groups):
        streams = [
            load_stream(result.path("weights")).to(profile.torch_device()) for result in (appearance, motion)
        ]
        every = fusion.frame_step(videos, pipeline.FUSION_MAX_BYTES)  # as the fusion stage subsamples
        for name, group in groups.items():
            fusion.save_fusion_data(
                pipeline.fusion_logits(profile, streams, group, every), folder / f"{name}.pt"
            )
    train = fusion.load_fusion_data(folder / "training-videos.pt")
    return train, {
        video.name: fusion.load_fusion_data(folder / f"heldout-{video.name}.pt")
        for video in videos[-heldout:]
    }


def _check_heldout(heldout: int, available: int, unit: str) -> None:
    if not 0 < heldout < available:
        raise ValueError(f"--heldout must be between 1 and {available - 1} {unit}, got {heldout}")


def image_set_scorer(kept_out: Any) -> Scorer:
    """Score an appearance stream by its mean foreground IoU on the held-out images."""
    from fusionseg.infer import image_set_iou

    def score(model: Any) -> dict[str, Any]:
        scores = image_set_iou(model, kept_out, progress=False)
        return {"heldout_images": len(kept_out), "heldout_iou": float(np.mean(scores))}

    return score


def video_scorer(profile: Profile, videos: Sequence[Video]) -> Scorer:
    """Score a motion stream by its J mean on the held-out videos' annotated frames (per video, then
    the mean over videos, as the DAVIS benchmark averages), from the chain's cached flow images."""
    from fusionseg.evaluate import score_frame
    from fusionseg.infer import predict_video

    flow_images = pipeline.flow_image_arrays(profile)

    def score(model: Any) -> dict[str, Any]:
        per_video, frames = [], 0
        for video in videos:
            probabilities = predict_video(model, flow_images(video))
            indices = video.annotated_indices
            # J as the evaluation scores it: at the annotation's size (DAVIS: 854x480 for 427x240 frames)
            scores = [score_frame(probabilities[i] > 0.5, video.label(i), boundary=False)[0] for i in indices]
            per_video.append(np.mean(scores))
            frames += len(indices)
        return {
            "heldout_videos": " ".join(video.name for video in videos),
            "heldout_frames": frames,
            "heldout_J": float(np.mean(per_video)),
        }

    return score


def fusion_heldout_j(module: Any, videos: dict[str, Any]) -> float:
    """A fusion's J mean on held-out videos (per video over its frames, then over videos), at the
    streams' output size: foreground where the fused logits favour it."""
    import torch

    from fusionseg.data.types import IGNORE
    from fusionseg.metrics import iou

    module.eval()
    per_video = []
    with torch.no_grad():
        for data in videos.values():
            fused = module(data.appearance.float(), data.motion.float())
            masks = (fused[:, 1] > fused[:, 0]).numpy()
            labels = data.labels.numpy()
            per_video.append(
                np.mean([iou(mask, label, IGNORE) for mask, label in zip(masks, labels, strict=True)])
            )
    return float(np.mean(per_video))


def score_fusion_variant(
    base: Profile, variant: dict[str, Any], train: Any, heldout: dict[str, Any]
) -> dict[str, Any]:
    """Train both fusion designs as one variant of `base` on the `train` logits and score each on the
    held-out videos. Weights go to `runs/<base label>/recipe_selection_fusion/<variant>/`."""
    from fusionseg.checkpoints import load_fusion

    profile = resolve(base.name, dict(base.overrides) | flatten_overrides(variant))
    folder = base.work_dir() / TABLES["fusion"] / variant_name(variant)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    paths, rows = pipeline.train_fusion_designs(profile, train, folder)
    row = {
        "variant": variant_name(variant),
        "iterations": profile.fusion_iterations,
        "train_frames": len(train),
    }
    row |= {
        "heldout_videos": " ".join(heldout),
        "heldout_frames": sum(len(data) for data in heldout.values()),
    }
    for design, path in paths.items():
        row[f"heldout_J_{design}"] = fusion_heldout_j(load_fusion(Path(path)), heldout)
    row |= {f"final_loss_{r['design']}": r["final_loss"] for r in rows}
    return row | {"train_s": time.perf_counter() - start}


def score_variant(
    base: Profile, stream: str, variant: dict[str, Any], iterations: int, train: Any, score: Scorer
) -> dict[str, Any]:
    """Train `stream` as one variant of `base` on the `train` pairs for `iterations` steps (unless the
    variant sets its own: `motion_iterations=N` for the motion stream) and score it. Its weights go to
    `runs/<base label>/<table>/<variant>,iterations=N/` (resumed if there)."""
    from fusionseg.checkpoints import checkpoint_iteration, latest_checkpoint, load_stream
    from fusionseg.train.stream import ImageSetPairs, train_stream

    budget = {ITERATION_FIELDS[stream]: iterations}
    profile = resolve(base.name, dict(base.overrides) | budget | flatten_overrides(variant))
    iterations = profile.stream_iterations(stream)
    folder = base.work_dir() / TABLES[stream] / f"{variant_name(variant)},iterations={iterations}"
    config = train_config(profile, folder, stream, appearance_run=base)  # the base's stages (checked)
    resumed_at = checkpoint_iteration(latest_checkpoint(Path(config.out_dir)))
    start = time.perf_counter()
    train_stream(config, ImageSetPairs(train))
    trained = iterations - resumed_at  # the speed of the steps this call ran (none when all were cached)
    seconds_per_iteration = (time.perf_counter() - start) / trained if trained > 0 else float("nan")
    model = load_stream(Path(config.out_dir) / "model.pt").to(profile.torch_device())
    return (
        {"variant": variant_name(variant), "iterations": iterations, "train_images": len(train)}
        | score(model)
        | {"train_s_per_iteration": seconds_per_iteration}
    )


def variant_name(variant: dict[str, Any]) -> str:
    """A variant's overrides as one label, e.g. `decoder=skip4` (`base` for no change)."""
    pairs = flatten_overrides(variant)
    return ",".join(f"{key}={value}" for key, value in pairs.items()) or "base"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="real-lite", help="the profile whose recipe is varied")
    parser.add_argument(
        "--stream", choices=SELECTED, default="appearance", help="the stream trained (or the fusion layers)"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="one recipe to compare (repeatable); no --variant: the profile's own recipe",
    )
    parser.add_argument("-p", "--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an override applied to every variant")  # fmt: skip
    parser.add_argument(
        "--iterations",
        type=int,
        help=f"training steps per stream variant (default {DEFAULT_ITERATIONS}; a motion variant may set its own "
        "with motion_iterations=N); the fusion trains for "
        "the profile's fusion_iterations (vary it with --variant fusion_iterations=N)",
    )
    parser.add_argument(
        "--heldout",
        type=int,
        help=f"kept out of training: appearance images (default {DEFAULT_HELDOUT['appearance']}), "
        f"weak videos (default {DEFAULT_HELDOUT['motion']}) or fusion videos (default {DEFAULT_HELDOUT['fusion']})",
    )
    parser.add_argument(
        "--question",
        help="a name for what is compared (e.g. solver): the table becomes recipe_selection_<question>.csv, "
        "so that one question's table never overwrites another's",
    )
    add_record_argument(parser)


def table_name(stream: str, question: str | None) -> str:
    """The selection table of `stream`, one per question: `recipe_selection[_motion][_<question>]`."""
    if question is not None and not question.isidentifier():
        raise DataError(f"--question {question!r}: expected a short name of letters, digits and _")
    return TABLES[stream] + (f"_{question}" if question else "")


def run_command(args: argparse.Namespace) -> int:
    if args.record:
        start_recording()
    get_profile(args.profile)  # an unknown name fails here, with the known ones
    base = resolve(args.profile, parse_overrides(args.set))
    variants = [parse_overrides(text.split(",")) for text in args.variant] or [{}]
    heldout = DEFAULT_HELDOUT[args.stream] if args.heldout is None else args.heldout
    if args.stream == "fusion" and args.iterations is not None:
        raise ValueError(
            "--stream fusion trains for the profile's fusion_iterations; vary it with --variant fusion_iterations=N"
        )
    if args.stream == "fusion":
        iterations = None
    else:
        iterations = DEFAULT_ITERATIONS if args.iterations is None else args.iterations
    label, table = base.label, table_name(args.stream, args.question)
    command = "fusionseg select-recipe " + " ".join(
        [f"--profile {args.profile}", f"--stream {args.stream}"]
        + [f"-p {pair}" for pair in args.set]
        + [f"--variant {text}" for text in args.variant]
        + ([f"--iterations {iterations}"] if iterations is not None else [])
        + [f"--heldout {heldout}"]
        + ([f"--question {args.question}"] if args.question else [])
        + (["--record"] if args.record else [])
    )
    provenance = Provenance(
        stage=table,
        profile=label,
        command=command,
        parameters={"stream": args.stream, "variants": args.variant, "iterations": iterations,
                    "heldout": heldout},
    )  # fmt: skip
    with timed_stage(provenance):
        # the variants change no data (a variant that changes the pseudo-labels is not measured here)
        with unrecorded():  # the chain's stages: their records belong to `fusionseg reproduce`
            for variant in variants if args.stream != "appearance" else ():
                check_keeps_the_inputs(base, variant, args.stream)
            if args.stream == "appearance":
                train, kept_out = split_training_set(base, heldout)
                score = image_set_scorer(kept_out)
            elif args.stream == "motion":
                train, videos = split_pseudo_labels(base, heldout)
                score = video_scorer(base, videos)
            else:
                train, kept_videos = split_fusion_logits(base, heldout)
        if args.stream == "fusion":
            rows = [score_fusion_variant(base, variant, train, kept_videos) for variant in variants]
        else:
            rows = [
                score_variant(base, args.stream, variant, iterations, train, score) for variant in variants
            ]
        scores = pd.DataFrame(rows)
        provenance.outputs.append(str(write_table(scores, label, table)))
    print(scores.to_string(index=False))
    return 0
