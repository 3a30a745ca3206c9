"""WebDataset tar shards: a corpus larger than memory or disk, written once (and named).

:func:`write_shards` decodes a corpus once into ``000000.tar``, ``000001.tar``, ... (each sample
a FLAC clip, its metadata and optionally its log-mel) and writes ``shards.json`` last, holding
the log-mel mean/std computed on the way, so training can normalise without another pass over
the data. :func:`expand_urls` / :func:`read_index` name them back (brace patterns, folders, any
fsspec URL); ``data/shard_stream.py`` streams them.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from pocketear.audio.io import AudioError, load_audio, report_skipped
from pocketear.data.corpus import Corpus
from pocketear.errors import InvalidValue, MissingPath, PathExists
from pocketear.frontends import (
    Frontend,
    FrontendConfig,
    LogMelConfig,
    create_frontend,
    stored_frontend,
)
from pocketear.frontends.logmel import compute_stats

FORMAT = "pocketear-shards"
VERSION = 1
INDEX = "shards.json"
_SHARD_NAME = re.compile(r"^\d{6}\.tar$")
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes of a size such as ``1GB``, ``500MB``, ``64kB``, ``2GiB``, ``1e9`` or ``123``.

    Units are decimal (kB, MB, GB, TB) or binary (KiB, MiB, GiB, TiB), in any case.

    Raises:
        InvalidValue: Not a positive size with a known unit.
    """
    match = _SIZE.match(str(text))
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise InvalidValue(f"size {text!r}: expected a number with an optional unit, e.g. "
                           "1GB, 500MB, 64kB, 2GiB or 1e9 (bytes)")
    size = int(round(float(match.group(1)) * _UNITS[unit]))
    if size < 1:
        raise InvalidValue(f"size {text!r}: must be at least 1 byte")
    return size


def _is_url(source: str) -> bool:
    return "://" in source


def _braces(source: str) -> list[str]:
    import braceexpand

    return list(braceexpand.braceexpand(source))


def _ends_in_tar(url: str) -> bool:
    return url.split("?", 1)[0].endswith(".tar")


def _remote_index(source: str) -> str | None:
    """``SOURCE/shards.json`` when ``source`` is a URL of a folder holding one, else None."""
    import fsspec

    url = source.rstrip("/") + "/" + INDEX
    try:
        fs, path = fsspec.core.url_to_fs(url)
        return url if fs.isfile(path) else None
    except Exception:  # unreachable, no credentials, unknown protocol: not shards we can read
        return None


