"""Pretext tasks on the built-in ``synthetic`` suite, against the baselines.

Usage::

    .venv/bin/python benchmarks/synthetic.py --json out/synthetic.json \
        [--minutes 30] [--steps 1000] [--encoder mobile_100] [--seeds 3] [--tasks a,b,...] \
        [--pretrain-seeds 3]

``--tasks`` takes registered tasks or the named variants of ``variants.py`` (``contrastive``
expands to COLA bilinear/cosine, BYOL-A with mixup+RRC / mixup only / RRC only, SLICER and
DeLoRes-S). With ``--pretrain-seeds N`` every variant is pretrained N times and the table's ± is
the spread over pretraining runs.

Writes the synthetic corpus (``--minutes`` of audio, half labelled 1 s events, half 10–30 s
long-form recordings), pretrains every task on the long-form half only (labels unused), then
evaluates every checkpoint in **one** ``evaluate`` call, so the baselines (log-mel statistics, the
same encoder randomly initialised, the same encoder trained supervised) are measured on the same
splits with the same seeds. Runs are resumable: an existing run folder is reused. A task
"works" when it beats both logmel-stats and random-init on the suite average (the criterion of
``docs/benchmarks.md``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_info, write_json  # noqa: E402
from variants import (  # noqa: E402
    CONTRASTIVE,
    PAPER_TASKS,
    add_variant_args,
    merge_pretrain_seeds,
    run_name,
    task_sets,
    variant,
)


def task_list(spec: str) -> list[str]:
    """Comma-separated variants; ``paper`` and ``contrastive`` expand to their groups."""
    groups = {"paper": PAPER_TASKS, "contrastive": CONTRASTIVE}
    return [v for t in spec.split(",") if t for v in groups.get(t, (t,))]


def pretrain_all(tasks: list[str], manifest: Path, out: Path, encoder: str, steps: int,
                 batch: int, seeds: int = 1, sets: dict[str, list[str]] | None = None,
                 filters: tuple[str, ...] = ("data.where.kind=longform",),
                 cache_dir: Path | None = None, extra: tuple[str, ...] = (),
                 existing_only: bool = False) -> dict[str, dict[str, Any]]:
    """Pretrain (or reuse) ``seeds`` runs per variant; returns checkpoint, time and loss of each.

    The result is keyed by method name. ``sets`` adds overrides per task name, ``extra`` to
    every run (a variant's own overrides come last). ``existing_only``: train nothing, return
    the finished runs only.
    """
    from pocketear.train.checkpoint import load_checkpoint
    from pocketear.train.config import load_config
    from pocketear.train.loop import pretrain

    info = {}
    for name in tasks:
        task, overrides = variant(name)
        for seed in range(seeds):
            method = run_name(name, seed, seeds)
            run = out / "runs" / (name if seeds == 1 else f"{name}/seed{seed}")
            ckpt = run / "checkpoints" / "last.pt"
            t0 = time.perf_counter()
            if ckpt.exists() and int(load_checkpoint(ckpt)["step"]) >= steps:
                print(f"reusing {run}")
                summary: dict[str, Any] = {}
            elif existing_only:
                print(f"not pretrained, left out: {run}")
                continue
            else:
                cfg = load_config(None, [
                    f"task.name={task}", f"encoder.name={encoder}", f"data.source={manifest}",
                    *filters, f"data.cache_dir={cache_dir or out / '.cache'}",
                    f"train.steps={steps}", f"optim.batch_size={batch}", f"train.seed={seed}",
                    *(sets or {}).get(task, []), *extra, *overrides])
                print(f"pretraining {method} ({steps} steps)", flush=True)
                summary = pretrain(cfg, run, resume=ckpt.exists())
            info[method] = {"checkpoint": str(ckpt), "seconds": time.perf_counter() - t0,
                            "final_loss": summary.get("final", {}).get("loss")}
    return info


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Write the corpus, pretrain every variant, evaluate them in one call; returns the JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", required=True, help="write the results here")
    p.add_argument("--out", type=Path, default=Path("out/bench_synthetic"),
                   help="work folder (corpus, runs, evaluation)")
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--encoder", default="mobile_100")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--probes", default="linear,knn")
    p.add_argument("--no-supervised", action="store_true",
                   help="skip the supervised baseline (~10 min on this suite)")
    add_variant_args(p)
    args = p.parse_args(argv)

    from pocketear.evaluate.runner import evaluate
    from pocketear.evaluate.suites import SyntheticSuite
    from pocketear.evaluate.table import format_table

    t0 = time.perf_counter()
    suite = SyntheticSuite(minutes=args.minutes)
    suite.tasks(args.out, progress=True)  # writes the corpus once
    manifest = suite.folder(args.out) / "manifest.csv"
    runs = pretrain_all(task_list(args.tasks), manifest, args.out, args.encoder, args.steps,
                        args.batch, args.pretrain_seeds, sets=task_sets(args.task_sets))
    results = evaluate([r["checkpoint"] for r in runs.values()], suite, args.out / "eval",
                       probes=args.probes.split(","), seeds=args.seeds, baselines=True,
                       supervised=not args.no_supervised, data_dir=args.out, progress=True,
                       names=list(runs))
    pooled = merge_pretrain_seeds(results["results"])
    print(format_table({**results, "results": pooled}))
    from pocketear.evaluate.report import write_report

    write_report(args.out / "eval")
    res = {"machine": machine_info(), "config": vars(args) | {"out": str(args.out)},
           "pretrain": runs, "results": results["results"], "pooled": pooled,
           "tasks": results["tasks"],
           "seconds_total": time.perf_counter() - t0}
    write_json(args.json, res)
    print(f"-> {args.json}; report {args.out / 'eval' / 'report.html'}")
    return res


if __name__ == "__main__":
    main()
