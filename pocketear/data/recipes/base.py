"""Shared machinery of the dataset recipes: fetch, verify, extract safely, write.

* Archives (tar, tar.gz/bz2/xz, zip): every member is checked *before* anything is written
  (absolute paths, ``..``, links leaving the target, devices and FIFOs are refused), then tar
  extraction also uses Python's ``filter="data"`` (defence in depth). Extraction goes to a temp
  folder renamed into place with a marker: re-runs skip it, an interrupted one starts again.
* Downloads go to ``out/downloads/NAME.part`` and resume with an HTTP ``Range`` request.
* Manifests (``path,label,split[,group][,extra...]``) are written atomically and last.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tqdm import tqdm

from pocketear.audio.io import AUDIO_EXTENSIONS
from pocketear.errors import UserError

SPLITS = ("train", "valid", "test")
MARKER = ".pocketear-extracted"
_SCHEMES = ("http", "https", "ftp", "file")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz", ".tar",
                     ".zip")
COMMON_OPTIONS: dict[str, str] = {
    "checksum": "expected md5 or sha256 of the archive (comma-separated, one per source); "
                "verified before extraction",
}


class RecipeError(UserError):
    """A recipe cannot proceed; the message names the file and what to do.

    A user error (a source, option or archive the user gave), so the CLI prints it as one line.
    """


class UnsafeArchiveError(RecipeError):
    """An archive member would be written outside the target (or is a device file)."""


class ChecksumError(RecipeError):
    """A file's checksum differs from the expected one."""


class RecipeWarning(UserWarning):
    """A file skipped while scanning (e.g. empty); counted in the summary."""


# --- checksums --------------------------------------------------------------------------------
def verify_checksum(path: str | os.PathLike[str], expected: str, progress: bool = False) -> None:
    """Check a file against an md5 (32 hex digits) or sha256 (64) checksum.

    Raises:
        ChecksumError: The digest differs (the message says to delete and download again).
        RecipeError: ``expected`` is not an md5 or sha256 hex digest.
    """
    want = expected.strip().lower().split(":")[-1]
    algo = {32: "md5", 64: "sha256"}.get(len(want))
    if algo is None or not re.fullmatch(r"[0-9a-f]+", want):
        raise RecipeError(f"{expected!r} is not an md5 (32 hex digits) or sha256 (64) checksum")
    h = hashlib.new(algo)
    path = Path(path)
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                                     desc=f"{algo} {path.name}", disable=not progress) as bar:
        while block := f.read(1 << 20):
            h.update(block)
            bar.update(len(block))
    got = h.hexdigest()
    if got != want:
        raise ChecksumError(
            f"checksum mismatch for {path}: expected {algo} {want}, got {got}; the download is "
            "corrupt or a different version: delete it and download again")


# --- download -------------------------------------------------------------------------------
def download(url: str, folder: str | os.PathLike[str], progress: bool = True,
             timeout: float = 60.0) -> Path:
    """Download ``url`` into ``folder`` (kept: a second call returns at once).

    Bytes go to ``NAME.part`` first; an interrupted download resumes with an HTTP ``Range``
    request (servers that ignore it send the whole file, which is then rewritten).
    """
    name = posixpath.basename(urllib.parse.unquote(urllib.parse.urlparse(url).path)) or "download"
    dest = Path(folder) / name
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "pocketear"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to fetch: the .part file is complete
            os.replace(part, dest)
            return dest
        raise RecipeError(f"download of {url} failed: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError) as err:
        raise RecipeError(
            f"cannot download {url}: {getattr(err, 'reason', err)}; without internet, download "
            "the archive elsewhere and pass its local path as the source") from err
    with response:
        resumed = bool(have) and getattr(response, "status", None) == 206
        if resumed:
            start = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if not start or int(start.group(1)) != have:
                raise RecipeError(f"{url}: the server resumed at the wrong offset; delete {part} "
                                  "and run again")
        else:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else None
        with open(part, "ab" if resumed else "wb") as f, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
            desc=f"downloading {name}", disable=not progress) as bar:
            while chunk := response.read(1 << 20):
                f.write(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size != total:
        raise RecipeError(f"{url}: download incomplete ({part.stat().st_size} of {total} "
                          "bytes); run again to resume")
    os.replace(part, dest)
    return dest


# --- safe extraction ---------------------------------------------------------------------------
def archive_stem(path: str | os.PathLike[str]) -> str:
    """The archive's name without its archive suffix (``a.tar.gz`` -> ``a``)."""
    name = Path(path).name
    for suffix in _ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _outside(name: str, base: str | None = None, hard: bool = False) -> str | None:
    """Why ``name`` (a member, or a link target relative to ``base``) leaves the target."""
    norm = name.replace("\\", "/")
    verb = "has" if base is None else ("hard-links" if hard else "links")
    where = "" if base is None else f" ({name!r})"
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        return f"{'has' if base is None else verb + ' to'} an absolute path{where}"
    if base is None and ".." in norm.split("/"):
        return "has a '..' path component"
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(base or ""), norm))
    if resolved.split("/")[0] == "..":
        return f"{'has a path' if base is None else verb} outside the target{where}"
    return None


