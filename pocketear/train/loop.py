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
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from pocketear import __version__
from pocketear.data.cache import FeatureCache, build_cache
from pocketear.data.corpus import Corpus
from pocketear.errors import InvalidValue, PathExists
from pocketear.tasks.monitors import TrivialTaskMonitor, effective_rank, embedding_std
from pocketear.train.augment_state import prepare_augment
from pocketear.train.batches import BatchSampler, filter_short_clips, steps_for_epochs
from pocketear.train.build import build_encoder, build_frontend, build_optimiser, build_task
from pocketear.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pocketear.train.config import RunConfig, resolve, save_config
from pocketear.train.ema import ema_update
from pocketear.train.metrics import MetricsWriter


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


def _train(cfg: RunConfig, run_dir: Path, state: dict[str, Any] | None,
           progress: bool) -> dict[str, Any]:
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    run_dir.mkdir(parents=True, exist_ok=True)
    tcfg, ocfg = cfg.train, cfg.optim
    torch.manual_seed(tcfg.seed)
    if tcfg.threads:
        torch.set_num_threads(tcfg.threads)

    cache = prepare_data(cfg, run_dir, progress)
    frontend = build_frontend(cfg)
    frontend.set_stats(cache.mean, cache.std)
    encoder = build_encoder(cfg)
    task = build_task(cfg, encoder)
    if tcfg.channels_last:
        task = task.to(memory_format=torch.channels_last)
    optimiser = build_optimiser(ocfg, task)
    kept = filter_short_clips(cache.lengths, task, frontend.hop_length / frontend.sample_rate,
                              cfg.task_name)  # short clips left out up front, counted
    if kept.short:
        tqdm.write(kept.message(cfg.task_name), file=sys.stderr)
    if tcfg.epochs > 0:
        cfg = cfg.with_train(steps=steps_for_epochs(tcfg.epochs, len(kept.usable),
                                                    ocfg.batch_size))
        tcfg = cfg.train
    total = tcfg.steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: warmup_cosine(s, ocfg.warmup_steps, total))
    start = 0
    if state is not None:
        task.load_state_dict(state["task"])
        optimiser.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        start = int(state["step"])
    save_config(cfg, run_dir / "config.yaml")

    def clip(i: int) -> np.ndarray:
        return frontend.normalise(cache[i])

    prepare_augment(task.augment, clip, len(cache), run_dir, tcfg.seed, state is not None,
                    progress, frames=task.cfg.slice_frames)
    sampler = BatchSampler(clip, len(cache), task, ocfg.batch_size, seed=tcfg.seed,
                           indices=kept.usable)
    writer = MetricsWriter(run_dir, start_step=start)

    def checkpoint(step: int) -> None:
        save_checkpoint({
            "version": __version__, "config": cfg.to_dict(), "step": step,
            "sample_rate": frontend.cfg.sample_rate,
            "frontend": frontend.state_dict(), "task": task.state_dict(),
            "optimizer": optimiser.state_dict(), "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }, ckpt_path)

    task.train()
    t0, examples, last_logs = time.perf_counter(), 0, {}
    trivial = TrivialTaskMonitor(cfg.task_name, until_step=50 * tcfg.log_every)
    bar = tqdm(range(start, total), initial=start, total=total, desc=cfg.task_name,
               unit="step", disable=not progress)
    epoch = -1
    for step in bar:
        if sampler.epoch_of(step) != epoch:
            epoch = sampler.epoch_of(step)
            task.on_epoch_start(epoch)
        batch = sampler.batch(step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=tcfg.bf16):
            loss, logs = task.step(batch)
        if not torch.isfinite(loss):
            checkpoint(step)
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower optim.lr "
                                     "or enable gradient clipping (optim.grad_clip)")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(task.parameters(), ocfg.grad_clip) \
            if ocfg.grad_clip > 0 else torch.tensor(0.0)
        optimiser.step()
        scheduler.step()
        for online, target, decay in task.ema_pairs():
            ema_update(online, target, decay)
        task.after_step(step)
        examples += ocfg.batch_size
        done = step + 1
        if done % tcfg.log_every == 0 or done == total:
            rate = examples / (time.perf_counter() - t0)
            last_logs = {**{k: float(torch.as_tensor(v).detach()) for k, v in logs.items()},
                         "loss": float(loss.detach()),
                         "lr": scheduler.get_last_lr()[0], "grad_norm": float(grad_norm),
                         "examples_per_s": rate, "epoch": epoch}
            if done % tcfg.monitor_every == 0 or done == total:
                with torch.no_grad():
                    emb = task.monitor_embeddings(batch).float()
                last_logs["emb_std"] = embedding_std(emb)
                last_logs["eff_rank"] = effective_rank(emb)
            writer.log(done, last_logs)
            if (warning := trivial.update(done, last_logs)) is not None:  # once per run
                tqdm.write(f"warning: {warning}", file=sys.stderr)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}", ex_s=f"{rate:.0f}")
        if done % tcfg.ckpt_every == 0 and done < total:
            checkpoint(done)
    checkpoint(total)
    writer.close()
    summary = {
        "task": cfg.task_name, "encoder": cfg.encoder.name,
        "params": encoder.params, "steps": total, "resumed_from": start,
        "clips": len(cache), "skipped_files": len(cache.skipped),
        "short_clips": kept.short, "training_clips": len(kept.usable),
        "unusable_draws": sampler.unusable, "seconds": time.perf_counter() - t0,
        "final": last_logs, "checkpoint": str(ckpt_path),
        "warnings": [trivial.warning] if trivial.warning else [],
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
