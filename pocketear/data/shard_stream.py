"""Streaming WebDataset shards one clip at a time: split over ranks and workers, shuffled.

:class:`ShardStream` reads the shards of ``pocketear shard`` (``data/shards.py``), local or from
any fsspec URL, sequentially (one member at a time, never a whole shard), splits them over
ranks and DataLoader workers, and shuffles through a bounded buffer: memory depends on the
buffer, not on the corpus.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import random
import tarfile
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import soundfile as sf
from torch.utils.data import IterableDataset

from pocketear.audio.io import report_skipped
from pocketear.data.shards import expand_urls, log_mel, read_index, to_rate
from pocketear.errors import InvalidValue
from pocketear.frontends import Frontend, FrontendConfig, create_frontend


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
                mel = log_mel(fe, to_rate(wave.mean(axis=1), rate, self.frontend.sample_rate))
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
