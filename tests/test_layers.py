"""The library's layers (pyproject.toml's [tool.importlinter]): no module imports from a layer above it,
no circle; checked by import-linter on every test run, so that the stack stays a stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]


def test_imports_keep_the_layers():
    result = subprocess.run(
        [Path(sys.executable).parent / "lint-imports", "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_module_is_in_a_layer():
    """A new module must be placed in the contract, or the contract would not check it."""
    import tomllib

    contract = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    layered = {name.strip() for layer in contract["layers"] for name in layer.split("|")}
    graph = grimp.build_graph("fusionseg")
    top_level = {".".join(module.split(".")[:2]) for module in graph.modules if module != "fusionseg"}
    assert top_level <= layered, f"modules outside every layer: {sorted(top_level - layered)}"