def _problem(name: str, mode: int, link: str | None, hard: bool = False) -> str | None:
    """Why a member (``mode``: its stat type bits; ``link``: a link target) is unsafe."""
    reason = _outside(name)
    if reason is None and link is not None:
        reason = _outside(link, "" if hard else name, hard)
    if reason is None and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)):
        reason = "is a device file or FIFO"
    return reason


def _refuse(archive: Path, member: str, reason: str) -> UnsafeArchiveError:
    """The error for an unsafe ``member`` of ``archive`` (raised by the caller)."""
    return UnsafeArchiveError(
        f"refusing to extract {archive}: member {member!r} {reason}; the archive is unsafe or "
        "corrupt: do not use it, download it again from the official source")


def is_extracted(dest: str | os.PathLike[str]) -> bool:
    """True when ``dest`` holds a completed extraction (its marker exists)."""
    return (Path(dest) / MARKER).is_file()


def safe_extract(archive: str | os.PathLike[str], dest: str | os.PathLike[str],
                 progress: bool = True) -> Path:
    """Extract a tar(.gz/.bz2/.xz) or zip archive into ``dest`` after checking every member.

    Nothing is written unless every member is safe. Extraction goes to a temporary sibling of
    ``dest`` renamed into place with a marker; when the marker exists the call returns at once.

    Raises:
        UnsafeArchiveError: A member is absolute, has ``..``, links outside, or is a device.
        RecipeError: Not a supported archive, or ``dest`` exists without a marker.
    """
    archive, dest = Path(archive), Path(dest)
    if is_extracted(dest):
        done = json.loads((dest / MARKER).read_text() or "{}")
        if done.get("size", archive.stat().st_size) != archive.stat().st_size:
            raise RecipeError(f"{dest} was extracted from a different {done.get('archive')}; "
                              "delete it and run again")
        return dest
    if dest.exists():
        raise RecipeError(f"{dest} exists but is not a completed extraction of {archive.name}; "
                          "move or delete it and run again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".tmp-{dest.name}-*"):  # an interrupted earlier run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".tmp-{dest.name}-"))
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, tmp, progress)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, tmp, progress)
        else:
            raise RecipeError(f"{archive}: not a tar or zip archive (or corrupt); formats: "
                              + ", ".join(_ARCHIVE_SUFFIXES))
        (tmp / MARKER).write_text(json.dumps({"archive": archive.name,
                                              "size": archive.stat().st_size}))
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _inside(root: Path, name: str) -> bool:
    target = (root / name).resolve()
    return target == root or root in target.parents


def _extract_tar(archive: Path, tmp: Path, progress: bool) -> None:
    root = tmp.resolve()
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for m in members:  # check everything before writing anything
            mode = {tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK,
                    tarfile.FIFOTYPE: stat.S_IFIFO}.get(m.type, 0)
            link = m.linkname if m.issym() or m.islnk() else None
            reason = _problem(m.name, mode, link, hard=m.islnk())
            if reason is None and not (m.isfile() or m.isdir() or link is not None):
                reason = "has an unsupported type"
            if reason is None and not _inside(root, m.name):
                reason = "resolves outside the target folder"
            if reason:
                raise _refuse(archive, m.name, reason)
        bar = tqdm(members, desc=f"extracting {archive.name}", unit="file", disable=not progress)
        try:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, members=bar, filter="data")
            else:  # pragma: no cover - Python without extraction filters
                tar.extractall(tmp, members=bar)
        except tarfile.FilterError as err:
            raise _refuse(archive, err.tarinfo.name, str(err)) from err


