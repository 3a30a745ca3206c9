"""The headline table on real recordings (issue 13): pretrain on real audio, evaluate frozen.

Usage::

    export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
    .venv/bin/pocketear prepare debian-audio --out data/debian-audio --hours 10
    .venv/bin/python benchmarks/real.py --corpus data/debian-audio/manifest.csv \
        --arabic PATH_TO_ARABIC_SPEECH_COMMANDS --fsdd ../shared/data/fsdd \
        --json out/real.json [--tasks audio2vec_skipgram,slicer,data2vec] [--steps 900] \
        [--pretrain-seeds 2] [--settings debian,fsdd]

Each pretraining setting (``debian``: the debian-audio corpus; ``fsdd``: FSDD's training audio
alone, the same budget, to show what the corpus buys) pretrains every task of ``--tasks`` (by
default the best of each family on FSDD and the synthetic suite, ``docs/benchmarks.md`` §8:
Audio2Vec SkipGram for the seed paper, SLICER for the contrastive family, data2vec for masked
prediction) ``--pretrain-seeds`` times on ``mobile_100`` for ``--steps`` steps, without labels.
Then one ``evaluate`` call per suite scores every checkpoint of every setting and every
baseline (logmel-stats, random-init, supervised) on the same splits: ``arabic-commands``
(40 keywords on unseen speakers, all labels and ``--shots``), ``fsdd`` (digits, speakers,
digits on unseen speakers) and ``synthetic``. A method is named ``TASK@SETTING``; its ± is the
spread over pretraining seeds, a baseline's over probe seeds and k-shot draws. Resumable: a
finished run is reused and the JSON is written after every step.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_info, write_json  # noqa: E402
from fsdd import SHORT_CLIPS  # noqa: E402
from synthetic import pretrain_all, task_list  # noqa: E402
from variants import SEED_MARK, merge_pretrain_seeds, task_sets  # noqa: E402

TASKS = "audio2vec_skipgram,slicer,data2vec"
SUITES = ("arabic-commands", "fsdd", "synthetic")


def setting_name(method: str, setting: str) -> str:
    """``slicer#s1`` pretrained in ``debian`` → ``slicer@debian#s1`` (seeds still pool)."""
    base, mark, seed = method.partition(SEED_MARK)
    return f"{base}@{setting}{mark}{seed}"


def per_name(spec: str, names: list[str], default: int, flag: str) -> dict[str, int]:
    """``"1500"`` (every name) or ``"slicer=1000,data2vec=3000"`` (others: ``default``).

    A name that is not in ``names`` is ignored (one spec can serve runs of other tasks).
    """
    if "=" not in spec:
        return dict.fromkeys(names, int(spec))
    values = dict.fromkeys(names, default)
    for part in filter(None, spec.split(",")):
        name, sep, n = part.partition("=")
        if not sep or not n.strip().isdigit():
            raise SystemExit(f"{flag} {part!r}: expected NAME=N")
        if name.strip() in values:
            values[name.strip()] = int(n)
    return values


def pretraining_sources(args: argparse.Namespace) -> dict[str, tuple[Path, tuple[str, ...]]]:
    """Setting -> (manifest, --set filters) of its unlabelled pretraining audio."""
    from pocketear.evaluate.suite_fsdd import FSDDSuite

    sources: dict[str, tuple[Path, tuple[str, ...]]] = {}
    for setting in args.settings:
        if setting == "debian":
            if not args.corpus:
                raise SystemExit("setting 'debian' needs --corpus (pocketear prepare "
                                 "debian-audio --out DIR; then DIR/manifest.csv)")
            sources[setting] = (Path(args.corpus), ())
        elif setting == "fsdd":
            sources[setting] = (FSDDSuite(args.fsdd).manifest(None, progress=True),
                                ("data.where.split=train",))
        else:
            raise SystemExit(f"unknown setting {setting!r}: use debian, fsdd")
    return sources


