"""Embed audio files of any length in bounded memory: read a chunk, embed its windows, move on.

Files are read ``chunk_seconds`` at a time with ``load_audio(offset_seconds=..., max_seconds=...)``
(libsndfile formats seek; compressed formats decode from the start, so they stream more slowly but
still in bounded memory). Each chunk is read with a small margin so resampling from another rate
has the same context at chunk edges as a whole-file read. Clip embeddings use exactly the windows
of ``Pretrained.embed``; frame embeddings the centred windows of :meth:`Embedder.embed_frames`.
For files at the model's rate the streamed result equals the whole-file one to float rounding.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from pocketear.audio.io import AudioError, audio_duration, load_audio
from pocketear.errors import MissingDependency, MissingPath
from pocketear.export.runtime import Embedder, cut_windows, load_embedder

MARGIN = 256  # samples read beyond each chunk edge (resampling context), then dropped


def read_span(path: str, sr: int, lo: int, hi: int, total: int) -> tuple[np.ndarray, int]:
    """Samples ``[lo, hi)`` clipped to ``[0, total)``, as ``(audio, offset_of_audio)``."""
    a, b = max(0, lo - MARGIN), min(total, hi + MARGIN)
    if b <= a:
        return np.zeros(0, dtype=np.float32), max(0, lo)
    audio = load_audio(path, sr, offset_seconds=a / sr, max_seconds=(b - a) / sr)
    return audio, a


def num_samples(path: str, sr: int) -> int:
    """Length of ``path`` in samples at ``sr`` (at least 1)."""
    return max(1, int(round(audio_duration(path) * sr)))


def stream_clip_embedding(embedder: Embedder, path: str | os.PathLike[str],
                          chunk_seconds: float = 60.0,
                          on_progress: Callable[[float], None] | None = None) -> np.ndarray:
    """Clip embedding ``(D,)`` of a file, reading at most ~``chunk_seconds`` of audio at a time."""
    path, fr = os.fspath(path), embedder.framing
    n = num_samples(path, fr.sample_rate)
    starts = fr.clip_starts(n)
    per_chunk = max(1, int(chunk_seconds * fr.sample_rate / fr.hop))
    if starts is None or len(starts) <= per_chunk:
        emb = embedder.embed(load_audio(path, fr.sample_rate))
        if on_progress:
            on_progress(n / fr.sample_rate)
        return emb
    total = np.zeros(embedder.embed_dim, dtype=np.float64)
    for i in range(0, len(starts), per_chunk):
        part = starts[i : i + per_chunk]
        audio, offset = read_span(path, fr.sample_rate, int(part[0]), int(part[-1]) + fr.window, n)
        total += embedder.embed_windows(cut_windows(audio, part, fr.window, offset)).sum(
            axis=0, dtype=np.float64)
        if on_progress:
            on_progress(len(part) * fr.hop / fr.sample_rate)
    return (total / len(starts)).astype(np.float32)


def stream_frame_embeddings(embedder: Embedder, path: str | os.PathLike[str],
                            hop_ms: float | None = None, chunk_seconds: float = 60.0,
                            on_progress: Callable[[float], None] | None = None,
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Frame embeddings ``(K, D)`` and timestamps ``(K,)`` ms of a file, chunk by chunk."""
    path, fr = os.fspath(path), embedder.framing
    hop_ms = hop_ms or embedder.default_hop_ms
    n = num_samples(path, fr.sample_rate)
    centres, times = fr.frame_centres(n, hop_ms)
    per_chunk = max(1, int(chunk_seconds * 1000.0 / hop_ms))
    half, parts = fr.window // 2, []
    for i in range(0, len(centres), per_chunk):
        starts = centres[i : i + per_chunk] - half
        audio, offset = read_span(path, fr.sample_rate, int(starts[0]),
                                   int(starts[-1]) + fr.window, n)
        parts.append(embedder.embed_windows(cut_windows(audio, starts, fr.window, offset)))
        if on_progress:
            on_progress(min(len(starts) * hop_ms / 1000.0, n / fr.sample_rate))
    return np.concatenate(parts), times