def is_shard_source(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` names tar shards rather than a folder of audio or a manifest.

    True for a path or URL ending in ``.tar`` (after brace expansion, so
    ``shards/{000000..000012}.tar`` counts) or a folder (local or URL) holding ``shards.json``.
    """
    source = os.fspath(source)
    urls = _braces(source)
    if urls and all(_ends_in_tar(u) for u in urls):
        return True
    if len(urls) != 1:
        return False
    if not _is_url(source):
        return (Path(source) / INDEX).is_file()
    return _remote_index(source) is not None


def expand_urls(source: str | os.PathLike[str]) -> list[str]:
    """The shard URLs that ``source`` names: a brace pattern, one tar, or a shard folder.

    A folder (local or URL) with ``shards.json`` gives the shards it lists. Local paths are
    checked to exist; other fsspec URLs (``s3://``, ``http://``, ``memory://``) are taken as
    given and fail when read.

    Raises:
        MissingPath: A local shard (the first missing one is named) does not exist.
        InvalidValue: ``source`` names no tar files and no folder with ``shards.json``.
    """
    source = os.fspath(source)
    urls = _braces(source)
    if len(urls) == 1 and not _ends_in_tar(urls[0]):
        if not _is_url(source) and not os.path.exists(source):
            raise MissingPath(f"{source}: no such shard folder; write shards with "
                              "`pocketear shard DATA --out FOLDER`")
        index = read_index(source)
        if index is None:
            raise InvalidValue(f"{source}: not tar shards (no .tar and no {INDEX}); write "
                               "shards with `pocketear shard DATA --out FOLDER`")
        base = source.rstrip("/")
        urls = [f"{base}/{name}" for name in index["shards"]]
    local = [u for u in urls if not _is_url(u)]
    missing = [u for u in local if not os.path.isfile(u)]
    if missing:
        raise MissingPath(f"{missing[0]}: no such shard ({len(missing)} of {len(urls)} missing); "
                          "check the path or brace pattern, e.g. 'shards/{000000..000012}.tar'")
    return urls


def _index_url(urls_or_source: str | os.PathLike[str] | Sequence[str]) -> str:
    """Where the ``shards.json`` of a source or URL list lives: beside its first shard."""
    if isinstance(urls_or_source, (str, os.PathLike)):
        first = _braces(os.fspath(urls_or_source))[0]
    else:
        first = urls_or_source[0]
    if _ends_in_tar(first):
        return posixpath.join(posixpath.dirname(first.split("?", 1)[0]), INDEX) \
            if _is_url(first) else os.path.join(os.path.dirname(first), INDEX)
    return first.rstrip("/") + "/" + INDEX


def read_index(urls_or_source: str | os.PathLike[str] | Sequence[str]) -> dict | None:
    """The ``shards.json`` beside the first shard (local or fsspec URL); None when absent.

    Raises:
        InvalidValue: The file is not a pocketear shard index of this version.
    """
    import fsspec

    if not isinstance(urls_or_source, (str, os.PathLike)) and not urls_or_source:
        return None
    url = _index_url(urls_or_source)
    try:
        with fsspec.open(url, "rb") as f:
            index = json.loads(f.read())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidValue(f"{url}: not valid JSON ({err}); rewrite the shards with "
                           "`pocketear shard`") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT \
            or index.get("version") != VERSION:
        raise InvalidValue(f"{url}: not a {FORMAT} index of version {VERSION}; rewrite the "
                           "shards with `pocketear shard`")
    return index


def log_mel(frontend: Frontend, wave: np.ndarray) -> np.ndarray:
    """Unnormalised features ``(T, F)`` of a mono wave at the frontend's rate (as the cache)."""
    import torch

    with torch.no_grad():
        return frontend(torch.from_numpy(wave)[None], normalise=False)[0, 0].numpy()


def to_rate(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``wave`` at ``rate`` resampled to ``target`` (soxr), clipped to [-1, 1]."""
    if rate == target:
        return wave
    import soxr

    out = soxr.resample(wave, rate, target, quality="HQ").astype(np.float32, copy=False)
    return np.clip(out, -1.0, 1.0)


def _flac_bytes(wave: np.ndarray, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(wave, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _existing_shards(out: Path) -> list[Path]:
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if p.name == INDEX or _SHARD_NAME.match(p.name))


def write_shards(
    source: str | os.PathLike[str] | Corpus,
    out: str | os.PathLike[str],
    max_bytes: int = 1_000_000_000,
    frontend: FrontendConfig | None = None,
    store_mels: bool = False,
    sample_rate: int = 16000,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Write every decodable file of ``source`` as tar shards of about ``max_bytes`` in ``out``.

    Each sample holds ``flac`` (16-bit at ``sample_rate``), ``json`` (its path, manifest
    columns, duration and rate) and, with ``store_mels``, ``mel.npy`` (float16 unnormalised
    features of ``frontend``, default log-mel). Undecodable files are reported once each
    (``skipped: PATH: reason`` on stderr), skipped and listed in the index. The per-bin
    mean/std of the frontend's features are computed while writing; ``shards.json`` is
    written last, so an interrupted write never reads as finished.

    Returns:
        The index written to ``out/shards.json``.

    Raises:
        PathExists: ``out`` already holds shards and ``overwrite`` is False.
        InvalidValue: A bad ``max_bytes``, or none of the files could be decoded.
    """
    from webdataset import ShardWriter

    if max_bytes < 1:
        raise InvalidValue(f"max_bytes must be >= 1, got {max_bytes}")
    cfg = frontend or LogMelConfig()
    corpus = source if isinstance(source, Corpus) else Corpus.open(source)
    out = Path(out)
    old = _existing_shards(out)
    if old and not overwrite:
        state = "shards" if (out / INDEX).is_file() else "an unfinished write (no shards.json)"
        raise PathExists(f"{out}: already holds {state}; pass --overwrite (overwrite=True) to "
                         "replace them or choose another folder")
    for path in sorted(old, key=lambda p: p.name != INDEX):  # the index first: unfinished
        path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    fe = create_frontend(cfg).eval()
    skipped: list[list[str]] = []
    names: list[str] = []
    counts = {"clips": 0, "seconds": 0.0}

    def clips(writer: ShardWriter) -> Iterator[np.ndarray]:
        """Write each clip and yield its features, so the stats are computed in the same pass."""
        bar = tqdm(corpus, total=len(corpus), desc="shards", unit="file", disable=not progress)
        for i, item in enumerate(bar):
            try:
                wave = load_audio(item.path, sample_rate)
            except AudioError as err:
                reason = f"{err.reason}. {err.hint}"
                report_skipped(item.path, reason)
                skipped.append([item.path, reason])
                continue
            mel = log_mel(fe, to_rate(wave, sample_rate, cfg.sample_rate))
            if not np.isfinite(mel).all():
                reason = "log-mel is not finite; re-encode the file"
                report_skipped(item.path, reason)
                skipped.append([item.path, reason])
                continue
            seconds = len(wave) / sample_rate
            meta = {**item.meta, "path": item.path, "duration": seconds,
                    "sample_rate": sample_rate}
            sample = {"__key__": f"{i:09d}", "flac": _flac_bytes(wave, sample_rate),
                      "json": json.dumps(meta).encode()}
            if store_mels:
                sample["mel.npy"] = _npy_bytes(mel.astype(np.float16))
            writer.write(sample)
            counts["clips"] += 1
            counts["seconds"] += seconds
            yield mel

    writer = ShardWriter(str(out / "%06d.tar"), maxsize=max_bytes, verbose=0, encoder=False,
                         post=lambda name: names.append(os.path.basename(name)))
    try:
        mean, std = compute_stats(clips(writer))
    except ValueError as err:
        if counts["clips"] or "no frames" not in str(err):
            raise
        mean = std = None  # no decodable file: refused below
    finally:
        writer.close()
    if mean is None or std is None:
        for name in names:
            (out / name).unlink(missing_ok=True)
        raise InvalidValue(f"{corpus.source}: none of the {len(corpus)} files could be decoded")
    index = {
        "format": FORMAT, "version": VERSION, "shards": names,
        "pattern": "{" + f"{0:06d}..{len(names) - 1:06d}" + "}.tar", "source": corpus.source,
        "clips": counts["clips"], "skipped": skipped, "sample_rate": sample_rate,
        "seconds": counts["seconds"], "bytes": sum((out / n).stat().st_size for n in names),
        "frontend": stored_frontend(cfg), "frontend_key": cfg.key(),
        "mean": np.asarray(mean).tolist(), "std": np.asarray(std).tolist(), "mels": store_mels,
    }
    (out / f"{INDEX}.part").write_text(json.dumps(index, indent=1))
    os.replace(out / f"{INDEX}.part", out / INDEX)
    return index
