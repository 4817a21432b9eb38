"""The stage engine: cached, resumable stages keyed by their parameters and their inputs' keys.

A `Stage` is a name, the stages it depends on, a function that gives its parameters for a profile
(what its key hashes) and a body that computes it. `run_stage(chain, profile, name)` runs a stage
(its dependencies first) or reuses it:

- Its outputs live in `profile.work_dir()/<stage>/` beside `stage.json`, whose `key` hashes the
  stage's parameters, the keys of the stages it depends on, and `Chain.version`.
- A stage whose stamp has the same key, says `complete` and whose outputs still match the
  fingerprints the stamp recorded is skipped ("cached"); damaged outputs are recomputed. A changed
  key empties the stage's folder and recomputes it, and so every stage downstream (their keys
  contain it). `force` recomputes a stage and everything downstream.
- The stamp records its outputs relative to its own folder where they lie under the same runs root
  (or the same checkout), so that a runs folder moved or copied whole stays cached.
- An interrupted stage (a stamp with the same key, not complete) resumes: its body finds what it
  already wrote (training checkpoints, videos already done) and goes on from there.
- A stage that another run label under the same runs root has already completed with the identical
  key (same parameters, same upstream keys: e.g. the appearance stream of `mini` for the ablation
  `mini+flow_method=deepflow`) is reused instead of computed ("reused"): its folder is copied into
  this label's folder, the tables it wrote to `results/<other label>/` are copied to
  `results/<label>/`, and its stamp (with `reused_from`) and a provenance record that names the
  run it came from are written for this label. Outputs outside both (the shared flow cache, the
  data) are referenced as they are. `force` never reuses.

Each computed stage also records its provenance in the results ledger (`fusionseg.results`). The
chain of FusionSeg's stages is `fusionseg.pipeline.CHAIN`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fusionseg.io import REPO_ROOT, runs_root, write_json
from fusionseg.profiles import Profile

Body = Callable[[Profile, dict[str, "StageResult"]], tuple[dict[str, str], dict[str, Any]]]


@dataclass
class StageResult:
    """What a stage made: its folder, its output paths (name -> path) and whether it ran now."""

    stage: str
    folder: Path
    key: str
    status: str  # "computed", "cached" or "reused" (copied from another label's run, same key)
    outputs: dict[str, str] = field(default_factory=dict)
    wall_time_s: float = 0.0  # in this call (0 when cached)
    info: dict[str, Any] = field(default_factory=dict)  # small facts (counts, scores) for the log
    compute_time_s: float = 0.0  # what computing it took (from the stamp when cached)

    def path(self, name: str) -> Path:
        """One output as a Path."""
        return Path(self.outputs[name])


@dataclass(frozen=True)
class Stage:
    """One stage: its dependencies, its parameters (what its key hashes) and its body.

    `body(profile, deps) -> (outputs, info)`: outputs maps names to the paths it wrote, info holds
    small facts for the log and the provenance. `applies(profile)`: whether the profile has this
    stage at all (e.g. the flow-speed table needs real frames)."""

    name: str
    depends: tuple[str, ...]
    parameters: Callable[[Profile], dict[str, Any]]
    body: Body
    applies: Callable[[Profile], bool] = lambda profile: True


@dataclass(frozen=True)
class Chain:
    """The stages in dependency order, and a version that every key hashes (bump it when a stage's
    outputs change meaning)."""

    stages: tuple[Stage, ...]
    version: int

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.stages)

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise ValueError(f"unknown stage {name!r}; expected one of {', '.join(self.names)}")

    def stages_before(self, name: str) -> list[str]:
        """The stages `name` depends on, directly or not, in chain order."""
        needed, pending = set(), list(self.stage(name).depends)
        while pending:
            dependency = pending.pop()
            if dependency not in needed:
                needed.add(dependency)
                pending.extend(self.stage(dependency).depends)
        return [stage for stage in self.names if stage in needed]

    def for_profile(self, profile: Profile) -> tuple[str, ...]:
        """The stages this profile runs, in order."""
        return tuple(stage.name for stage in self.stages if stage.applies(profile))

    def downstream(self, names: Sequence[str]) -> set[str]:
        """`names` and every stage that depends on one of them, directly or not."""
        found = set(names)
        for stage in self.stages:  # in dependency order
            if any(dep in found for dep in stage.depends):
                found.add(stage.name)
        return found


def stage_dir(profile: Profile, stage: str) -> Path:
    return profile.work_dir() / stage


def stamp_path(profile: Profile, stage: str) -> Path:
    return stage_dir(profile, stage) / "stage.json"


def read_stamp(profile: Profile, stage: str) -> dict[str, Any] | None:
    """The stage's stamp, or None if absent or unreadable (a corrupt stamp means "recompute")."""
    return _read_stamp_file(stamp_path(profile, stage))


