"""Headless Chromium opens the built smoke book from disk (file://): the Table 1 page renders its
tables, figures and MathJax, a screenshot is taken, and no request leaves the machine.

Requests are read from Chromium's net log: page-initiated requests carry the page's (file://)
origin as initiator; the browser's own background requests carry "not an origin" and are blocked
anyway by --host-resolver-rules. A control page with a remote image proves the check can fail.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import CHROMIUM_FLAGS
from test_book import build_smoke_book

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)"
)

FLAGS = [
    *CHROMIUM_FLAGS,
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--virtual-time-budget=10000",  # let scripts (MathJax) finish before the DOM dump or screenshot
]


def chromium(page: Path, *args: str) -> subprocess.CompletedProcess:
    command = [str(CHROMIUM), *FLAGS, *args, page.resolve().as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def page_requests(page: Path, net_log: Path) -> tuple[str, list[str]]:
    """The rendered DOM of `page` and the non-file URLs the page itself asked for."""
    dom = chromium(page, f"--log-net-log={net_log}", "--dump-dom").stdout
    log = json.loads(net_log.read_text())
    event_types = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    urls = []
    for event in log["events"]:
        params = event.get("params", {})
        if event_types.get(event["type"]) != "URL_REQUEST_START_JOB" or "url" not in params:
            continue
        if params.get("initiator") == "not an origin":  # the browser's own background requests
            continue
        if not params["url"].startswith("file:"):
            urls.append(params["url"])
    return dom, urls


def test_request_check_catches_a_remote_image(tmp_path):
    control = tmp_path / "control.html"
    control.write_text('<html><body><img src="https://example.org/remote.png"><p>control</p></body></html>')
    dom, urls = page_requests(control, tmp_path / "control-net.json")
    assert "control" in dom
    assert urls == ["https://example.org/remote.png"]


@pytest.mark.slow
def test_table1_page_renders_offline_from_disk(tmp_path_factory, tmp_path):
    html = build_smoke_book(tmp_path_factory) / "html"
    page = html / "06_table1_davis.html"
    dom, urls = page_requests(page, tmp_path / "net.json")
    assert urls == [], f"the Table 1 page asked the network for {urls}"
    assert "Table 1: DAVIS 2016" in dom
    assert dom.count("<table") >= 1 and "71.51" in dom  # the paper's Ours-Joint beside the ledger
    assert "<img" in dom and "_images/" in dom  # the bar chart
    assert "<mjx-container" in dom  # MathJax ran, from the local copy
    screenshot = tmp_path / "table1.png"
    chromium(page, "--window-size=1280,2000", f"--screenshot={screenshot}")
    assert screenshot.stat().st_size > 50_000  # a rendered page, not a blank one
    fusion = tmp_path / "fusion.png"
    chromium(html / "05_fusion.html", "--window-size=1280,1600", f"--screenshot={fusion}")
    assert fusion.stat().st_size > 50_000
