"""`make lab`: JupyterLab, started as the Makefile starts it (lab/jupyter_lab_config.py), opens a chapter
(book/*.md) as a notebook through jupytext, runs its first cells on the project's kernel, saves it back
as the same MyST text, and shows it in a browser (headless Chromium, when installed).

Also, in the rendered book: the download button and the hidden injected-parameters cell.

A real client of a real server: the Jupyter REST API and kernel websocket, on 127.0.0.1 with a random
port and token. The save checks use a copy of the chapter (under book/_build/, ignored by git, removed
afterwards); the real chapter is only read. The server's Jupyter config, data and runtime folders are
temporary, so neither the user's Jupyter settings nor this test's leftovers get in the way.
"""

from __future__ import annotations

import html
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import CHROMIUM_FLAGS

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "lab" / "jupyter_lab_config.py"
CHAPTER = "book/02_appearance_stream.md"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LAB_CHROMIUM_FLAGS = [
    *CHROMIUM_FLAGS,
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no name resolves: only the local server
]

pytestmark = pytest.mark.slow


def lab_command(port: int, token: str) -> list[str]:
    """The Makefile's `lab` command (see `make lab`), on a given port and token."""
    command = [sys.executable, "-m", "jupyter", "lab", f"--config={CONFIG}"]
    if os.geteuid() == 0:  # as the Makefile does for root (e.g. in a container or CI)
        command.append("--allow-root")
    return command + [
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Lab:
    url: str
    token: str
    log: Path

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"token {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = response.read()
        return json.loads(payload) if payload else {}


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("lab")
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    for variable, folder in [
        ("JUPYTER_CONFIG_DIR", "jupyter-config"),
        ("JUPYTER_DATA_DIR", "jupyter-data"),
        ("JUPYTER_RUNTIME_DIR", "jupyter-runtime"),
        ("FUSIONSEG_RESULTS", "results"),
        ("FUSIONSEG_RUNS", "runs"),
        ("FUSIONSEG_CACHE", "cache"),
    ]:
        env[variable] = str(tmp / folder)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    log = tmp / "lab.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(
            lab_command(port, token),
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, ended as a whole below
        )
    try:
        lab = Lab(f"http://127.0.0.1:{port}", token, log)
        deadline = time.monotonic() + 45
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited ({server.returncode}):\n{log.read_text()[-3000:]}")
            try:
                lab.request("GET", "/api/status")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer in 45 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield lab
        for kernel in lab.request("GET", "/api/kernels"):
            lab.request("DELETE", f"/api/kernels/{kernel['id']}")
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def chapter_copy() -> Iterator[str]:
    """A copy of the chapter beside the book's build outputs (ignored by git), as a contents-API path."""
    build = ROOT / "book" / "_build"
    made_build = not build.exists()
    build.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="test-lab-", dir=build))
    try:
        shutil.copy2(ROOT / CHAPTER, folder / Path(CHAPTER).name)
        yield (folder / Path(CHAPTER).name).relative_to(ROOT).as_posix()
    finally:
        shutil.rmtree(folder)
        if made_build and not any(build.iterdir()):
            build.rmdir()


