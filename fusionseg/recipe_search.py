"""`fusionseg select-recipe`: choose a stream recipe on held-out *training* images, never a test set.

A reproduction that tunes on its benchmarks reports numbers it selected. So every recipe change of a
profile (a decoder, a learning rate, ...) is measured here first: each variant trains the
appearance stream with the profile's recipe plus the variant's overrides, on the profile's
appearance training set *minus* its last `--heldout` images, for a short `--iterations` budget,
and is scored by foreground IoU on those held-out images. The test sets (DUTS-TE, DAVIS val,
SegTrack-v2) are never read.

    fusionseg select-recipe --profile real-lite --variant decoder=none --variant decoder=skip4

writes `<results>/<profile>/recipe_selection.csv`, one row per variant (the book's ablation table),
and keeps each variant's weights under `runs/<profile>/recipe_selection/` (a rerun resumes them).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionseg import pipeline
from fusionseg.pipeline import train_config
from fusionseg.profiles import Profile, flatten_overrides, get_profile, parse_overrides, resolve
from fusionseg.results import Provenance, add_record_argument, start_recording, timed_stage, write_table

DEFAULT_HELDOUT = 300  # images at the end of the training set, kept out of training
DEFAULT_ITERATIONS = 400


def split_training_set(profile: Profile, heldout: int) -> tuple[Any, Any]:
    """(the profile's appearance training set without its last `heldout` images, those images).
    The pipeline's `data` stage runs first (cached): it checks real data and generates the synthetic world."""
    pipeline.data(profile)
    image_set = profile.image_set(*profile.plan.appearance)
    if not 0 < heldout < len(image_set):
        raise ValueError(f"--heldout must be between 1 and {len(image_set) - 1}, got {heldout}")
    train = dataclasses.replace(image_set, items=image_set.items[:-heldout])
    kept_out = dataclasses.replace(
        image_set, name=f"{image_set.name} (held out)", items=image_set.items[-heldout:]
    )
    return train, kept_out


def score_variant(
    base: Profile, variant: dict[str, Any], iterations: int, train: Any, kept_out: Any
) -> dict[str, Any]:
    """Train one variant of `base` on the `train` images and score it on the `kept_out` ones. Its
    weights go to `runs/<base label>/recipe_selection/<variant>,iterations=N/` (resumed if there)."""
    from fusionseg.checkpoints import load_stream
    from fusionseg.infer import image_set_iou
    from fusionseg.train.stream import ImageSetPairs, train_stream

    profile = resolve(
        base.name, dict(base.overrides) | flatten_overrides(variant) | {"iterations": iterations}
    )
    folder = base.work_dir() / "recipe_selection" / f"{variant_name(variant)},iterations={iterations}"
    config = train_config(profile, folder)
    start = time.perf_counter()
    train_stream(config, ImageSetPairs(train))
    train_s = time.perf_counter() - start
    model = load_stream(Path(config.out_dir) / "model.pt").to(profile.torch_device())
    scores = image_set_iou(model, kept_out, progress=False)
    return {
        "variant": variant_name(variant),
        "iterations": iterations,
        "train_images": len(train),
        "heldout_images": len(kept_out),
        "heldout_iou": float(np.mean(scores)),
        "train_s_per_iteration": train_s / iterations,
    }


def variant_name(variant: dict[str, Any]) -> str:
    """A variant's overrides as one label, e.g. `decoder=skip4` (`base` for no change)."""
    pairs = flatten_overrides(variant)
    return ",".join(f"{key}={value}" for key, value in pairs.items()) or "base"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="real-lite", help="the profile whose recipe is varied")
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
        "--iterations", type=int, default=DEFAULT_ITERATIONS, help="training steps per variant"
    )
    parser.add_argument("--heldout", type=int, default=DEFAULT_HELDOUT, help="training images kept out")
    add_record_argument(parser)


def run_command(args: argparse.Namespace) -> int:
    if args.record:
        start_recording()
    get_profile(args.profile)  # an unknown name fails here, with the known ones
    base = resolve(args.profile, parse_overrides(args.set))
    variants = [parse_overrides(text.split(",")) for text in args.variant] or [{}]
    label = base.label
    command = "fusionseg select-recipe " + " ".join(
        [f"--profile {args.profile}"]
        + [f"-p {pair}" for pair in args.set]
        + [f"--variant {text}" for text in args.variant]
        + [f"--iterations {args.iterations}", f"--heldout {args.heldout}"]
        + (["--record"] if args.record else [])
    )
    provenance = Provenance(
        stage="recipe_selection",
        profile=label,
        command=command,
        parameters={"variants": args.variant, "iterations": args.iterations, "heldout": args.heldout},
    )
    with timed_stage(provenance):
        train, kept_out = split_training_set(base, args.heldout)  # the variants change no data
        rows = [score_variant(base, variant, args.iterations, train, kept_out) for variant in variants]
        table = pd.DataFrame(rows)
        provenance.outputs.append(str(write_table(table, label, "recipe_selection")))
    print(table.to_string(index=False))
    return 0