def _read_stamp_file(path: Path) -> dict[str, Any] | None:
    try:
        stamp = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        log(f"{path}: unreadable stamp ({exc}); the stage will be recomputed")
        return None
    if not isinstance(stamp, dict):
        return None
    if isinstance(stamp.get("outputs"), dict):
        stamp["outputs"] = {
            name: _absolute_output(out, path.parent) for name, out in stamp["outputs"].items()
        }
    return stamp


def _write_stamp(folder: Path, stamp: dict[str, Any]) -> None:
    """Write a stage's stamp, its outputs relative to the stage folder where they can be (see
    `_stamp_output`), so that a runs folder moved or copied whole (with its checkout) stays cached."""
    if "outputs" in stamp:
        stamp = stamp | {
            "outputs": {name: _stamp_output(out, folder) for name, out in stamp["outputs"].items()}
        }
    write_json(folder / "stage.json", stamp)


def _stamp_output(path: str, folder: Path) -> str:
    """An output path as a stamp in `folder` records it: relative to the folder when both lie under the
    runs root or both in this checkout (they move together), else absolute (the data, outside caches)."""
    target, folder = Path(path).resolve(), folder.resolve()
    for root in (runs_root().resolve(), REPO_ROOT.resolve()):
        if root in folder.parents and root in target.parents:
            return Path(os.path.relpath(target, folder)).as_posix()
    return str(path)


def _absolute_output(path: str, folder: Path) -> str:
    """A stamp's output path made absolute again (a relative one is relative to the stamp's folder)."""
    return path if Path(path).is_absolute() else os.path.normpath(folder / path)


def digest(obj: Any) -> str:
    """A short stable hash of a JSON-able object (keys sorted)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def log(message: str) -> None:
    """Progress line of the pipeline (stdout, flushed so that notebooks and CI show it live)."""
    print(f"[reproduce] {message}", flush=True)


def command_line(profile: Profile) -> str:
    """The `fusionseg reproduce` command that makes this profile's results."""
    overrides = "".join(f" -p {key}={value}" for key, value in profile.overrides)
    return f"fusionseg reproduce --profile {profile.name}{overrides}"


