"""The plain PyTorch pretraining loop (no framework base class for tasks).

AdamW or SGD (``optim.name``) with linear warm-up and cosine decay, gradient clipping, optional
bf16 autocast on CPU, seeded and resumable: batches are a pure function of (seed, step) and the
checkpoint carries the optimiser, scheduler and RNG state, so a killed run resumed with
``--resume`` matches an uninterrupted one (except for the augmentations' memory banks, which are
not stored: see ``train/augment_state.py``, which also fits and stores what augmentations learn
from the corpus). Clips too short for the task are left out before the first step and counted.
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
from pocketear.errors import InvalidValue, PathExists, UserError
from pocketear.tasks.base import Batch, Task
from pocketear.train.augment_state import prepare_augment
from pocketear.train.batches import BatchSampler, filter_short_clips, steps_for_epochs
from pocketear.train.build import build_encoder, build_frontend, build_optimiser, build_task
from pocketear.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pocketear.train.config import RunConfig, resolve, save_config
from pocketear.train.ema import ema_update
from pocketear.train.metrics import MetricsWriter
from pocketear.train.monitors import TrivialTaskMonitor, effective_rank, embedding_std


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


def train_step(task: Task, optimiser: torch.optim.Optimizer, batch: Batch, step: int,
               scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
               grad_clip: float = 1.0, bf16: bool = False) -> StepResult:
    """One optimisation step exactly as :func:`pretrain` runs it (benchmarks call this too).

    ``task.step`` under optional bf16 autocast, a finite-loss check, backward, gradient-norm
    clipping (``grad_clip`` > 0), the optimiser and scheduler steps, the EMA pairs, then
    ``task.after_step(step)``.

    Raises:
        LossDiverged: the loss is not finite (nothing has been updated yet).
    """
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss, logs = task.step(batch)
    if not torch.isfinite(loss):
        raise LossDiverged(f"loss became {loss.item()} at step {step}; lower optim.lr "
                           "or enable gradient clipping (optim.grad_clip)")
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
                 progress: bool) -> None:
        self.run_dir, self.ckpt_path = run_dir, run_dir / "checkpoints" / "last.pt"
        run_dir.mkdir(parents=True, exist_ok=True)
        tcfg = cfg.train
        torch.manual_seed(tcfg.seed)
        if tcfg.threads:
            torch.set_num_threads(tcfg.threads)
        self.cache = cache = prepare_data(cfg, run_dir, progress)
        self.frontend = frontend = build_frontend(cfg)
        frontend.set_stats(cache.mean, cache.std)
        self.encoder = build_encoder(cfg)
        task = build_task(cfg, self.encoder)
        self.task = task.to(memory_format=torch.channels_last) if tcfg.channels_last else task
        self.optimiser = build_optimiser(cfg.optim, self.task)
        self.kept = kept = filter_short_clips(  # short clips left out up front, counted
            cache.lengths, self.task, frontend.hop_length / frontend.sample_rate, cfg.task_name)
        if kept.short:
            tqdm.write(kept.message(cfg.task_name), file=sys.stderr)
        if tcfg.epochs > 0:
            cfg = cfg.with_train(steps=steps_for_epochs(tcfg.epochs, len(kept.usable),
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
        save_config(cfg, run_dir / "config.yaml")
        prepare_augment(self.task.augment, self.clip, len(cache), run_dir, cfg.train.seed,
                        state is not None, progress, frames=self.task.cfg.slice_frames)
        self.sampler = BatchSampler(self.clip, len(cache), self.task, cfg.optim.batch_size,
                                    seed=cfg.train.seed, indices=kept.usable)

    def clip(self, i: int) -> np.ndarray:
        """Clip ``i``'s normalised log-mel."""
        return self.frontend.normalise(self.cache[i])

    def checkpoint(self, step: int) -> None:
        """Everything a resumed run needs, written atomically to ``checkpoints/last.pt``."""
        save_checkpoint({
            "version": __version__, "config": self.cfg.to_dict(), "step": step,
            "sample_rate": self.frontend.cfg.sample_rate,
            "frontend": self.frontend.state_dict(), "task": self.task.state_dict(),
            "optimizer": self.optimiser.state_dict(), "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }, self.ckpt_path)

    def logs(self, done: int, batch: Batch, out: StepResult, epoch: int,
             rate: float) -> dict[str, float]:
        """The metrics written every ``log_every`` steps.

        The collapse monitors (``emb_std``, ``eff_rank``) are added every ``monitor_every``.
        """
        logs = {**{k: float(torch.as_tensor(v).detach()) for k, v in out.logs.items()},
                "loss": float(out.loss.detach()), "lr": self.scheduler.get_last_lr()[0],
                "grad_norm": float(out.grad_norm), "examples_per_s": rate, "epoch": epoch}
        tcfg = self.cfg.train
        if done % tcfg.monitor_every == 0 or done == tcfg.steps:
            with torch.no_grad():
                emb = self.task.monitor_embeddings(batch).float()
            logs["emb_std"] = embedding_std(emb)
            logs["eff_rank"] = effective_rank(emb)
        return logs


def _train(cfg: RunConfig, run_dir: Path, state: dict[str, Any] | None,
           progress: bool) -> dict[str, Any]:
    run = _Run(cfg, run_dir, state, progress)
    cfg, task, sampler = run.cfg, run.task, run.sampler
    tcfg, total = cfg.train, cfg.train.steps
    writer = MetricsWriter(run_dir, start_step=run.start)
    trivial = TrivialTaskMonitor(cfg.task_name, until_step=50 * tcfg.log_every)
    bar = tqdm(range(run.start, total), initial=run.start, total=total, desc=cfg.task_name,
               unit="step", disable=not progress)
    task.train()
    t0, cpu0, examples, last_logs, epoch = time.perf_counter(), time.process_time(), 0, {}, -1
    for step in bar:
        if sampler.epoch_of(step) != epoch:
            epoch = sampler.epoch_of(step)
            task.on_epoch_start(epoch)
        batch = sampler.batch(step)
        try:
            out = train_step(task, run.optimiser, batch, step, run.scheduler,
                             cfg.optim.grad_clip, tcfg.bf16)
        except LossDiverged:
            run.checkpoint(step)  # the state before the failed step, for a lower-lr resume
            raise
        examples += cfg.optim.batch_size
        done = step + 1
        if done % tcfg.log_every == 0 or done == total:
            rate = examples / (time.perf_counter() - t0)
            last_logs = run.logs(done, batch, out, epoch, rate)
            writer.log(done, last_logs)
            if (warning := trivial.update(done, last_logs)) is not None:  # once per run
                tqdm.write(f"warning: {warning}", file=sys.stderr)
            bar.set_postfix(loss=f"{last_logs['loss']:.4f}", ex_s=f"{rate:.0f}")
        if done % tcfg.ckpt_every == 0 and done < total:
            run.checkpoint(done)
    run.checkpoint(total)
    writer.close()
    summary = {
        "task": cfg.task_name, "encoder": cfg.encoder.name,
        "params": run.encoder.params, "steps": total, "resumed_from": run.start,
        "clips": len(run.cache), "skipped_files": len(run.cache.skipped),
        "short_clips": run.kept.short, "training_clips": len(run.kept.usable),
        "unusable_draws": sampler.unusable, "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - cpu0, "threads": torch.get_num_threads(),
        "final": last_logs, "checkpoint": str(run.ckpt_path),
        "warnings": [trivial.warning] if trivial.warning else [],
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
