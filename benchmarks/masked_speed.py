"""Training throughput of the masked-prediction tasks (issue 8), and data2vec 2.0's speed-up.

The speed-up is that of the data2vec 2.0 mode over plain data2vec at equal steps.

Usage::

    nice -n 10 .venv/bin/python benchmarks/masked_speed.py --json out/masked_speed.json \
        [--batch 32] [--repeats 5] [--steps 3] [--threads 1]

For each encoder (``kwt1``, ``conformer_tiny``) and each task variant — data2vec v1, data2vec
v2 with 1 and with 4 masks per sample, hubert (on-the-fly k-means targets), beats (random-
projection tokenizer) — one ``pocketear.train.loop.train_step`` (``task.step``, backward, grad
clipping, AdamW, EMA pairs, ``after_step``) on a fixed batch drawn by the task's own sampler
from random 96-frame log-mels. Timed blocks of ``--steps`` steps are interleaved variant by variant,
``--repeats`` times, each next to a fresh 2048² fp32 matmul roofline; the numbers are medians.
FLOPs are counted by ``torch.utils.flop_counter`` on one forward + backward of the task's loss
(teacher and labeler forwards included; optimiser work not counted), so the fraction of roofline
= examples/s × FLOPs per example / roofline. The v2 speed-up is the ratio of step times of the
same repeat (v1 time / v2 time), median over repeats. The roofline is measured at the same
thread count.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, matmul_gflops, median, table, write_json  # noqa: E402
from train_step import count_flops  # noqa: E402

from pocketear import create, registry  # noqa: E402
from pocketear.tasks.base import Batch, Task  # noqa: E402
from pocketear.train.loop import train_step  # noqa: E402

ENCODERS = ("kwt1", "conformer_tiny")
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "data2vec": ("data2vec", {}),
    "data2vec_v2_m1": ("data2vec", {"mode": "v2", "num_masks": 1}),
    "data2vec_v2_m4": ("data2vec", {"mode": "v2", "num_masks": 4}),
    "hubert": ("hubert", {}),
    "beats": ("beats", {}),
}


class Step:
    """One training-loop iteration of a task on a fixed batch."""

    def __init__(self, variant: str, encoder: str, batch: int, seed: int = 0) -> None:
        name, overrides = VARIANTS[variant]
        torch.manual_seed(seed)
        cls = registry.get("task", name)
        self.task: Task = cls(create("encoder", encoder), cls.Config(**overrides)).train()
        rng = np.random.default_rng(seed)
        clips = [rng.standard_normal((120, 64)).astype(np.float32) for _ in range(batch)]
        self.batch: Batch = self.task.collate([self.task.sample(c, rng, lambda: clips[0])
                                               for c in clips])
        self.opt = torch.optim.AdamW(self.task.param_groups(), lr=1e-4)
        self.n = batch
        self.steps = 0

    def __call__(self) -> None:
        """One timed step: ``pocketear.train.loop.train_step`` on the fixed batch."""
        train_step(self.task, self.opt, self.batch, self.steps, grad_clip=1.0)
        self.steps += 1

    def flops(self) -> int:
        """FLOPs of one forward + backward of the task's loss (optimiser work not counted)."""
        return count_flops(lambda: self.task.step(self.batch)[0].backward())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Time every encoder and task variant, print the table; returns the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="out/masked_speed.json")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--encoders", default=",".join(ENCODERS))
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a shared 2-core machine OpenMP's "
                         "spinning threads made some steps ~50x slower at 2 threads)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine_info()
    res: dict[str, Any] = {"machine": info, "threads": args.threads, "batch": args.batch,
                           "repeats": args.repeats, "steps_per_block": args.steps,
                           "results": {}}
    for enc in args.encoders.split(","):
        steps = {v: Step(v, enc, args.batch) for v in VARIANTS}
        flops = {v: s.flops() / args.batch for v, s in steps.items()}
        for s in steps.values():  # warm-up (hubert fits its k-means here)
            s()
            s()
        secs: dict[str, list[float]] = {v: [] for v in VARIANTS}
        fracs: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for _ in range(args.repeats):
            for v, s in steps.items():
                roof = matmul_gflops()
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    s()
                dt = (time.perf_counter() - t0) / args.steps
                secs[v].append(dt)
                fracs[v].append(args.batch / dt * flops[v] / 1e9 / roof)
        out = {}
        for v in VARIANTS:
            out[v] = {"step_s": median(secs[v]), "examples_per_s": args.batch / median(secs[v]),
                      "gflop_per_example": flops[v] / 1e9,
                      "fraction_of_roofline": median(fracs[v]),
                      "step_s_all": [round(x, 4) for x in secs[v]]}
            if v.startswith("data2vec_v2"):
                out[v]["speedup_vs_v1"] = median([a / b for a, b in zip(
                    secs["data2vec"], secs[v], strict=True)])
        res["results"][enc] = {"params": steps["data2vec"].task.encoder.params, "tasks": out}
        print(f"{enc}: done", flush=True)
    res["loadavg_end"] = list(__import__("os").getloadavg())
    write_json(args.json, res)
    rows = [(enc, v, f"{r['examples_per_s']:.1f}", f"{r['gflop_per_example']:.3f}",
             f"{100 * r['fraction_of_roofline']:.1f}%",
             f"{r['speedup_vs_v1']:.2f}x" if "speedup_vs_v1" in r else "")
            for enc, e in res["results"].items() for v, r in e["tasks"].items()]
    print(table(rows, ["encoder", "task", "ex/s", "GFLOP/ex", "roofline", "v2 speed-up"]))
    return res


if __name__ == "__main__":
    main()
