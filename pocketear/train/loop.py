"""The plain PyTorch pretraining loop (no framework base class for tasks).

AdamW or SGD (``optim.name``) with linear warm-up and cosine decay, gradient clipping, optional
bf16 autocast, seeded and resumable: batches are a pure function of (seed, step) and the
checkpoint carries the optimiser, scheduler and RNG state, so a killed run resumed with
``--resume`` matches an uninterrupted one (except for the augmentations' memory banks, which are
not stored: see ``train/augment_state.py``, which also fits and stores what augmentations learn
from the corpus). Clips too short for the task are left out before the first step and counted.

Under ``torchrun`` (``train/distributed.py``) each rank draws its share of the global batch, the
task is wrapped in ``DistributedDataParallel`` and rank 0 alone writes the run folder; the
device is ``train.device`` (``auto``: the GPU when there is one).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from pocketear import __version__
from pocketear.data.cache import FeatureCache, build_cache
from pocketear.data.corpus import Corpus
from pocketear.data.shards import expand_urls, is_shard_source, read_index
from pocketear.errors import InvalidValue, PathExists, UserError
from pocketear.tasks.base import Batch, Task
from pocketear.train.augment_state import prepare_augment
from pocketear.train.batches import (
    BatchSampler,
    ClipFilter,
    filter_short_clips,
    steps_for_epochs,
)
from pocketear.train.build import build_encoder, build_frontend, build_optimiser, build_task
from pocketear.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pocketear.train.config import RunConfig, resolve, save_config
from pocketear.train.distributed import Place, all_finite, barrier, mean_over_ranks, process_group
from pocketear.train.ema import ema_update
from pocketear.train.metrics import MetricsWriter
from pocketear.train.monitors import TrivialTaskMonitor, effective_rank, embedding_std
from pocketear.train.stream import StreamSampler, first_clips, shard_stats


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Learning-rate multiplier: linear warm-up to 1, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def prepare_data(cfg: RunConfig | Mapping[str, Any], run_dir: Path,
                 progress: bool) -> FeatureCache:
    """Open the corpus, apply the ``data.where`` filter and build (or reuse) its feature cache."""
    run = resolve(cfg)
    data = run.data
    if not data.source:
        raise InvalidValue("no training data: pass --data FOLDER_OR_MANIFEST (data.source)")
    corpus = Corpus.open(data.source)
    if data.where:
        corpus = corpus.filter(**{k: str(v) if not isinstance(v, list) else [str(x) for x in v]
                                  for k, v in data.where.items()})
        if not len(corpus):
            raise InvalidValue(f"data.where={data.where} selects no file of {data.source}")
    cache_dir = Path(data.cache_dir) if data.cache_dir else run_dir.parent / ".cache"
    return build_cache(corpus, cache_dir, run.frontend, workers=data.workers, progress=progress)


def pretrain(cfg: RunConfig | Mapping[str, Any], out: str | Path, resume: bool = False,
             progress: bool = True) -> dict[str, Any]:
    """Pretrain ``cfg.task`` on ``cfg.data`` into run folder ``out``; returns the summary.

    ``cfg``: a :class:`RunConfig` or its stored dict form (``load_config()``). With
    ``resume=True`` this is :func:`resume_run` with ``cfg``'s step count.
    """
    if resume:
        steps = cfg.train.steps if isinstance(cfg, RunConfig) else cfg["train"]["steps"]
        return resume_run(out, steps=steps, progress=progress)
    run_dir = Path(out)
    if (run_dir / "checkpoints" / "last.pt").exists():
        raise PathExists(f"{run_dir} already holds a run; pass --resume to continue it or "
                         "choose another --out")
    return _train(resolve(cfg), run_dir, None, progress)


def resume_run(out: str | Path, steps: int | None = None,
               progress: bool = True) -> dict[str, Any]:
    """Continue the run in ``out`` from its last checkpoint, with its own config and state.

    ``steps`` may raise the run's total (never lower it); the data order, optimiser and
    scheduler continue as if the run had never stopped.
    """
    run_dir = Path(out)
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    if not ckpt_path.is_file():
        raise CheckpointError(f"{run_dir}: nothing to resume (no checkpoints/last.pt); "
                              "drop --resume to start a new run")
    state = load_checkpoint(ckpt_path)
    cfg = resolve(state["config"])
    cfg = cfg.with_train(steps=max(int(steps or 0), cfg.train.steps))
    return _train(cfg, run_dir, state, progress)


class LossDiverged(UserError, FloatingPointError):
    """The loss became NaN or infinite: a setting to change (the learning rate, clipping)."""


@dataclass
class StepResult:
    """What one optimisation step returns: the loss, the task's logs and the gradient norm."""

    loss: torch.Tensor
    logs: dict[str, Any]
    grad_norm: torch.Tensor


