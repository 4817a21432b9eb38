"""Download, check and unpack dataset archives: the one module every data script shares.

- `download(url, dest, md5)`: resumable HTTP download. A partial file `<dest>.part` is continued
  with an HTTP Range request; a server that ignores Range (status 200) restarts it from zero. The
  md5 is checked when known (a mismatch deletes the file and stops), else printed for the record.
  A finished `dest` whose md5 matches is not fetched again.
- `extract(archive, target, strip_top)`: unpack a .zip or a tar (any compression) into `target`,
  refusing members that would land outside it; `strip_top` drops the archive's top folder when it
  has exactly one (DAVIS-data.zip holds DAVIS/..., and the data should end up in `target` itself).
- `script_parser`, `fetch_and_extract`, `registered_archive`, `finish`: the options every script
  shares, the download-then-unpack step, the registration-only datasets' path, the closing verify.
Nothing runs at import time.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download or an archive failed a check (HTTP error, md5 mismatch, unsafe member)."""


@dataclass(frozen=True)
class Archive:
    """One file of an official release: where it comes from and its md5 (None if unpublished)."""

    url: str
    md5: str | None = None

    @property
    def filename(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


def md5sum(path: Path) -> str:
    """The md5 hex digest of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _open(url: str, start: int):
    """An HTTP response for `url`, asking for bytes from `start` on when resuming."""
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        return urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # nothing left to send: the partial file is complete
            return None
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise DownloadError(f"{url}: {exc.reason}") from exc


def _fetch(url: str, part: Path) -> None:
    """Fill `part` with the body of `url`, continuing what is already there when the server agrees."""
    start = part.stat().st_size if part.exists() else 0
    response = _open(url, start)
    if response is None:
        return
    with response:
        resumed = start > 0 and response.status == 206
        if start and not resumed:
            print(f"{url}: the server ignored the Range request; starting again")
            start = 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        with (
            open(part, "ab" if resumed else "wb") as handle,
            tqdm(
                total=total, initial=start, unit="B", unit_scale=True, desc=part.name[: -len(".part")]
            ) as bar,
        ):
            for block in iter(lambda: response.read(CHUNK), b""):
                handle.write(block)
                bar.update(len(block))


def download(url: str, dest: Path, md5: str | None = None) -> Path:
    """Download `url` to `dest` (resuming `<dest>.part`), check the md5 and return `dest`."""
    dest = Path(dest)
    if dest.is_file() and (md5 is None or md5sum(dest) == md5):
        print(f"{dest}: already downloaded")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    _fetch(url, part)
    actual = md5sum(part)
    if md5 is not None and actual != md5:
        part.unlink()
        raise DownloadError(f"{url}: md5 {actual}, expected {md5}; the download was deleted, run again")
    os.replace(part, dest)
    print(f"{dest}: md5 {actual}" + (" (verified)" if md5 else " (no published md5 to check against)"))
    return dest


def _check_member(name: str, archive: Path) -> None:
    """Refuse absolute paths and '..' in member names (they would escape the target folder)."""
    parts = Path(name).parts
    if name.startswith(("/", "\\")) or ".." in parts:
        raise DownloadError(f"{archive}: refusing member {name!r}, which points outside the target folder")


def _unpack(archive: Path, folder: Path) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                _check_member(name, archive)
            zf.extractall(folder)
        return
    try:
        with tarfile.open(archive, "r:*") as tf:
            for member in tf.getmembers():
                _check_member(member.name, archive)
            tf.extractall(folder, filter="data")
    except tarfile.TarError as exc:
        raise DownloadError(f"{archive}: neither a zip nor a readable tar ({exc})") from exc


def extract(archive: Path, target: Path, strip_top: bool = False) -> Path:
    """Unpack `archive` into `target` (created); with `strip_top`, a single top folder is dropped."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=target) as tmp:
        staging = Path(tmp)
        _unpack(Path(archive), staging)
        entries = [p for p in staging.iterdir() if p.name != "__MACOSX"]
        source = entries[0] if strip_top and len(entries) == 1 and entries[0].is_dir() else staging
        for entry in source.iterdir():
            if entry.name == "__MACOSX":
                continue
            destination = target / entry.name
            if destination.is_dir() and entry.is_dir():
                shutil.copytree(entry, destination, dirs_exist_ok=True)
            else:
                os.replace(entry, destination)
    print(f"{archive}: extracted into {target}")
    return target


def script_parser(description: str, folder: str, archives: bool = True) -> argparse.ArgumentParser:
    """The options every data script takes: --target, and for archives --downloads, --skip-verify."""
    data = os.environ.get("FUSIONSEG_DATA")
    default = Path(data) / folder if data else Path("data") / folder
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--target", type=Path, default=default, help=f"where the data goes (default {default})"
    )
    if not archives:
        return parser
    parser.add_argument(
        "--downloads",
        type=Path,
        help="where archives are kept (default: <target>/../downloads); partial ones resume",
    )
    parser.add_argument(
        "--skip-verify", action="store_true", help="do not run `fusionseg data verify` at the end"
    )
    return parser


def downloads_dir(args: argparse.Namespace) -> Path:
    return args.downloads or Path(args.target).parent / "downloads"


def fetch_and_extract(
    archive: Archive, args: argparse.Namespace, strip_top: bool, target: Path | None = None
) -> None:
    """Download one archive into the downloads folder and unpack it into `target` (default --target)."""
    path = download(archive.url, downloads_dir(args) / archive.filename, archive.md5)
    extract(path, target or args.target, strip_top=strip_top)


def add_registration_options(parser: argparse.ArgumentParser) -> None:
    """--archive / --url for datasets whose download link comes only after registering."""
    parser.add_argument("--archive", type=Path, help="the archive, already downloaded after registering")
    parser.add_argument("--url", help="the download link you received after registering")


def registered_archive(
    args: argparse.Namespace, filename: str, md5: str | None, instructions: str
) -> Path | None:
    """The archive from --archive (md5-checked) or --url (downloaded); None after printing how to get one."""
    if args.archive:
        archive = Path(args.archive)
        if not archive.is_file():
            raise DownloadError(f"{archive}: file not found")
        if md5 is not None and md5sum(archive) != md5:
            raise DownloadError(
                f"{archive}: md5 {md5sum(archive)}, expected {md5} (incomplete or a different file)"
            )
        return archive
    if args.url:
        return download(args.url, downloads_dir(args) / filename, md5)
    print(instructions.strip())
    return None


def finish(dataset: str, args: argparse.Namespace, expect_subset: bool = False) -> int:
    """Run `fusionseg data verify` on the result (unless --skip-verify) and return its exit status."""
    if args.skip_verify:
        return 0
    from fusionseg.data.verify import verify_dataset

    report = verify_dataset(dataset, args.target, expect_subset=expect_subset)
    print(report.render())
    return 0 if report.ok else 1
