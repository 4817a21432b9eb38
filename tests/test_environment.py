"""The pinned dependency lists of pyproject.toml and environment.yml must agree."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_pins() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = set(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        pins.update(extra)
    return pins


def _environment_pins() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lists = [item["pip"] for item in env["dependencies"] if isinstance(item, dict) and "pip" in item]
    assert len(pip_lists) == 1, "environment.yml should have exactly one pip: section"
    return {line for line in pip_lists[0] if not line.startswith("-e")}


def test_every_dependency_is_pinned_exactly():
    for pin in _pyproject_pins():
        assert "==" in pin, f"pyproject.toml: {pin!r} is not pinned with =="


def test_environment_yml_matches_pyproject():
    assert _environment_pins() == _pyproject_pins()


def test_single_opencv_wheel():
    cv_packages = {pin.split("==")[0] for pin in _pyproject_pins() if "opencv" in pin}
    assert cv_packages == {"opencv-contrib-python-headless"}


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    lines = [line for line in (ROOT / "README.md").read_text().splitlines() if line.strip()]
    block = lines[lines.index("```bash") + 1 : lines.index("```bash") + 3]
    commands = [line.split("#")[0].strip() for line in block]
    assert commands == ["make book", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()
