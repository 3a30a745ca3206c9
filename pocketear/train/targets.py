"""Make target files for the discrete masked tasks (HuBERT, BEATs).

``pocketear cluster`` makes HuBERT's targets and ``pocketear tokenizer`` BEATs' next
iteration. See :mod:`pocketear.data.frame_targets`.

Frames come from the corpus's normalised log-mels: iteration 1 normalises with the corpus
statistics (those a pretraining run on the same corpus computes, so the features match what the
task sees), later iterations with the run's own frontend statistics, and run the run's frozen
encoder over ``input_frames`` windows. At most ``max_frames`` frames (a seeded random subset)
are clustered with scikit-learn's MiniBatchKMeans, one progress-bar tick per mini-batch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from pocketear.data.frame_targets import encoder_layer, mfcc, save_targets
from pocketear.encoders.base import Encoder, TokenEncoder
from pocketear.errors import InvalidValue
from pocketear.frontends.logmel import LogMel
from pocketear.frontends.windows import segment
from pocketear.train.build import load_modules
from pocketear.train.config import RunConfig, load_config, resolve
from pocketear.train.loop import prepare_data


def default_layer(encoder: torch.nn.Module) -> int:
    """The layer whose features are clustered by default: the middle block, else 0 (the output).

    Encoders with blocks get the middle one (HuBERT's iteration 2 used a middle layer of its 12).
    """
    if isinstance(encoder, TokenEncoder) and len(encoder.blocks):
        return max(1, len(encoder.blocks) // 2)
    return 0


def _subsample(rows: list[np.ndarray], max_frames: int, seed: int) -> np.ndarray:
    x = np.concatenate(rows).astype(np.float32)
    if len(x) > max_frames:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), max_frames, replace=False))]
    return x


@torch.no_grad()
def model_frames(encoder: Encoder, clips: list[np.ndarray], layer: int,
                 progress: bool = True) -> list[np.ndarray]:
    """Layer-``layer`` frame features of each normalised log-mel, window by window."""
    enc = encoder.eval()
    out = []
    for x in tqdm(clips, desc="features", unit="clip", disable=not progress, leave=False):
        w = segment(torch.from_numpy(x), enc.input_frames)
        out.append(encoder_layer(enc, w[:, None], layer).reshape(-1, enc.embed_dim).numpy())
    return out


def kmeans(x: np.ndarray, k: int, seed: int = 0, epochs: int = 3, batch_size: int = 4096,
           progress: bool = True) -> tuple[np.ndarray, float]:
    """MiniBatchKMeans by ``partial_fit`` over shuffled mini-batches; (centroids, inertia)."""
    from sklearn.cluster import MiniBatchKMeans

    if len(x) < k:
        raise InvalidValue(f"{len(x)} frames cannot make {k} clusters; lower --k or add data")
    batch_size = max(batch_size, 3 * k)
    km = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=batch_size, n_init=3)
    rng = np.random.default_rng(seed)
    steps = [(e, lo) for e in range(epochs) for lo in range(0, len(x), batch_size)]
    order = rng.permutation(len(x))
    for e, lo in tqdm(steps, desc=f"k-means k={k}", unit="batch", disable=not progress):
        if lo == 0 and e > 0:
            order = rng.permutation(len(x))
        chunk = x[order[lo: lo + batch_size]]
        if len(chunk) < k:  # partial_fit needs k rows; the short tail joins the next epoch
            continue
        km.partial_fit(chunk)
    inertia = float(-km.score(x[: min(len(x), 50_000)]))
    return km.cluster_centers_.astype(np.float32), inertia


def _corpus_clips(cfg: RunConfig, where: Path, progress: bool,
                  frontend: LogMel | None) -> list[np.ndarray]:
    """Normalised log-mels of the config's corpus.

    Normalised with ``frontend``'s statistics, or (none given) with the corpus's own, as a
    pretraining run on it would.
    """
    cache = prepare_data(cfg, where, progress)
    if frontend is None:
        frontend = LogMel(cfg.frontend)
        frontend.set_stats(cache.mean, cache.std)
    return [np.asarray(frontend.normalise(cache[i])) for i in range(len(cache))]


def make_targets(run: str | Path | None = None, data: str | None = None,
                 features: str = "mfcc", layer: int | None = None, k: int = 100,
                 out: str | Path | None = None, metric: str = "euclidean",
                 max_frames: int = 200_000, seed: int = 0, epochs: int = 3,
                 progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Cluster frames into a target file; returns (path, metadata).

    ``run`` set: features of that run's encoder at ``layer`` on ``data`` (default: the run's
    own training data). ``run`` unset: ``features`` (mfcc | logmel) of ``data`` (iteration 1).
    """
    if run is None:
        if not data:
            raise InvalidValue("give a RUN_DIR (features of a trained encoder) or --data (MFCC / "
                             "log-mel frames for iteration 1)")
        if features not in ("mfcc", "logmel"):
            raise InvalidValue(f"--features must be mfcc or logmel, got {features!r}")
        out = Path(out or f"targets_{features}_k{k}.npz")
        cfg = resolve(load_config(None, [f"data.source={data}", "task.name=hubert"]))
        clips = _corpus_clips(cfg, out.parent / "_cluster", progress, None)
        rows = [mfcc(torch.from_numpy(c)).numpy() if features == "mfcc" else c for c in clips]
        kind, extra = features, {}
    else:
        frontend, encoder, stored, ckpt = load_modules(run)
        cfg = resolve(stored)
        if data:
            cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, source=data,
                                                                    where={}))
        layer = default_layer(encoder) if layer is None else layer
        run_dir = Path(ckpt).parent.parent
        out = Path(out or run_dir / f"targets_layer{layer}_k{k}.npz")
        clips = _corpus_clips(cfg, run_dir, progress, frontend)
        rows = model_frames(encoder, clips, layer, progress)
        enc_cfg = {"name": cfg.encoder.name, **cfg.encoder.options,
                   "readout": cfg.encoder.readout, "n_mels": cfg.frontend.n_mels}
        kind = "model"
        extra = {"encoder_cfg": enc_cfg, "encoder_state": encoder.state_dict()}
    x = _subsample(rows, max_frames, seed)
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)
    centroids, inertia = kmeans(x, k, seed, epochs, progress=progress)
    if metric == "cosine":
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-8)
    meta = {"k": k, "kind": kind, "metric": metric, "layer": int(layer or 0),
            "frames": len(x), "clips": len(clips), "inertia": inertia,
            "run": str(run) if run else "", "data": str(data or cfg.data.source)}
    path = save_targets(out, centroids, kind, metric, int(layer or 0), meta=meta, **extra)
    return path, meta
