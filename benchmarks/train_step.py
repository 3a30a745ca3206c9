"""Training-step benchmark for ``mobile_100``, against the matmul roofline measured in the run.

Targets: ≥ 50 % of the measured fp32 matmul roofline; input pipeline ≤ 10 % of step time with
the feature cache (results in ``docs/benchmarks.md`` §2).

Usage::

    .venv/bin/python benchmarks/train_step.py --json out/train_step.json \
        [--batch 64] [--repeats 5] [--steps 10] [--threads 0] [--task-steps 2]

What is measured, all in one process and interleaved repeat by repeat (the machine is shared and
noisy, so every fraction is a ratio of numbers taken side by side, then the median over repeats):

* the roofline: a 2048² matmul in fp32 and in bf16 (GFLOP/s, ``2 n³ / t``) at the benchmark's
  thread count; the fp32 one is re-measured right before every timed block;
* the *encoder training step*: ``mobile_100`` + ``Linear(128, 10)`` head + cross-entropy,
  forward + backward + AdamW on a ``(B, 1, 96, 64)`` batch, in three modes: ``fp32``
  (contiguous), ``fp32_channels_last`` (model and input channels_last) and ``bf16`` (CPU bf16
  autocast around the forward, channels_last). FLOPs are counted with
  ``torch.utils.flop_counter``: ``macs_per_example`` on the forward of one patch,
  ``train_flops_per_example`` on a full forward + backward of a batch (AdamW's elementwise work is
  not counted). ``achieved_fraction_of_roofline`` = achieved GFLOP/s / fp32 roofline of the same
  repeat. With ``--threads-compare 1`` (default) the three modes are measured at 1 thread too
  (``threads_1``), against a 1-thread roofline and the full-machine one;
* every registered pretext task: ``pocketear.train.loop.train_step``, the loop's own step
  (autocast around ``task.step``, backward, grad-norm clipping at 1.0, AdamW, EMA pairs,
  ``after_step``), on
  batches drawn by ``BatchSampler`` + the task's own ``sample`` from a feature cache of the
  long-form half of the synthetic corpus (``write_corpus``); examples/s counts task examples
  (batch rows), ``patches_per_example`` the slices each example sends through the encoder;
* the input pipeline: time of ``BatchSampler.batch(step)`` reading a built ``FeatureCache``
  (``cached``) and reading the WAVs (``load_audio`` + ``LogMel`` per clip the sampler asks for,
  ``uncached``), as a fraction of the whole loop step: ``input / (input + compute)`` with the
  compute step in the loop's default mode (fp32, channels_last). ``input_overhead_*`` is
  ``input / compute`` (what the pipeline adds to the step). The top-level
  ``input_fraction_cached`` / ``input_fraction_uncached`` are the worst task's.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, matmul_gflops, median, table, write_json  # noqa: E402

from pocketear import available, create, registry  # noqa: E402
from pocketear.audio.io import load_audio  # noqa: E402
from pocketear.data.cache import FeatureCache, build_cache  # noqa: E402
from pocketear.data.corpus import Corpus  # noqa: E402
from pocketear.frontends.logmel import LogMel, LogMelConfig  # noqa: E402
from pocketear.tasks.base import Batch, Task  # noqa: E402
from pocketear.train.batches import BatchSampler  # noqa: E402
from pocketear.train.loop import train_step  # noqa: E402

ENCODER = "mobile_100"
N_CLASSES = 10
# mode -> (channels_last, bf16 autocast)
MODES: dict[str, tuple[bool, bool]] = {
    "fp32": (False, False),
    "fp32_channels_last": (True, False),
    "bf16": (True, True),
}
LOOP_MODE = "fp32_channels_last"  # TrainConfig defaults: channels_last=True, bf16=False


# --- FLOP counting ----------------------------------------------------------------------------
def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs ``torch.utils.flop_counter`` counts in one call of ``fn``."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def encoder_macs_per_example() -> int:
    """Multiply-adds of one ``(1, 1, 96, 64)`` forward through ``mobile_100.embed``."""
    enc = create("encoder", ENCODER).eval()
    x = torch.zeros(1, 1, enc.input_frames, enc.n_mels)
    with torch.no_grad():
        return count_flops(lambda: enc.embed(x)) // 2


# --- the encoder training step ----------------------------------------------------------------
class EncoderStep:
    """``mobile_100`` + linear head + cross-entropy; forward, backward, AdamW."""

    def __init__(self, encoder: nn.Module, batch: int, mode: str, seed: int = 0) -> None:
        channels_last, self.bf16 = MODES[mode]
        self.model = nn.ModuleDict({"encoder": copy.deepcopy(encoder),
                                    "head": nn.Linear(encoder.embed_dim, N_CLASSES)})
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(batch, 1, encoder.input_frames, encoder.n_mels, generator=g)
        self.y = torch.randint(0, N_CLASSES, (batch,), generator=g)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        self.batch = batch

    def loss(self) -> torch.Tensor:
        """Cross-entropy of the head on the fixed batch (under bf16 autocast in ``bf16`` mode)."""
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.model["head"](self.model["encoder"].embed(self.x))
            return F.cross_entropy(logits, self.y)

    def __call__(self) -> None:
        """One timed step: loss, backward, AdamW."""
        loss = self.loss()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def train_flops(self) -> int:
        """FLOPs of one forward + backward (the optimiser's elementwise work is not counted)."""
        return count_flops(lambda: self.loss().backward())


# --- tasks as the training loop runs them -----------------------------------------------------
class TaskStep:
    """One ``pocketear.train.loop`` iteration of a task on a given batch (minus data loading)."""

    def __init__(self, name: str, encoder: nn.Module, mode: str, grad_clip: float = 1.0) -> None:
        channels_last, self.bf16 = MODES[mode]
        cls = registry.get("task", name)
        self.task: Task = cls(copy.deepcopy(encoder), cls.Config())
        if channels_last:
            self.task = self.task.to(memory_format=torch.channels_last)
        self.task.train()
        self.opt = torch.optim.AdamW(self.task.param_groups(), lr=1e-4, weight_decay=1e-4)
        self.grad_clip = grad_clip
        self.steps = 0

    def loss(self, batch: Batch) -> torch.Tensor:
        """The task's loss on ``batch``, autocast as the loop does in this mode."""
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            loss, _ = self.task.step(batch)
        return loss

    def __call__(self, batch: Batch) -> None:
        """One timed step: ``pocketear.train.loop.train_step``, the loop's own."""
        train_step(self.task, self.opt, batch, self.steps, grad_clip=self.grad_clip,
                   bf16=self.bf16)
        self.steps += 1

    def patches_per_example(self, batch: Batch) -> float:
        """Rows each example sends through the encoder (one row = one slice)."""
        enc, rows = self.task.encoder, []
        forward = enc.forward  # ``embed`` calls ``self.forward`` directly: hooks would not fire

        def counting(x: torch.Tensor) -> torch.Tensor:
            rows.append(x.shape[0])
            return forward(x)

        enc.forward = counting
        try:
            with torch.no_grad():
                self.loss(batch)
        finally:
            del enc.forward
        return sum(rows) / len(next(iter(batch.values())))


# --- data: synthetic long-form corpus, feature cache, cached / uncached clip readers ---------
def make_corpus(root: Path, minutes: float) -> Corpus:
    """Long-form half of the synthetic corpus (the pretraining split).

    Falls back to plain WAVs of tones in noise if the synthetic generator is not available.
    """
    try:
        from pocketear.data.synth.corpus import write_corpus
    except ImportError:
        write_corpus = None
    if write_corpus is not None:
        manifest = write_corpus(root / "corpus", minutes=minutes, seed=0, progress=False)
        return Corpus.open(manifest).filter(kind="longform")
    import soundfile as sf

    folder = root / "corpus"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sr, total, i = 16000, minutes * 30.0, 0
    while total > 0:
        sec = float(rng.uniform(10, 30))
        t = np.arange(int(sec * sr)) / sr
        tone = np.sin(2 * np.pi * rng.uniform(100, 4000) * t)
        y = 0.05 * rng.standard_normal(t.size) + 0.3 * tone
        sf.write(folder / f"clip_{i:03d}.wav", np.clip(y, -1, 1), sr, subtype="PCM_16")
        total, i = total - sec, i + 1
    return Corpus.open(folder)


def clip_readers(cache: FeatureCache) -> tuple[Callable[[int], np.ndarray],
                                               Callable[[int], np.ndarray]]:
    """(cached, uncached) clip functions returning the normalised log-mel ``(T, F)`` of clip i.

    The cached one is exactly ``pocketear.train.loop``'s.
    """
    mean, std = cache.mean, cache.std
    paths = cache.paths
    frontend = LogMel(cache.frontend_config)
    frontend.set_stats(torch.from_numpy(mean), torch.from_numpy(std))
    frontend.eval()

    def cached(i: int) -> np.ndarray:
        return (cache[i] - mean) / std

    def uncached(i: int) -> np.ndarray:
        wave = load_audio(paths[i], frontend.sample_rate)
        with torch.no_grad():
            return frontend(torch.from_numpy(wave)[None])[0, 0].numpy()

    return cached, uncached


# --- measurement ------------------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def repeat_steps(step: Callable[[], None], n: int) -> Callable[[], None]:
    """A function that calls ``step`` ``n`` times (one timed block)."""
    def run() -> None:
        for _ in range(n):
            step()
    return run


def summarise_mode(rate: list[float], frac: list[float], util: list[float], flops: float,
                   roof_1t: list[float] | None = None) -> dict[str, Any]:
    """Medians of one mode's repeats: examples/s, GFLOP/s, fraction of roofline, CPU use."""
    out = {
        "examples_per_s": median(rate),
        "examples_per_s_all": [round(r, 2) for r in rate],
        "achieved_gflops": median(rate) * flops / 1e9,
        "achieved_fraction_of_roofline": median(frac),
        "cpu_utilisation": median(util),
    }
    if roof_1t is not None:
        out["achieved_fraction_of_1thread_roofline"] = median(
            [r * flops / 1e9 / g for r, g in zip(rate, roof_1t, strict=True)])
    return out


def bench_encoder(args: argparse.Namespace, encoder: nn.Module, train_flops: float,
                  threads: int, log: Callable[[str], None]) -> dict[str, Any]:
    """The three modes of the encoder training step at ``threads`` torch threads."""
    torch.set_num_threads(threads)
    steps = {m: EncoderStep(encoder, args.batch, m) for m in MODES}
    for s in steps.values():
        s()  # warm-up: oneDNN primitive creation, allocator
        s()
    rate: dict[str, list[float]] = {m: [] for m in MODES}
    frac: dict[str, list[float]] = {m: [] for m in MODES}
    util: dict[str, list[float]] = {m: [] for m in MODES}
    roof32: list[float] = []
    roof16: list[float] = []
    for r in range(args.repeats):
        roof16.append(matmul_gflops(torch.bfloat16))
        for m, s in steps.items():
            roof32.append(matmul_gflops(torch.float32))
            wall, cpu = timed(repeat_steps(s, args.steps))
            rate[m].append(args.steps * args.batch / wall)
            frac[m].append(rate[m][-1] * train_flops / 1e9 / roof32[-1])
            util[m].append(cpu / wall)
        log(f"  [{threads} thread(s)] repeat {r + 1}/{args.repeats}: roofline "
            f"{roof32[-1]:.0f} GFLOP/s; " + ", ".join(f"{m} {rate[m][-1]:.0f} ex/s" for m in MODES))
    out: dict[str, Any] = {
        "torch_threads": threads,
        "roofline_fp32_gflops": median(roof32),
        "roofline_bf16_gflops": median(roof16),
    }
    for m in MODES:
        out[m] = summarise_mode(rate[m], frac[m], util[m], train_flops)
        out[m]["achieved_fraction_of_bf16_roofline"] = median(
            [x * train_flops / 1e9 / g for x, g in zip(rate[m], roof16, strict=True)])
    return out


def bench_task(args: argparse.Namespace, name: str, encoder: nn.Module,
               readers: tuple[Callable[[int], np.ndarray], Callable[[int], np.ndarray]],
               n_clips: int, task_modes: list[str], log: Callable[[str], None]) -> dict[str, Any]:
    """One pretext task: loop steps in each mode, and its sampler from the cache / from WAVs."""
    b, k = args.batch, args.task_steps
    runners = {m: TaskStep(name, encoder, m) for m in task_modes}
    first = runners[task_modes[0]]
    s_cached = BatchSampler(readers[0], n_clips, first.task, b, seed=0)
    s_uncached = BatchSampler(readers[1], n_clips, first.task, b, seed=0)
    batches = [s_cached.batch(i) for i in range(k)]
    flops = count_flops(lambda: first.loss(batches[0]).backward()) / b
    patches = first.patches_per_example(batches[0])
    for run in runners.values():
        run(batches[0])  # warm-up

    def input_time(sampler: BatchSampler, steps: range) -> float:
        return median([timed(lambda i=i: sampler.batch(i))[0] for i in steps])

    def loop_steps(run: TaskStep) -> Callable[[], None]:
        def go() -> None:
            for bt in batches:
                run(bt)
        return go

    rate: dict[str, list[float]] = {m: [] for m in task_modes}
    frac: dict[str, list[float]] = {m: [] for m in task_modes}
    util: dict[str, list[float]] = {m: [] for m in task_modes}
    step_s: dict[str, list[float]] = {m: [] for m in task_modes}
    t_cached: list[float] = []
    t_uncached: list[float] = []
    for r in range(args.repeats):
        # fresh step indices every repeat (a batch is a pure function of its step)
        base = 1000 + r * (k + 1)
        t_cached.append(input_time(s_cached, range(base, base + k)))
        t_uncached.append(input_time(s_uncached, range(base, base + 1)))
        for m, run in runners.items():
            roof = matmul_gflops(torch.float32)
            wall, cpu = timed(loop_steps(run))
            step_s[m].append(wall / k)
            rate[m].append(k * b / wall)
            frac[m].append(rate[m][-1] * flops / 1e9 / roof)
            util[m].append(cpu / wall)
        log(f"  task {name} repeat {r + 1}/{args.repeats}: " + ", ".join(
            f"{m} {rate[m][-1]:.1f} ex/s" for m in task_modes)
            + f"; batch cached {t_cached[-1] * 1e3:.1f} ms, uncached {t_uncached[-1] * 1e3:.0f} ms")
    res: dict[str, Any] = {"train_flops_per_example": flops, "patches_per_example": patches}
    for m in task_modes:
        res[m] = summarise_mode(rate[m], frac[m], util[m], flops)
        res[m]["patches_per_s"] = res[m]["examples_per_s"] * patches
    ref = step_s[LOOP_MODE] if LOOP_MODE in step_s else step_s[task_modes[0]]
    res["input_s_per_batch_cached"] = median(t_cached)
    res["input_s_per_batch_uncached"] = median(t_uncached)
    res["compute_s_per_step"] = median(ref)
    for tag, t_in in (("cached", t_cached), ("uncached", t_uncached)):
        res[f"input_fraction_{tag}"] = median([i / (i + c) for i, c in zip(t_in, ref, strict=True)])
        res[f"input_overhead_{tag}"] = median([i / c for i, c in zip(t_in, ref, strict=True)])
    res["unusable_draws"] = s_cached.unusable
    return res


# --- report -----------------------------------------------------------------------------------
def report(res: dict[str, Any]) -> str:
    """The console summary: the encoder modes, the tasks and the input pipeline, with targets."""
    rows = []
    blocks = [res["encoder_step"]]
    if "threads_1" in res:
        blocks.append(res["threads_1"])
    for blk in blocks:
        for m in MODES:
            d = blk[m]
            rows.append([m, blk["torch_threads"], f"{d['examples_per_s']:.0f}",
                         f"{d['achieved_gflops']:.1f}",
                         f"{100 * d['achieved_fraction_of_roofline']:.1f} %",
                         f"{blk['roofline_fp32_gflops']:.0f}", f"{d['cpu_utilisation']:.2f}"])
    lines = [
        f"{ENCODER}: {res['macs_per_example'] / 1e6:.2f} M MACs/example forward, "
        f"{res['train_flops_per_example'] / 1e6:.1f} MFLOP/example fwd+bwd; batch {res['batch']}",
        f"roofline (2048² matmul, {res['torch_threads']} threads): fp32 "
        f"{res['roofline_fp32_gflops']:.0f} GFLOP/s, bf16 {res['roofline_bf16_gflops']:.0f}"
        + (f"; 1 thread: fp32 {res['threads_1']['roofline_fp32_gflops']:.0f}"
           if "threads_1" in res else ""),
        "",
        "encoder training step (fwd + bwd + AdamW):",
        table(rows, ["mode", "threads", "ex/s", "GFLOP/s", "of roofline", "roofline", "cpu util"]),
    ]
    if res.get("tasks"):
        rows = []
        for name, t in res["tasks"].items():
            for m in res["task_modes"]:
                d = t[m]
                rows.append([name, m, f"{d['examples_per_s']:.1f}", f"{d['patches_per_s']:.0f}",
                             f"{d['achieved_gflops']:.1f}",
                             f"{100 * d['achieved_fraction_of_roofline']:.1f} %",
                             f"{100 * t['input_fraction_cached']:.1f} %" if m == LOOP_MODE else "",
                             f"{100 * t['input_fraction_uncached']:.0f} %" if m == LOOP_MODE
                             else ""])
        lines += ["", f"pretext tasks (loop step, {res['torch_threads']} threads; input fraction "
                  f"= input / (input + {LOOP_MODE} step)):",
                  table(rows, ["task", "mode", "ex/s", "patches/s", "GFLOP/s", "of roofline",
                               "input cached", "input uncached"])]
        lines.append(f"input fraction (worst task): cached "
                     f"{100 * res['input_fraction_cached']:.1f} %, uncached "
                     f"{100 * res['input_fraction_uncached']:.1f} %")
    for mode in ("fp32", LOOP_MODE):
        fr = res[mode]["achieved_fraction_of_roofline"]
        what = "the training loop's default" if mode == LOOP_MODE else "contiguous"
        lines.append(f"target fp32 >= 50 % of roofline, {mode} ({what}): {100 * fr:.1f} % -> "
                     f"{'met' if fr >= 0.5 else 'MISSED'}")
    if res.get("tasks"):
        ic = max(t["input_overhead_cached"] for t in res["tasks"].values())
        lines.append(f"target input pipeline adds <= 10 % to the step (cached, worst task): "
                     f"{100 * ic:.1f} % -> {'met' if ic <= 0.1 else 'MISSED'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure the encoder step, every task's step and the input pipeline; returns the JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", required=True, help="write the results here")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=10, help="encoder steps per timed block")
    p.add_argument("--task-steps", type=int, default=2, help="task steps per timed block")
    p.add_argument("--task-modes", default=",".join(MODES),
                   help="comma-separated modes for the task steps ('' skips tasks)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--threads-compare", type=int, default=1,
                   help="also time the encoder step at this many threads (0: skip)")
    p.add_argument("--corpus-minutes", type=float, default=6.0,
                   help="synthetic corpus size (its long-form half is used)")
    args = p.parse_args(argv)
    task_modes = [m for m in args.task_modes.split(",") if m]
    unknown = set(task_modes) - set(MODES)
    if unknown:
        p.error(f"unknown --task-modes {sorted(unknown)}; known: {', '.join(MODES)}")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    info = machine_info()
    torch.manual_seed(0)
    t_start = time.perf_counter()
    encoder = create("encoder", ENCODER)
    macs = encoder_macs_per_example()
    train_flops = EncoderStep(encoder, args.batch, "fp32").train_flops() / args.batch
    res: dict[str, Any] = {
        "benchmark": "train_step", "encoder": ENCODER, "params": encoder.params,
        "batch": args.batch, "repeats": args.repeats, "steps": args.steps,
        "task_steps": args.task_steps, "torch_threads": threads, "machine": info,
        "macs_per_example": macs, "train_flops_per_example": train_flops,
        "train_flops_over_forward_flops": train_flops / (2 * macs),
    }
    log(f"encoder step, {threads} thread(s) ...")
    enc = bench_encoder(args, encoder, train_flops, threads, log)
    res["roofline_fp32_gflops"] = enc["roofline_fp32_gflops"]
    res["roofline_bf16_gflops"] = enc["roofline_bf16_gflops"]
    res["encoder_step"] = enc
    for m in MODES:
        res[m] = enc[m]
    if args.threads_compare > 0 and args.threads_compare != threads:
        log(f"encoder step, {args.threads_compare} thread(s) ...")
        cmp_ = bench_encoder(args, encoder, train_flops, args.threads_compare, log)
        for m in MODES:  # same-run comparison against the full machine's roofline too
            cmp_[m]["achieved_fraction_of_full_machine_roofline"] = (
                cmp_[m]["achieved_gflops"] / res["roofline_fp32_gflops"])
            cmp_[m]["speedup_vs_default_threads"] = (
                cmp_[m]["examples_per_s"] / enc[m]["examples_per_s"])
        res[f"threads_{args.threads_compare}"] = cmp_
        torch.set_num_threads(threads)
    res["task_modes"] = task_modes
    if task_modes:
        with tempfile.TemporaryDirectory(prefix="pocketear-bench-") as tmp:
            corpus = make_corpus(Path(tmp), args.corpus_minutes)
            cache = build_cache(corpus, Path(tmp) / "cache", LogMelConfig(), workers=1,
                                progress=False)
            res["corpus"] = {"clips": len(cache), "seconds": float(cache.lengths.sum()) / 100.0,
                             "source": "synthetic long-form (write_corpus)"}
            log(f"tasks on {len(cache)} cached clips ...")
            readers = clip_readers(cache)
            res["tasks"] = {name: bench_task(args, name, encoder, readers, len(cache),
                                             task_modes, log) for name in available("task")}
        res["input_fraction_cached"] = max(t["input_fraction_cached"]
                                           for t in res["tasks"].values())
        res["input_fraction_uncached"] = max(t["input_fraction_uncached"]
                                             for t in res["tasks"].values())
        for name, t in res["tasks"].items():
            res[f"task_{name}_examples_per_s"] = t[task_modes[0]]["examples_per_s"] \
                if LOOP_MODE not in t else t[LOOP_MODE]["examples_per_s"]
    res["machine"]["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    res["seconds"] = time.perf_counter() - t_start
    write_json(args.json, res)
    print(report(res))
    return res


if __name__ == "__main__":
    main()
