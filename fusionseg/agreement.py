"""`fusionseg agreement`: run a profile's chain twice, on two paths through the CPU, and compare
every number of every table.

A reader who reruns the book on another machine should get the committed numbers back. Two x86
CPUs run different oneDNN and ATen kernels (AVX-512 on one, AVX2 on the other), and different
thread counts split the sums differently, so the floats of training differ in their last bits and
the runs drift apart. This command makes a second machine on one machine by changing the path
through the CPU with environment variables, and measures how far the numbers move:

    fusionseg agreement --profile mini --path default --path ONEDNN_MAX_CPU_ISA=SSE41
    fusionseg agreement --profile mini --path default --path OMP_NUM_THREADS=1

Each `--path` ("default", or one or more `NAME=VALUE` joined by commas) runs `fusionseg reproduce`
in a fresh process with those variables set, in its own work folder `runs/agreement/<path>/`
(cached and resumable like any chain; the committed results are never touched). Then every
ledger table (method, column, value in percent) of the runs is put side by side, with the spread
(largest minus smallest value) and whether it is within `TOLERANCE_J`, into
`<results>/<label>/agreement.csv` with its provenance. The reproducibility appendix shows it.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from fusionseg import profiles as profiles_module
from fusionseg.io import DataError, runs_root
from fusionseg.results import (
    TOLERANCE_J,
    Provenance,
    add_record_argument,
    start_recording,
    timed_stage,
    write_table,
)

DEFAULT_PATHS = ("default", "ONEDNN_MAX_CPU_ISA=SSE41")
LEDGER_COLUMNS = ["method", "column", "value"]
TABLE = "agreement"
_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


def parse_path(text: str) -> dict[str, str]:
    """The environment of a `--path`: {} for "default", else its NAME=VALUE pairs (comma-separated)."""
    if text == "default":
        return {}
    environment = {}
    for pair in text.split(","):
        name, equals, value = pair.partition("=")
        if not equals or not _NAME.fullmatch(name) or not value:
            raise DataError(
                f"--path {text!r}: expected 'default' or NAME=VALUE[,NAME=VALUE...] with upper-case "
                "environment variable names, e.g. ONEDNN_MAX_CPU_ISA=SSE41 or OMP_NUM_THREADS=1"
            )
        environment[name] = value
    return environment


def path_folder(text: str, root: Path | None = None) -> Path:
    """The work folder of a path's run (its runs/ and its results), `runs/agreement/<path>/`."""
    slug = re.sub(r"[^A-Za-z0-9_.=-]+", "_", text)
    if root is None:
        root = runs_root() / "agreement"
    return root / slug


def run_environment(text: str, folder: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a path's `fusionseg reproduce`: this one's, with the path's variables, and
    the work and results folders inside `folder`. FUSIONSEG_RESULTS is always set, so that a
    recording parent (which points it at the committed ledger) never lets a child write there."""
    environment = dict(os.environ if base is None else base)
    environment.update(parse_path(text))
    environment["FUSIONSEG_RUNS"] = str(folder)
    environment["FUSIONSEG_RESULTS"] = str(folder / "results")
    return environment


def run_path(text: str, folder: Path, profile: str, params: Sequence[str]) -> None:
    """`fusionseg reproduce --profile profile -p ...` on one path, its output in `folder/reproduce.log`."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "reproduce.log"
    command = [sys.executable, "-m", "fusionseg", "reproduce", "--profile", profile]
    command += [arg for pair in params for arg in ("-p", pair)]
    print(f"[agreement] path {text}: {' '.join(command[1:])} (log: {log})", flush=True)
    with open(log, "w") as stream:
        done = subprocess.run(
            command, env=run_environment(text, folder), stdout=stream, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        raise DataError(f"path {text}: fusionseg reproduce failed (exit {done.returncode}); see {log}")


def ledger_tables(folder: Path) -> dict[str, pd.DataFrame]:
    """The ledger tables (method, column, value) of one run's results folder, by name."""
    tables = {}
    for path in sorted(Path(folder).glob("*.csv")):
        table = pd.read_csv(path)
        if list(table.columns) == LEDGER_COLUMNS:
            tables[path.stem] = table
    return tables


def compare_runs(folders: Mapping[str, Path], tolerance: float = TOLERANCE_J) -> pd.DataFrame:
    """Every ledger table's values of the runs in `folders` (path -> its results/<label>/), side by
    side: columns table, method, column, one per path, spread (max - min, in points) and
    `within ±tolerance`. A value that one run lacks leaves the spread undefined and counts as
    not within."""
    runs = {name: ledger_tables(folder) for name, folder in folders.items()}
    names = sorted(set().union(*(tables.keys() for tables in runs.values())))
    rows = []
    for table in names:
        columns = []
        for path, tables in runs.items():
            values = tables.get(table, pd.DataFrame(columns=LEDGER_COLUMNS))
            columns.append(values.set_index(["method", "column"])["value"].rename(path))
        side_by_side = pd.concat(columns, axis=1).reset_index()
        side_by_side.insert(0, "table", table)
        rows.append(side_by_side)
    if not rows:
        raise DataError(f"no ledger table (method, column, value) in {', '.join(map(str, folders.values()))}")
    compared = pd.concat(rows, ignore_index=True)
    values = compared[list(folders)]
    compared["spread"] = (values.max(axis=1) - values.min(axis=1)).where(values.notna().all(axis=1))
    compared[f"within ±{tolerance:g}"] = compared["spread"] <= tolerance
    return compared


def summary(compared: pd.DataFrame) -> str:
    """One line: how many values agree within the tolerance, and the largest spread."""
    within = compared.iloc[:, -1].astype(bool)
    return (
        f"{int(within.sum())} of {len(compared)} values agree within {compared.columns[-1][len('within ') :]} "
        f"points; largest spread {compared['spread'].max():.2f} points"
    )


def configure_parser(parser: argparse.ArgumentParser) -> None:
    profiles_module.add_profile_arguments(parser)
    parser.add_argument(
        "--path",
        action="append",
        metavar="ENV",
        help="'default' or NAME=VALUE[,NAME=VALUE] for one run (repeatable; at least two; "
        f"default: {' and '.join(DEFAULT_PATHS)})",
    )
    add_record_argument(parser)


def run_command(args: argparse.Namespace) -> int:
    paths = args.path or list(DEFAULT_PATHS)
    for text in paths:
        parse_path(text)  # a malformed path fails before any run
    if len(set(paths)) < 2:
        raise DataError(f"--path: give at least two different paths to compare, got {paths}")
    if args.record:
        start_recording()
    try:
        label = profiles_module.resolve(args.profile, profiles_module.parse_overrides(args.param)).label
    except ValueError as exc:
        raise DataError(str(exc)) from exc
    command = " ".join(
        ["fusionseg agreement", f"--profile {args.profile}"]
        + [f"-p {pair}" for pair in args.param]
        + [f"--path {text}" for text in paths]
    )
    provenance = Provenance(
        stage=TABLE,
        profile=label,
        command=command,
        parameters={"paths": paths, "tolerance_j": TOLERANCE_J},
    )
    with timed_stage(provenance):
        folders = {}
        for text in paths:
            folder = path_folder(text)
            run_path(text, folder, args.profile, args.param)
            folders[text] = folder / "results" / label
        compared = compare_runs(folders)
        provenance.parameters["summary"] = summary(compared)
        provenance.outputs.append(str(write_table(compared, label, TABLE)))
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(compared.round(2).to_string(index=False))
    print(f"[agreement] {summary(compared)}")
    return 0
