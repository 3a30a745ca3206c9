"""Debian audio recipe: an unlabelled pretraining corpus from the audio in Debian packages.

``pocketear prepare debian-audio --out DIR [--domains speech,effects,music] [--hours N]
[--packages P,...] [--from-debs FOLDER]``. Debian ships hours of freely licensed voice prompts,
spoken letters, game voices, sound effects and music, each package with a ``copyright`` file;
this recipe turns a list of such packages into one corpus that keeps where each file came from.
Nothing is installed and no root is needed.

* **Packages**: the built-in :data:`PACKAGES` (name -> domain; mixed packages have path rules,
  :data:`PATH_RULES`, e.g. hedgewars-data's music, voices and effects), or option ``packages``
  (``NAME`` from the list, with its rules, or any ``NAME=DOMAIN``); ``domains`` keeps some.
* **Fetching**: ``apt-get download PKG`` into ``DIR/downloads`` (a ``.deb`` already there is
  reused), or ``from_debs`` (``--source`` means the same): a folder of ``.deb`` files and/or
  extracted package trees (folders holding ``usr/share/``); nothing is downloaded then.
* **Extraction** into ``DIR/extracted/PKG``: ``dpkg-deb --fsys-tarfile`` streamed into
  :mod:`tarfile`, or without dpkg-deb a small ``ar`` reader (``data.tar``, ``.gz``, ``.xz``,
  ``.bz2``; ``.zst`` needs dpkg-deb or the ``zstd`` program). Only audio (:data:`AUDIO`) and
  ``usr/share/doc/*/copyright`` are written, plus the audio inside ``.pk3``/``.zip`` containers
  (as ``.../pak0.pk3/sound/x.ogg``). A member with an absolute path or ``..`` (in the package, or
  an audio member of a container) refuses the package with :class:`UnsafeArchiveError` and
  nothing of it is kept; links and device files are never followed or written (audio-named
  ones are counted).
* **Resume**: a package is extracted into a temporary folder renamed into place with a marker
  holding each file's sha1, duration and sample rate; a package with a marker is never
  downloaded or extracted again (delete ``DIR/extracted/PKG`` to redo it), and the manifest is
  rebuilt from the markers on every run.
* **Manifest** ``DIR/manifest.csv``, written last: label = domain (so it works as a pocketear
  corpus), split ``train``, group = package, and ``package``, ``licence``, ``domain``,
  ``duration`` (s), ``sample_rate``. A file whose content (sha1) was already kept (packages in
  name order, files in path order) is a skipped duplicate; one that cannot be decoded (soundfile,
  else pocketear's decoders) is skipped; both are counted in the summary.
* **Licence**: the first ``License:`` field of the package's DEP-5 ``copyright`` file, else the
  first line naming a licence (GPL, Creative Commons, public domain, ...), else ``unknown``.
  Best effort: read the copyright file before redistributing anything.
* **Balance** (``hours``): music dominates the raw total, so the cap is shared speech 0.5,
  effects 0.25, music 0.25 (option ``balance``); a domain with less audio than its share gives
  the rest to the others in proportion. Within a domain files are taken round-robin across
  packages (each package's files in a fixed sha1-hash order), so one huge package cannot fill
  its domain; a file is taken only if it fits, so the total never exceeds the cap.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import warnings
import zipfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, zip_longest
from pathlib import Path
from typing import IO, Any

import av
import soundfile as sf
from tqdm import tqdm

from pocketear.audio.io import AUDIO_EXTENSIONS, AudioError, audio_duration
from pocketear.data.recipes.base import (
    MARKER,
    Recipe,
    RecipeError,
    RecipeWarning,
    ScanReport,
    UnsafeArchiveError,
    hash_unit,
    is_extracted,
    write_manifest,
)
from pocketear.registry import register

DOMAINS = ("speech", "effects", "music")
DEFAULT_BALANCE: dict[str, float] = {"speech": 0.5, "effects": 0.25, "music": 0.25}
PACKAGES: dict[str, str] = {
    **dict.fromkeys((
        "tuxpaint-stamps-default", "fillets-ng-data-cs", "fillets-ng-data-nl", "festvox-ru",
        "asterisk-core-sounds-en-wav", "asterisk-core-sounds-es-wav",
        "asterisk-core-sounds-fr-wav", "asterisk-core-sounds-it-wav",
        "asterisk-core-sounds-ru-wav", "asterisk-prompt-it-menardi-wav", "hedgewars-data",
        "klettres-data", "ktuberling-data", "gcin-voice"), "speech"),
    **dict.fromkeys((
        "megaglest-data", "hydrogen-drumkits", "qabcs-data", "lincity-ng-data", "openarena-data",
        "sonic-pi-samples", "scratch"), "effects"),
    **dict.fromkeys((
        "warzone2100-music", "ufoai-music", "planetblupi-music-ogg", "naev-data",
        "wesnoth-1.16-music", "supertux-data", "widelands-data", "nexuiz-music",
        "colobot-common-sounds", "singularity-music"), "music"),
}
"""The built-in packages and their domain (a file's label unless a path rule says otherwise)."""

PATH_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "hedgewars-data": (("/Music/", "music"), ("/Sounds/voices/", "speech"),
                       ("/Sounds/", "effects")),
}
"""Per package, ``(substring of the path, domain)`` rules; the first that matches wins."""

