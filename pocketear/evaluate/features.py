"""Embedding extraction with an on-disk cache: one encoder pass per (model, dataset).

Why: every probe, shot count and seed reads the same frozen embeddings, so they are computed
once and stored as ``.npz`` (no pickle) under a key over the model's weights, the corpus
fingerprint and the segmenting settings; a changed checkpoint or corpus gets a new file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from pocketear.data.cache import FeatureCache, build_cache
from pocketear.data.corpus import Corpus
from pocketear.frontends import FrontendConfig
from pocketear.model import Pretrained, time_parts

EMB_VERSION = 2  # 2: short clips embedded at their own length, the read-out
CLIPS_PER_BATCH = 64  # clips whose windows go through the encoder together


@dataclass
class Embeddings:
    """Segment embeddings of the decodable clips of a corpus.

    Attributes:
        segments: ``(sum S_i, D)`` float32, clip after clip.
        offsets: ``(N + 1,)``; clip ``j``'s segments are ``segments[offsets[j]:offsets[j+1]]``.
        items: ``(N,)`` corpus row of clip ``j`` (undecodable rows are absent).
    """

    segments: np.ndarray
    offsets: np.ndarray
    items: np.ndarray

    def __len__(self) -> int:
        return len(self.items)

    @property
    def dim(self) -> int:
        """Embedding size."""
        return int(self.segments.shape[1])

    def clip(self, j: int) -> np.ndarray:
        """Segments ``(S_j, D)`` of clip ``j``."""
        return self.segments[self.offsets[j]: self.offsets[j + 1]]

    def gather(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Segments of clips ``clips`` (positions) and, per segment, its index into ``clips``."""
        parts = [self.clip(int(j)) for j in clips]
        owner = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
        x = np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)
        return x, owner

    def clip_means(self, clips: np.ndarray | None = None) -> np.ndarray:
        """Clip embeddings ``(n, D)``: the mean of each clip's segments."""
        clips = np.arange(len(self)) if clips is None else clips
        return np.stack([self.clip(int(j)).mean(axis=0) for j in clips]) if len(clips) else \
            np.zeros((0, self.dim), np.float32)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically as ``.npz`` (plain arrays only)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, segments=self.segments, offsets=self.offsets, items=self.items)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Embeddings:
        """Read what :meth:`save` wrote (no pickles)."""
        with np.load(path, allow_pickle=False) as z:
            return cls(z["segments"].astype(np.float32), z["offsets"].astype(np.int64),
                       z["items"].astype(np.int64))


