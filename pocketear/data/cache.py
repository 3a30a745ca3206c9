"""Feature cache: log-mels of a corpus computed once into a memory-mapped float16 array.

CPU training must not be bound by decoding, so each clip's (unnormalised) log-mel is stored once
in ``features.f16`` (all clips concatenated along time) with an ``index.json`` of offsets. The
cache folder is named by a key over the frontend config and the corpus fingerprint, so changing
either builds a new cache. A cache is built in a temporary folder and renamed into place only
when complete, with ``index.json`` written last: an interrupted build never reads as valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pocketear.audio.io import AudioError, load_audio, report_skipped
from pocketear.data.corpus import Corpus
from pocketear.errors import InvalidValue, MissingPath
from pocketear.frontends import (
    Frontend,
    FrontendConfig,
    LogMelConfig,
    create_frontend,
    frontend_config,
    stored_frontend,
)
from pocketear.frontends.logmel import compute_stats, floor_std

CACHE_VERSION = 1
_FRONTEND: Frontend | None = None


def cache_key(corpus: Corpus, cfg: FrontendConfig) -> str:
    """Key of the cache for ``corpus`` under frontend ``cfg``."""
    raw = f"v{CACHE_VERSION}:{cfg.key()}:{corpus.fingerprint()}:{len(corpus)}"
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def _init_worker(cfg: dict, one_thread: bool = True) -> None:
    import torch

    if one_thread:
        torch.set_num_threads(1)
    global _FRONTEND
    _FRONTEND = create_frontend(frontend_config(cfg)).eval()


def _featurise(path: str) -> tuple[str, np.ndarray | None, str]:
    """``(path, log-mel (T, F) float16, "")`` of one file, or ``(path, None, reason)`` if skipped.

    The reason leaves out the path, which the caller prints and stores next to it.
    """
    import torch

    assert _FRONTEND is not None
    try:
        wave = load_audio(path, _FRONTEND.cfg.sample_rate)
    except AudioError as err:
        return path, None, f"{err.reason}. {err.hint}"
    with torch.no_grad():
        mel = _FRONTEND(torch.from_numpy(wave)[None], normalise=False)[0, 0].numpy()
    if not np.isfinite(mel).all():
        return path, None, "log-mel is not finite; re-encode the file"
    return path, mel.astype(np.float16), ""


@dataclass
class FeatureCache:
    """A finished cache: ``cache[i]`` is the float32 log-mel ``(T, F)`` of entry ``i``."""

    root: Path
    index: dict

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> FeatureCache:
        """Open a finished cache folder (one ``<key>`` folder written by :func:`build_cache`).

        Raises:
            MissingPath: ``root`` has no ``index.json`` (not a finished cache).
            InvalidValue: The cache has another version or its data file has the wrong size.
        """
        root = Path(root)
        index_path = root / "index.json"
        if not index_path.is_file():
            raise MissingPath(f"{root}: not a finished feature cache (no index.json); "
                              "rebuild it with `pocketear cache`")
        index = json.loads(index_path.read_text())
        if index.get("version") != CACHE_VERSION:
            raise InvalidValue(f"{root}: cache version {index.get('version')} is not "
                               f"{CACHE_VERSION}; delete the folder to rebuild it")
        expected = index["total_frames"] * index["n_mels"] * 2
        actual = (root / "features.f16").stat().st_size
        if actual != expected:
            raise InvalidValue(f"{root}/features.f16 has {actual} bytes, expected {expected}; "
                               "delete the folder to rebuild the cache")
        return cls(root, index)

    def __post_init__(self) -> None:
        total, n_mels = self.index["total_frames"], self.index["n_mels"]
        self._data = np.memmap(self.root / "features.f16", dtype=np.float16, mode="r",
                               shape=(max(total, 1), n_mels)) if total else np.zeros((0, n_mels))
        self.offsets = np.asarray([e["offset"] for e in self.index["entries"]], dtype=np.int64)
        self.lengths = np.asarray([e["frames"] for e in self.index["entries"]], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index["entries"])

    def __getitem__(self, i: int) -> np.ndarray:
        o, n = self.offsets[i], self.lengths[i]
        return np.asarray(self._data[o : o + n], dtype=np.float32)

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]

    @property
    def paths(self) -> list[str]:
        """Paths of the cached (decodable) files, in entry order."""
        return [e["path"] for e in self.index["entries"]]

    @property
    def frontend_config(self) -> FrontendConfig:
        """The frontend config the features were computed with."""
        return frontend_config(self.index["frontend"])

    @property
    def mean(self) -> np.ndarray:
        """Per-bin mean of the raw log-mel over every cached frame."""
        return np.asarray(self.index["mean"], dtype=np.float32)

    @property
    def std(self) -> np.ndarray:
        """Per-bin std, floored relative to the median bin (:func:`floor_std`).

        The floor is applied here too, for caches built before it whose index holds raw values.
        """
        return floor_std(np.asarray(self.index["std"], dtype=np.float32))

    @property
    def skipped(self) -> list[list[str]]:
        """``[path, reason]`` for each corpus file that could not be decoded."""
        return self.index["skipped"]


def build_cache(
    corpus: Corpus,
    out_dir: str | os.PathLike[str],
    cfg: FrontendConfig | None = None,
    workers: int = 2,
    progress: bool = True,
) -> FeatureCache:
    """Features (log-mel by default) of every decodable file of ``corpus`` under ``out_dir/<key>``.

    Reused if present. ``workers`` processes decode the files; 0 decodes them in this process.

    Undecodable files are reported once each (``skipped: PATH: reason`` on stderr), skipped
    and listed in the index.

    Raises:
        InvalidValue: None of the corpus's files could be decoded.
    """
    cfg = cfg or LogMelConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / cache_key(corpus, cfg)
    if (final / "index.json").is_file():
        try:
            return FeatureCache.open(final)
        except (ValueError, OSError, json.JSONDecodeError):
            shutil.rmtree(final, ignore_errors=True)  # damaged: rebuild below
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=out_dir))
    try:
        entries, skipped = [], []
        offset = 0
        n_mels = cfg.n_mels
        pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                                   initargs=(stored_frontend(cfg),)) if workers > 0 else None
        with open(tmp / "features.f16", "wb") as f, pool or nullcontext():
            if pool is None:  # in this process: no fork (unsafe beside gRPC's threads)
                _init_worker(stored_frontend(cfg), one_thread=False)
                results: Iterator[tuple[str, np.ndarray | None, str]] = map(_featurise,
                                                                            corpus.paths)
            else:
                results = pool.map(_featurise, corpus.paths, chunksize=8)
            bar = tqdm(results, total=len(corpus), desc=f"{cfg.name} cache", unit="file",
                       disable=not progress)
            for i, (path, mel, reason) in enumerate(bar):
                if mel is None:
                    report_skipped(path, reason)
                    skipped.append([path, reason])
                    continue
                f.write(mel.tobytes())
                entries.append({"path": path, "item": i, "offset": offset, "frames": len(mel)})
                offset += len(mel)
        if not entries:
            raise InvalidValue(f"{corpus.source}: none of the {len(corpus)} files could be decoded")
        data = np.memmap(tmp / "features.f16", dtype=np.float16, mode="r", shape=(offset, n_mels))
        chunks = (np.asarray(data[i : i + 65536], np.float32) for i in range(0, offset, 65536))
        mean, std = compute_stats(chunks)
        del data
        index = {
            "version": CACHE_VERSION, "key": final.name, "source": corpus.source,
            "frontend": stored_frontend(cfg), "n_mels": n_mels, "total_frames": offset,
            "entries": entries, "skipped": skipped,
            "mean": np.asarray(mean).tolist(), "std": np.asarray(std).tolist(),
        }
        (tmp / "index.json.part").write_text(json.dumps(index))
        os.replace(tmp / "index.json.part", tmp / "index.json")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return FeatureCache.open(final)
