"""data_scripts/: resumable download, md5 check and extraction, offline against a local HTTP server
on 127.0.0.1; and one script end to end (DAVIS layout zipped, served, fetched, unpacked, verified)."""

from __future__ import annotations

import hashlib
import importlib
import io
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from data_fixtures import write_davis

SCRIPTS = Path(__file__).resolve().parents[1] / "data_scripts"


@pytest.fixture()
def dl(monkeypatch):
    """The shared download module (data_scripts/ is a folder of scripts, not a package)."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    return importlib.import_module("_download")


class Server:
    """Serves `files` (name -> bytes); honours `Range: bytes=N-` unless `ranges` is False."""

    def __init__(self, files: dict[str, bytes], ranges: bool = True):
        self.files, self.ranges, self.requests = files, ranges, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                start, status = 0, 200
                range_header = self.headers.get("Range")
                if server.ranges and range_header:
                    start, status = int(range_header.removeprefix("bytes=").rstrip("-")), 206
                    if start >= len(body):
                        self.send_error(416)
                        return
                self.send_response(status)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def serve():
    servers = []

    def start(files, ranges=True):
        servers.append(Server(files, ranges))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def small_zip() -> bytes:
    """A zip with one top folder, like DAVIS-data.zip, big enough to be worth resuming."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("DATA/a/readme.txt", "hello\n")
        zf.writestr("DATA/b/numbers.bin", bytes(range(256)) * 400)
    return buffer.getvalue()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_download_checks_md5_and_extracts(dl, serve, tmp_path):
    body = small_zip()
    server = serve({"x.zip": body})
    path = dl.download(f"{server.url}/x.zip", tmp_path / "dl" / "x.zip", md5(body))
    assert path.read_bytes() == body and not (tmp_path / "dl" / "x.zip.part").exists()
    dl.extract(path, tmp_path / "out", strip_top=True)
    assert (tmp_path / "out" / "a" / "readme.txt").read_text() == "hello\n"
    assert (tmp_path / "out" / "b" / "numbers.bin").stat().st_size == 256 * 400
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == []  # staging removed
    dl.extract(path, tmp_path / "kept")
    assert (tmp_path / "kept" / "DATA" / "a" / "readme.txt").is_file()


def test_resume_asks_only_for_the_missing_bytes(dl, serve, tmp_path):
    body = small_zip()
    server = serve({"x.zip": body})
    dest = tmp_path / "x.zip"
    (tmp_path / "x.zip.part").write_bytes(body[:1000])
    dl.download(f"{server.url}/x.zip", dest, md5(body))
    assert server.requests == [("/x.zip", "bytes=1000-")]
    assert dest.read_bytes() == body
    dl.download(f"{server.url}/x.zip", dest, md5(body))  # complete and verified: no new request
    assert len(server.requests) == 1


def test_resume_restarts_when_the_server_ignores_range(dl, serve, tmp_path):
    body = small_zip()
    server = serve({"x.zip": body}, ranges=False)
    (tmp_path / "x.zip.part").write_bytes(b"garbage-from-an-older-attempt")
    dl.download(f"{server.url}/x.zip", tmp_path / "x.zip", md5(body))
    assert (tmp_path / "x.zip").read_bytes() == body


def test_complete_part_file_gets_416_and_is_kept(dl, serve, tmp_path):
    body = small_zip()
    server = serve({"x.zip": body})
    (tmp_path / "x.zip.part").write_bytes(body)
    dl.download(f"{server.url}/x.zip", tmp_path / "x.zip", md5(body))
    assert (tmp_path / "x.zip").read_bytes() == body and server.requests[0][1] == f"bytes={len(body)}-"


def test_md5_mismatch_deletes_and_explains(dl, serve, tmp_path):
    server = serve({"x.zip": small_zip()})
    with pytest.raises(dl.DownloadError, match="md5 .*expected 0{32}; the download was deleted"):
        dl.download(f"{server.url}/x.zip", tmp_path / "x.zip", "0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_named(dl, serve, tmp_path):
    server = serve({})
    with pytest.raises(dl.DownloadError, match="missing.zip: HTTP 404"):
        dl.download(f"{server.url}/missing.zip", tmp_path / "missing.zip")


def test_extract_refuses_members_outside_the_target(dl, tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escaped.txt", "no")
    with pytest.raises(dl.DownloadError, match="refusing member '../escaped.txt'"):
        dl.extract(evil, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


def test_extract_reads_tar_whatever_its_suffix(dl, tmp_path):
    archive = tmp_path / "benchmark.tgz"  # SBD's .tgz is a plain tar
    with tarfile.open(archive, "w") as tf:
        data = b"ids\n"
        info = tarfile.TarInfo("benchmark_RELEASE/dataset/train.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    dl.extract(archive, tmp_path / "voc")
    assert (tmp_path / "voc" / "benchmark_RELEASE" / "dataset" / "train.txt").read_bytes() == b"ids\n"


def test_davis_script_end_to_end(dl, serve, tmp_path, monkeypatch, capsys):
    source = write_davis(tmp_path / "src" / "DAVIS")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(source.parent).as_posix())
    body = buffer.getvalue()
    server = serve({"DAVIS-data.zip": body})
    davis = importlib.import_module("davis")
    monkeypatch.setattr(davis, "ARCHIVE", dl.Archive(f"{server.url}/DAVIS-data.zip", md5(body)))
    status = davis.main(["--target", str(tmp_path / "data" / "DAVIS")])
    out = capsys.readouterr().out
    assert (tmp_path / "data" / "downloads" / "DAVIS-data.zip").read_bytes() == body
    assert (tmp_path / "data" / "DAVIS" / "ImageSets" / "480p" / "val.txt").is_file()
    assert "trainval: 3 sequences (official 50), 9 frames (official 3,455)" in out
    assert status == 0 and "OK (6 warning(s))" in out  # subset warnings only


def test_registration_scripts_explain_and_stop(dl, capsys, tmp_path):
    for name, needle in (
        ("youtube_objects", "data_download_register.html"),
        ("imagenet_vid", "image-net.org"),
    ):
        module = importlib.import_module(name)
        assert module.main(["--target", str(tmp_path / name)]) == 2
        assert needle in capsys.readouterr().out
        assert not (tmp_path / name).exists()