class Kernel:
    """A kernel of the server, driven over its websocket (Jupyter's messaging protocol, JSON)."""

    def __init__(self, lab: Lab, kernel_id: str):
        import websocket  # websocket-client, a dependency of jupyter_server

        url = lab.url.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
        self.socket = websocket.create_connection(
            url, header=[f"Authorization: token {lab.token}"], timeout=60
        )
        self.session = uuid.uuid4().hex

    def request(self, msg_type: str, content: dict) -> tuple[dict, list[dict]]:
        """Send a shell request; its reply and the outputs it produced (iopub), once the kernel is idle."""
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": msg_type, "session": self.session, "username": "test"}
        header |= {"version": "5.3", "date": ""}
        message = {
            "header": header,
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": "shell",
        }
        self.socket.send(json.dumps(message))
        reply, outputs, idle = None, [], False
        while reply is None or not idle:
            message = json.loads(self.socket.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["msg_type"]
            if message["channel"] == "shell":
                reply = message
            elif kind == "status":
                idle = message["content"]["execution_state"] == "idle"
            elif kind in ("stream", "execute_result", "display_data", "error"):
                output = dict(message["content"], output_type=kind)
                output.pop("transient", None)
                outputs.append(output)
        return reply["content"], outputs

    def close(self) -> None:
        self.socket.close()


# ------------------------------------------------------------------------------------------------
# The rendered book (the test session's smoke book, shared with tests/test_book.py; tested first, while
# no JupyterLab runs): each page's download button offers its executed notebook, a file beside the
# page, and papermill's injected cell (tag `injected-parameters`: the values `fusionseg book` passed)
# is hidden (book/_static/injected-parameters.css).

PROBE = """<html><body><iframe id="page" src="{page}" width="1200" height="800"></iframe><script>
document.getElementById("page").addEventListener("load", () => {{
  const page = document.getElementById("page").contentDocument, shown = [];
  for (const tag of ["injected-parameters", "parameters"]) {{
    const cell = page.querySelector(".cell.tag_" + tag);
    shown.push(tag + "=" + (cell ? getComputedStyle(cell).display : "missing"));
  }}
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = shown.join(" ");
  document.body.appendChild(out);
}});
</script></body></html>"""


def test_book_pages_offer_their_notebook_and_hide_the_injected_parameters(tmp_path_factory, tmp_path):
    import nbformat
    from test_book import EXPECTED_CHAPTERS, build_smoke_book

    site = build_smoke_book(tmp_path_factory) / "html"
    for name in EXPECTED_CHAPTERS:
        page = (site / f"{name}.html").read_text()
        assert "download-buttons" in page, name
        links = re.findall(r'href="(_sources/[^"]+)"', page)
        assert links == [f"_sources/{name}.ipynb"], (name, links)  # relative: it opens from file://
        notebook = nbformat.read(site / links[0], as_version=4)
        assert "papermill" in notebook.metadata, name  # the executed notebook, with its outputs
        assert 'class="cell tag_injected-parameters' in page, name
        assert "_static/injected-parameters.css" in page, name
    if CHROMIUM is None:
        pytest.skip("chromium is not installed: the page's styles were not checked in a browser")
    probe = tmp_path / "probe.html"
    probe.write_text(PROBE.format(page=(site / "02_appearance_stream.html").as_uri()))
    command = [
        str(CHROMIUM),
        *LAB_CHROMIUM_FLAGS,
        "--allow-file-access-from-files",  # lets the probe read the page's computed styles
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probe.as_uri(),
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    assert "injected-parameters=none parameters=block" in dom, dom[-2000:]


# ------------------------------------------------------------------------------------------------
# JupyterLab


def test_make_lab_starts_this_server():
    makefile = (ROOT / "Makefile").read_text()
    assert "-m jupyter lab --config=lab/jupyter_lab_config.py" in makefile
    assert "--allow-root" in makefile  # only for root: see the Makefile


def test_a_chapter_opens_as_a_notebook_runs_and_saves_back_unchanged(lab, chapter_copy):
    # The real chapter, through jupytext: a notebook whose first code cell is papermill's parameters cell.
    model = lab.request("GET", f"/api/contents/{CHAPTER}?type=notebook&content=1")
    assert (model["type"], model["format"]) == ("notebook", "json")
    notebook = model["content"]
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"].get("tags", []), code[0]
    assert notebook["cells"][0]["cell_type"] == "markdown"

    # Its first two code cells (parameters, then setup) run on the project's kernel, as the lab runs them.
    copy = lab.request("GET", f"/api/contents/{chapter_copy}?type=notebook&content=1")["content"]
    original = (ROOT / chapter_copy).read_bytes()
    assert original == (ROOT / CHAPTER).read_bytes()
    session = lab.request(
        "POST", "/api/sessions", {"path": chapter_copy, "type": "notebook", "kernel": {"name": "python3"}}
    )
    kernel = Kernel(lab, session["kernel"]["id"])
    try:
        info, _ = kernel.request("kernel_info_request", {})
        cells = [cell for cell in copy["cells"] if cell["cell_type"] == "code"][:2]
        for count, cell in enumerate(cells, start=1):
            reply, outputs = kernel.request(
                "execute_request", {"code": cell["source"], "silent": False, "store_history": True}
            )
            assert reply["status"] == "ok", (cell["source"], reply, outputs)
            cell["outputs"], cell["execution_count"] = outputs, count
        printed = "".join(output.get("text", "") for output in cells[1]["outputs"])
        assert "profile mini" in printed, printed
        reply, outputs = kernel.request(
            "execute_request", {"code": "import fusionseg, sys; print(sys.executable, fusionseg.__file__)"}
        )
        executable, library = "".join(output.get("text", "") for output in outputs).split()
        assert Path(executable).resolve() == Path(sys.executable).resolve()  # the project's Python
        assert Path(library).resolve().is_relative_to(ROOT)  # and library
    finally:
        kernel.close()

    # Saved as the lab saves it (outputs, kernelspec and language_info set by the front end): the text
    # is the same, byte for byte.
    spec = lab.request("GET", "/api/kernelspecs")["kernelspecs"]["python3"]["spec"]
    copy["metadata"]["kernelspec"] = {
        "name": "python3",
        "display_name": spec["display_name"],
        "language": spec["language"],
    }
    copy["metadata"]["language_info"] = info["language_info"]
    saved = lab.request(
        "PUT", f"/api/contents/{chapter_copy}", {"type": "notebook", "format": "json", "content": copy}
    )
    assert saved["type"] == "notebook"
    assert (ROOT / chapter_copy).read_bytes() == original

    # An edit to the parameters cell is a one-line change of the text (what `git diff` shows).
    cells[0]["source"] = cells[0]["source"].replace("iterations = None", "iterations = 50")
    lab.request(
        "PUT", f"/api/contents/{chapter_copy}", {"type": "notebook", "format": "json", "content": copy}
    )
    before, after = original.decode().splitlines(), (ROOT / chapter_copy).read_text().splitlines()
    assert len(before) == len(after)
    changed = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    assert [new for _, new in changed] == [
        "iterations = 50  # training iterations per stream (the paper: 20,000)"
    ], changed

    # A save from the text editor (a file, not a notebook) is written as it comes, layout and all.
    kernelspec = "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n"
    text = original.decode().replace(
        kernelspec, "kernelspec: {name: python3, display_name: Python 3, language: python}\n"
    )
    assert text != original.decode()
    lab.request("PUT", f"/api/contents/{chapter_copy}", {"type": "file", "format": "text", "content": text})
    assert (ROOT / chapter_copy).read_text() == text
    assert (ROOT / CHAPTER).read_bytes() == original  # the real chapter was never written


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)"
)
def test_the_chapter_shows_as_a_notebook_in_a_browser(lab, chapter_copy, tmp_path):
    url = f"{lab.url}/lab/tree/{chapter_copy}?token={lab.token}"
    screenshot = tmp_path / "lab.png"
    command = [
        str(CHROMIUM),
        *LAB_CHROMIUM_FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,900",
        "--virtual-time-budget=30000",  # JupyterLab renders client-side: let its scripts run first
        f"--screenshot={screenshot}",
        "--dump-dom",
        url,
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    shutil.copy2(screenshot, Path(tempfile.gettempdir()) / "lab_screenshot.png")  # for a person to look at
    classes = " ".join(re.findall(r'class="([^"]*)"', dom)).split()
    shown = html.unescape(re.sub(r"<[^>]+>", "", dom))  # the page's text
    assert "Password or token" not in shown  # not the login page
    assert "jp-LabShell" in classes, dom[:2000]  # the lab application, rendered
    assert "jp-NotebookPanel" in classes and "jp-FileEditor" not in classes  # the .md opened as a notebook
    notebook = lab.request("GET", f"/api/contents/{chapter_copy}?type=notebook&content=1")["content"]
    title = notebook["cells"][0]["source"].splitlines()[0].lstrip("# ")
    parameters = next(cell for cell in notebook["cells"] if cell["cell_type"] == "code")
    assert title in shown  # its first cell (the title), rendered
    assert parameters["source"].splitlines()[0] in shown  # its parameters cell
    spec = lab.request("GET", "/api/kernelspecs")["kernelspecs"]["python3"]["spec"]
    assert spec["display_name"] in dom  # on the project's kernel

    from PIL import Image

    with Image.open(screenshot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        width, height = image.size
    most = max(count for count, _ in colours)
    assert len(colours) > 50 and most < 0.95 * width * height, "the screenshot is (nearly) blank"
