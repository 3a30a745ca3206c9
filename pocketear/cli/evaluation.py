"""Evaluation commands: ``evaluate``, ``report``, ``compare``."""

from __future__ import annotations

import argparse
from pathlib import Path

from pocketear.cli.core import command


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") \
            from err


def _names(text: str) -> list[str]:
    """``"a, b,"`` → ``["a", "b"]``."""
    return [x.strip() for x in text.split(",") if x.strip()]


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoints", nargs="*", metavar="CHECKPOINT_OR_RUN_DIR",
                   help="checkpoint files or run folders (none: baselines only)")
    p.add_argument("--suite", required=True,
                   help="registered suite (`pocketear list suites`) or a labelled manifest "
                        "CSV/TSV with columns path,label[,split][,group]")
    p.add_argument("--probes", default="linear",
                   help="comma-separated probes: linear, mlp, knn (default linear)")
    p.add_argument("--shots", type=_int_list, default=[],
                   help="k-shot settings besides all labels, e.g. 1,5,10 (k train clips per "
                        "class, a new draw per seed)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per setting (default 3)")
    p.add_argument("--views", default="clip",
                   help="comma-separated label-free views, each its own rows for every method: "
                        "clip (default), seg3 (pool over 3 time parts), group-std (standardise "
                        "per group, e.g. speaker; tasks with groups only), seg3+group-std")
    p.add_argument("--baselines", action="store_true",
                   help="also measure the baselines (`pocketear list baselines`: logmel-stats, "
                        "random-init, supervised) on the same splits")
    p.add_argument("--no-supervised", action="store_true",
                   help="with --baselines, leave out the supervised baseline (it trains the "
                        "reference encoder end to end per seed: the slow one)")
    p.add_argument("--fine-tune", action="store_true",
                   help="also fine-tune each checkpoint end to end (row 'fine-tune')")
    p.add_argument("--label", default="label", help="label column of a manifest suite")
    p.add_argument("--group", help="group column of a manifest suite (e.g. speaker): the "
                   "generated split keeps groups disjoint")
    p.add_argument("--data-dir", type=Path, help="where registered suites keep their data "
                   "(default ~/.cache/pocketear/suites); for fsdd and arabic-commands: the "
                   "dataset's folder, zip or prepared manifest")
    p.add_argument("--cache-dir", type=Path, help="embedding cache (default OUT/../.emb_cache)")
    p.add_argument("--out", type=Path, required=True, help="evaluation folder")
    p.add_argument("--workers", type=int, default=2, help="log-mel processes (default 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


@command("evaluate", _evaluate_args)
def _evaluate(args: argparse.Namespace) -> int:
    """Probe frozen embeddings of checkpoints on a suite, against baselines.

    Embeddings are computed once per (checkpoint, dataset) and cached; probes are trained on the
    train split (model selection on valid) and scored on test at the clip level. Writes
    results.json, results.csv and table.txt to --out and prints the table.
    """
    from pocketear.evaluate.config import EvalConfig
    from pocketear.evaluate.runner import evaluate
    from pocketear.evaluate.suites import resolve_suite
    from pocketear.registry import available

    options = {}
    if args.suite not in available("suite"):
        options = {"label": args.label, "group": args.group}
    suite = resolve_suite(args.suite, **options)
    config = EvalConfig(
        probes=_names(args.probes), shots=args.shots, seeds=args.seeds,
        baselines=args.baselines, supervised=not args.no_supervised, data_dir=args.data_dir,
        fine_tune=args.fine_tune,
        progress=not args.no_progress, cache_dir=args.cache_dir, workers=args.workers,
        echo=True, views=_names(args.views))
    evaluate(args.checkpoints, suite, args.out, config)
    print(f"results: {args.out / 'results.json'}  (pocketear report {args.out})")
    return 0


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, metavar="EVAL_OR_RUN_DIR",
                   help="an evaluation folder (results.json) or a run folder")


@command("report", _report_args)
def _report(args: argparse.Namespace) -> int:
    """Write a self-contained report.html (figures inline) for an evaluation or a run.

    Training curves, per-task bars with error bars for each method and baseline, confusion
    matrices and 2-D maps of the embeddings coloured by label.
    """
    from pocketear.evaluate.report import write_report

    print(f"wrote {write_report(args.path)}")
    return 0


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("eval_dirs", nargs="+", type=Path, metavar="EVAL_DIR",
                   help="evaluation folders (or run folders holding eval*/) of one suite")
    p.add_argument("--csv", type=Path, help="also write the comparison as CSV here")


@command("compare", _compare_args)
def _compare(args: argparse.Namespace) -> int:
    """One table across evaluations: methods x tasks, baselines included."""
    from pocketear.evaluate.compare import write_compare

    print(write_compare(args.eval_dirs, args.csv))
    return 0
