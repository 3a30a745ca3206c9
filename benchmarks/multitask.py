"""Which pretext tasks to combine, with which weights (issue 19): pilots, a score, a comparison.

Usage::

    .venv/bin/python benchmarks/multitask.py --fsdd ../shared/data/fsdd --json out/multitask.json \
        [--settings fsdd,synthetic] [--candidates temporal_gap,audio2vec_skipgram,slicer,...] \
        [--pilot-steps 150] [--score rankme|probe] [--k 2] [--weighting fixed] \
        [--steps 600] [--batch 64] [--pretrain-seeds 2] [--budget steps|time] [--arabic PATH]

Per setting (``fsdd``: FSDD's training audio, with the short-clip task settings of
``fsdd.py``, evaluated on the ``fsdd`` suite and, with ``--arabic``, on ``arabic-commands``;
``synthetic``: the long-form half of the synthetic corpus, evaluated on the ``synthetic``
suite):

1. **Pilots**: every candidate task pretrains ``--pilot-steps`` steps, one seed
   (``synthetic.pretrain_all``).
2. **Score** each pilot: ``rankme`` (default, label-free): the effective rank of the clip
   embeddings of ``--score-clips`` pretraining clips (RankMe: Garrido, Balestriero, Najman &
   LeCun, "RankMe: Assessing the Downstream Performance of Pretrained Self-Supervised
   Representations by Their Rank", ICML 2023; ``train.monitors.effective_rank``, centred);
   ``probe``: the suite average of a linear probe (all labels, ``clip`` view, one seed). The
   probe score reads the suite's labels and test splits that step 4 reports on, so it selects
   on the test data; ``rankme`` does not.
3. **Select** the ``--k`` best-scoring tasks and their weights: with ``--weighting fixed`` the
   weights are proportional to the scores, scaled to sum to ``k``; ``uncertainty`` and
   ``gradnorm`` learn theirs from 1 each.
4. **Compare** ``multi`` over the selection with each selected task alone (the best-scoring
   one first), all pretrained ``--pretrain-seeds`` times and evaluated with the baselines in
   one ``evaluate`` call (± over pretraining seeds, ``variants.merge_pretrain_seeds``).

Same compute, ``--budget``: ``steps`` (default) gives every run the same optimiser steps ×
batch size, i.e. the same number of clip draws; a ``multi`` step runs every selected task's
step on its own views of each clip, so it costs about the sum of their steps (every run's
seconds are in the JSON). ``time`` gives ``multi`` ``steps × t_best / Σ_selected t_i`` steps,
``t`` the seconds per step of the pilot runs: the best-scoring task's wall time, up to how well
the pilots' step times add (the other single tasks keep ``--steps`` steps: their seconds differ).

The JSON is written after every stage; runs are resumable (a finished run folder is reused).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_info, write_json  # noqa: E402
from fsdd import SHORT_CLIPS  # noqa: E402
from real import suite_for  # noqa: E402
from synthetic import pretrain_all  # noqa: E402
from variants import merge_pretrain_seeds  # noqa: E402

CANDIDATES = "temporal_gap,audio2vec_skipgram,triplet,slicer,features"
SETTINGS = ("fsdd", "synthetic")


def pretraining_source(setting: str, args: argparse.Namespace) -> tuple[Path, dict[str, str]]:
    """Setting -> (manifest, ``data.where`` filter) of its unlabelled pretraining audio."""
    from pocketear.evaluate.suite_fsdd import FSDDSuite
    from pocketear.evaluate.suites import SyntheticSuite

    if setting == "fsdd":
        return FSDDSuite(args.fsdd).manifest(None, progress=True), {"split": "train"}
    if setting == "synthetic":
        suite = SyntheticSuite(minutes=args.minutes)
        suite.tasks(args.out, progress=True)  # writes the corpus once
        return suite.folder(args.out) / "manifest.csv", {"kind": "longform"}
    raise SystemExit(f"unknown setting {setting!r}: use {', '.join(SETTINGS)}")


def multi_sets(selected: list[str], weights: list[float], weighting: str,
               short: dict[str, list[str]]) -> list[str]:
    """``--set`` overrides of the ``multi`` run: its tasks, weights and per-task settings.

    ``short`` holds each task's own overrides (``task.slice_frames=16``), moved under
    ``task.params.NAME``.
    """
    sets = [f"task.tasks=[{', '.join(selected)}]", f"task.weighting={weighting}",
            f"task.weights=[{', '.join(f'{w:.4g}' for w in weights)}]"]
    for name in selected:
        for kv in short.get(name, []):
            key, _, value = kv.partition("=")
            sets.append(f"task.params.{name}.{key.removeprefix('task.')}={value}")
    return sets


def seconds_per_step(run: Path) -> float | None:
    """Training seconds per step of a finished run (its ``summary.json``), None if unknown."""
    try:
        summary = json.loads((run / "summary.json").read_text())
        return float(summary["seconds"]) / max(1, int(summary["steps"]) -
                                               int(summary.get("resumed_from", 0)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def rankme(checkpoint: str, manifest: Path, where: dict[str, str], clips: int,
           seed: int = 0) -> float:
    """Effective rank of the centred clip embeddings of ``clips`` pretraining clips (RankMe)."""
    import torch

    from pocketear.data.corpus import Corpus
    from pocketear.model import load
    from pocketear.train.monitors import effective_rank

    items = list(Corpus.open(manifest).filter(**where))
    pick = np.random.default_rng(seed).choice(len(items), min(clips, len(items)), replace=False)
    model = load(checkpoint)
    emb = np.stack([model.embed(items[int(i)].path) for i in sorted(pick)])
    return effective_rank(torch.from_numpy(emb), center=True)


def suite_average(rows: list[dict[str, Any]], method: str) -> float | None:
    """Mean over the suite's tasks of a method's all-label, ``clip``-view score."""
    vals = [r["mean"] for r in rows if r["method"] == method and not r.get("shots")
            and r.get("view", "clip") == "clip"]
    return float(np.mean(vals)) if vals else None


def select(scores: dict[str, float], k: int) -> tuple[list[str], list[float]]:
    """The ``k`` best-scoring tasks, best first, and weights ∝ score summing to ``k``."""
    ranked = sorted(scores, key=scores.__getitem__, reverse=True)[:k]
    total = sum(max(scores[t], 1e-12) for t in ranked)
    return ranked, [len(ranked) * max(scores[t], 1e-12) / total for t in ranked]


def evaluate_runs(runs: dict[str, dict[str, Any]], suite: str, eval_dir: Path,
                  args: argparse.Namespace, *, baselines: bool, seeds: int) -> dict[str, Any]:
    """One ``evaluate`` call over ``runs`` on ``suite`` (linear probe)."""
    from pocketear.evaluate.runner import evaluate

    extra: dict[str, Any] = ({"data_dir": args.out} if suite == "synthetic" else
                             {"shots": [int(k) for k in args.shots.split(",") if k],
                              "views": args.views.split(","),
                              "cache_dir": args.out / ".emb_cache"})
    return evaluate([r["checkpoint"] for r in runs.values()], suite_for(suite, args),
                    eval_dir, probes=("linear",), names=list(runs), seeds=seeds,
                    baselines=baselines, supervised=not args.no_supervised, progress=True,
                    **extra)


def run_setting(setting: str, args: argparse.Namespace, out: dict[str, Any]) -> None:
    """Pilots, scores, selection and the final comparison of one setting, into ``out``."""
    from pocketear.evaluate.table import format_table

    manifest, where = pretraining_source(setting, args)
    filters = tuple(f"data.where.{k}={v}" for k, v in where.items())
    short = SHORT_CLIPS if setting == "fsdd" else {}
    folder = args.out / setting
    res: dict[str, Any] = out["settings"].setdefault(setting, {})
    common = {"filters": filters, "cache_dir": args.out / ".cache", "sets": short}
    candidates = [c for c in args.candidates.split(",") if c]

    pilots = pretrain_all(candidates, manifest, folder / "pilot", args.encoder, args.pilot_steps,
                          args.batch, 1, **common)
    step_s = {t: seconds_per_step(folder / "pilot" / "runs" / t) for t in pilots}
    res["pilots"] = {t: {**r, "seconds_per_step": step_s[t]} for t, r in pilots.items()}
    write_json(args.json, out)

    if args.score == "rankme":
        scores = {t: rankme(r["checkpoint"], manifest, where, args.score_clips)
                  for t, r in pilots.items()}
    else:
        probe = evaluate_runs(pilots, setting, folder / "pilot" / "eval", args,
                              baselines=False, seeds=1)
        scores = {t: suite_average(probe["results"], t) or 0.0 for t in pilots}
    selected, weights = select(scores, args.k)
    if args.weighting != "fixed":
        weights = [1.0] * len(selected)
    best = selected[0]
    steps_multi = args.steps
    if args.budget == "time":
        times = [step_s[best], *(step_s[t] for t in selected)]
        if any(t is None for t in times):
            raise SystemExit("--budget time needs the pilots' summary.json (seconds per step)")
        steps_multi = max(1, round(args.steps * step_s[best] / sum(step_s[t] for t in selected)))
    res.update(score=args.score, scores=scores, selected=selected, weights=weights,
               weighting=args.weighting, best_single=best, budget=args.budget,
               steps={"single": args.steps, "multi": steps_multi})
    print(f"{setting}: scores {scores}; selected {selected} with weights "
          f"{[round(w, 3) for w in weights]}; multi {steps_multi} steps vs {best} {args.steps}")
    write_json(args.json, out)

    final = folder / "final"
    runs = pretrain_all(selected, manifest, final, args.encoder, args.steps, args.batch,
                        args.pretrain_seeds, **common)
    # a folder per multi config: a finished run is reused only for the same selection
    sets = multi_sets(selected, weights, args.weighting, short)
    key = hashlib.sha1(" ".join([*sets, str(steps_multi)]).encode()).hexdigest()[:10]
    runs |= pretrain_all(["multi"], manifest, final / f"multi-{key}", args.encoder, steps_multi,
                         args.batch, args.pretrain_seeds, filters=filters,
                         cache_dir=args.out / ".cache", sets={"multi": sets})
    res.update(final_runs=runs, multi_sets=sets)
    write_json(args.json, out)

    suites = [setting, *(["arabic-commands"] if setting == "fsdd" and args.arabic else [])]
    for suite in suites:
        results = evaluate_runs(runs, suite, final / "eval" / suite, args,
                                baselines=not args.no_baselines, seeds=args.seeds)
        pooled = merge_pretrain_seeds(results["results"])
        print(format_table({**results, "results": pooled}))
        res.setdefault("suites", {})[suite] = {
            "results": results["results"], "pooled": pooled, "tasks": results["tasks"],
            "suite_average": {t: suite_average(pooled, t) for t in ["multi", *selected]}}
        write_json(args.json, out)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Pilots, scores, selection and the comparison per setting; returns the JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fsdd", default="../shared/data/fsdd", help="FSDD folder, zip or manifest")
    p.add_argument("--arabic", help="Arabic Speech Commands (folder, zip or prepared manifest): "
                                    "the fsdd setting's runs are also evaluated on "
                                    "arabic-commands")
    p.add_argument("--json", required=True, help="write the results here")
    p.add_argument("--out", type=Path, default=Path("out/bench_multitask"), help="work folder")
    p.add_argument("--settings", default=",".join(SETTINGS))
    p.add_argument("--candidates", default=CANDIDATES, help="registered tasks to choose from")
    p.add_argument("--pilot-steps", type=int, default=150)
    p.add_argument("--score", choices=("rankme", "probe"), default="rankme")
    p.add_argument("--score-clips", type=int, default=256, help="clips embedded for rankme")
    p.add_argument("--k", type=int, default=2, help="tasks combined")
    p.add_argument("--weighting", choices=("fixed", "uncertainty", "gradnorm"), default="fixed")
    p.add_argument("--budget", choices=("steps", "time"), default="steps")
    p.add_argument("--encoder", default="mobile_100")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--pretrain-seeds", type=int, default=2)
    p.add_argument("--minutes", type=float, default=30.0, help="synthetic corpus size")
    p.add_argument("--seeds", type=int, default=3, help="probe seeds / k-shot draws")
    p.add_argument("--shots", default="5")
    p.add_argument("--views", default="clip")
    p.add_argument("--no-supervised", action="store_true",
                   help="skip the supervised baseline (the costly one)")
    p.add_argument("--no-baselines", action="store_true", help="no baselines at all (smoke runs)")
    args = p.parse_args(argv)
    if args.k < 1 or args.pretrain_seeds < 1:
        raise SystemExit("--k and --pretrain-seeds must be >= 1")

    t0 = time.perf_counter()
    out: dict[str, Any] = {"machine": machine_info(),
                           "config": {k: str(v) for k, v in vars(args).items()}, "settings": {}}
    for setting in [s for s in args.settings.split(",") if s]:
        run_setting(setting, args, out)
    out["seconds_total"] = time.perf_counter() - t0
    write_json(args.json, out)
    print(f"-> {args.json}")
    return out


if __name__ == "__main__":
    main()
