"""The stage engine: cached, resumable stages keyed by their parameters and their inputs' keys.

A `Stage` is a name, the stages it depends on, a function that gives its parameters for a profile
(what its key hashes) and a body that computes it. `run_stage(chain, profile, name)` runs a stage
(its dependencies first) or reuses it:

- Its outputs live in `profile.work_dir()/<stage>/` beside `stage.json`, whose `key` hashes the
  stage's parameters, the keys of the stages it depends on, and `Chain.version`.
- A stage whose stamp has the same key, says `complete` and whose outputs exist is skipped
  ("cached"). A changed key empties the stage's folder and recomputes it, and so every stage
  downstream (their keys contain it). `force` recomputes a stage and everything downstream.
- An interrupted stage (a stamp with the same key, not complete) resumes: its body finds what it
  already wrote (training checkpoints, videos already done) and goes on from there.

Each computed stage also records its provenance in the results ledger (`fusionseg.results`). The
chain of FusionSeg's stages is `fusionseg.pipeline.CHAIN`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fusionseg.io import write_json
from fusionseg.profiles import Profile

Body = Callable[[Profile, dict[str, "StageResult"]], tuple[dict[str, str], dict[str, Any]]]


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
    path = stamp_path(profile, stage)
    try:
        stamp = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        log(f"{path}: unreadable stamp ({exc}); the stage will be recomputed")
        return None
    return stamp if isinstance(stamp, dict) else None


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


def _is_current(name: str, stamp: dict[str, Any] | None, key: str) -> bool:
    """The stamp says this key completed, and its outputs are still what it wrote."""
    if stamp is None or stamp.get("key") != key or not stamp.get("complete"):
        return False
    outputs = stamp.get("outputs", {})
    recorded = stamp.get("fingerprints")
    if recorded is None:  # a stamp from before fingerprints: existence only
        return all(Path(path).exists() for path in outputs.values())
    changed = [out for out, fingerprint in _fingerprints(outputs).items() if recorded.get(out) != fingerprint]
    if changed:
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
    if folder.exists() and not resuming:
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    log(f"{name:<14} {'resuming' if resuming else 'running'} (key {key})")
    stamp = {"stage": name, "key": key, "complete": False, "parameters": parameters, "depends": depends}
    write_json(stamp_path(profile, name), stamp)
    result = _timed_run(profile, stage, parameters, deps, key)
    complete = {"complete": True, "outputs": result.outputs, "info": result.info}
    complete["fingerprints"] = _fingerprints(result.outputs)
    write_json(stamp_path(profile, name), stamp | complete | {"wall_time_s": result.wall_time_s})
    summary = ", ".join(f"{k}={_short(v)}" for k, v in result.info.items())
    log(f"{name:<14} done in {result.wall_time_s:.1f} s" + (f" ({summary})" if summary else ""))
    done[name] = result
    return result


def _short(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _timed_run(
    profile: Profile, stage: Stage, parameters: dict, deps: dict[str, StageResult], key: str
) -> StageResult:
    """Run the stage's body with a provenance record (wall time, peak memory) in the results ledger."""
    from fusionseg.results import Provenance, timed_stage

    fingerprint = deps["data"].info.get("fingerprint") if "data" in deps else None
    provenance = Provenance(
        stage=stage.name, profile=profile.label, command=command_line(profile), parameters=parameters
    )
    with timed_stage(provenance):
        outputs, info = stage.body(profile, deps)
        provenance.data_fingerprint = fingerprint or info.get("fingerprint")
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
