"""`fusionseg synth --profile mini --seed 0 --out DIR`: a profile's synthetic world, into a folder of
your choice (the pipeline's data stage generates it into the cache by itself)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fusionseg.profiles import PROFILES
from fusionseg.synth.world import generate, summarize


def configure_parser(parser: argparse.ArgumentParser) -> None:
    synthetic = [name for name, profile in PROFILES.items() if profile.world is not None]
    parser.add_argument(
        "--profile", choices=synthetic, default="mini", help="whose world size (default: mini)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder (created; a previous world there is replaced)"
    )
    parser.add_argument(
        "--force", action="store_true", help="regenerate even if OUT already holds this world"
    )


def run_command(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    world = PROFILES[args.profile].world
    assert world is not None
    manifest = generate(world, args.seed, args.out, force=args.force)
    seconds = time.perf_counter() - start
    for dataset, entry in summarize(manifest).items():
        print(
            f"{dataset:<16} {entry['items']:>5} items {entry['frames']:>6} frames  -> {manifest.dataset_root(dataset)}"
        )
    print(f"synthetic world '{args.profile}' (seed {args.seed}) ready in {args.out} ({seconds:.1f} s)")
    return 0