def _extract_zip(archive: Path, tmp: Path, progress: bool) -> None:
    root = tmp.resolve()
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            mode = info.external_attr >> 16
            link = zf.read(info).decode("utf-8", "replace") if stat.S_ISLNK(mode) else None
            reason = _problem(info.filename, mode, link)
            if reason is None and not _inside(root, info.filename):
                reason = "resolves outside the target folder"
            if reason:
                raise _refuse(archive, info.filename, reason)
        for info in tqdm(infos, desc=f"extracting {archive.name}", unit="file",
                         disable=not progress):
            if stat.S_ISLNK(info.external_attr >> 16):
                continue  # in-tree zip symlinks are skipped (zipfile would write them as text)
            zf.extract(info, tmp)


# --- sources --------------------------------------------------------------------------------
def fetch_sources(source: str, out: Path, progress: bool = True, checksum: str | None = None,
                  known_checksums: Mapping[str, str] | None = None) -> list[Path]:
    """Turn ``source`` (comma-separated URLs, archives or folders) into local folders.

    URLs are downloaded into ``out/downloads``; archives are verified (``checksum``, else a
    published checksum known for the archive's file name) and extracted into
    ``out/extracted/STEM``; folders are used in place.

    Raises:
        RecipeError: An empty source, a checksum count that does not match, a path that does
            not exist, a failed download or extraction; ChecksumError on a checksum mismatch.
    """
    parts = [s.strip() for s in source.split(",") if s.strip()]
    sums = [s.strip() for s in checksum.split(",")] if checksum else []
    if not parts:
        raise RecipeError("empty source: pass a URL, an archive or a folder")
    if sums and len(sums) != len(parts):
        raise RecipeError(f"{len(sums)} checksum(s) for {len(parts)} source(s); give one each")
    roots: list[Path] = []
    for i, part in enumerate(parts):
        is_url = urllib.parse.urlparse(part).scheme in _SCHEMES
        local = download(part, out / "downloads", progress) if is_url else Path(part).expanduser()
        if local.is_dir():
            roots.append(local.resolve())
            continue
        if not local.is_file():
            raise RecipeError(f"{local}: no such file or folder; pass the downloaded archive, "
                              "its extracted folder, or a URL")
        dest = out / "extracted" / archive_stem(local)
        if not is_extracted(dest):
            expected = sums[i] if sums else (known_checksums or {}).get(local.name)
            if expected:
                verify_checksum(local, expected, progress)
        roots.append(safe_extract(local, dest, progress).resolve())
    return roots


def find_dirs(roots: Iterable[Path], match: Any, max_depth: int = 4) -> list[Path]:
    """Folders under ``roots`` where ``match(folder)`` is true, sorted.

    Roots are included; the search goes at most ``max_depth`` deep, and matching folders are not
    searched further.
    """
    found: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        if match(folder):
            found.append(folder)
            return
        if depth < max_depth:
            for sub in sorted(p for p in folder.iterdir() if p.is_dir()
                              and not p.name.startswith(".")):
                walk(sub, depth + 1)

    for root in roots:
        walk(Path(root), 0)
    return sorted(set(found))


# --- scanning and splits ------------------------------------------------------------------------
@dataclass
class ScanReport:
    """What a recipe skipped while scanning, for the summary printed at the end."""

    skipped: Counter[str] = field(default_factory=Counter)

    def skip(self, path: str | os.PathLike[str], reason: str, warn: bool = True) -> None:
        """Count a skipped file (and warn about it)."""
        self.skipped[reason] += 1
        if warn:
            warnings.warn(f"skipping {path}: {reason}", RecipeWarning, stacklevel=2)

    def usable(self, path: Path) -> bool:
        """False (with a warning) for empty files: recipes never decode every file."""
        if path.stat().st_size == 0:
            self.skip(path, "empty file (0 bytes)")
            return False
        return True


