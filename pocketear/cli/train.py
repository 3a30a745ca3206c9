"""Training command: ``pretrain``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pocketear.cli.core import command
from pocketear.errors import InvalidValue


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


def _subnet_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, help="run folder of --task distill --encoder kwt_super")
    p.add_argument("--macs-budget", required=True,
                   help="multiply-adds per second of audio (e.g. 5M, 2.5e6)")
    p.add_argument("--params-budget", help="parameters (e.g. 100k); default: no limit")
    p.add_argument("--data", help="held-out audio (folder or manifest) to score subnets on "
                   "(default: the run's own data; audio it did not train on is better)")
    p.add_argument("--clips", type=int, default=256, help="clips to score on (default 256)")
    p.add_argument("--out", type=Path, help="run folder to write (default RUN/subnet-BUDGET)")
    p.add_argument("--seed", type=int, default=0, help="seed of the scored slices")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


@command("subnet", _subnet_args)
def _subnet(args: argparse.Namespace) -> int:
    """Extract the best subnet of a once-for-all distillation run under a budget.

    Scores every subnet of the `kwt_super` search space within --macs-budget (and
    --params-budget) by its distillation loss against the run's teacher on held-out audio (no
    labels) and writes the best one as a standalone KWT run folder that `evaluate`, `export`
    and `report` take like any other. The ranking goes to OUT/subnet.json.
    """
    from pocketear.encoders.supernet import Subnet
    from pocketear.train.subnet import search, write_subnet

    macs = _number(args.macs_budget)
    params = _number(args.params_budget) if args.params_budget else None
    found = search(args.run, macs, params, args.data, clips=args.clips, seed=args.seed,
                   progress=not args.no_progress)
    best = found["ranking"][0]
    out = args.out or args.run / f"subnet-{args.macs_budget}"
    write_subnet(args.run, Subnet.parse(best["subnet"]), out, {"search": found})
    print(f"{found['searched']} of {found['space']} subnets fit; best {best['subnet']}: "
          f"{best['macs_per_second'] / 1e6:.2f} M MACs/s, {best['params']:,} parameters, "
          f"proxy loss {best['proxy_loss']:.4f}\nwrote {out}")
    return 0


def _number(text: str) -> float:
    """``5M``, ``100k``, ``2.5e6`` → a number."""
    scale = {"k": 1e3, "m": 1e6, "g": 1e9}.get(text.strip()[-1:].lower(), 1.0)
    try:
        return float(text.strip()[:-1] if scale != 1.0 else text) * scale
    except ValueError as err:
        raise InvalidValue(f"{text!r}: a number such as 5M, 100k or 2.5e6") from err
