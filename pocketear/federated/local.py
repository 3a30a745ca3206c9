"""One client's local training: its own audio, the run's task, a few steps per round.

A client never sends audio, features or embeddings: :meth:`LocalTrainer.fit` returns the shared
arrays of ``federated/state.py``, a number of examples and scalar metrics. Everything else (the
feature cache of its clips, augmentation state, queues, optimiser) stays in its ``work_dir``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pocketear.data.cache import build_cache
from pocketear.data.corpus import Corpus
from pocketear.errors import InvalidValue
from pocketear.federated.state import check_federated, get_arrays, set_arrays, shared_keys
from pocketear.train.augment_state import prepare_augment
from pocketear.train.batches import BatchSampler, filter_short_clips
from pocketear.train.build import build_encoder, build_frontend, build_optimiser, build_task
from pocketear.train.config import RunConfig, resolve
from pocketear.train.loop import train_step


def client_corpus(source: str, column: str = "", value: str = "",
                  where: Mapping[str, Any] | None = None) -> Corpus:
    """A client's clips: the rows of ``source`` matching ``where`` and ``column`` = ``value``.

    ``where`` filters as ``data.where`` does; without ``column`` the client takes them all.
    """
    corpus = Corpus.open(source)
    if where:
        corpus = corpus.filter(**{k: [str(x) for x in v] if isinstance(v, list) else str(v)
                                  for k, v in where.items()})
    if column:
        corpus = corpus.filter(**{column: value})
        if not len(corpus):
            raise InvalidValue(f"{source}: no row has {column}={value!r}")
    return corpus


def groups(source: str, column: str, where: Mapping[str, Any] | None = None) -> list[str]:
    """The sorted distinct values of ``column`` in ``source`` (rows of ``where``): one client each.

    Raises:
        InvalidValue: the manifest has no such column, or fewer than two groups.
    """
    corpus = client_corpus(source, where=where)
    if column not in corpus.columns:
        raise InvalidValue(f"{source}: no column {column!r} to split clients by; columns: "
                           f"{', '.join(corpus.columns)}")
    values = sorted(set(corpus.column(column)))
    if len(values) < 2:
        raise InvalidValue(f"{source}: column {column!r} has {len(values)} value(s); federated "
                           "training needs at least 2 clients")
    return values


class LocalTrainer:
    """The task of ``cfg`` on one client's clips, trained ``local_steps`` per round."""

    def __init__(self, cfg: RunConfig | Mapping[str, Any], corpus: Corpus, work_dir: Path,
                 client: int = 0) -> None:
        self.cfg = run = resolve(cfg)
        check_federated(run.task_name, run.task)
        self.client, self.work_dir = client, Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(run.train.threads or 1)
        self.cache = build_cache(corpus, self.work_dir / "cache", run.frontend, workers=0,
                                 progress=False)
        self.frontend = build_frontend(run)
        self.local_stats = (self.cache.mean, self.cache.std)
        self.frontend.set_stats(*self.local_stats)
        torch.manual_seed(run.train.seed)
        self.task = build_task(run, build_encoder(run))
        self.keys = shared_keys(self.task)
        hop = self.frontend.hop_length / self.frontend.sample_rate
        self.kept = filter_short_clips(self.cache.lengths, self.task, hop, run.task_name)
        prepare_augment(self.task.augment, self.clip, len(self.cache), self.work_dir,
                        run.train.seed, (self.work_dir / "augment_state.npz").is_file(),
                        progress=False, frames=self.task.cfg.slice_frames)

    def clip(self, i: int) -> np.ndarray:
        """Clip ``i``'s normalised features (with the stats of the current round)."""
        return self.frontend.normalise(self.cache[i])

    def arrays(self) -> list[np.ndarray]:
        """The shared arrays of the current model (what this client would send)."""
        return get_arrays(self.task, self.frontend, self.keys)

    def fit(self, arrays: list[np.ndarray], server_round: int, local_steps: int, lr: float,
            proximal_mu: float = 0.0) -> tuple[list[np.ndarray], int, dict[str, float]]:
        """Train from the server's arrays; the new arrays, examples seen and the mean loss.

        Round 1 normalises with this client's own statistics (the server has none yet) and
        sends them; later rounds use the federation's average. ``proximal_mu`` > 0 adds
        FedProx's ``μ/2 ‖w − w_global‖²`` (Li et al. 2020, eq. 2) through its gradient.
        """
        run = self.cfg
        set_arrays(self.task, self.frontend, self.keys, arrays, stats=server_round > 1)
        if server_round <= 1:
            self.frontend.set_stats(*self.local_stats)
        optimiser = build_optimiser(run.optim, self.task)
        for group in optimiser.param_groups:
            group["lr"] = lr
        hooks = self._proximal(proximal_mu)
        sampler = BatchSampler(self.clip, len(self.cache), self.task, run.optim.batch_size,
                               seed=int(np.random.SeedSequence(
                                   [run.train.seed, 6, self.client, server_round]
                               ).generate_state(1)[0]), indices=self.kept.usable)
        self.task.train()
        losses = []
        try:
            for s in range(local_steps):
                out = train_step(self.task, optimiser, sampler.batch(s),
                                 (server_round - 1) * local_steps + s, None,
                                 run.optim.grad_clip, run.train.bf16)
                losses.append(float(out.loss.detach()))
        finally:
            for hook in hooks:
                hook.remove()
        loss = float(np.mean(losses)) if losses else math.nan
        return self.arrays(), local_steps * run.optim.batch_size, {"loss": loss}

    def _proximal(self, mu: float) -> list[torch.utils.hooks.RemovableHandle]:
        if mu <= 0:
            return []
        hooks = []
        for p in self.task.parameters():
            if p.requires_grad:
                anchor = p.detach().clone()
                hooks.append(p.register_hook(
                    lambda g, p=p, a=anchor: g + mu * (p.detach() - a)))
        return hooks