def audio_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` with an audio extension, sorted (hidden folders skipped)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath, n) for n in filenames
                  if n.rsplit(".", 1)[-1].lower() in AUDIO_EXTENSIONS and not n.startswith(".")]
    return sorted(found)


def hash_unit(key: str, salt: str = "") -> float:
    """A stable pseudo-random number in [0, 1) for ``key`` (sha1; same on every machine)."""
    return int(hashlib.sha1(f"{salt}{key}".encode()).hexdigest()[:13], 16) / 16**13


def parse_fractions(text: str | Sequence[float]) -> tuple[float, float, float]:
    """``'80/10/10'``, ``'0.6,0.2,0.2'`` or a sequence -> normalised train/valid/test.

    Raises:
        RecipeError: Not three non-negative numbers with a positive sum.
    """
    values = [float(v) for v in re.split(r"[/,:]", text)] if isinstance(text, str) else \
        [float(v) for v in text]
    if len(values) != 3 or min(values) < 0 or sum(values) <= 0:
        raise RecipeError(f"fractions {text!r}: give three non-negative train/valid/test "
                          "numbers such as 80/10/10")
    total = sum(values)
    return values[0] / total, values[1] / total, values[2] / total


def hash_split(key: str, fractions: Sequence[float], salt: str = "") -> str:
    """Split of ``key`` by thresholding its hash (stable when the dataset grows)."""
    u = hash_unit(key, salt)
    return "train" if u < fractions[0] else "valid" if u < fractions[0] + fractions[1] \
        else "test"


def ordered_split(keys: Iterable[str], fractions: Sequence[float], salt: str = "") \
        -> dict[str, str]:
    """Split ``keys`` in exact proportions: ``{key: split}``, stable for a given ``salt``.

    Keys are sorted by hash; the last ``f*n`` (rounded half up) are test, the ones before valid,
    the rest train.
    """
    ordered = sorted(set(keys), key=lambda k: (hash_unit(k, salt), k))
    n = len(ordered)
    n_test = min(int(fractions[2] * n + 0.5), n)
    n_valid = min(int(fractions[1] * n + 0.5), n - n_test)
    n_train = n - n_test - n_valid
    return {k: "train" if i < n_train else "valid" if i < n_train + n_valid else "test"
            for i, k in enumerate(ordered)}


# --- manifests ---------------------------------------------------------------------------------
def manifest_path(path: Path, folder: Path) -> str:
    """``path`` relative to the manifest folder when inside it (POSIX slashes), else absolute."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    if folder in path.parents:
        return path.relative_to(folder).as_posix()
    return str(path)


def write_manifest(path: Path, rows: Sequence[Mapping[str, Any]],
                   extra: Sequence[str] = ()) -> Path:
    """Write ``path,label,split[,group][,extra...]`` atomically; rows hold absolute paths.

    Raises:
        RecipeError: No rows (nothing matched the expected layout).
    """
    if not rows:
        raise RecipeError(f"no audio found for {path.name}: is the source the right dataset "
                          "(see the recipe's layout in its documentation)?")
    columns = ["path", "label", "split"] + (["group"] if any("group" in r for r in rows) else [])
    columns += [c for c in extra if c not in columns]
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = sorted(
        [manifest_path(r["path"], path.parent)] + [str(r.get(c, "")) for c in columns[1:]]
        for r in rows)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".csv")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows(lines)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --- the base class -----------------------------------------------------------------------------
class Recipe:
    """Base of every recipe: ``prepare(source, out)`` -> manifest path (or variant -> path)."""

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, str]] = dict(COMMON_OPTIONS)
    needs_source: ClassVar[bool] = True  # False: ``prepare`` works without a source
    known_checksums: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        self.summary = ""

    def prepare(self, source: str, out: Path, progress: bool = True,
                **options: Any) -> Path | dict[str, Path]:
        """Prepare the dataset from ``source`` into ``out``; return the manifest(s)."""
        raise NotImplementedError

    # helpers for subclasses
    def check_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Options without ``None`` values; unknown names raise a clear error.

        Raises:
            RecipeError: An option this recipe does not declare.
        """
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise RecipeError(f"recipe {self.name!r} has no option(s) {', '.join(unknown)}; "
                              f"options: {', '.join(sorted(self.options))}")
        return {k: v for k, v in options.items() if v is not None}

    def fetch(self, source: str, out: Path, progress: bool, options: Mapping[str, Any]) \
            -> list[Path]:
        """Local folders for ``source`` (download / verify / extract as needed)."""
        return fetch_sources(source, out, progress, options.get("checksum"),
                             self.known_checksums)

    def finish(self, rows: Sequence[Mapping[str, Any]], report: ScanReport, progress: bool) \
            -> None:
        """Record (and print, with ``progress``) one line: files per split, labels, skips."""
        splits = Counter(r["split"] for r in rows)
        self.summary = (f"{self.name}: {len(rows)} files ("
                        + ", ".join(f"{s} {splits[s]}" for s in SPLITS if splits[s])
                        + f"), {len({r['label'] for r in rows})} labels")
        if any("group" in r for r in rows):
            self.summary += f", {len({r.get('group') for r in rows})} groups"
        if report.skipped:
            self.summary += "; skipped " + ", ".join(f"{n} {why}"
                                                     for why, n in report.skipped.items())
        if progress:
            print(self.summary, file=sys.stderr)