def to_device(batch: Batch, device: torch.device) -> Batch:
    """The batch's tensors on ``device`` (a no-op on the CPU)."""
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()}


def train_step(task: Task, optimiser: torch.optim.Optimizer, batch: Batch, step: int,
               scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
               grad_clip: float = 1.0, bf16: bool = False,
               model: torch.nn.Module | None = None) -> StepResult:
    """One optimisation step exactly as :func:`pretrain` runs it (benchmarks call this too).

    ``task.step`` (through ``model``, the task's ``DistributedDataParallel`` wrapper when there
    is one) under optional bf16 autocast on the task's device, a finite-loss check (on every
    rank), backward, gradient-norm clipping (``grad_clip`` > 0), the optimiser and scheduler
    steps, the EMA pairs, then ``task.after_step(step)``.

    Raises:
        LossDiverged: the loss is not finite (nothing has been updated yet).
    """
    device = next(task.parameters()).device
    batch = to_device(batch, device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        loss, logs = (model or task)(batch)
    if not all_finite(loss):
        raise LossDiverged(f"loss became {loss.item()} at step {step} (on this or another rank); "
                           "lower optim.lr or enable gradient clipping (optim.grad_clip)")
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = (torch.nn.utils.clip_grad_norm_(task.parameters(), grad_clip)
                 if grad_clip > 0 else torch.tensor(0.0))
    optimiser.step()
    if scheduler is not None:
        scheduler.step()
    for online, target, decay in task.ema_pairs():
        ema_update(online, target, decay)
    task.after_step(step)
    return StepResult(loss, logs, grad_norm)


class _Run:
    """The pieces of one run, built from its config (and its checkpoint when resuming)."""

    def __init__(self, cfg: RunConfig, run_dir: Path, state: dict[str, Any] | None,
                 progress: bool, place: Place) -> None:
        self.run_dir, self.ckpt_path = run_dir, run_dir / "checkpoints" / "last.pt"
        self.place, main = place, place.main
        run_dir.mkdir(parents=True, exist_ok=True)
        tcfg = cfg.train
        torch.manual_seed(tcfg.seed)  # the same initial weights on every rank
        if tcfg.threads:
            torch.set_num_threads(tcfg.threads)
        self.streaming = bool(cfg.data.source) and is_shard_source(cfg.data.source)
        self.frontend = frontend = build_frontend(cfg)
        if self.streaming:
            if cfg.data.where:
                raise InvalidValue("data.where filters a manifest, not shards; filter the "
                                   "manifest before `pocketear shard`")
            self.cache = None
            frontend.set_stats(*shard_stats(expand_urls(cfg.data.source), frontend.cfg,
                                            tcfg.seed))
        else:
            if not main:
                barrier()  # rank 0 builds the feature cache, the others then open it
            self.cache = prepare_data(cfg, run_dir, progress and main)
            if main:
                barrier()
            frontend.set_stats(self.cache.mean, self.cache.std)
        self.encoder = build_encoder(cfg)
        task = build_task(cfg, self.encoder).to(place.device)
        if (stats := getattr(task, "input_stats", None)) is not None:
            frontend.set_stats(*stats)  # a distillation student reads its teacher's inputs
        self.task = task.to(memory_format=torch.channels_last) if tcfg.channels_last else task
        self.optimiser = build_optimiser(cfg.optim, self.task)
        n_clips, self.kept = self._usable_clips(cfg)
        if tcfg.epochs > 0:
            if n_clips is None:
                raise InvalidValue("train.epochs needs the clip count of shards.json beside "
                                   "the shards; set train.steps instead")
            cfg = cfg.with_train(steps=steps_for_epochs(tcfg.epochs, n_clips,
                                                        cfg.optim.batch_size))
        self.cfg, total = cfg, cfg.train.steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimiser, lambda s: warmup_cosine(s, cfg.optim.warmup_steps, total))
        self.start = 0
        if state is not None:
            self.task.load_state_dict(state["task"])
            self.optimiser.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
            self.start = int(state["step"])
        if not main:  # each rank its own dropout/masking draws (rank 0: the stored state)
            torch.manual_seed(int(np.random.SeedSequence(
                [tcfg.seed, 4, place.rank, self.start]).generate_state(1)[0]))
        if main:
            save_config(cfg, run_dir / "config.yaml")
        else:
            barrier()  # rank 0 fits and stores the augmentations' state, the others load it
        clip, fit_clips = self.clip, len(self.cache) if self.cache is not None else 0
        if self.streaming and hasattr(self.task.augment, "fit"):
            first = first_clips(cfg.data.source, frontend, tcfg.seed)
            clip, fit_clips = first.__getitem__, len(first)
        prepare_augment(self.task.augment, clip, fit_clips, run_dir, tcfg.seed,
                        state is not None or not main, progress and main,
                        frames=self.task.cfg.slice_frames)
        if main:
            barrier()
        share = place.share(cfg.optim.batch_size)
        self.sampler: BatchSampler | StreamSampler
        if self.streaming:
            self.sampler = StreamSampler(
                cfg.data.source, frontend, self.task, cfg.optim.batch_size, share, tcfg.seed,
                cfg.data.workers, cfg.data.shuffle, (state or {}).get("stream"), place.device)
        else:
            assert self.cache is not None and self.kept is not None
            self.sampler = BatchSampler(self.clip, len(self.cache), self.task,
                                        cfg.optim.batch_size, seed=tcfg.seed,
                                        indices=self.kept.usable, share=share)
        self.model: torch.nn.Module = self.task
        if place.world > 1:  # gradients all-reduced; buffers (queues, BN stats) stay per rank
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.task, device_ids=[place.device.index] if place.device.type == "cuda"
                else None, forward_sync_buffers=False, find_unused_parameters=True)

    def _usable_clips(self, cfg: RunConfig) -> tuple[int | None, ClipFilter | None]:
        """Clips to train on and, for the cache, which are long enough (short ones counted).

        A stream cannot be filtered up front: its short clips are counted as they come.
        """
        if self.cache is None:
            index = read_index(expand_urls(cfg.data.source))
            return (int(index["clips"]) if index else None), None
        kept = filter_short_clips(self.cache.lengths, self.task,
                                  self.frontend.hop_length / self.frontend.sample_rate,
                                  cfg.task_name)
        if kept.short and self.place.main:
            tqdm.write(kept.message(cfg.task_name), file=sys.stderr)
        return len(kept.usable), kept

    def data_summary(self) -> dict[str, Any]:
        """The summary's account of the clips: how many, skipped, too short, trained on."""
        if self.cache is None:
            assert isinstance(self.sampler, StreamSampler)
            return {"clips": self.sampler.n_clips, "skipped_files": len(self.sampler.skipped),
                    "short_clips": None, "training_clips": None, "streamed_from": "shards"}
        assert self.kept is not None
        return {"clips": len(self.cache), "skipped_files": len(self.cache.skipped),
                "short_clips": self.kept.short, "training_clips": len(self.kept.usable)}

    def clip(self, i: int) -> np.ndarray:
        """Clip ``i``'s normalised log-mel (of the feature cache)."""
        assert self.cache is not None
        return self.frontend.normalise(self.cache[i])

    def checkpoint(self, step: int) -> None:
        """Everything a resumed run needs, written atomically to ``checkpoints/last.pt``.

        Rank 0 only (the ranks' weights and optimiser states are equal under DDP).
        """
        stream = self.sampler.state() if isinstance(self.sampler, StreamSampler) else None
        if not self.place.main:
            return
        save_checkpoint({
            "version": __version__, "config": self.cfg.to_dict(), "step": step,
            "sample_rate": self.frontend.cfg.sample_rate,
            "frontend": self.frontend.state_dict(), "task": self.task.state_dict(),
            "optimizer": self.optimiser.state_dict(), "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            **({"stream": stream} if stream is not None else {}),
        }, self.ckpt_path)

    def logs(self, done: int, batch: Batch, out: StepResult, epoch: int,
             rate: float) -> dict[str, float]:
        """The metrics written every ``log_every`` steps (called on every rank).

        The loss and the task's logs are averaged over the ranks; the collapse monitors
        (``emb_std``, ``eff_rank``, on rank 0's share) are added every ``monitor_every``.
        """
        shared = mean_over_ranks(
            {**{k: float(torch.as_tensor(v).detach()) for k, v in out.logs.items()},
             "loss": float(out.loss.detach())}, self.place.device)
        logs = {**shared, "lr": self.scheduler.get_last_lr()[0],
                "grad_norm": float(out.grad_norm), "examples_per_s": rate, "epoch": epoch}
        tcfg = self.cfg.train
        if self.place.main and (done % tcfg.monitor_every == 0 or done == tcfg.steps):
            with torch.no_grad():
                emb = self.task.monitor_embeddings(to_device(batch, self.place.device)).float()
            logs["emb_std"] = embedding_std(emb)
            logs["eff_rank"] = effective_rank(emb)
        return logs