AUDIO: frozenset[str] = AUDIO_EXTENSIONS | {"oga"}
"""Extensions extracted (pocketear's audio extensions plus ``oga``); decoding checks content."""

CONTAINERS = frozenset({"pk3", "zip"})
_EXTRA = ("package", "licence", "domain", "duration", "sample_rate")
_PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")  # Debian policy 5.6.1
_LICENCE_LINE = re.compile(r"\bL?GPL|General Public Licen[cs]e|Creative Commons|\bCC[- ]BY|"
                           r"public domain|\bBSD\b|(?-i:\bMIT\b)|Artistic|Apache|\bzlib\b|\bOFL\b|"
                           r"WTFPL", re.IGNORECASE)


# --- options --------------------------------------------------------------------------------
def _items(value: Any) -> list[str]:
    """Comma-separated text (or a sequence) -> its non-empty, stripped items."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    return [str(p).strip() for p in parts if str(p).strip()]


def parse_hours(value: Any) -> float | None:
    """Option ``hours`` -> a positive float (``None``: no cap).

    Raises:
        RecipeError: Not a positive number.
    """
    if value is None or value == "":
        return None
    try:
        hours = float(value)
    except (TypeError, ValueError):
        hours = float("nan")
    if not hours > 0 or hours == float("inf"):
        raise RecipeError(f"debian_audio: hours must be a positive number of hours such as 10 "
                          f"or 0.5, got {value!r}")
    return hours


def parse_domains(value: Any) -> tuple[str, ...]:
    """Option ``domains`` -> the domains kept, in :data:`DOMAINS` order (default all).

    Raises:
        RecipeError: An unknown domain, or none.
    """
    if value is None:
        return DOMAINS
    given = _items(value)
    unknown = [d for d in given if d not in DOMAINS]
    if unknown or not given:
        raise RecipeError(f"debian_audio: domains {value!r}: give a comma-separated subset of "
                          f"{', '.join(DOMAINS)}")
    return tuple(d for d in DOMAINS if d in given)


def parse_packages(value: Any) -> dict[str, str | None]:
    """Option ``packages`` -> name -> domain (``None``: the built-in list's, with its rules).

    Raises:
        RecipeError: A malformed name, an unknown domain, or a name outside the built-in list
            without ``=DOMAIN``.
    """
    pairs = value.items() if isinstance(value, Mapping) else \
        (item.partition("=")[::2] for item in _items(value))
    packages: dict[str, str | None] = {}
    for name, domain in pairs:
        name, domain = name.strip(), (domain or "").strip() or None
        if not _PACKAGE_NAME.match(name):
            raise RecipeError(f"debian_audio: packages: {name!r} is not a Debian package name; "
                              "give NAME or NAME=DOMAIN, comma-separated")
        if domain is not None and domain not in DOMAINS:
            raise RecipeError(f"debian_audio: packages: {name}={domain}: the domain must be one "
                              f"of {', '.join(DOMAINS)}")
        if domain is None and name not in PACKAGES:
            raise RecipeError(f"debian_audio: packages: {name} is not in the built-in list; "
                              f"give its domain: {name}=speech, {name}=effects or {name}=music")
        packages[name] = domain
    if not packages:
        raise RecipeError("debian_audio: packages is empty; give NAME or NAME=DOMAIN, "
                          "comma-separated")
    return packages


def parse_balance(value: Any) -> dict[str, float]:
    """Option ``balance`` (``speech=0.5,effects=0.25,music=0.25``) -> domain -> weight.

    Domains left out get weight 0 (none of their audio under ``hours``).

    Raises:
        RecipeError: An unknown domain, a negative or non-numeric weight, or a zero sum.
    """
    if value is None:
        return dict(DEFAULT_BALANCE)
    pairs = value.items() if isinstance(value, Mapping) else \
        (item.partition("=")[::2] for item in _items(value))
    weights: dict[str, float] = {}
    for domain, weight in pairs:
        try:
            weights[domain.strip()] = float(weight)
        except (TypeError, ValueError):
            weights[domain.strip()] = -1.0
    if set(weights) - set(DOMAINS) or min(weights.values(), default=0) < 0 \
            or sum(weights.values()) <= 0:
        raise RecipeError(f"debian_audio: balance {value!r}: give DOMAIN=WEIGHT pairs such as "
                          "speech=0.5,effects=0.25,music=0.25 (non-negative, positive sum)")
    return {d: weights.get(d, 0.0) for d in DOMAINS}


def file_domain(member: str, domain: str, rules: Sequence[tuple[str, str]] = ()) -> str:
    """Domain of ``member`` (a path in its package): the first matching rule's, else ``domain``."""
    path = "/" + member
    return next((d for part, d in rules if part in path), domain)


# --- licences -------------------------------------------------------------------------------
def parse_licence(text: str) -> str:
    """The licence a Debian ``copyright`` file states, best effort (``unknown`` if none)."""
    lines = text.splitlines()
    for line in lines:  # DEP-5: the first License field (of the first Files paragraph)
        match = re.match(r"License:[ \t]*(\S.*)$", line, re.IGNORECASE)
        if match:
            return match.group(1).strip()
    for line in lines:
        if _LICENCE_LINE.search(line):
            return " ".join(line.split())[:100]
    return "unknown"


def package_licence(tree: Path, package: str) -> str:
    """:func:`parse_licence` of ``usr/share/doc/PACKAGE/copyright`` in ``tree``.

    Falls back to the first other ``usr/share/doc/*/copyright``; ``unknown`` if there is none.
    """
    own = tree / "usr" / "share" / "doc" / package / "copyright"
    for path in chain([own], sorted(tree.glob("usr/share/doc/*/copyright"))):
        if path.is_file():
            return parse_licence(path.read_text(encoding="utf-8", errors="replace"))
    return "unknown"


# --- reading packages -----------------------------------------------------------------------
def ar_members(f: IO[bytes]) -> Iterator[tuple[str, int]]:
    """Name and size of each member of an ``ar`` archive (a ``.deb``), in order.

    At each step ``f`` is positioned at the member's data; the next step seeks past it.

    Raises:
        RecipeError: Not an ar archive, or a corrupt member header.
    """
    where = getattr(f, "name", "archive")
    if f.read(8) != b"!<arch>\n":
        raise RecipeError(f"{where}: not a Debian package (.deb): no ar header")
    while header := f.read(60):
        if len(header) != 60 or header[58:60] != b"`\n" or not header[48:58].strip().isdigit():
            raise RecipeError(f"{where}: corrupt .deb (bad ar member header); delete it and "
                              "download it again")
        size = int(header[48:58])
        start = f.tell()
        yield header[:16].decode("ascii", "replace").strip().rstrip("/"), size
        f.seek(start + size + size % 2)


class _Slice(io.RawIOBase):
    """The next ``size`` bytes of ``f``, as a readable stream."""

    def __init__(self, f: IO[bytes], size: int) -> None:
        super().__init__()
        self._f, self._left = f, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._f.read(min(len(buffer), self._left))
        buffer[:len(data)] = data
        self._left -= len(data)
        return len(data)


@contextlib.contextmanager
def _piped(cmd: list[str], deb: Path, stdin: IO[bytes] | None = None) -> Iterator[IO[bytes]]:
    """The stdout of ``cmd``; the program failing is a RecipeError (after its output is read)."""
    with tempfile.TemporaryFile() as err, subprocess.Popen(
            cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=err) as proc:
        assert proc.stdout is not None
        try:
            yield proc.stdout
            while proc.stdout.read(1 << 16):  # the padding after the tar's end
                pass
        except BaseException:
            proc.kill()
            raise
        if proc.wait() != 0:
            err.seek(0)
            said = err.read().decode("utf-8", "replace").strip().splitlines()
            raise RecipeError(f"{deb}: {cmd[0]} failed ({said[-1] if said else proc.returncode});"
                              " not a valid .deb or corrupt: delete it and run again")


def _ar_data(deb: Path, stack: contextlib.ExitStack) -> tuple[IO[bytes], str]:
    """The ``data.tar.*`` member of ``deb`` (pure Python) and its :func:`tarfile.open` mode."""
    f = stack.enter_context(open(deb, "rb"))  # noqa: SIM115 - closed by the stack
    for name, size in ar_members(f):
        if not name.startswith("data.tar"):
            continue
        part = io.BufferedReader(_Slice(f, size), 1 << 16)
        compression = name[len("data.tar"):].lstrip(".")
        if compression in ("", "gz", "xz", "bz2"):
            return part, f"r|{compression}"
        if compression == "zst":
            if shutil.which("zstd") is None:
                raise RecipeError(f"{deb}: its files are in data.tar.zst (zstd), which Python's "
                                  "tarfile cannot read; install dpkg (dpkg-deb) or zstd and run "
                                  "again")
            copy = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 - as above
            shutil.copyfileobj(part, copy)
            copy.seek(0)
            return stack.enter_context(_piped(["zstd", "-dc"], deb, stdin=copy)), "r|"
        raise RecipeError(f"{deb}: unknown compression of {name!r}")
    raise RecipeError(f"{deb}: no data.tar member: not a Debian package (.deb) or corrupt")


@contextlib.contextmanager
def open_data_tar(deb: Path) -> Iterator[tarfile.TarFile]:
    """The file-system tar of ``deb``, opened for streaming (dpkg-deb, else Python's reader).

    Raises:
        RecipeError: Not a readable ``.deb``; a ``.zst`` data member without dpkg-deb or zstd.
    """
    with contextlib.ExitStack() as stack:
        if shutil.which("dpkg-deb"):
            stream = stack.enter_context(_piped(["dpkg-deb", "--fsys-tarfile", str(deb)], deb))
            mode = "r|"
        else:
            stream, mode = _ar_data(deb, stack)
        yield stack.enter_context(tarfile.open(fileobj=stream, mode=mode))


@dataclass
class Member:
    """One entry of a package: a tar member or a file of an extracted tree.

    Attributes:
        name: POSIX path inside the package (no leading ``./``).
        kind: ``file``, ``dir``, ``link`` (symbolic or hard) or ``other`` (devices, FIFOs).
        open: Opens the content (files only; a tar member only while it is the current one).
        path: The file on disk, for members of extracted trees.
    """

    name: str
    kind: str
    open: Callable[[], IO[bytes]]
    path: Path | None = None


def tar_members(tar: tarfile.TarFile) -> Iterator[Member]:
    """The members of a (streamed) tar as :class:`Member` s."""
    for info in tar:
        kind = "file" if info.isfile() else "dir" if info.isdir() else \
            "link" if info.issym() or info.islnk() else "other"
        name = info.name[2:] if info.name.startswith("./") else info.name
        yield Member(name, kind, lambda info=info: tar.extractfile(info))  # type: ignore[misc]


def tree_members(root: Path) -> Iterator[Member]:
    """The files of an extracted package tree as :class:`Member` s (links are not followed)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            kind = "link" if path.is_symlink() else "file" if path.is_file() else "other"
            yield Member(path.relative_to(root).as_posix(), kind,
                         lambda path=path: path.open("rb"), path)


@contextlib.contextmanager
def package_members(source: Path) -> Iterator[Iterator[Member]]:
    """The members of ``source``: a ``.deb`` file or an extracted package tree."""
    if source.is_dir():
        yield tree_members(source)
        return
    with open_data_tar(source) as tar:
        yield tar_members(tar)


# --- safe extraction of the audio -----------------------------------------------------------
def unsafe_reason(name: str) -> str | None:
    """Why a member ``name`` would leave the target folder (absolute, ``..``), else None."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        return "has an absolute path"
    if ".." in norm.split("/"):
        return "has a '..' path component"
    return None


def refuse(source: Path, member: str, reason: str) -> UnsafeArchiveError:
    """The error for an unsafe ``member`` of ``source`` (raised by the caller)."""
    return UnsafeArchiveError(
        f"refusing to extract {source}: member {member!r} {reason}; the package is unsafe or "
        "corrupt: do not use it, download it again from a Debian mirror")


def _extension(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[-1].lower() if "." in base else ""


def _is_copyright(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 5 and parts[:3] == ["usr", "share", "doc"] and parts[4] == "copyright"


def write_stream(src: IO[bytes], path: Path) -> str:
    """Copy ``src`` to ``path`` (parents created); return the sha1 of the content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1()
    with src, open(path, "wb") as f:
        while block := src.read(1 << 20):
            digest.update(block)
            f.write(block)
    return digest.hexdigest()


def _extract_container(member: Member, tmp: Path, source: Path, written: dict[str, str],
                       skipped: Counter[str]) -> None:
    """Write the audio members of the zip ``member`` to ``tmp/MEMBER/INNER``."""
    with contextlib.ExitStack() as stack:
        if member.path is not None:
            fileobj: IO[bytes] = stack.enter_context(open(member.path, "rb"))
        else:  # a tar member: zipfile needs to seek
            fileobj = stack.enter_context(tempfile.TemporaryFile(dir=tmp))
            with member.open() as src:
                shutil.copyfileobj(src, fileobj)
        try:
            zf = stack.enter_context(zipfile.ZipFile(fileobj))
        except (zipfile.BadZipFile, OSError):
            skipped["unreadable zips"] += 1
            return
        for info in zf.infolist():
            if info.is_dir() or _extension(info.filename) not in AUDIO:
                continue  # never written, so its name cannot escape (real .pk3s hold '../X')
            reason = unsafe_reason(info.filename)
            if reason:
                raise refuse(source, f"{member.name}/{info.filename}", reason)
            if stat.S_ISLNK(info.external_attr >> 16):
                skipped["links"] += 1
                continue
            name = f"{member.name}/{info.filename}"
            try:
                written[name] = write_stream(zf.open(info), tmp / name)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError,
                    RuntimeError):  # corrupt, unknown method, encrypted
                (tmp / name).unlink(missing_ok=True)
                skipped["unreadable zip members"] += 1


def extract_members(members: Iterable[Member], tmp: Path, source: Path) \
        -> tuple[dict[str, str], Counter[str]]:
    """Write the audio and copyright members into ``tmp``: (member -> sha1, skipped counts).

    Raises:
        UnsafeArchiveError: A member (or a container's member) leaves the folder.
    """
    written: dict[str, str] = {}
    skipped: Counter[str] = Counter()
    for member in members:
        reason = unsafe_reason(member.name)
        if reason:
            raise refuse(source, member.name, reason)
        ext = _extension(member.name)
        if member.kind == "dir" or not (ext in AUDIO or ext in CONTAINERS
                                        or _is_copyright(member.name)):
            continue
        if member.kind != "file":  # links and devices: never followed, never written
            if member.kind == "link" and not _is_copyright(member.name):
                skipped["links"] += 1
            continue
        if ext in CONTAINERS:
            _extract_container(member, tmp, source, written, skipped)
        elif ext in AUDIO:
            written[member.name] = write_stream(member.open(), tmp / member.name)
        else:
            write_stream(member.open(), tmp / member.name)
    return written, skipped


def _pyav_rate(path: Path) -> int:
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            return int(container.streams.audio[0].rate or 0)
    except Exception:  # noqa: BLE001 - the rate is informative only
        return 0


def probe(path: Path) -> tuple[float, int]:
    """Duration (s) and sample rate of an audio file: soundfile, else pocketear's decoders.

    Raises:
        AudioError: The file cannot be decoded or holds no audio.
    """
    try:
        info = sf.info(str(path))
        if info.samplerate > 0 and info.frames > 0:
            return info.frames / info.samplerate, int(info.samplerate)
    except Exception:  # noqa: BLE001 - libsndfile's errors vary; PyAV gets its chance
        pass
    seconds = audio_duration(path)
    if not seconds > 0:
        raise AudioError(path, "holds no audio (0 s)")
    return seconds, _pyav_rate(path)


def _index(tmp: Path, written: Mapping[str, str]) -> list[dict[str, Any]]:
    files = []
    for name in sorted(written):
        entry: dict[str, Any] = {"path": name, "sha1": written[name]}
        try:
            seconds, rate = probe(tmp / name)
            entry.update(duration=round(seconds, 3), sample_rate=rate)
        except AudioError as err:
            entry["error"] = err.reason
        files.append(entry)
    return files


def extract_package(source: Path, dest: Path, package: str, progress: bool = True) \
        -> dict[str, Any]:
    """Extract the audio of ``package`` from ``source`` (``.deb`` or tree) into ``dest``.

    Extraction goes to a temporary sibling renamed into place with the marker, whose JSON index
    (returned) holds the licence, the skipped counts and each file's sha1, duration and rate
    (or why it cannot be decoded).

    Raises:
        UnsafeArchiveError: A member leaves the folder (nothing of the package is kept).
        RecipeError: ``dest`` exists without a marker; ``source`` is not a readable package.
    """
    if dest.exists():
        raise RecipeError(f"{dest} exists but is not a completed extraction of {package}; move "
                          "or delete it and run again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".tmp-{package}-*"):  # an interrupted earlier run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".tmp-{package}-"))
    try:
        try:
            with package_members(source) as members:
                written, skipped = extract_members(
                    tqdm(members, desc=f"extracting {package}", unit="file", leave=False,
                         disable=not progress), tmp, source)
        except (tarfile.TarError, EOFError) as err:
            raise RecipeError(f"{source}: cannot read the package ({err}); delete it and run "
                              "again") from err
        index = {"package": package, "source": source.name, "licence": package_licence(
            tmp, package), "skipped": dict(skipped), "files": _index(tmp, written)}
        (tmp / MARKER).write_text(json.dumps(index, indent=1))
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return index


# --- finding and downloading packages -------------------------------------------------------
def package_name(path: Path) -> str:
    """The package of a ``NAME_VERSION_ARCH.deb`` file or an extracted tree folder."""
    return path.name.split("_")[0].removesuffix(".deb")


def _is_tree(folder: Path) -> bool:
    return (folder / "usr" / "share").is_dir()


def find_local(folder: Path) -> dict[str, Path]:
    """Package -> ``.deb`` file or extracted tree in ``folder`` (the last by name wins).

    Raises:
        RecipeError: ``folder`` is not a folder.
    """
    if not folder.is_dir():
        raise RecipeError(f"{folder}: no such folder; --from-debs takes a folder of .deb files "
                          "and/or extracted package trees (folders holding usr/share/)")
    found = [folder] if _is_tree(folder) else []
    found += sorted(p for p in folder.iterdir() if (p.suffix == ".deb" and p.is_file())
                    or (p.is_dir() and _is_tree(p)))
    return {package_name(p): p for p in found}


def download_deb(package: str, folder: Path) -> Path:
    """``folder/PACKAGE_*.deb``: reused when there, else fetched with ``apt-get download``.

    The download goes to a temporary sub-folder first, so an interrupted one leaves no ``.deb``.

    Raises:
        RecipeError: apt-get is missing or the download fails (the message says what to do).
    """
    have = sorted(folder.glob(f"{package}_*.deb"))
    if have:
        return have[-1]
    if shutil.which("apt-get") is None:
        raise RecipeError(f"debian_audio: apt-get not found, so {package} cannot be downloaded; "
                          f"run `apt-get download {package}` on a Debian or Ubuntu machine and "
                          "pass the folder of .deb files with --from-debs FOLDER")
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(f".tmp-{package}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".tmp-{package}-"))
    try:
        done = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True,
                              text=True, check=False)
        debs = sorted(tmp.glob("*.deb"))
        if done.returncode != 0 or not debs:
            said = [line for line in (done.stderr + done.stdout).splitlines()
                    if line.startswith("E:")] or (done.stderr + done.stdout).splitlines()
            raise RecipeError(
                f"apt-get download {package} failed ({said[-1] if said else done.returncode}); "
                f"check the name (`apt-cache policy {package}`), run `apt-get update`, or pass "
                "downloaded .deb files with --from-debs FOLDER")
        dest = folder / debs[-1].name
        os.replace(debs[-1], dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


# --- the hours cap --------------------------------------------------------------------------
def domain_budgets(available: Mapping[str, float], total: float,
                   balance: Mapping[str, float]) -> dict[str, float]:
    """Seconds per domain: ``total`` shared by ``balance`` (water-filling).

    A domain with less audio than its share gets all of it and the rest is shared among the
    others in proportion; domains of weight 0 get nothing.
    """
    budgets = dict.fromkeys(available, 0.0)
    active = {d for d in available if balance.get(d, 0) > 0 and available[d] > 0}
    left = total
    while active and left > 1e-9:
        weight = sum(balance[d] for d in active)
        share = {d: left * balance[d] / weight for d in active}
        short = {d for d in active if available[d] - budgets[d] <= share[d]}
        if not short:
            for d in active:
                budgets[d] += share[d]
            break
        for d in short:
            left -= available[d] - budgets[d]
            budgets[d] = available[d]
        active -= short
    return budgets


def round_robin(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``rows`` one package at a time in turn (packages by name), each in its hash order."""
    by_package: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        by_package[row["package"]].append(row)
    queues = [sorted(by_package[p], key=lambda r: (hash_unit(f"{p}/{r['member']}"), r["member"]))
              for p in sorted(by_package)]
    return [r for turn in zip_longest(*queues) for r in turn if r is not None]


def _fill(order: Sequence[Mapping[str, Any]], budget: float) \
        -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(taken, left): each row of ``order`` taken if it still fits in ``budget`` seconds."""
    taken, left, used = [], [], 0.0
    for row in order:
        if used + row["duration"] <= budget + 1e-6:
            taken.append(row)
            used += row["duration"]
        else:
            left.append(row)
    return taken, left


def select_hours(rows: Sequence[Mapping[str, Any]], seconds: float,
                 balance: Mapping[str, float]) -> list[Mapping[str, Any]]:
    """At most ``seconds`` of ``rows``, shared across domains by ``balance`` (see the module).

    What whole files leave of a domain's budget goes, in a second pass, to the domains still
    holding files, the heaviest weight first.
    """
    by_domain: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        by_domain[row["domain"]].append(row)
    available = {d: sum(r["duration"] for r in rs) for d, rs in by_domain.items()}
    budgets = domain_budgets(available, seconds, balance)
    order = sorted((d for d in by_domain if balance.get(d, 0) > 0),
                   key=lambda d: (-balance[d], DOMAINS.index(d)))
    kept: list[Mapping[str, Any]] = []
    rest = []
    for domain in order:
        taken, left = _fill(round_robin(by_domain[domain]), budgets[domain])
        kept += taken
        rest.append(left)
    for left in rest:
        taken, _ = _fill(left, seconds - sum(r["duration"] for r in kept))
        kept += taken
    return kept


# --- the recipe -----------------------------------------------------------------------------
Selection = dict[str, tuple[str, tuple[tuple[str, str], ...]]]  # package -> (domain, rules)


@register("recipe", "debian_audio")
class DebianAudioRecipe(Recipe):
    """Audio shipped in Debian packages (speech, effects, music): a pretraining corpus."""

    name = "debian_audio"
    needs_source = False  # --source is optional (it means --from-debs)
    options = {
        "packages": "comma-separated packages instead of the built-in list: NAME (from the "
                    "list) or NAME=DOMAIN (speech, effects, music)",
        "domains": "comma-separated domains to keep (default speech,effects,music)",
        "hours": "cap on the corpus in hours, shared by balance (default: all the audio)",
        "balance": "domain shares of hours (default speech=0.5,effects=0.25,music=0.25)",
        "from_debs": "folder of .deb files and/or extracted package trees to use instead of "
                     "apt-get download (same as --source)",
    }

    def prepare(self, source: str, out: Path, progress: bool = True,
                **options: Any) -> Path:
        """Download/extract the selected packages into ``out``; write ``out/manifest.csv``."""
        opts = self.check_options(options)
        out = Path(out)
        domains = parse_domains(opts.get("domains"))
        hours = parse_hours(opts.get("hours"))
        balance = parse_balance(opts.get("balance"))
        selection = self._selection(opts.get("packages"), domains)
        local = self._local(source, opts.get("from_debs"))
        if local is not None:
            selection = self._available(selection, local, out, "packages" in opts)
        for package in tqdm(sorted(selection), desc="debian-audio", unit="package",
                            disable=not progress):
            dest = out / "extracted" / package
            if is_extracted(dest):
                continue
            src = local[package] if local is not None else \
                download_deb(package, out / "downloads")
            extract_package(src, dest, package, progress)
        report = ScanReport()
        rows = self._rows(out, selection, domains, report)
        kept = select_hours(rows, hours * 3600, balance) if hours else rows
        manifest = write_manifest(out / "manifest.csv", kept, _EXTRA)
        self.finish(kept, report, progress=False)
        self.summary += self._hours_summary(rows, kept, hours, balance)
        if progress:
            print(self.summary, file=sys.stderr)
        return manifest

    @staticmethod
    def _selection(packages: Any, domains: Sequence[str]) -> Selection:
        """Package -> (domain, path rules), keeping packages with audio in ``domains``."""
        given = parse_packages(packages) if packages is not None else dict.fromkeys(PACKAGES)
        chosen: Selection = {}
        for name, domain in given.items():
            rules = PATH_RULES.get(name, ()) if domain is None else ()
            domain = domain or PACKAGES[name]
            if {domain, *(d for _, d in rules)} & set(domains):
                chosen[name] = (domain, rules)
        if not chosen:
            raise RecipeError(f"debian_audio: no package has audio in {', '.join(domains)}")
        return chosen

    @staticmethod
    def _local(source: str, from_debs: Any) -> dict[str, Path] | None:
        """The packages of ``--from-debs`` / ``--source`` (None: download with apt-get)."""
        given = {Path(str(s).strip()).expanduser().resolve() for s in (source, from_debs)
                 if s is not None and str(s).strip()}
        if len(given) > 1:
            raise RecipeError("debian_audio: --source and --from-debs name different folders; "
                              "give one (they mean the same)")
        return find_local(given.pop()) if given else None

    @staticmethod
    def _available(selection: Selection, local: Mapping[str, Path], out: Path,
                   explicit: bool) -> Selection:
        """The selected packages found locally (or extracted by an earlier run)."""
        have = {p: v for p, v in selection.items()
                if p in local or is_extracted(out / "extracted" / p)}
        missing = sorted(set(selection) - set(have))
        if (explicit and missing) or not have:
            raise RecipeError(f"debian_audio: {', '.join(missing[:8])}"
                              f"{' ...' if len(missing) > 8 else ''} not found in the --from-debs "
                              f"folder (it holds {', '.join(sorted(local)) or 'no package'}); "
                              "add their .deb files or name others with --packages NAME=DOMAIN")
        return have

    @staticmethod
    def _rows(out: Path, selection: Selection, domains: Sequence[str],
              report: ScanReport) -> list[dict[str, Any]]:
        """One row per kept file of the extracted packages (duplicates and undecodable out)."""
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for package in sorted(selection):
            dest = out / "extracted" / package
            index = json.loads((dest / MARKER).read_text())
            report.skipped.update(index["skipped"])
            domain, rules = selection[package]
            for entry in index["files"]:
                path = dest / entry["path"]
                if not path.is_file():
                    report.skip(path, "missing (deleted after extraction)")
                    continue
                if "error" in entry:
                    report.skip(path, "undecodable", warn=False)
                    warnings.warn(f"skipping {path}: {entry['error']}", RecipeWarning,
                                  stacklevel=2)
                    continue
                label = file_domain(entry["path"], domain, rules)
                if label not in domains:
                    continue
                if entry["sha1"] in seen:
                    report.skip(path, "duplicates", warn=False)
                    continue
                seen.add(entry["sha1"])
                rows.append({"path": path, "label": label, "split": "train", "group": package,
                             "package": package, "licence": index["licence"], "domain": label,
                             "duration": entry["duration"], "sample_rate": entry["sample_rate"],
                             "member": entry["path"]})
        return rows

    @staticmethod
    def _hours_summary(rows: Sequence[Mapping[str, Any]], kept: Sequence[Mapping[str, Any]],
                       hours: float | None, balance: Mapping[str, float]) -> str:
        """``; 0.50 h: speech 0.25 h, ... (cap ..., balance ...)`` for the summary line."""
        per = Counter()
        for row in kept:
            per[row["domain"]] += row["duration"] / 3600
        text = f"; {sum(per.values()):.2f} h: " + ", ".join(
            f"{d} {per[d]:.2f} h" for d in DOMAINS if d in per)
        if hours:
            text += (f" (cap {hours:g} h of {sum(r['duration'] for r in rows) / 3600:.2f} h; "
                     "balance " + ", ".join(f"{d} {w:g}" for d, w in balance.items()) + ")")
        return text