def collect_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Audio files from files, folders (recursive) and CSV/TSV manifests, in the given order."""
    from pocketear.data.corpus import Corpus

    files: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir() or p.suffix.lower() in (".csv", ".tsv"):
            files.extend(Corpus.open(p).paths)
        elif p.exists():
            files.append(str(p))
        else:
            raise MissingPath(f"{p}: no such file, folder or manifest")
    if not files:
        raise MissingPath("no audio files in the inputs")
    return files


def embed_files(
    model_path_or_ckpt: str | os.PathLike[str] | Any,
    inputs: Iterable[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    hop_ms: float | None = None,
    frames: bool = False,
    progress: bool = True,
    *,
    threads: int | None = None,
    chunk_seconds: float = 60.0,
) -> dict[str, Any]:
    """Embed every input file with a checkpoint (PyTorch) or ``.onnx`` model (ONNX Runtime).

    Args:
        model_path_or_ckpt: ``.onnx`` file, checkpoint, run folder, ``Pretrained`` or Embedder.
        inputs: audio files, folders and manifests.
        out: ``.npz`` (or ``.parquet`` when pyarrow is installed), replaced atomically.
        hop_ms: frame hop (default: one window hop, 960 ms); only with ``frames``.
        frames: frame embeddings with timestamps instead of one embedding per file.
        progress: show a progress bar in seconds of audio.
        threads: inference threads (None: the backend's default).
        chunk_seconds: audio read per step; memory is bounded by this, not by file length.

    Returns:
        ``{"out", "files", "embedded", "skipped": [(path, reason)], "rows", "backend"}``.
        The ``.npz`` holds ``embeddings`` (float32), ``paths`` and, for frames,
        ``timestamps_ms`` (float64) and ``file_index`` (int64, into ``paths``).
    """
    from tqdm import tqdm

    embedder = load_embedder(model_path_or_ckpt, threads)
    files = collect_inputs(inputs)
    total_s = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in files:
            with contextlib.suppress(AudioError):
                total_s += audio_duration(f)
    bar = tqdm(total=round(total_s, 1), unit="s", desc="embed", disable=not progress)

    def tick(seconds: float) -> None:
        bar.update(round(seconds, 1))

    embs: list[np.ndarray] = []
    kept: list[str] = []
    stamps: list[np.ndarray] = []
    index: list[np.ndarray] = []
    skipped: list[tuple[str, str]] = []
    for f in files:
        try:
            if frames:
                e, t = stream_frame_embeddings(embedder, f, hop_ms, chunk_seconds, tick)
                stamps.append(t)
                index.append(np.full(len(t), len(kept), dtype=np.int64))
            else:
                e = stream_clip_embedding(embedder, f, chunk_seconds, tick)[None]
        except AudioError as err:
            warnings.warn(f"skipping audio file: {err}", stacklevel=2)
            skipped.append((f, err.reason))
            continue
        embs.append(e.astype(np.float32, copy=False))
        kept.append(f)
    bar.close()
    if not kept:
        raise AudioError(files[0], f"none of the {len(files)} input file(s) could be decoded")
    arrays = {"embeddings": np.concatenate(embs), "paths": np.array(kept)}
    if frames:
        arrays.update(timestamps_ms=np.concatenate(stamps), file_index=np.concatenate(index))
    _write(Path(out), arrays)
    return {"out": str(out), "files": len(files), "embedded": len(kept), "skipped": skipped,
            "rows": int(len(arrays["embeddings"])), "backend": embedder.backend,
            "frames": bool(frames), "hop_ms": (hop_ms or embedder.default_hop_ms) if frames
            else None, "audio_seconds": round(total_s, 3)}


def _write(out: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``.npz`` (or ``.parquet``) atomically: temp file in the same folder, then rename."""
    out.parent.mkdir(parents=True, exist_ok=True)
    parquet = out.suffix.lower() == ".parquet"
    if parquet:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise MissingDependency(f"{out}: writing Parquet needs pyarrow (pip install pyarrow); "
                                    "or write .npz") from None
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if parquet:
                cols = {"path": arrays["paths"][arrays.get("file_index", slice(None))]}
                if "timestamps_ms" in arrays:
                    cols["timestamp_ms"] = arrays["timestamps_ms"]
                cols["embedding"] = list(arrays["embeddings"])
                pq.write_table(pa.table(cols), f)
            else:
                np.savez(f, **arrays)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