def output_fingerprint(path: Path) -> str:
    """What a stage's output looked like when the stage completed: a file's size and content hash,
    a folder's listing (names and sizes). A cached stage whose outputs no longer match is recomputed."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_file():
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return f"{path.stat().st_size}:{digest.hexdigest()[:16]}"
    if path.is_dir():
        for item in sorted(path.rglob("*")):
            if item.is_file():
                digest.update(f"{item.relative_to(path)}:{item.stat().st_size}\n".encode())
        return f"dir:{digest.hexdigest()[:16]}"
    return "missing"


def _fingerprints(outputs: dict[str, str]) -> dict[str, str]:
    return {name: output_fingerprint(Path(path)) for name, path in outputs.items()}


def _is_current(name: str, stamp: dict[str, Any] | None, key: str, quiet: bool = False) -> bool:
    """The stamp says this key completed, and its outputs are still what it wrote (`quiet`: no
    message when they are not)."""
    if stamp is None or stamp.get("key") != key or not stamp.get("complete"):
        return False
    outputs = stamp.get("outputs", {})
    recorded = stamp.get("fingerprints")
    if recorded is None:  # a stamp from before fingerprints: existence only
        return all(Path(path).exists() for path in outputs.values())
    changed = [out for out, fingerprint in _fingerprints(outputs).items() if recorded.get(out) != fingerprint]
    if changed and not quiet:
        log(
            f"{name:<14} outputs changed or damaged since the stage completed ({', '.join(changed)}); recomputing"
        )
    return not changed


def run_stage(
    chain: Chain, profile: Profile, name: str, force: Sequence[str] = (), done: dict | None = None
) -> StageResult:
    """Run stage `name` for `profile` (its dependencies first), or reuse it when its key is unchanged.

    `force`: stage names to recompute regardless of their stamps (their downstream stages too).
    `done`: results of stages already run in this call (filled in).
    """
    stage = chain.stage(name)
    done = {} if done is None else done
    if name in done:
        return done[name]
    deps = {dep: run_stage(chain, profile, dep, force, done) for dep in stage.depends}
    parameters = stage.parameters(profile)
    depends = {dep: result.key for dep, result in deps.items()}
    key = digest({"stage": name, "version": chain.version, "parameters": parameters, "depends": depends})
    forced = name in chain.downstream(force)
    stamp = read_stamp(profile, name)
    folder = stage_dir(profile, name)
    if not forced and _is_current(name, stamp, key):
        log(f"{name:<14} cached (key {key})")
        assert stamp is not None
        info, seconds = stamp.get("info", {}), stamp.get("wall_time_s", 0.0)
        done[name] = StageResult(name, folder, key, "cached", stamp["outputs"], 0.0, info, seconds)
        return done[name]
    resuming = not forced and stamp is not None and stamp.get("key") == key and not stamp.get("complete")
    source = None if forced or resuming else find_reusable(profile, name, key)
    if source is not None:
        done[name] = _reuse(profile, name, key, parameters, deps, *source)
        return done[name]
    if folder.exists() and not resuming:
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    log(f"{name:<14} {'resuming' if resuming else 'running'} (key {key})")
    stamp = {"stage": name, "key": key, "complete": False, "parameters": parameters, "depends": depends}
    _write_stamp(folder, stamp)
    result = _timed_run(profile, stage, parameters, deps, key)
    complete = {"complete": True, "outputs": result.outputs, "info": result.info}
    complete["fingerprints"] = _fingerprints(result.outputs)
    _write_stamp(folder, stamp | complete | {"wall_time_s": result.wall_time_s})
    summary = ", ".join(f"{k}={_short(v)}" for k, v in result.info.items())
    log(f"{name:<14} done in {result.wall_time_s:.1f} s" + (f" ({summary})" if summary else ""))
    done[name] = result
    return result


def find_reusable(profile: Profile, name: str, key: str) -> tuple[str, dict[str, Any]] | None:
    """(label, stamp) of another run under the same runs root whose stage `name` completed with this
    `key` and whose outputs are still what it wrote; None when there is none. Labels are tried in
    name order (any of them holds the same result: the key is the same)."""
    root = profile.work_dir().parent
    if not root.is_dir():
        return None
    for other in sorted(root.iterdir()):
        path = other / name / "stage.json"
        if other.name == profile.label or not path.is_file():
            continue
        stamp = _read_stamp_file(path)
        if stamp is not None and _is_current(name, stamp, key, quiet=True):
            return other.name, stamp
    return None


def _relocate(path: Path, moves: Sequence[tuple[Path, Path]]) -> Path:
    """`path` moved from the first (old, new) folder pair that holds it; unchanged when none does."""
    for old, new in moves:
        if path == old or old in path.parents:
            return new / path.relative_to(old)
    return path


def _reuse(
    profile: Profile,
    name: str,
    key: str,
    parameters: dict[str, Any],
    deps: dict[str, StageResult],
    source_label: str,
    source: dict[str, Any],
) -> StageResult:
    """Make stage `name` of `profile` a copy of the same stage (same key) of run `source_label`.

    The source's stage folder is copied (without its stamp) into a temporary folder that replaces
    this label's stage folder whole; the outputs it wrote under `results/<source_label>/` (this
    run's results root or the committed reference) are copied to `results/<label>/`; outputs
    elsewhere (shared caches, the data) are referenced. The stamp is written last, so an
    interruption leaves a folder without a stamp, which the next run replaces."""
    from fusionseg.results import Provenance, record_provenance, reference_root, results_dir, results_root

    start = time.perf_counter()
    folder = stage_dir(profile, name)
    origin = profile.work_dir().parent / source_label / name
    log(f"{name:<14} reusing {source_label}'s (same key {key})")
    staging = folder.with_name(f"{name}.reusing")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(origin, staging, ignore=shutil.ignore_patterns("stage.json"))
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)
    own_results = results_dir(profile.label).resolve()
    tables = [((root / source_label).resolve(), own_results) for root in (results_root(), reference_root())]
    outputs = {}
    for output, path in source["outputs"].items():
        old = Path(path).resolve()
        new = _relocate(old, [(origin.resolve(), folder.resolve())])
        if new == old and (new := _relocate(old, tables)) != old:  # a table: copied over any older one
            new.parent.mkdir(parents=True, exist_ok=True)
            if old.is_dir():
                shutil.copytree(old, new, dirs_exist_ok=True)
            else:
                shutil.copy2(old, new)
        outputs[output] = path if new == old else str(new)
    info, compute_s = source.get("info", {}), source.get("wall_time_s", 0.0)
    seconds = time.perf_counter() - start
    depends = {dep: result.key for dep, result in deps.items()}
    stamp = {"stage": name, "key": key, "complete": True, "parameters": parameters, "depends": depends}
    stamp |= {"outputs": outputs, "info": info, "fingerprints": _fingerprints(outputs)}
    stamp |= {"wall_time_s": compute_s, "reused_from": source_label}
    provenance = Provenance(
        stage=name,
        profile=profile.label,
        command=command_line(profile),
        parameters=parameters
        | {"key": key, "profile": profile.as_dict(), "info": info}
        | {"reused_from": source_label, "compute_time_s": compute_s},
        data_fingerprint=_data_fingerprint(deps, info),
        outputs=list(outputs.values()),
        wall_time_s=seconds,
    )
    record_provenance(provenance)
    _write_stamp(folder, stamp)
    log(f"{name:<14} reused from {source_label} in {seconds:.1f} s (computing it took {compute_s:.1f} s)")
    return StageResult(name, folder, key, "reused", outputs, seconds, info, compute_s)


def _data_fingerprint(deps: dict[str, StageResult], info: dict[str, Any]) -> str | None:
    """The data fingerprint a provenance record names: the data stage's, or the stage's own."""
    return (deps["data"].info.get("fingerprint") if "data" in deps else None) or info.get("fingerprint")


def _short(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _timed_run(
    profile: Profile, stage: Stage, parameters: dict, deps: dict[str, StageResult], key: str
) -> StageResult:
    """Run the stage's body with a provenance record (wall time, peak memory) in the results ledger."""
    from fusionseg.results import Provenance, timed_stage

    provenance = Provenance(
        stage=stage.name, profile=profile.label, command=command_line(profile), parameters=parameters
    )
    with timed_stage(provenance):
        outputs, info = stage.body(profile, deps)
        provenance.data_fingerprint = _data_fingerprint(deps, info)
        provenance.parameters = parameters | {"key": key, "profile": profile.as_dict(), "info": info}
        provenance.outputs = [str(path) for path in outputs.values()]
    seconds = provenance.wall_time_s or 0.0  # timed_stage's clock: the stamp and the provenance agree
    return StageResult(
        stage.name, stage_dir(profile, stage.name), key, "computed", outputs, seconds, info, seconds
    )


