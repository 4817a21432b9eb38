"""JupyterLab on the book's chapters: `make lab` (and tests/test_lab.py) run

    .venv/bin/python -m jupyter lab --config=lab/jupyter_lab_config.py

- The server listens on 127.0.0.1 only, with Jupyter's token (printed in the URL); no browser is opened.
- Its root is the repository; book/*.md open as notebooks (jupytext's "Jupytext Notebook" viewer is the
  default for Markdown files: lab/settings/overrides.json) on the `python3` kernel of the .venv.
- Saving writes the chapter back as MyST text (jupytext.toml: no .ipynb pairing, no outputs). The header
  (the YAML between the `---` lines) keeps its text while its metadata is unchanged: jupytext would rewrite
  it in its own key order, and JupyterLab sets the kernel's display name, which depends on where the
  kernel was installed ("Python 3 (fusionseg)" from the Makefile). A save that changes no cell keeps the
  whole file as it was, so `git diff` shows only what was edited.
- The lab asks the network for nothing of its own: no news feed, no update check, and its extension
  manager only lists what is installed (extensions come from pyproject.toml's pins, not from the lab).
"""

from __future__ import annotations

import contextvars
from pathlib import Path

import jupytext
import yaml
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupytext.async_contentsmanager import build_async_jupytext_contents_manager_class

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent


def split_header(text: str) -> tuple[str, dict | None, str]:
    """A text notebook's YAML header (its text, with both `---` lines), its metadata, and the rest."""
    if not text.startswith("---\n"):
        return "", None, text
    end = text.find("\n---\n", 3)
    if end < 0:
        return "", None, text
    header = text[: end + len("\n---\n")]
    try:
        metadata = yaml.safe_load(header[4 : end + 1])
    except yaml.YAMLError:
        return "", None, text
    return (header, metadata, text[len(header) :]) if isinstance(metadata, dict) else ("", None, text)


def is_myst(metadata: dict | None) -> bool:
    """Whether a header says its file is a MyST text notebook (jupytext's `format_name: myst`)."""
    jupytext_metadata = (metadata or {}).get("jupytext")
    representation = (
        jupytext_metadata.get("text_representation") if isinstance(jupytext_metadata, dict) else None
    )
    return isinstance(representation, dict) and representation.get("format_name") == "myst"


def comparable(metadata: dict) -> dict:
    """Header metadata less the kernel's display name (the kernel is its `name`)."""
    metadata = dict(metadata)
    if isinstance(metadata.get("kernelspec"), dict):
        metadata["kernelspec"] = {k: v for k, v in metadata["kernelspec"].items() if k != "display_name"}
    return metadata


def cells(text: str) -> list[tuple]:
    """What a MyST notebook holds, cell by cell (its layout aside: blank lines, YAML style)."""
    notebook = jupytext.reads(text, fmt="md:myst")
    return [(cell.cell_type, cell.source, cell.metadata) for cell in notebook.cells]


def keep_unchanged(old: str, new: str) -> str:
    """What to write over `old` (a MyST text notebook) when jupytext wrote `new` for it."""
    old_header, old_metadata, _ = split_header(old)
    _, new_metadata, new_body = split_header(new)
    if old_metadata is None or new_metadata is None or comparable(old_metadata) != comparable(new_metadata):
        return new
    if cells(old) == cells(new):
        return old
    return old_header + new_body


# Set while a notebook is saved: the text jupytext writes for it then comes through the file manager.
SAVING_A_NOTEBOOK: contextvars.ContextVar[bool] = contextvars.ContextVar("saving_a_notebook", default=False)


class TextNotebookFileManager(AsyncLargeFileManager):
    """Jupyter's file manager; the MyST text of a notebook saved over itself keeps what did not change.
    (A Markdown file saved from the text editor is written as it comes.)"""

    async def save(self, model, path=""):
        if SAVING_A_NOTEBOOK.get() and model.get("type") == "file" and path.endswith(".md"):
            os_path = Path(self._get_os_path(path.strip("/")))
            old = os_path.read_text(encoding="utf-8") if os_path.is_file() else ""
            if is_myst(split_header(old)[1]):
                model = dict(model, content=keep_unchanged(old, model["content"]))
        return await super().save(model, path)


class BookContentsManager(build_async_jupytext_contents_manager_class(TextNotebookFileManager)):
    """jupytext's contents manager (text files open as notebooks) over the file manager above."""

    async def save(self, model, path=""):
        token = SAVING_A_NOTEBOOK.set(model.get("type") == "notebook")
        try:
            return await super().save(model, path)
        finally:
            SAVING_A_NOTEBOOK.reset(token)


c = get_config()  # noqa: F821 (traitlets defines it in config files)

c.ServerApp.ip = "127.0.0.1"
c.ServerApp.open_browser = False
c.ServerApp.root_dir = str(REPO_ROOT)
c.ServerApp.contents_manager_class = BookContentsManager
c.LabApp.default_url = "/lab/tree/book"
c.LabApp.app_settings_dir = str(HERE / "settings")
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
c.LabApp.extension_manager = "readonly"
