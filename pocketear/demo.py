"""``make demo``: the whole job on built-in data in a few minutes on 2 CPU cores.

Writes the synthetic corpus, pretrains a small ``mobile`` encoder with Audio2Vec SkipGram (the
seed paper's task) on the long-form recordings (labels unused), evaluates its frozen embeddings
(the default read-out) on the synthetic suite against the baselines (log-mel statistics, the
same encoder randomly initialised), prints the table and writes the HTML report. Re-running
reuses the corpus and a finished pretraining run (``--fresh`` retrains).

Why SkipGram: of the tasks measured on real recordings (``docs/benchmarks.md`` §9) it is the
only one that clears both baselines on Arabic keywords, on FSDD's unseen speakers and on the
synthetic suite; data2vec is better on keywords only and worse on speakers. At the demo's
400 steps on 24 minutes of synthetic audio it only ties random init: the demo shows the
workflow, §9 the evidence.

To stay within 3 minutes on 2 cores the demo leaves out the supervised baseline: trained as
``pocketear evaluate`` trains it (a learning-rate grid, the epoch chosen on a validation split)
it takes ~10 minutes on this suite, and a budget that fits would not be a ceiling. Its figures
on the same suite are in ``docs/benchmarks.md`` §8.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULTS = {"task": "audio2vec_skipgram", "encoder": "mobile_100", "steps": 400, "batch": 32,
            "minutes": 30.0}


def run(out: Path, task: str, encoder: str, steps: int, minutes: float, seeds: int,
        resume: bool = True) -> Path:
    """Pretrain ``task`` on the built-in corpus, evaluate it and its baselines, write a report."""
    from pocketear.evaluate.report import write_report
    from pocketear.evaluate.runner import evaluate
    from pocketear.evaluate.suites import SyntheticSuite
    from pocketear.train.config import load_config
    from pocketear.train.loop import pretrain

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    suite = SyntheticSuite(minutes=minutes)
    manifest = suite.folder(out) / "manifest.csv"
    print(f"[1/4] the synthetic corpus ({minutes:g} min of audio) in {manifest.parent}")
    suite.tasks(out, progress=True)
    run_dir = out / "runs" / task
    ckpt = run_dir / "checkpoints" / "last.pt"
    if ckpt.exists() and resume:
        print(f"[2/4] reusing the pretrained encoder in {run_dir} (--fresh retrains)")
    else:
        print(f"[2/4] pretraining {encoder} with {task} on the long-form recordings "
              f"({steps} steps, labels unused)")
        if ckpt.exists():
            import shutil

            shutil.rmtree(run_dir)
        cfg = load_config(None, [
            f"task.name={task}", f"encoder.name={encoder}", f"data.source={manifest}",
            "data.where.kind=longform", f"data.cache_dir={out / '.cache'}",
            f"train.steps={steps}", f"optim.batch_size={DEFAULTS['batch']}",
        ])
        pretrain(cfg, run_dir)
    print(f"[3/4] evaluating frozen embeddings on the synthetic suite ({seeds} seeds, "
          "with the logmel-stats and random-init baselines)")
    eval_dir = out / "eval"
    evaluate([str(ckpt)], suite, str(eval_dir), probes=("linear",), seeds=seeds,
             baselines=True, supervised=False, data_dir=str(out), progress=True)
    report = write_report(eval_dir)
    print(f"[4/4] report: {report}  (total {time.perf_counter() - t0:.0f} s)")
    print("The supervised ceiling (10 min): docs/benchmarks.md §8.3; rerun with `pocketear "
          "evaluate RUN --suite synthetic --baselines`.")
    print("On real recordings (pretrained on 12 h of Debian audio, tested on Arabic keywords, "
          "FSDD): docs/benchmarks.md §9 and benchmarks/real.py.")
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m pocketear.demo``: parse ``argv`` and :func:`run`; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m pocketear.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("demo"), help="output folder (default demo)")
    p.add_argument("--task", default=DEFAULTS["task"], help="pretext task")
    p.add_argument("--encoder", default=DEFAULTS["encoder"], help="encoder")
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"], help="pretraining steps")
    p.add_argument("--minutes", type=float, default=DEFAULTS["minutes"],
                   help="synthetic corpus size in minutes of audio")
    p.add_argument("--seeds", type=int, default=3, help="probe seeds")
    p.add_argument("--fresh", action="store_true", help="retrain even if a run exists")
    args = p.parse_args(argv)
    run(args.out, args.task, args.encoder, args.steps, args.minutes, args.seeds,
        resume=not args.fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
