"""`fusionseg reproduce --profile NAME [-p KEY=VALUE ...] [--until STAGE] [--force STAGE]`: the
pipeline's chain (`fusionseg.pipeline`) for a profile, cached and resumable."""

from __future__ import annotations

import argparse
import time

from fusionseg import pipeline
from fusionseg import profiles as profiles_module
from fusionseg.io import DataError
from fusionseg.results import add_record_argument
from fusionseg.stages import log


def configure_parser(parser: argparse.ArgumentParser) -> None:
    profiles_module.add_profile_arguments(parser)
    parser.add_argument("--until", choices=pipeline.CHAIN.names, help="stop after this stage")
    parser.add_argument(
        "--force",
        action="append",
        default=[],
        choices=[*pipeline.CHAIN.names, "all"],
        help="recompute this stage and its downstream ones",
    )
    parser.add_argument(
        "--shard",
        metavar="K/N",
        help="only compute the optical flow of shard K of N (from 0) of the chain's videos into the shared "
        "flow cache, then stop: spreads the ImageNet VID flow over a cluster's job array; a later run "
        "without --shard finds it cached",
    )
    add_record_argument(parser)


def run_command(args: argparse.Namespace) -> int:
    from fusionseg.results import results_dir, start_recording

    if args.record:
        start_recording()
    try:
        profile = profiles_module.resolve(args.profile, profiles_module.parse_overrides(args.param))
    except ValueError as exc:
        raise DataError(str(exc)) from exc
    log(f"profile {profile.label}: {profile.description}; work dir {profile.work_dir()}")
    start = time.perf_counter()
    if args.shard:
        from fusionseg.flow import parse_shard

        try:
            shard = parse_shard(args.shard)
        except ValueError as exc:
            raise DataError(str(exc)) from exc
        videos = pipeline.flow_shard(profile, shard)
        log(f"flow of shard {args.shard}: {videos} videos in {pipeline.flow_cache(profile).root}")
        return 0
    results = pipeline.run_all(profile, args.until, args.force)
    for name, result in results.items():
        log(f"{name:<14} {result.status:<8} {result.wall_time_s:8.1f} s  {result.folder}")
    log(f"finished in {time.perf_counter() - start:.1f} s; results in {results_dir(profile.label)}")
    return 0
