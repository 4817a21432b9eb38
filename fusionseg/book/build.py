"""`fusionseg book`: execute the book's notebooks with papermill, then render them with Jupyter Book.

The chain, for one profile:

1. The order of the notebooks is the order of `book/_toc.yml`; each notebook's jupytext header
   may list the notebooks it depends on (`fusionseg: depends: [...]`), which must come earlier.
2. Each notebook source (MyST markdown, jupytext) is read with `jupytext.read`, given the `python3`
   kernel, and executed by `papermill.execute_notebook` into `<build>/executed/<label>/<name>.ipynb`
   with the profile's parameters. A small stamp (`<name>.stamp.json`) records a hash of its inputs:
   source text, parameters, the library's source, and the executed outputs of its dependencies.
   When they are unchanged, the notebook is not re-run.
3. The executed notebooks are copied into a staging folder (`<build>/site/<label>/`) with the book's
   `_config.yml` (execution off: papermill already ran them), `_toc.yml`, `_static/` and the
   chapters' own sources (the pages' download button offers `<name>.md` beside `<name>.ipynb`);
   `jupyter-book build` renders them (incrementally), a local MathJax is added, and the site is
   swapped into `<build>/html/`. It opens from file://: no CDN or remote font at read time.

Wall time and peak memory per notebook go to `results/<label>/provenance/book.json`. A failing
notebook stops the chain: its partial output is kept and the failing cell is named.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fusionseg import profiles
from fusionseg.io import REPO_ROOT, DataError, write_json
from fusionseg.profiles import parse_overrides
from fusionseg.results import Provenance, add_record_argument, results_dir

BOOK_DIR = REPO_ROOT / "book"
LIBRARY_DIR = REPO_ROOT / "fusionseg"
# Environment variables that say where a notebook reads data and writes results (part of its input key).
LOCATION_VARIABLES = ("FUSIONSEG_DATA", "FUSIONSEG_RESULTS", "FUSIONSEG_CACHE", "FUSIONSEG_RUNS")
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
SOURCE_SUFFIXES = (".md", ".py")
# MathJax 3.2.2 ships in the PyPI package sphinx-mathjax-offline (==0.0.2); the book uses its SVG
# output (no web fonts, so it renders from file://) and copies what tex-svg.js may load.
MATHJAX_PACKAGE = "sphinx-mathjax-offline"
MATHJAX_PARTS = ("tex-svg.js", "input", "output/svg", "ui", "a11y", "adaptors", "sre")
# The kernels papermill starts: no start-up chatter (ipykernel warns about its local TCP transport)
# between the progress lines. (Progress bars a cell prints go to stderr, which the pages leave out:
# `nb_output_stderr: remove` in book/_config.yml.)
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
PEAK_MEMORY_TAG = "fusionseg-peak-memory"
# Appended to every executed notebook (hidden in the HTML): the kernel's own peak resident memory
# (VmHWM: per process and reset at exec, unlike ru_maxrss, which a child inherits from its parent).
PEAK_MEMORY_CELL = """\
import json as _json, re as _re
_hwm = _re.search(r"VmHWM:\\s*(\\d+) kB", open("/proc/self/status").read())
print(_json.dumps({"peak_memory_mb": int(_hwm.group(1)) / 1024 if _hwm else None}))"""


class BookError(RuntimeError):
    """The book's sources or configuration are not what the runner expects."""


@dataclass(frozen=True)
class Chapter:
    """One notebook of the book: its name in the table of contents, source file and dependencies."""

    name: str
    source: Path
    depends: tuple[str, ...]
    parameters: tuple[str, ...]  # names assigned in its papermill `parameters` cell


@dataclass
class ChapterRun:
    """What happened to one notebook in this build."""

    name: str
    status: str  # "executed", "reused" or "failed"
    wall_time_s: float | None
    peak_memory_mb: float | None
    output: Path


# ----------------------------------------------------------------------------------------------
# Reading the book's sources


def read_toc(book_dir: Path) -> dict[str, Any]:
    """`_toc.yml` of a jb-book (root, then parts/chapters/sections)."""
    toc_path = book_dir / "_toc.yml"
    if not toc_path.is_file():
        raise BookError(f"{toc_path}: missing (the book's table of contents)")
    toc = yaml.safe_load(toc_path.read_text())
    if not isinstance(toc, dict) or "root" not in toc:
        raise BookError(f"{toc_path}: expected a jb-book table of contents with a `root:` entry")
    return toc


