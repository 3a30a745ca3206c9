"""Federated vs centralised pretraining of one task, clients = speakers, the same total steps.

Usage::

    .venv/bin/python benchmarks/federated.py --fsdd ../shared/data/fsdd --out out/federated \
        [--task slicer] [--rounds 20] [--clients-per-round 3] [--local-steps 10] [--seeds 3]
    .venv/bin/python benchmarks/federated.py --suite arabic-commands \
        --arabic /work/data/arabic-prepared --out out/federated_arabic ...

Both runs pretrain ``--encoder`` with ``--task`` on the suite's training audio (the official
split; FSDD's and the Arabic keywords' short clips get the short-clip slice settings of
``benchmarks/fsdd.py``). Federated: Flower's simulation engine, one client per speaker (FSDD:
6; Arabic Speech Commands: the 18 training speakers), ``--clients-per-round`` clients sampled
per round, each
taking ``--local-steps`` steps on its own speaker's clips; FedAvg (``--strategy``).
Centralised: ``pocketear pretrain`` for rounds × clients per round × local steps steps, the same
number of optimiser steps on batches that mix speakers. Both are evaluated frozen on the
suite (``fsdd``: digit, speaker, digit on unseen speakers; ``arabic-commands``: 40 keywords
of unseen speakers) with the baselines in one
``evaluate`` call; the JSON (``OUT/results.json``, rewritten after every stage) has the
accuracies, the federated communication (bytes per round and in total) and the wall time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, write_json  # noqa: E402
from fsdd import SHORT_CLIPS  # noqa: E402

from pocketear.evaluate.suite_arabic import ArabicCommandsSuite  # noqa: E402
from pocketear.evaluate.suite_fsdd import FSDDSuite  # noqa: E402

CLI = [sys.executable, "-m", "pocketear"]


def main() -> None:
    """Pretrain both ways, evaluate both, write ``OUT/results.json``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suite", default="fsdd", choices=("fsdd", "arabic-commands"))
    p.add_argument("--fsdd", default="../shared/data/fsdd")
    p.add_argument("--arabic", help="Arabic Speech Commands: folder, zip or prepared manifest")
    p.add_argument("--out", type=Path, default=Path("out/federated"))
    p.add_argument("--task", default="slicer")
    p.add_argument("--encoder", default="mobile_100")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--clients-per-round", type=int, default=3)
    p.add_argument("--local-steps", type=int, default=10)
    p.add_argument("--strategy", default="fedavg")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seeds", type=int, default=3, help="probe seeds of the evaluation")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    suite = (FSDDSuite(args.fsdd) if args.suite == "fsdd"
             else ArabicCommandsSuite(args.arabic))
    manifest = suite.manifest(None, progress=True)
    data_dir = args.fsdd if args.suite == "fsdd" else args.arabic
    steps = args.rounds * args.clients_per_round * args.local_steps
    sets = [f"optim.batch_size={args.batch}", "train.threads=1", "data.where.split=train",
            *SHORT_CLIPS.get(args.task, [])]
    flags = [a for s in sets for a in ("--set", s)]
    res: dict[str, Any] = {"machine": machine_info(), "task": args.task,
                           "encoder": args.encoder, "steps": steps, "settings": vars(args)}
    res["settings"] = {k: str(v) for k, v in vars(args).items()}
    path = args.out / "results.json"
    fed, cen = args.out / "runs" / "federated", args.out / "runs" / "centralised"
    if not (fed / "summary.json").is_file():
        t0 = time.perf_counter()
        subprocess.run([*CLI, "federated", "--task", args.task, "--encoder", args.encoder,
                        "--data", str(manifest), "--clients-by", "group",
                        "--rounds", str(args.rounds),
                        "--clients-per-round", str(args.clients_per_round),
                        "--local-steps", str(args.local_steps), "--strategy", args.strategy,
                        *flags, "--out", str(fed)], check=True)
        res["federated_wall_s"] = time.perf_counter() - t0
    res["federated"] = json.loads((fed / "summary.json").read_text())
    write_json(path, res)
    if not (cen / "summary.json").is_file():
        subprocess.run([*CLI, "pretrain", "--task", args.task, "--encoder", args.encoder,
                        "--data", str(manifest), "--steps", str(steps), *flags,
                        "--out", str(cen), "--no-progress"], check=True)
    res["centralised"] = json.loads((cen / "summary.json").read_text())
    write_json(path, res)
    evaluation = args.out / "eval"
    subprocess.run([*CLI, "evaluate", str(fed), str(cen), "--suite", args.suite, "--data-dir",
                    data_dir, "--baselines", "--no-supervised", "--seeds", str(args.seeds),
                    "--out", str(evaluation)], check=True)
    res["evaluation"] = json.loads((evaluation / "results.json").read_text())
    write_json(path, res)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
