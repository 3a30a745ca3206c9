"""Training command: ``pretrain``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pocketear.cli.core import command


def _pretrain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", help="pretext task (`pocketear list tasks`)")
    p.add_argument("--data", help="folder of audio or CSV/TSV manifest (labels are ignored)")
    p.add_argument("--encoder", help="encoder (`pocketear list encoders`; default: the task's "
                   "own, mobile_100 for most)")
    p.add_argument("--config", type=Path, help="YAML config file (keys as in a run's "
                   "config.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, e.g. --set optim.lr=1e-3 (repeatable)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--steps", type=int, help="optimiser steps")
    group.add_argument("--epochs", type=float, help="epochs over the corpus's clips")
    p.add_argument("--targets", help="targets file: for --task hubert from `pocketear cluster` "
                   "(task.targets), for --task beats from `pocketear tokenizer` (task.tokenizer)")
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (same data order "
                        "and optimiser state); --steps may raise the total")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@command("pretrain", _pretrain_args)
def _pretrain(args: argparse.Namespace) -> int:
    """Pretrain an encoder with a pretext task on unlabeled audio.

    Writes the run folder: config.yaml, checkpoints/last.pt, metrics.jsonl, TensorBoard events
    (tb/) and summary.json. Labels in a manifest are ignored. Several processes:
    `torchrun --nproc_per_node N -m pocketear pretrain ...` (optim.batch_size is the global
    batch); a GPU: --set train.device=cuda (auto picks it when PyTorch sees one).
    """
    from pocketear.errors import InvalidValue
    from pocketear.train.config import load_config
    from pocketear.train.loop import pretrain, resume_run

    sets = []
    for key, value in (("task.name", args.task), ("encoder.name", args.encoder),
                       ("data.source", args.data), ("train.steps", args.steps),
                       ("train.epochs", args.epochs)):
        if value is not None:
            sets.append(f"{key}={value}")
    if args.targets is not None:
        key = {"hubert": "task.targets", "beats": "task.tokenizer"}.get(args.task or "")
        if key is None:
            raise InvalidValue("--targets goes with --task hubert (a `pocketear cluster` file) or "
                             "--task beats (a `pocketear tokenizer` file)")
        sets.append(f"{key}={args.targets}")
    if args.resume:
        summary = resume_run(args.out, steps=args.steps, progress=not args.no_progress)
    else:
        cfg = load_config(args.config, [*sets, *args.overrides])
        summary = pretrain(cfg, args.out, progress=not args.no_progress)
    if int(os.environ.get("RANK", "0") or 0):  # under torchrun rank 0 alone reports
        return 0
    loss = summary["final"].get("loss", float("nan"))
    print(f"done: {summary['steps']} steps, final loss {loss:.4f}, "
          f"checkpoint {summary['checkpoint']}")
    if summary["skipped_files"]:
        print(f"skipped {summary['skipped_files']} undecodable file(s); see the cache index")
    return 0
