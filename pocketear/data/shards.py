"""WebDataset tar shards: a corpus larger than memory or disk, streamed one clip at a time.

:func:`write_shards` decodes a corpus once into ``000000.tar``, ``000001.tar``, ... (each sample
a FLAC clip, its metadata and optionally its log-mel) and writes ``shards.json`` last, holding
the log-mel mean/std computed on the way, so training can normalise without another pass over
the data. :class:`ShardStream` reads the shards back, local or from any fsspec URL, sequentially
(one member at a time, never a whole shard), splits them over ranks and DataLoader workers, and
shuffles through a bounded buffer: memory depends on the buffer, not on the corpus.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import random
import re
import tarfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
from torch.utils.data import IterableDataset
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


def _log_mel(frontend: Frontend, wave: np.ndarray) -> np.ndarray:
    """Unnormalised features ``(T, F)`` of a mono wave at the frontend's rate (as the cache)."""
    import torch

    with torch.no_grad():
        return frontend(torch.from_numpy(wave)[None], normalise=False)[0, 0].numpy()


def _to_rate(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
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
            mel = _log_mel(fe, _to_rate(wave, sample_rate, cfg.sample_rate))
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


def _samples(
    url: str, skip: Callable[[str, str, str], None]
) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {suffix: bytes})`` per sample of one tar, streamed member by member.

    Members are grouped by key (``KEY.SUFFIX`` names, in order). A tar that cannot be read
    further (truncated inside a member, a network error) is reported under the key being read
    and ends the shard; its partial last sample is dropped.
    """
    import fsspec

    key: str | None = None
    files: dict[str, bytes] = {}
    try:
        with fsspec.open(url, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
            for info in tar:
                base = posixpath.basename(info.name)
                name, dot, suffix = base.partition(".")
                if not info.isreg() or not dot or name.startswith("__"):
                    continue
                name = posixpath.join(posixpath.dirname(info.name), name)
                if name != key and files:
                    yield key, files  # type: ignore[misc]
                    files = {}
                key = name
                handle = tar.extractfile(info)
                files[suffix.lower()] = handle.read() if handle is not None else b""
                tar.members = []  # streaming: keep no header of the members read
    except (tarfile.TarError, EOFError, OSError) as err:
        what = "the shard" if key is None else "the rest of the shard"
        skip(url, key or "", f"unreadable tar, {what} skipped ({type(err).__name__}: {err})")
        return
    if files:
        yield key, files  # type: ignore[misc]


class ShardStream(IterableDataset):
    """Samples of tar shards as ``{"key", "mel", "shard", "meta"}``, shuffled within a buffer.

    ``mel`` is the float32 unnormalised features ``(T, F)`` of ``frontend``: read from
    ``mel.npy`` when the shards stored them with the same frontend config, else computed from
    the FLAC. ``shard`` is the index into ``urls``. Epoch ``e`` visits the shards in a seeded
    permutation, drops its first ``start_shard`` (resume at a shard boundary), then rank ``r``
    of ``world`` takes every ``world``-th and DataLoader worker ``w`` of ``n`` every ``n``-th of
    those. A corrupt sample is skipped, printed on stderr and appended to ``skipped`` as
    ``(url, key, reason)`` (in DataLoader workers, to each worker's copy of the list); a
    truncated or unreadable tar ends its shard, not the stream.

    Raises:
        InvalidValue: (on iteration) fewer shards than ranks × workers, or ``start_shard``
            beyond the shards.
    """

    def __init__(
        self,
        urls: str | os.PathLike[str] | Sequence[str],
        frontend: FrontendConfig,
        seed: int = 0,
        epoch: int = 0,
        rank: int | None = None,
        world: int | None = None,
        shuffle: int = 1000,
        start_shard: int = 0,
        skipped: list | None = None,
    ) -> None:
        self.urls = expand_urls(urls) if isinstance(urls, (str, os.PathLike)) else list(urls)
        if not self.urls:
            raise InvalidValue("no shards given; pass a pattern such as "
                               "'shards/{000000..000012}.tar' or a folder with shards.json")
        self.frontend = frontend
        self.seed, self.epoch, self.start_shard = seed, epoch, start_shard
        self.rank, self.world, self.shuffle = rank, world, shuffle
        self.skipped = skipped
        self.index = read_index(self.urls)
        self.stored_mels = bool(self.index and self.index.get("mels")
                                and self.index.get("frontend_key") == frontend.key())

    def set_epoch(self, epoch: int, start_shard: int = 0) -> None:
        """Start the next iteration at ``epoch`` (its own shard order), after ``start_shard``."""
        self.epoch, self.start_shard = epoch, start_shard

    def _place(self) -> tuple[int, int, int, int]:
        """``(rank, world, worker, workers)`` of the process iterating."""
        from torch.utils.data import get_worker_info

        rank, world = self.rank, self.world
        if rank is None or world is None:
            import torch.distributed as dist

            ready = dist.is_available() and dist.is_initialized()
            rank = rank if rank is not None else dist.get_rank() if ready else 0
            world = world if world is not None else dist.get_world_size() if ready else 1
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return rank, world, worker, workers

    def shards(self) -> list[int]:
        """Indices into ``urls`` that this rank and worker read this epoch, in order."""
        rank, world, worker, workers = self._place()
        n = len(self.urls)
        if n < world * workers:
            raise InvalidValue(f"{n} shards cannot feed {world} ranks × {workers} workers; "
                               "write smaller shards (pocketear shard --size ...) or use "
                               "fewer workers")
        if not 0 <= self.start_shard <= n:
            raise InvalidValue(f"start_shard {self.start_shard} is outside 0..{n}")
        order = np.random.default_rng([self.seed, 5, self.epoch]).permutation(n)
        order = order[self.start_shard :]
        return [int(i) for i in order[rank::world][worker::workers]]

    def _skip(self, url: str, key: str, reason: str) -> None:
        report_skipped(f"{url}/{key}" if key else url, reason)
        if self.skipped is not None:
            self.skipped.append((url, key, reason))

    def _decode(self, fe: Frontend, url: str, key: str, files: dict[str, bytes]) -> dict | None:
        """The sample of one key's files, or None (reported) when it is corrupt."""
        try:
            meta = json.loads(files["json"]) if "json" in files else {}
            if self.stored_mels and "mel.npy" in files:
                mel = np.load(io.BytesIO(files["mel.npy"]), allow_pickle=False)
                if mel.ndim != 2:
                    raise ValueError(f"mel.npy has shape {mel.shape}, expected (T, F)")
                mel = mel.astype(np.float32)
            elif "flac" in files:
                wave, rate = sf.read(io.BytesIO(files["flac"]), dtype="float32", always_2d=True)
                if not len(wave):
                    raise ValueError("flac holds no samples")
                mel = _log_mel(fe, _to_rate(wave.mean(axis=1), rate, self.frontend.sample_rate))
            else:
                raise ValueError(f"no flac member (has {', '.join(sorted(files))})")
        except Exception as err:  # any corrupt member: the sample, not the stream, is lost
            self._skip(url, key, f"{type(err).__name__}: {err}")
            return None
        if not np.isfinite(mel).all():
            self._skip(url, key, "features are not finite")
            return None
        return {"key": key, "mel": mel, "meta": meta}

    def _unshuffled(self, fe: Frontend) -> Iterator[dict]:
        for shard in self.shards():
            url = self.urls[shard]
            for key, files in _samples(url, self._skip):
                sample = self._decode(fe, url, key, files)
                if sample is not None:
                    yield {**sample, "shard": shard}

    def __iter__(self) -> Iterator[dict]:
        fe = create_frontend(self.frontend).eval()
        rank, _, worker, _ = self._place()
        rng = random.Random(f"pocketear-shards:{self.seed}:{self.epoch}:{rank}:{worker}")
        if self.shuffle <= 1:
            yield from self._unshuffled(fe)
            return
        buffer: list[dict] = []
        for sample in self._unshuffled(fe):
            if len(buffer) < self.shuffle:
                buffer.append(sample)
                continue
            j = rng.randrange(len(buffer))
            buffer[j], sample = sample, buffer[j]
            yield sample
        rng.shuffle(buffer)
        while buffer:
            yield buffer.pop()
