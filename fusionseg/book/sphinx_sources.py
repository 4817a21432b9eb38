"""A Sphinx extension of the rendered book: each page's download button also offers the chapter's
own source (`book/<name>.md`, the MyST text notebook that opens in Jupyter with jupytext), beside
the executed notebook (.ipynb, with its outputs) that Jupyter Book offers.

`fusionseg.book.build.stage_site` copies the sources into the site as `_sources/<name>.md` (through
`html_extra_path`, so they are plain files next to the executed notebooks Sphinx puts there, and
work from file://) and sets `fusionseg_chapter_sources` (page name -> file name); this extension
adds one link per page to sphinx-book-theme's download group.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

BUTTON_LABEL = "download-chapter-source-button"


def add_chapter_source(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Insert a link to `_sources/<chapter source>` into the page's download group (after the .ipynb)."""
    name = app.config.fusionseg_chapter_sources.get(pagename)
    if not name:
        return
    for group in context.get("header_buttons", []):
        if group.get("label") != "download-buttons":
            continue
        buttons = group["buttons"]
        if any(button.get("label") == BUTTON_LABEL for button in buttons):
            return
        link = {
            "type": "link",
            "url": f"{context['pathto']('_sources', 1)}/{name}",
            "text": PurePosixPath(name).suffix,
            "tooltip": "Download the chapter's source (MyST Markdown: opens as a notebook with jupytext)",
            "icon": "fas fa-file-lines",
            "label": BUTTON_LABEL,
        }
        pdf = [i for i, button in enumerate(buttons) if button.get("label") == "download-pdf-button"]
        buttons.insert(pdf[0] if pdf else len(buttons), link)
        return


def setup(app: Any) -> dict[str, Any]:
    app.add_config_value("fusionseg_chapter_sources", {}, "html")
    # after sphinx-book-theme fills the download group (priority 501)
    app.connect("html-page-context", add_chapter_source, priority=510)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
