"""The results ledger: `results/<profile>/` holds every table (CSV), figure (PNG) and provenance.

Each stage that produces numbers records how: `record_provenance` writes
`results/<profile>/provenance/<stage>.json` with the command, parameters, git commit, data
fingerprint, hardware, library versions, wall time and peak memory. Tables and figures are
written atomically so that an interrupted run never leaves half a file in the ledger.

The pipeline's files (`fusionseg.pipeline`, FUSIONSEG_RESULTS moves the folder). Scores in `*_detail.csv`,
`per_sequence_*.csv` and `per_frame_*.csv` are fractions in [0, 1]; the four comparison tables use
the book's ledger format (columns `method, column, value`, value in percent, as
`fusionseg.paper_numbers` holds the paper's), so that the book shows them beside the paper's:

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
| `table1_flow_baselines.csv`, `flow_baselines/*.csv` | as `fusionseg.baselines.variant_table` / per-sequence scores |
| `flow_speed.csv` | method, preset, size, seconds_per_frame, fps, cpu_seconds_per_frame, repeats |
| `pipeline_timings.csv` | stage, status, wall_time_s (this run), compute_time_s (when last computed), key |
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from fusionseg.io import REPO_ROOT, DataError, atomic_path, runs_root, write_json

LIBRARIES = (
    "torch",
    "torchvision",
    "opencv-contrib-python-headless",
    "numpy",
    "scipy",
    "pandas",
    "fusionseg",
)


def reference_root() -> Path:
    """`results/` of this checkout: the committed reference ledger, which only a recorded run
    (`fusionseg reproduce --record`, `fusionseg book --record`) writes. FUSIONSEG_REFERENCE moves it
    (tests)."""
    return Path(os.environ.get("FUSIONSEG_REFERENCE", REPO_ROOT / "results"))


def results_root() -> Path:
    """Where this run writes its tables: FUSIONSEG_RESULTS if set, else `runs/results/` (git-ignored),
    so that a reader's run never overwrites the committed reference (`reference_root`)."""
    value = os.environ.get("FUSIONSEG_RESULTS")
    if value:
        return Path(value)
    return runs_root() / "results"


def recording() -> bool:
    """True when this run writes the committed reference itself."""
    return results_root().resolve() == reference_root().resolve()


def add_record_argument(parser: Any) -> None:
    """The `--record` option of the commands that write results (reproduce, book, bench)."""
    parser.add_argument(
        "--record",
        action="store_true",
        help="write the committed reference under results/ (clean checkouts only); "
        "by default a run's tables go to runs/results/",
    )


def start_recording() -> None:
    """Point this process (and the notebooks it starts) at the committed reference ledger.

    Refuses on a checkout with uncommitted code or configuration: a recorded result must name the
    exact commit that made it (`git_commit`)."""
    commit = git_commit()
    if commit.endswith("+dirty") or commit == "unknown":
        raise DataError(
            f"--record needs a clean checkout (git reports {commit}): commit the code first, so that "
            "the recorded results name the exact commit that made them"
        )
    os.environ["FUSIONSEG_RESULTS"] = str(reference_root())
    # the records of this run (and of the notebooks it starts) name the commit it started from, even
    # if the checkout moves on while it runs: that is the code it loaded
    os.environ[RECORDED_COMMIT_VARIABLE] = commit


@contextmanager
def unrecorded() -> Iterator[None]:
    """Within it, the chain's stages write this run's own ledger (`runs/results/`) even when the
    process records the reference: a command that records one table of its own (`select-recipe
    --record`) runs the stages it needs without re-recording them, since they belong to
    `fusionseg reproduce --record`."""
    saved = os.environ.pop("FUSIONSEG_RESULTS", None) if recording() else None
    try:
        yield
    finally:
        if saved is not None:
            os.environ["FUSIONSEG_RESULTS"] = saved


def results_dir(profile: str) -> Path:
    path = results_root() / profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_table(table: Any, profile: str, name: str) -> Path:
    """Write a pandas DataFrame as `results/<profile>/<name>.csv` (atomically) and return the path."""
    path = results_dir(profile) / f"{name}.csv"
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    return path


def save_figure(figure: Any, profile: str, name: str, dpi: int = 120) -> Path:
    """Save a matplotlib figure as `results/<profile>/<name>.png` (atomically)."""
    path = results_dir(profile) / f"{name}.png"
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return path


# How far two runs of one profile may differ and still count as reproducing each other (J, in points):
# the book's check of a reader's run against the committed reference, and `fusionseg agreement`.
TOLERANCE_J = 1.5