def toc_files(toc: dict[str, Any]) -> list[str]:
    """The files of a table of contents in reading order, root first."""
    names = [toc["root"]]

    def visit(entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            if "file" in entry:
                names.append(entry["file"])
            visit(entry.get("chapters", []) + entry.get("sections", []))

    visit(toc.get("parts", []) + toc.get("chapters", []))
    return names


def toc_order(book_dir: Path) -> list[str]:
    """Notebook names in `_toc.yml` order."""
    return toc_files(read_toc(book_dir))


def read_source(path: Path) -> Any:
    """A jupytext text notebook as an nbformat notebook set to run on the `python3` kernel."""
    import jupytext

    notebook = jupytext.read(path)
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    notebook.metadata.pop("jupytext", None)
    return notebook


def declared_parameters(notebook: Any) -> tuple[str, ...]:
    """Names assigned at the top level of the notebook's cell tagged `parameters` (papermill's)."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            try:
                tree = ast.parse(cell.source)
            except SyntaxError as error:
                raise BookError(f"the parameters cell is not valid Python: {error}") from error
            names = []
            for node in tree.body:
                targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
                names += [target.id for target in targets if isinstance(target, ast.Name)]
            return tuple(names)
    return ()


def find_source(book_dir: Path, name: str) -> Path:
    for suffix in SOURCE_SUFFIXES:
        path = book_dir / f"{name}{suffix}"
        if path.is_file():
            return path
    raise BookError(f"{book_dir}: _toc.yml names {name!r} but there is no {name}.md or {name}.py")


def load_chapters(book_dir: Path = BOOK_DIR) -> list[Chapter]:
    """Every notebook of the book, in order, with its dependencies checked to come earlier."""
    chapters: list[Chapter] = []
    for name in toc_order(book_dir):
        source = find_source(book_dir, name)
        notebook = read_source(source)
        depends = tuple(notebook.metadata.get("fusionseg", {}).get("depends", []))
        earlier = {chapter.name for chapter in chapters}
        for dependency in depends:
            if dependency not in earlier:
                raise BookError(
                    f"{source}: depends on {dependency!r}, which does not come before it in _toc.yml"
                )
        chapters.append(Chapter(name, source, depends, declared_parameters(notebook)))
    return chapters


def with_dependencies(chapters: list[Chapter], name: str) -> list[Chapter]:
    """`name` and everything it needs, transitively, in book order."""
    by_name = {chapter.name: chapter for chapter in chapters}
    if name not in by_name:
        raise BookError(f"no notebook called {name!r}: expected one of {', '.join(by_name)}")
    needed, stack = set(), [name]
    while stack:
        current = stack.pop()
        if current not in needed:
            needed.add(current)
            stack.extend(by_name[current].depends)
    return [chapter for chapter in chapters if chapter.name in needed]


# ----------------------------------------------------------------------------------------------
# Parameters and the "unchanged, not re-run" stamps


def chapter_parameters(chapter: Chapter, profile_name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The papermill parameters for one notebook: the profile's name, each override by name where
    the notebook declares it, and the rest inside its `overrides` dict."""
    if "profile" not in chapter.parameters:
        raise BookError(f"{chapter.source}: its `parameters` cell must set `profile` (papermill injects it)")
    parameters: dict[str, Any] = {"profile": profile_name}
    rest = {}
    for key, value in overrides.items():
        if key in chapter.parameters and key != "overrides":
            parameters[key] = value
        else:
            rest[key] = value
    if rest:
        if "overrides" not in chapter.parameters:
            raise BookError(
                f"{chapter.source}: cannot take {sorted(rest)}: its parameters cell has no `overrides`"
            )
        parameters["overrides"] = rest
    return parameters


def library_hash(library_dir: Path = LIBRARY_DIR) -> str:
    """A hash of the library's Python sources: any change to the code re-runs the notebooks."""
    digest = hashlib.sha256()
    for path in sorted(library_dir.rglob("*.py")):
        digest.update(str(path.relative_to(library_dir)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def input_key(
    source_text: str,
    parameters: dict[str, Any],
    library: str,
    dependencies: dict[str, str],
    environment: dict[str, str | None] | None = None,
) -> str:
    """The hash of everything a notebook's outputs depend on (`environment`: where data, results and
    caches are, so that a run into another results folder is not mistaken for this one)."""
    payload = json.dumps(
        {
            "source": source_text,
            "parameters": parameters,
            "library": library,
            "dependencies": dependencies,
            "environment": environment or {},
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def stamp_path(output: Path) -> Path:
    return output.with_suffix(".stamp.json")


def read_stamp(output: Path) -> dict[str, Any] | None:
    """The stamp of an earlier successful run, or None when there is none (or it is unreadable)."""
    path = stamp_path(output)
    if not (path.is_file() and output.is_file()):
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


# ----------------------------------------------------------------------------------------------
# Executing one notebook


def peak_memory_from(notebook: Any) -> float | None:
    """The kernel's peak memory printed by the appended PEAK_MEMORY_CELL, if it ran."""
    for cell in reversed(notebook.cells):
        if PEAK_MEMORY_TAG in cell.get("metadata", {}).get("tags", []):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "stream":
                    value = json.loads(output["text"].strip().splitlines()[-1])["peak_memory_mb"]
                    return None if value is None else float(value)
    return None


def execute_chapter(chapter: Chapter, parameters: dict[str, Any], output: Path) -> tuple[float, float | None]:
    """Run one notebook through papermill into `output`; returns (wall time s, kernel peak MB).

    Raises papermill's PapermillExecutionError when a cell fails (the partial output is written)."""
    import nbformat
    import papermill

    notebook = read_source(chapter.source)
    cell = nbformat.v4.new_code_cell(PEAK_MEMORY_CELL)
    cell.metadata["tags"] = [PEAK_MEMORY_TAG, "remove-cell"]
    notebook.cells.append(cell)
    start = time.perf_counter()
    executed = papermill.execute_notebook(
        notebook,
        str(output),
        parameters=parameters,
        kernel_name=KERNELSPEC["name"],
        language="python",
        progress_bar=True,
        cwd=str(chapter.source.parent),
        extra_arguments=KERNEL_ARGUMENTS,
    )
    return time.perf_counter() - start, peak_memory_from(executed)


def describe_failure(chapter: Chapter, output: Path, error: Exception) -> str:
    """A message naming the notebook, the failing cell and the kept partial output."""
    cell = getattr(error, "cell_index", None)
    count = getattr(error, "exec_count", None)
    name = getattr(error, "ename", type(error).__name__)
    value = getattr(error, "evalue", str(error))
    where = (
        f"cell {cell}" + (f" (execution count {count})" if count is not None else "")
        if cell is not None
        else "?"
    )
    return (
        f"notebook {chapter.name} ({chapter.source.name}) failed at {where}: {name}: {value}\n"
        f"  partial output kept: {output}"
    )


# ----------------------------------------------------------------------------------------------
# The chain


def run_chapter(
    chapter: Chapter, parameters: dict[str, Any], key: str, output: Path, force: bool
) -> ChapterRun:
    """Execute one chapter into `output`, or reuse the output when its stamp holds the same input key."""
    stamp = read_stamp(output)
    if not force and stamp is not None and stamp.get("key") == key:
        print(f"{chapter.name}: unchanged, reused ({stamp.get('wall_time_s')} s when it ran)", flush=True)
        return ChapterRun(
            chapter.name, "reused", stamp.get("wall_time_s"), stamp.get("peak_memory_mb"), output
        )
    print(f"{chapter.name}: running {chapter.source.name} with {parameters}", flush=True)
    stamp_path(output).unlink(missing_ok=True)
    try:
        wall, peak = execute_chapter(chapter, parameters, output)
    except Exception as error:  # papermill's execution error, or a kernel that died
        print(describe_failure(chapter, output, error), file=sys.stderr, flush=True)
        return ChapterRun(chapter.name, "failed", None, None, output)
    record = {"key": key, "parameters": parameters, "wall_time_s": round(wall, 2), "peak_memory_mb": peak}
    write_json(stamp_path(output), record)
    peak_text = f", kernel peak {peak:.0f} MB" if peak is not None else ""
    print(f"{chapter.name}: done in {wall:.1f} s{peak_text}", flush=True)
    return ChapterRun(chapter.name, "executed", round(wall, 2), peak, output)


def run_chain(
    chapters: list[Chapter],
    profile: profiles.Profile,
    overrides: dict[str, Any],
    executed_dir: Path,
    force: bool = False,
    on_progress: Callable[[list[ChapterRun]], object] | None = None,
) -> list[ChapterRun]:
    """Execute (or reuse) each chapter in order; stops at the first failure (its run is last).

    `on_progress(runs)` is called after each chapter (the book records its timings there, so a
    later chapter such as the appendix can show those of the chapters before it)."""
    executed_dir.mkdir(parents=True, exist_ok=True)
    library = library_hash()
    environment = {name: os.environ.get(name) for name in LOCATION_VARIABLES}
    runs: list[ChapterRun] = []
    outputs: dict[str, Path] = {}
    start = time.perf_counter()
    for number, chapter in enumerate(chapters, 1):
        missing = [name for name in chapter.depends if name not in outputs]
        if missing:
            raise BookError(f"{chapter.name}: its dependencies {missing} were not executed in this chain")
        parameters = chapter_parameters(chapter, profile.name, overrides)
        dependencies = {name: file_hash(outputs[name]) for name in chapter.depends}
        key = input_key(chapter.source.read_text(), parameters, library, dependencies, environment)
        print(f"[{number}/{len(chapters)}, {time.perf_counter() - start:.0f} s] ", end="", flush=True)
        run = run_chapter(chapter, parameters, key, executed_dir / f"{chapter.name}.ipynb", force)
        runs.append(run)
        outputs[chapter.name] = run.output
        if on_progress:
            on_progress(runs)
        if run.status == "failed":
            break
    return runs


def record_book_provenance(
    profile: profiles.Profile, runs: list[ChapterRun], command: str, total_s: float
) -> Path:
    """`results/<label>/provenance/book.json`: the run's provenance plus wall time and peak memory per notebook."""
    peaks = [run.peak_memory_mb for run in runs if run.peak_memory_mb is not None]
    provenance = Provenance(
        stage="book",
        profile=profile.label,
        command=command,
        parameters=profile.as_dict(),
        outputs=[str(run.output) for run in runs],
        wall_time_s=total_s,
        peak_memory_mb=max(peaks) if peaks else None,
    )
    record = provenance.as_dict()
    record["notebooks"] = {
        run.name: {"status": run.status, "wall_time_s": run.wall_time_s, "peak_memory_mb": run.peak_memory_mb}
        for run in runs
    }
    path = results_dir(profile.label) / "provenance" / "book.json"
    write_json(path, record)
    return path


# ----------------------------------------------------------------------------------------------
# Rendering


def mathjax_source() -> Path:
    """The MathJax 3 files shipped by the PyPI package `sphinx-mathjax-offline`."""
    spec = importlib.util.find_spec(MATHJAX_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BookError(
            f"the offline MathJax copy comes from the PyPI package {MATHJAX_PACKAGE} (pip install "
            f"{MATHJAX_PACKAGE}==0.0.2); without it the book would load MathJax from a CDN"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax"


def copy_mathjax(static_dir: Path) -> None:
    """Copy the parts of MathJax that `tex-svg.js` loads into `static_dir/mathjax` (once)."""
    source, target = mathjax_source(), static_dir / "mathjax"
    for part in MATHJAX_PARTS:
        if (target / part).exists():
            continue
        (target / part).parent.mkdir(parents=True, exist_ok=True)
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part)
        else:
            shutil.copy2(source / part, target / part)


def stage_site(book_dir: Path, runs: list[ChapterRun], site_dir: Path) -> None:
    """Lay out a Jupyter Book source folder whose pages are the executed notebooks.

    Each chapter's own source (`book/<name>.md`) goes into the HTML as `_sources/<name>.md` too, and
    the download button offers it beside the executed notebook (`chapter_sources`)."""
    site_dir.mkdir(parents=True, exist_ok=True)
    present = {run.name for run in runs if run.status != "failed"}
    config = yaml.safe_load((book_dir / "_config.yml").read_text())
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    chapter_sources(book_dir, sorted(present), site_dir, config)
    (site_dir / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copy2(book_dir / "_toc.yml", site_dir / "_toc.yml")
    for stale in site_dir.glob("*.ipynb"):
        stale.unlink()
    for run in runs:
        if run.name in present:
            shutil.copy2(run.output, site_dir / run.output.name)
    if (book_dir / "_static").is_dir():
        shutil.copytree(book_dir / "_static", site_dir / "_static", dirs_exist_ok=True)
    missing = [name for name in toc_order(book_dir) if name not in present]
    pages = site_dir / "pages.json"
    if not pages.is_file() or json.loads(pages.read_text()) != sorted(present):
        shutil.rmtree(site_dir / "_build", ignore_errors=True)  # no stale pages from a different selection
        write_json(pages, sorted(present))
    if missing:
        toc = pruned_toc(read_toc(book_dir), set(missing))
        (site_dir / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))


CHAPTER_SOURCES = "_chapter_sources"  # in the staged site: copied into the HTML's root (html_extra_path)
SOURCES_EXTENSION = "fusionseg.book.sphinx_sources"


def chapter_sources(
    book_dir: Path, names: list[str], site_dir: Path, config: dict[str, Any]
) -> dict[str, str]:
    """Copy the chapters' sources to `<site>/_chapter_sources/_sources/` and set `config` (the site's
    `_config.yml`) so that Sphinx copies them into the HTML as `_sources/<file>` (plain files beside
    the executed notebooks Jupyter Book puts there) and the download button links them
    (`fusionseg.book.sphinx_sources`). Returns page name -> source file name."""
    folder = site_dir / CHAPTER_SOURCES / "_sources"
    shutil.rmtree(site_dir / CHAPTER_SOURCES, ignore_errors=True)
    folder.mkdir(parents=True)
    sources = {}
    for name in names:
        source = find_source(book_dir, name)
        shutil.copy2(source, folder / source.name)
        sources[name] = source.name
    sphinx = config.setdefault("sphinx", {})
    settings = sphinx.setdefault("config", {})
    if "extensions" in settings:  # a full list in _config.yml replaces Jupyter Book's extra_extensions
        settings["extensions"] = [*settings["extensions"], SOURCES_EXTENSION]
    else:
        sphinx["extra_extensions"] = [*sphinx.get("extra_extensions", []), SOURCES_EXTENSION]
    settings["html_extra_path"] = [*settings.get("html_extra_path", []), CHAPTER_SOURCES]
    settings["fusionseg_chapter_sources"] = sources
    config["exclude_patterns"] = [
        *config.get("exclude_patterns", []),
        CHAPTER_SOURCES,
        f"{CHAPTER_SOURCES}/**",
    ]
    return sources


def pruned_toc(toc: dict[str, Any], missing: set[str]) -> dict[str, Any]:
    """The table of contents without the notebooks not executed in this build (`--only`); when the
    root is one of them, the first page left becomes the root (Sphinx needs one)."""

    def without(entries: list[dict[str, Any]], names: set[str]) -> list[dict[str, Any]]:
        kept = []
        for entry in entries:
            entry = dict(entry)
            for key in ("chapters", "sections"):
                if key in entry:
                    entry[key] = without(entry[key], names)
            if entry.get("file") in names:
                continue
            if "file" in entry or entry.get("chapters") or entry.get("sections"):
                kept.append(entry)
        return kept

    def prune(toc: dict[str, Any], names: set[str]) -> dict[str, Any]:
        return {
            key: without(value, names) if key in ("parts", "chapters") else value
            for key, value in toc.items()
        }

    pruned = prune(toc, missing)
    if pruned["root"] in missing:
        remaining = [name for name in toc_files(pruned) if name not in missing]
        if not remaining:
            raise BookError("no executed notebook is left to render")
        pruned = {**prune(pruned, {remaining[0]}), "root": remaining[0]}
    return pruned


def jupyter_book_command() -> list[str]:
    executable = Path(sys.executable).with_name("jupyter-book")
    return [str(executable)] if executable.exists() else [sys.executable, "-m", "jupyter_book.cli.main"]


def render_html(site_dir: Path, html_dir: Path) -> None:
    """`jupyter-book build` the staged site (incrementally) and copy its HTML to `html_dir`."""
    command = [*jupyter_book_command(), "build", str(site_dir), "--builder", "html", "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise BookError(f"jupyter-book build failed ({' '.join(command)}):\n{result.stdout}\n{result.stderr}")
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    for line in warnings[:20]:
        print(f"  sphinx: {line}", file=sys.stderr)
    built = site_dir / "_build" / "html"
    # MathJax goes in after the build: Jupyter Book would add a <script> for every .js under _static.
    copy_mathjax(built / "_static")
    replace_tree(built, html_dir)


def replace_tree(source: Path, target: Path) -> None:
    """Copy folder `source` onto `target`, swapping it in whole so a reader never sees half a site."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fresh, old = target.with_name(target.name + ".new"), target.with_name(target.name + ".old")
    for leftover in (fresh, old):
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.copytree(source, fresh)
    if target.exists():
        target.rename(old)
    fresh.rename(target)
    shutil.rmtree(old, ignore_errors=True)


REMOTE_ASSET = re.compile(
    r"<(?:script|link|img|iframe|source|video|audio)\b[^>]*?\b(?:src|href)\s*=\s*[\"']((?:https?:)?//[^\"']+)",
    re.IGNORECASE,
)
REMOTE_CSS = re.compile(r"(?:url\(|@import\s+)[\"']?((?:https?:)?//[^\"')\s]+)", re.IGNORECASE)


def remote_assets(html_dir: Path) -> list[str]:
    """`file: url` for every asset the built site would fetch from the network (should be none)."""
    found = []
    for path in sorted(html_dir.rglob("*")):
        if path.suffix == ".html":
            urls = REMOTE_ASSET.findall(path.read_text(errors="replace"))
        elif path.suffix == ".css":
            urls = REMOTE_CSS.findall(path.read_text(errors="replace"))
        else:
            continue
        found.extend(f"{path.relative_to(html_dir)}: {url}" for url in urls)
    return found


# ----------------------------------------------------------------------------------------------
# The command


def build_book(
    profile_name: str = profiles.DEFAULT_PROFILE,
    overrides: dict[str, Any] | None = None,
    only: str | None = None,
    force: bool = False,
    build_dir: Path | None = None,
    book_dir: Path = BOOK_DIR,
    html: bool = True,
) -> int:
    """Execute the book for one profile and render it; returns a process exit code."""
    start = time.perf_counter()
    overrides = dict(overrides or {})
    profile = profiles.resolve(profile_name, overrides)
    build_dir = Path(build_dir) if build_dir is not None else book_dir / "_build"
    chapters = load_chapters(book_dir)
    selected = with_dependencies(chapters, only) if only else chapters
    executed_dir = build_dir / "executed" / profile.label
    print(
        f"fusionseg book: profile {profile.label}, {len(selected)} notebook(s) -> {executed_dir}", flush=True
    )
    command = (
        "fusionseg book " + " ".join(sys.argv[2:])
        if sys.argv[1:2] == ["book"]
        else "fusionseg.book.build_book"
    )

    def record(runs: list[ChapterRun]) -> Path:
        return record_book_provenance(profile, runs, command, time.perf_counter() - start)

    runs = run_chain(selected, profile, overrides, executed_dir, force=force, on_progress=record)
    provenance = record(runs)
    if any(run.status == "failed" for run in runs):
        print(f"fusionseg book: stopped; timings so far in {provenance}", file=sys.stderr)
        return 1
    if html:
        html_dir = build_dir / "html"
        print(f"fusionseg book: rendering HTML -> {html_dir}", flush=True)
        stage_site(book_dir, runs, build_dir / "site" / profile.label)
        render_html(build_dir / "site" / profile.label, html_dir)
        for asset in remote_assets(html_dir):
            print(f"fusionseg book: warning: remote asset in the site: {asset}", file=sys.stderr)
        print(f"fusionseg book: open file://{(html_dir / 'index.html').resolve()}")
    record(runs)
    print(
        f"fusionseg book: finished in {time.perf_counter() - start:.0f} s; provenance in {provenance}",
        flush=True,
    )
    return 0


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile", default=profiles.DEFAULT_PROFILE, choices=profiles.profile_names(), help="run profile"
    )
    parser.add_argument(
        "-p",
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a profile field for every notebook (one of: {', '.join(profiles.overridable_fields())})",
    )
    parser.add_argument("--only", metavar="NAME", help="execute only this notebook (and what it depends on)")
    parser.add_argument(
        "--force", action="store_true", help="re-run notebooks even when their inputs are unchanged"
    )
    parser.add_argument(
        "--no-html", action="store_true", help="execute the notebooks but do not render the HTML"
    )
    parser.add_argument("--build-dir", type=Path, default=None, help="output folder (default: book/_build)")
    add_record_argument(parser)


def run_command(args: argparse.Namespace) -> int:
    from fusionseg.results import start_recording

    try:
        if args.record:
            start_recording()
        return build_book(
            args.profile,
            parse_overrides(args.parameter),
            only=args.only,
            force=args.force,
            build_dir=args.build_dir,
            html=not args.no_html,
        )
    except (BookError, ValueError, DataError) as error:
        print(f"fusionseg book: {error}", file=sys.stderr)
        return 2