def run_chain(
    chain: Chain, profile: Profile, until: str | None = None, force: Sequence[str] = ()
) -> dict[str, StageResult]:
    """Run (or reuse) every stage of `chain` that the profile has, in order, up to and including `until`.

    `force`: stages to recompute (with their downstream stages); "all" recomputes everything.
    Writes `results/<label>/pipeline_timings.csv` (stage, status, wall times, key).
    """
    from fusionseg.results import write_table

    if until is not None and until not in chain.names:
        raise ValueError(f"unknown stage {until!r}; expected one of {', '.join(chain.names)}")
    force = chain.names if "all" in force else tuple(force)
    unknown = sorted(set(force) - set(chain.names))
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown} to force; expected some of {', '.join(chain.names)}")
    names = chain.for_profile(profile)
    if until is not None:
        names = tuple(name for name in names if chain.names.index(name) <= chain.names.index(until))
    done: dict[str, StageResult] = {}
    for name in names:
        run_stage(chain, profile, name, force, done)
    results = {name: done[name] for name in names}
    columns = ["stage", "status", "wall_time_s", "compute_time_s", "key"]
    rows = [(s, r.status, r.wall_time_s, r.compute_time_s, r.key) for s, r in results.items()]
    write_table(pd.DataFrame(rows, columns=columns), profile.label, "pipeline_timings")
    return results