# Paths whose changes do not make a checkout "dirty" for provenance: the results a run just wrote.
GENERATED_PATHS = ("results",)


RECORDED_COMMIT_VARIABLE = "FUSIONSEG_RECORDED_COMMIT"  # set by `start_recording`


def run_commit() -> str:
    """The commit a record names: the one a recorded run started from (`start_recording`), else the
    checkout's now (`git_commit`)."""
    return os.environ.get(RECORDED_COMMIT_VARIABLE) or git_commit()


def git_commit() -> str:
    """The checkout's commit, with `+dirty` when tracked code or configuration has uncommitted changes.

    Changes under `GENERATED_PATHS` (the results ledger that runs write) do not count: a rerun that
    rewrites `results/` still names exactly the code that made it."""
    excluded = [f":(exclude){path}" for path in GENERATED_PATHS]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *excluded],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def _path_roots() -> list[tuple[str, Path]]:
    """(how to write it, folder) for the folders a provenance record may name, most specific first."""
    roots = [
        (f"${name}", Path(value).expanduser().resolve())
        for name in ("FUSIONSEG_DATA", "FUSIONSEG_RESULTS", "FUSIONSEG_RUNS", "FUSIONSEG_CACHE")
        if (value := os.environ.get(name))
    ]
    roots.append((".", REPO_ROOT.resolve()))
    return sorted(roots, key=lambda root: len(root[1].parts), reverse=True)


def portable_path(text: str) -> str:
    """An absolute path as provenance records it: relative to the repository ("runs/mini/..."), or to
    the folder an environment variable names ("$FUSIONSEG_DATA/DAVIS"); a path outside all of them
    keeps only its name ("<elsewhere>/model.pt"), so that no record holds a machine's own folders."""
    path = Path(text)
    if not path.is_absolute():
        return text
    resolved = path.expanduser().resolve()
    for name, root in _path_roots():
        if resolved == root or root in resolved.parents:
            relative = resolved.relative_to(root).as_posix()
            if name == ".":
                return relative
            return name if relative == "." else f"{name}/{relative}"
    return f"<elsewhere>/{path.name}"


def portable(value: Any) -> Any:
    """`value` with every absolute path string in it (in dicts and lists too) made `portable_path`."""
    if isinstance(value, dict):
        return {key: portable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(item) for item in value]
    if isinstance(value, str) and value.startswith(("/", "~")):
        return portable_path(value)
    return value


def fingerprint_files(paths: Iterable[Path]) -> str:
    """A cheap, stable fingerprint of a file list: names, sizes and modification-free content hashes of
    the first 64 kB. Enough to notice a different or changed copy of a dataset without reading it all."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(str(path.name).encode())
        stat = path.stat()
        digest.update(str(stat.st_size).encode())
        with open(path, "rb") as handle:
            digest.update(handle.read(65536))
    return digest.hexdigest()[:16]


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


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def peak_memory_mb() -> float:
    """Peak resident memory of this process and its finished children, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0


@dataclass
class Provenance:
    """What a stage needs to say about how its numbers were made."""

    stage: str
    profile: str
    command: str
    parameters: dict[str, Any] = field(default_factory=dict)
    data_fingerprint: str | None = None
    outputs: list[str] = field(default_factory=list)
    wall_time_s: float | None = None
    peak_memory_mb: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "profile": self.profile,
            "command": self.command,
            "parameters": portable(self.parameters),
            "data_fingerprint": self.data_fingerprint,
            "outputs": portable(self.outputs),
            "wall_time_s": None if self.wall_time_s is None else round(self.wall_time_s, 2),
            "peak_memory_mb": None if self.peak_memory_mb is None else round(self.peak_memory_mb, 1),
            "git_commit": run_commit(),
            "hardware": hardware(),
            "libraries": library_versions(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        } | {"reproduce": reproduce_command(self.command)}


def reproduce_command(command: str) -> str:
    """The shell line that remakes a record: check out its commit, then run its command."""
    commit = run_commit().removesuffix("+dirty")
    return f"git checkout {commit} && {command}"


def record_provenance(provenance: Provenance) -> Path:
    """Write `results/<profile>/provenance/<stage>.json` and return its path."""
    path = results_dir(provenance.profile) / "provenance" / f"{provenance.stage}.json"
    write_json(path, provenance.as_dict())
    return path


@contextmanager
def timed_stage(provenance: Provenance) -> Iterator[Provenance]:
    """Time a block, fill in wall time and peak memory, and record the provenance if it succeeds."""
    start = time.perf_counter()
    yield provenance
    provenance.wall_time_s = time.perf_counter() - start
    provenance.peak_memory_mb = peak_memory_mb()
    record_provenance(provenance)
