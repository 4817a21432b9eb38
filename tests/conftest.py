"""Shared fixtures. Tests that need the real data skip, with a visible reason, when
FUSIONSEG_DATA is unset (users without the data); CI always sets it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import fusionseg  # noqa: F401  (sets OMP_WAIT_POLICY before any test imports torch)


def _real_data(subfolder: str) -> Path:
    value = os.environ.get("FUSIONSEG_DATA")
    if not value:
        pytest.skip(f"FUSIONSEG_DATA is not set: skipping the test that needs the real {subfolder}/")
    path = Path(value) / subfolder
    if not path.exists():
        pytest.skip(f"FUSIONSEG_DATA={value} has no {subfolder}/")
    return path


@pytest.fixture(scope="session")
def davis_root() -> Path:
    """The real DAVIS 2016 copy ($FUSIONSEG_DATA/DAVIS)."""
    return _real_data("DAVIS")


@pytest.fixture(scope="session")
def duts_root() -> Path:
    """The real DUTS subset ($FUSIONSEG_DATA/DUTS)."""
    return _real_data("DUTS")


@pytest.fixture(scope="session")
def release_root() -> Path:
    """The authors' released fusion weights ($FUSIONSEG_DATA/fusionseg_release)."""
    return _real_data("fusionseg_release")


@pytest.fixture(scope="session")
def benchmark_root() -> Path:
    """The DAVIS benchmark's published data ($FUSIONSEG_DATA/davis_benchmark)."""
    return _real_data("davis_benchmark")


@pytest.fixture()
def results_tmp(tmp_path, monkeypatch) -> Path:
    """Redirect the results ledger to a temporary folder for the test: both the committed reference
    and a run's own tables (the test's run records the reference, as `--record` does)."""
    root = tmp_path / "results"
    monkeypatch.setenv("FUSIONSEG_RESULTS", str(root))
    monkeypatch.setenv("FUSIONSEG_REFERENCE", str(root))
    return root


@pytest.fixture()
def one_torch_thread():
    """Tiny models run on one thread: more threads only add synchronisation on a busy 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# Headless Chromium as the browser tests start it: no GPU, no sandbox (root in CI), and none of the
# background connections a closed network refuses.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]
