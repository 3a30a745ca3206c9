"""The same frozen weights read out several ways: which pooling and which map a probe should see.

Usage::

    .venv/bin/python benchmarks/readout.py --runs 'out/bench_fsdd/both/runs/*/seed*' \
        --data ../shared/data/fsdd --json out/readout.json \
        [--readouts max:proj,meanmax:features,...] [--suites fsdd,synthetic]

For every read-out (``POOLING:SOURCE``, see ``pocketear/encoders/base.py``) each checkpoint is
copied with only ``encoder.readout`` changed, and one ``evaluate`` call scores the copies and the
baselines on each of ``--suites`` (``fsdd``, ``synthetic``): logmel-stats does not
depend on the read-out, random-init is read out the same way as the checkpoints, so every
comparison is at equal read-out. ``max:proj`` is the read-out every result before issue 12 used.
Run folders named ``VARIANT/seedK`` are pooled over K (the ± is the spread over pretraining
seeds).
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_info, table, write_json  # noqa: E402
from variants import SEED_MARK, merge_pretrain_seeds  # noqa: E402

READOUTS = ("max:proj", "meanmax:proj", "max:features", "mean:features", "meanmax:features",
            "meanstd:features")
COLUMNS = (("fsdd-digit", None), ("fsdd-digit-unseen-speaker", None), ("fsdd-digit", 5))


def method_name(run: Path) -> str:
    """``runs/slicer/seed2`` → ``slicer#s2``; ``runs/slicer`` → ``slicer``."""
    if run.name.startswith("seed") and run.name[4:].isdigit():
        return f"{run.parent.name}{SEED_MARK}{run.name[4:]}"
    return run.name


def with_readout(checkpoint: Path, readout: str, out: Path) -> Path:
    """A copy of ``checkpoint`` whose config reads the encoder out as ``readout``."""
    from pocketear.train.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(checkpoint)
    state.pop("path", None)
    state["config"]["encoder"]["readout"] = readout
    return save_checkpoint(state, out)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Re-read the runs' checkpoints with every read-out and evaluate them; returns the JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="+", required=True,
                   help="run folders (globs allowed), e.g. 'out/bench_fsdd/both/runs/*/seed*'")
    p.add_argument("--data", default="", help="the FSDD folder (for the fsdd suite)")
    p.add_argument("--json", required=True)
    p.add_argument("--out", type=Path, default=Path("out/bench_readout"))
    p.add_argument("--readouts", default=",".join(READOUTS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--suites", default="fsdd",
                   help="fsdd and/or synthetic (its corpus is written under --out)")
    args = p.parse_args(argv)

    from pocketear.evaluate.runner import evaluate
    from pocketear.evaluate.suite_fsdd import FSDDSuite
    from pocketear.evaluate.suites import SyntheticSuite

    runs = sorted({Path(r) for pattern in args.runs for r in glob.glob(pattern)})
    runs = [r for r in runs if (r / "checkpoints" / "last.pt").is_file()]
    if not runs:
        raise SystemExit(f"no finished run folder matches {args.runs}")
    names = [method_name(r) for r in runs]
    t0 = time.perf_counter()
    out: dict[str, Any] = {"machine": machine_info(), "runs": [str(r) for r in runs],
                           "config": {k: str(v) for k, v in vars(args).items()}, "readouts": {}}
    known = {"fsdd": lambda: (FSDDSuite(args.data), {"shots": [5]}),
             "synthetic": lambda: (SyntheticSuite(), {"data_dir": args.out})}
    wanted = [s for s in args.suites.split(",") if s]
    if any(s not in known for s in wanted) or ("fsdd" in wanted and not args.data):
        raise SystemExit(f"--suites takes fsdd (with --data) and synthetic; got {args.suites}")
    suites = [(s, *known[s]()) for s in wanted]
    for readout in [r for r in args.readouts.split(",") if r]:
        tag = readout.replace(":", "-")
        ckpts = [with_readout(r / "checkpoints" / "last.pt", readout,
                              args.out / "ckpt" / tag / f"{i}.pt") for i, r in enumerate(runs)]
        out["readouts"][readout] = {}
        for suite_name, suite, kw in suites:
            res = evaluate([str(c) for c in ckpts], suite, args.out / tag / suite_name,
                           probes=("linear",), names=names, seeds=args.seeds,
                           supervised=False, progress=True,
                           cache_dir=args.out / ".emb_cache", **kw)
            out["readouts"][readout][suite_name] = merge_pretrain_seeds(res["results"])
            write_json(args.json, out)
        print(f"{readout}: {time.perf_counter() - t0:.0f} s", flush=True)
    out["seconds_total"] = time.perf_counter() - t0
    write_json(args.json, out)
    print(summary_table(out))
    return out


def summary_table(out: dict[str, Any]) -> str:
    """Method × read-out rows; FSDD columns (clip view, linear probe) and the synthetic average."""
    rows, methods = [], []
    for readout, by_suite in out["readouts"].items():
        fsdd = by_suite.get("fsdd", [])
        for r in [r for rows in by_suite.values() for r in rows]:
            if r["method"] not in methods:
                methods.append(r["method"])
        for m in methods:
            if not any(r["method"] == m for rows in by_suite.values() for r in rows):
                continue
            cells = [m, readout]
            for task, shots in COLUMNS:
                hit = [r for r in fsdd if r["method"] == m and r["task"] == task
                       and r["shots"] == shots and r["view"] == "clip"]
                cells.append(f"{100 * hit[0]['mean']:.1f} ± {100 * hit[0]['std']:.1f}"
                             if hit else "")
            synth = [r["mean"] for r in by_suite.get("synthetic", [])
                     if r["method"] == m and r["shots"] is None]
            cells.append(f"{100 * sum(synth) / len(synth):.1f}" if synth else "")
            rows.append(cells)
    return table(rows, ["method", "read-out", "digit", "unseen speakers", "5-shot digit",
                        "synthetic avg"])


if __name__ == "__main__":
    main()