def _train(cfg: RunConfig, run_dir: Path, state: dict[str, Any] | None,
           progress: bool) -> dict[str, Any]:
    with process_group(cfg.train.device) as place:
        return _train_on(cfg, run_dir, state, progress, place)


def _train_on(cfg: RunConfig, run_dir: Path, state: dict[str, Any] | None,
              progress: bool, place: Place) -> dict[str, Any]:
    run = _Run(cfg, run_dir, state, progress, place)
    cfg, task, sampler = run.cfg, run.task, run.sampler
    tcfg, total, main = cfg.train, cfg.train.steps, place.main
    writer = MetricsWriter(run_dir, start_step=run.start) if main else None
    trivial = TrivialTaskMonitor(cfg.task_name, until_step=50 * tcfg.log_every)
    bar = tqdm(range(run.start, total), initial=run.start, total=total, desc=cfg.task_name,
               unit="step", disable=not (progress and main))
    task.train()
    t0, cpu0, examples, last_logs, epoch = time.perf_counter(), time.process_time(), 0, {}, -1
    for step in bar:
        if sampler.epoch_of(step) != epoch:
            epoch = sampler.epoch_of(step)
            task.on_epoch_start(epoch)
        batch = sampler.batch(step)
        try:
            out = train_step(task, run.optimiser, batch, step, run.scheduler,
                             cfg.optim.grad_clip, tcfg.bf16, run.model)
        except LossDiverged:
            run.checkpoint(step)  # the state before the failed step, for a lower-lr resume
            raise
        examples += cfg.optim.batch_size
        done = step + 1
        if done % tcfg.log_every == 0 or done == total:
            rate = examples / (time.perf_counter() - t0)
            last_logs = run.logs(done, batch, out, epoch, rate)
            if writer is not None:
                writer.log(done, last_logs)
                if (warning := trivial.update(done, last_logs)) is not None:  # once per run
                    tqdm.write(f"warning: {warning}", file=sys.stderr)
            bar.set_postfix(loss=f"{last_logs['loss']:.4f}", ex_s=f"{rate:.0f}")
        if done % tcfg.ckpt_every == 0 and done < total:
            run.checkpoint(done)
    run.checkpoint(total)
    summary = {
        "task": cfg.task_name, "encoder": cfg.encoder.name,
        "params": run.encoder.params, "steps": total, "resumed_from": run.start,
        **run.data_summary(),
        "unusable_draws": sampler.unusable, "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - cpu0, "threads": torch.get_num_threads(),
        "final": last_logs, "checkpoint": str(run.ckpt_path),
        "warnings": [trivial.warning] if trivial.warning else [],
        "world_size": place.world, "device": str(place.device),
    }
    if writer is not None:
        writer.close()
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    barrier()  # no rank leaves (and tears the group down) before the last checkpoint exists
    return summary
