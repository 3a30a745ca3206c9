"""Batches streamed from WebDataset shards, for corpora larger than memory or disk.

With ``data.source`` naming tar shards (``'shards/{000000..000012}.tar'``, a shard folder or
any fsspec URL; written by ``pocketear shard``) there is no feature cache: clips arrive through
:class:`~pocketear.data.shards.ShardStream` (shards split across ranks and DataLoader workers,
shuffled in a bounded buffer), so memory depends on ``data.shuffle``, not on the corpus.

Resuming is at a shard boundary: the checkpoint stores the epoch and how many shards of the
epoch's order every rank had finished; a resumed run re-reads from there (a few clips of the
shards in flight are seen twice, the ones waiting in the shuffle buffer are skipped). The data
order is seeded but, unlike the cached path, not a pure function of (seed, step).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from pocketear.data.shard_stream import ShardStream
from pocketear.data.shards import expand_urls, read_index
from pocketear.errors import InvalidValue
from pocketear.frontends import Frontend, FrontendConfig
from pocketear.frontends.logmel import compute_stats, floor_std
from pocketear.tasks.base import Batch, Task

STATS_CLIPS = 256  # clips that estimate the normalisation when the shards carry none


def shard_stats(urls: list[str], cfg: FrontendConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean/std of the frontend's features, for normalisation.

    From ``shards.json`` when it was written with this frontend, else estimated on the first
    :data:`STATS_CLIPS` clips streamed.
    """
    index = read_index(urls)
    if index and index.get("frontend_key") == cfg.key():
        return np.asarray(index["mean"], np.float32), np.asarray(index["std"], np.float32)
    stream = ShardStream(urls, cfg, seed=seed, rank=0, world=1, shuffle=0)
    mels = (s["mel"] for _, s in zip(range(STATS_CLIPS), stream, strict=False))
    mean, std = compute_stats(mels)
    return mean, floor_std(std)


def first_clips(source: str, frontend: Frontend, seed: int,
                n: int = STATS_CLIPS) -> list[np.ndarray]:
    """The first ``n`` normalised clips of the shards, in order (for what augmentations fit)."""
    stream = ShardStream(expand_urls(source), frontend.cfg, seed=seed, rank=0, world=1,
                         shuffle=0)
    return [frontend.normalise(s["mel"]) for _, s in zip(range(n), stream, strict=False)]


class StreamSampler:
    """This rank's share of each step's batch, drawn clip by clip from the shard stream.

    ``other()`` negatives come from the last ``recent`` clips streamed. Example ``k`` of step
    ``s`` uses the seeded generator of the cached path (``[seed, 2, s·B + k]``), so only the
    clips, not the randomness of the views, depend on the stream's order.
    """

    def __init__(self, source: str, frontend: Frontend, task: Task, batch_size: int,
                 share: range, seed: int = 0, workers: int = 0, shuffle: int = 1000,
                 state: dict[str, Any] | None = None,
                 device: torch.device | None = None, recent: int = 64) -> None:
        self.urls = expand_urls(source)
        self.index = read_index(self.urls)
        self.frontend, self.task = frontend, task
        self.batch_size, self.share, self.seed, self.workers = batch_size, share, seed, workers
        self.device = device or torch.device("cpu")  # of state()'s collective (NCCL: a GPU)
        self.skipped: list = []
        state = state or {}
        self.epoch, self.start_shard = int(state.get("epoch", 0)), int(state.get("start_shard", 0))
        self.stream = ShardStream(self.urls, frontend.cfg, seed=seed, shuffle=shuffle,
                                  skipped=self.skipped)
        self._recent: deque[np.ndarray] = deque(maxlen=recent)
        self._iter: Iterator[dict] | None = None
        self._seen: set[int] = set()  # shards this rank has drawn clips from this epoch
        self.unusable = 0

    @property
    def n_clips(self) -> int | None:
        """Clips in the shards (from ``shards.json``; None without one)."""
        return int(self.index["clips"]) if self.index else None

    def _open(self) -> Iterator[dict]:
        self.stream.set_epoch(self.epoch, self.start_shard)
        loader = torch.utils.data.DataLoader(self.stream, batch_size=None,
                                             num_workers=self.workers,
                                             collate_fn=_identity)
        return iter(loader)

    def _next_clip(self) -> np.ndarray:
        for _ in range(2):
            if self._iter is None:
                self._iter = self._open()
            sample = next(self._iter, None)
            if sample is not None:
                self._seen.add(int(sample["shard"]))
                clip = self.frontend.normalise(np.asarray(sample["mel"], np.float32))
                self._recent.append(clip)
                return clip
            self._iter, self._seen = None, set()  # the epoch is over: the next order, whole
            self.epoch, self.start_shard = self.epoch + 1, 0
            self.task.on_epoch_start(self.epoch)
        raise InvalidValue(f"{self.urls[0]} ...: the shards hold no readable clip for this "
                           "rank; check them with `pocketear shard` or use fewer processes")

    def _other(self, rng: np.random.Generator, clip: np.ndarray) -> Callable[[], np.ndarray]:
        def other() -> np.ndarray:
            pool = [c for c in self._recent if c is not clip] or [clip]
            return pool[int(rng.integers(len(pool)))]
        return other

    def batch(self, step: int, max_tries: int = 20) -> Batch:
        """This rank's share of step ``step``'s batch (clips the task rejects are counted)."""
        examples = []
        for k in self.share:
            rng = np.random.default_rng([self.seed, 2, step * self.batch_size + k])
            for _ in range(max_tries):
                clip = self._next_clip()
                example = self.task.sample(clip, rng, self._other(rng, clip))
                if example is not None:
                    break
                self.unusable += 1
            else:
                raise InvalidValue(f"{max_tries} streamed clips in a row were too short for "
                                   f"{type(self.task).__name__}; lower "
                                   f"{self.task.clip_need().settings}")
            examples.append(example)
        return self.task.collate(examples)

    def epoch_of(self, step: int) -> int:
        """The stream's current epoch (epochs end when the shards run out)."""
        return self.epoch

    def state(self) -> dict[str, int]:
        """Where a resumed run restarts: the epoch and a shard boundary every rank has passed.

        A rank has finished the shards it drew clips from, except the ones still being read
        (one per loader worker, and one more for the shuffle buffer); the boundary is the same
        on every rank (a collective under torchrun) and a multiple of ranks × workers, so each
        rank and worker keeps its shards.
        """
        workers = max(1, self.workers)
        done = torch.tensor([max(0, len(self._seen) - workers - 1)], device=self.device)
        world = 1
        if dist.is_initialized():
            world = dist.get_world_size()
            dist.all_reduce(done, op=dist.ReduceOp.MIN)
        step = world * workers
        return {"epoch": self.epoch,
                "start_shard": self.start_shard + int(done) * world // step * step}


def _identity(sample: dict) -> dict:
    return sample