def model_key(model: Pretrained) -> str:
    """Hash of everything in the model that changes its embeddings (weights, stats, config)."""
    h = hashlib.sha1()
    h.update(json.dumps(model.frontend.cfg.to_dict(), sort_keys=True).encode())
    h.update(type(model.encoder).__name__.encode())
    h.update(str(model.encoder.readout).encode())
    for prefix, module in (("f.", model.frontend), ("e.", model.encoder)):
        for name, t in module.state_dict().items():
            h.update((prefix + name).encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def logmels(corpus: Corpus, cache_dir: str | os.PathLike[str], cfg: FrontendConfig,
            workers: int = 2, progress: bool = True) -> FeatureCache:
    """Unnormalised features of ``corpus``, built once and shared by every method.

    Log-mels, or the CQT of a ``cqt`` model, under ``cache_dir/<frontend name>``.
    """
    return build_cache(corpus, Path(cache_dir) / cfg.name, cfg, workers=workers,
                       progress=progress)


def cache_items(cache: FeatureCache) -> np.ndarray:
    """Corpus row of each cache entry."""
    return np.asarray([e["item"] for e in cache.index["entries"]], dtype=np.int64)


def normaliser(model: Pretrained) -> tuple[np.ndarray, np.ndarray]:
    """The frontend's per-bin (mean, std); identity when the frontend holds no stats.

    For code that needs the statistics themselves; to normalise a log-mel use
    :func:`normalised` (the frontend's own rule).
    """
    fe = model.frontend
    if fe.uses_stats:
        return fe.mean.detach().cpu().numpy().copy(), fe.std.detach().cpu().numpy().copy()
    return np.zeros(fe.cfg.n_mels, np.float32), np.ones(fe.cfg.n_mels, np.float32)


def normalised(model: Pretrained, logmel: np.ndarray) -> np.ndarray:
    """A raw log-mel ``(T, F)`` normalised by the model's frontend (``LogMel.normalise``).

    Always a new float32 array, never a view of the cache, so it may be wrapped in a tensor
    and changed in place.
    """
    x = model.frontend.normalise(logmel)
    return x.copy() if x is logmel else x


def extract(
    model: Pretrained,
    corpus: Corpus,
    cache_dir: str | os.PathLike[str],
    hop: int | None = None,
    key: str | None = None,
    workers: int = 2,
    progress: bool = True,
    desc: str = "embeddings",
    parts: int = 0,
) -> Embeddings:
    """Segment embeddings of every decodable clip of ``corpus``, from the cache when present.

    Args:
        model: encoder with its frontend (normalisation stats are applied here).
        corpus: the clips.
        cache_dir: folder holding the feature caches (``logmel/``, ``cqt/``) and ``emb/``.
        hop: hop between encoder windows in frames (default: the window, no overlap).
        key: model identity; default :func:`model_key` of ``model``.
        workers: log-mel processes.
        progress: show progress bars.
        desc: progress-bar label.
        parts: 0 (default): one embedding per encoder window. ``k > 0``: one vector per clip,
            the concatenated clip embeddings of its ``k`` equal time parts (see
            :func:`pocketear.model.time_parts`), the encoder's counterpart of
            :func:`logmel_stats` ``parts``.
    """
    frames = int(model.encoder.input_frames)
    raw = json.dumps({
        "v": EMB_VERSION, "model": key or model_key(model), "corpus": corpus.fingerprint(),
        "n": len(corpus), "frontend": model.frontend.cfg.key(), "frames": frames, "hop": hop,
        **({"parts": parts} if parts else {}),
    }, sort_keys=True)
    path = Path(cache_dir) / "emb" / f"{hashlib.sha1(raw.encode()).hexdigest()[:20]}.npz"
    if path.is_file():
        try:
            return Embeddings.load(path)
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # damaged: recompute below
    feats = logmels(corpus, cache_dir, model.frontend.cfg, workers, progress)
    model.encoder.eval()
    chunks, offsets = [], [0]
    with tqdm(total=len(feats), desc=desc, unit="clip", disable=not progress,
              leave=False) as bar:
        for lo in range(0, len(feats), CLIPS_PER_BATCH):
            xs = [torch.from_numpy(normalised(model, feats[i]))
                  for i in range(lo, min(lo + CLIPS_PER_BATCH, len(feats)))]
            for seg in model.embed_clips(xs, hop=hop, parts=parts):
                chunks.append(np.asarray(seg, dtype=np.float32))
                offsets.append(offsets[-1] + len(seg))
            bar.update(len(xs))
    emb = Embeddings(np.concatenate(chunks), np.asarray(offsets, np.int64), cache_items(feats))
    emb.save(path)
    return emb


def logmel_stats(cache: FeatureCache, parts: int = 0) -> Embeddings:
    """The ``logmel-stats`` baseline: per clip, mean and std of each log-mel bin (2F dims).

    With ``parts = k``, those of each of ``k`` equal time parts, concatenated (2kF dims).
    """
    rows = []
    for i in range(len(cache)):
        x = cache[i]
        pieces = time_parts(x, parts) if parts else [x]
        rows.append(np.concatenate([f(p, axis=0) for p in pieces for f in (np.mean, np.std)]))
    seg = np.stack(rows).astype(np.float32)
    return Embeddings(seg, np.arange(len(seg) + 1, dtype=np.int64), cache_items(cache))


def group_standardise(emb: Embeddings, groups: np.ndarray) -> Embeddings:
    """Standardise each clip's segments by the mean and std of all segments of its group.

    Label-free (groups such as speakers are known at test time without labels), so it may be
    applied to train and test clips alike; ``groups`` holds the group of each clip (position).
    """
    owner = np.repeat(np.arange(len(emb)), np.diff(emb.offsets))
    seg_groups = np.asarray(groups)[owner]
    out = np.empty_like(emb.segments)
    for g in np.unique(seg_groups):
        rows = seg_groups == g
        x = emb.segments[rows].astype(np.float64)
        out[rows] = (x - x.mean(0)) / np.maximum(x.std(0), 1e-6)
    return Embeddings(out, emb.offsets, emb.items)