def suite_for(name: str, args: argparse.Namespace) -> Any:
    """The suite object of ``name`` with its data source from the arguments."""
    from pocketear.evaluate.suite_arabic import ArabicCommandsSuite
    from pocketear.evaluate.suite_fsdd import FSDDSuite
    from pocketear.evaluate.suites import SyntheticSuite

    if name == "arabic-commands":
        return ArabicCommandsSuite(args.arabic)
    if name == "fsdd":
        return FSDDSuite(args.fsdd)
    if name == "synthetic":
        return SyntheticSuite(minutes=args.minutes)
    raise SystemExit(f"unknown suite {name!r}: use {', '.join(SUITES)}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Pretrain per setting, evaluate every suite with its baselines; returns the JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", help="the debian-audio manifest (setting 'debian')")
    p.add_argument("--arabic", help="Arabic Speech Commands: folder, zip or prepared manifest")
    p.add_argument("--fsdd", default="../shared/data/fsdd", help="FSDD folder, zip or manifest")
    p.add_argument("--json", required=True, help="write the results here")
    p.add_argument("--out", type=Path, default=Path("out/bench_real"), help="work folder")
    p.add_argument("--settings", default="debian,fsdd", help="pretraining sources")
    p.add_argument("--suites", default=",".join(SUITES))
    p.add_argument("--tasks", default=TASKS)
    p.add_argument("--set", dest="task_sets", action="append", default=[],
                   metavar="TASK:KEY=VALUE", help="override for one task's runs (repeatable)")
    p.add_argument("--pretrain-seeds", default="2",
                   help="pretraining runs per task: N, or SETTING=N,... (e.g. debian=2,fsdd=1)")
    p.add_argument("--encoder", default="mobile_100")
    p.add_argument("--steps", default="900",
                   help="pretraining steps per run: N, or TASK=N,... (other tasks: 900), e.g. "
                        "an equal wall-clock budget per task")
    p.add_argument("--short-clips", action="store_true",
                   help="the short-clip task settings (benchmarks/fsdd.py SHORT_CLIPS: shorter "
                        "slices, more padding allowed) in every setting, not only 'fsdd', so a "
                        "task has one config on every corpus and uses its short clips")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--minutes", type=float, default=30.0, help="synthetic suite size")
    p.add_argument("--seeds", type=int, default=3, help="probe seeds / k-shot draws")
    p.add_argument("--shots", default="5")
    p.add_argument("--views", default="clip")
    p.add_argument("--existing-only", action="store_true",
                   help="pretrain nothing: evaluate the finished runs only")
    p.add_argument("--no-supervised", action="store_true",
                   help="skip the supervised baseline (the costly one)")
    args = p.parse_args(argv)
    args.settings = [s for s in args.settings.split(",") if s]

    from pocketear.evaluate.report import write_report
    from pocketear.evaluate.runner import evaluate
    from pocketear.evaluate.table import format_table

    t0 = time.perf_counter()
    out: dict[str, Any] = {"machine": machine_info(),
                           "config": {k: str(v) for k, v in vars(args).items()},
                           "pretrain": {}, "suites": {}}
    checkpoints: dict[str, str] = {}
    tasks = task_list(args.tasks)
    steps = per_name(args.steps, tasks, 900, "--steps")
    seeds = per_name(args.pretrain_seeds, args.settings, 2, "--pretrain-seeds")
    for setting, (manifest, filters) in pretraining_sources(args).items():
        for task in tasks:  # one call per task: each has its own step budget
            runs = pretrain_all([task], manifest, args.out / setting, args.encoder, steps[task],
                                args.batch, seeds[setting],
                                sets=task_sets(args.task_sets, SHORT_CLIPS
                                               if setting == "fsdd" or args.short_clips
                                               else None),
                                filters=filters, cache_dir=args.out / ".cache",
                                existing_only=args.existing_only)
            for method, info in runs.items():
                name = setting_name(method, setting)
                checkpoints[name] = info["checkpoint"]
                summary = Path(info["checkpoint"]).parents[1] / "summary.json"
                done = json.loads(summary.read_text()) if summary.is_file() else {}
                out["pretrain"][name] = {
                    **info, "steps": steps[task], "examples_seen": steps[task] * args.batch,
                    **{k: done.get(k) for k in ("seconds", "cpu_seconds", "threads",
                                                "training_clips", "short_clips")}}
            write_json(args.json, out)
    for suite in [s for s in args.suites.split(",") if s]:
        eval_dir = args.out / "eval" / suite
        t_eval = time.perf_counter()
        results = evaluate(list(checkpoints.values()), suite_for(suite, args), eval_dir,
                           names=list(checkpoints), shots=[int(k) for k in args.shots.split(",")
                                                           if k],
                           seeds=args.seeds, baselines=True, supervised=not args.no_supervised,
                           views=args.views.split(","), progress=True,
                           cache_dir=args.out / ".emb_cache")
        write_report(eval_dir)
        pooled = merge_pretrain_seeds(results["results"])
        print(format_table({**results, "results": pooled}))
        out["suites"][suite] = {"eval_seconds": time.perf_counter() - t_eval,
                                "results": results["results"], "tasks": results["tasks"],
                                "pooled": pooled}
        write_json(args.json, out)
    out["seconds_total"] = time.perf_counter() - t0
    write_json(args.json, out)
    print(f"-> {args.json}; compare: pocketear compare {args.out}/eval/*")
    return out


if __name__ == "__main__":
    main()
