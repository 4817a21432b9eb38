"""Faults: a run killed with SIGKILL at a random point inside each stage, then rerun, ends with the
same results as an uninterrupted run; damaged cache entries are detected and recomputed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from fusionseg import pipeline, profiles

COMMAND = [sys.executable, "-m", "fusionseg", "reproduce", "--profile", "smoke"]
SEED = int(os.environ.get("FUSIONSEG_FAULT_SEED", "0"))  # set it to replay another set of kill points


def run_env(root: Path) -> dict[str, str]:
    folders = {"FUSIONSEG_RUNS": "runs", "FUSIONSEG_CACHE": "cache", "FUSIONSEG_RESULTS": "results"}
    return os.environ | {name: str(root / sub) for name, sub in folders.items()}


def kill_inside(stage: str, env: dict[str, str], delay: float) -> str:
    """Start the chain, wait until `stage` starts (running or resuming), SIGKILL it `delay` s later."""
    process = subprocess.Popen(
        COMMAND, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith(f"[reproduce] {stage} ") and ("running" in line or "resuming" in line):
            break
    else:
        process.wait()
        raise AssertionError(f"stage {stage} never started:\n{''.join(seen)}")
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return "".join(seen)


def result_tables(root: Path) -> dict[str, pd.DataFrame]:
    """Every table a run wrote, except its timings (which differ by nature)."""
    folder = root / "results" / "smoke"
    return {
        str(path.relative_to(folder)): pd.read_csv(path)
        for path in sorted(folder.rglob("*.csv"))
        if path.name != "pipeline_timings.csv"
    }


@pytest.mark.slow
def test_sigkill_inside_every_stage_then_a_rerun_gives_the_uninterrupted_results(tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    subprocess.run(COMMAND, env=run_env(clean), check=True, capture_output=True)
    rng = random.Random(SEED)
    stages = pipeline.CHAIN.for_profile(profiles.resolve("smoke"))
    for stage in stages:
        kill_inside(stage, run_env(killed), delay=rng.uniform(0.0, 2.0))
    final = subprocess.run(COMMAND, env=run_env(killed), check=True, capture_output=True, text=True)
    assert "finished" in final.stdout
    expected, found = result_tables(clean), result_tables(killed)
    assert sorted(found) == sorted(expected)
    for name, table in expected.items():
        pd.testing.assert_frame_equal(found[name], table, obj=name)
    # every file that looks complete is: interrupted writes left only `.tmp` files beside them
    for path in sorted(killed.rglob("*")):
        if path.suffix == ".png":
            Image.open(path).load()
        elif path.suffix == ".pt":
            torch.load(path, weights_only=True)
        elif path.suffix == ".csv":
            pd.read_csv(path)
