"""Small from big: once-for-all distilled students vs the same sizes pretrained directly.

Usage::

    .venv/bin/python benchmarks/distill.py --suite fsdd --fsdd ../shared/data/fsdd \
        --out out/distill_fsdd [--teacher RUN] [--steps 1800] [--budgets 0.1,0.25,0.5]
    .venv/bin/python benchmarks/distill.py --suite arabic-commands \
        --arabic /work/data/arabic-prepared --out out/distill_arabic ...
    .venv/bin/python benchmarks/distill.py --suite synthetic --out out/distill_synthetic \
        --synthetic-dir out/bench_multitask ...

Per suite, on its training audio (no labels; 10 % of the clips held out, seeded, for the subnet
search):

1. the **teacher**: ``--teacher RUN`` or ``--teacher-task`` on ``--teacher-encoder`` for
   ``--teacher-steps`` (default SLICER on ``mobile_100``);
2. a **once-for-all student**: ``distill`` of the teacher into ``kwt_super`` (``--space``) for
   ``--steps`` steps, sandwich rule (largest, smallest, one random subnet per step);
3. for each budget (a fraction of the teacher's multiply-adds per second of audio),
   ``pocketear subnet --macs-budget`` picks the subnet with the lowest distillation loss on the
   held-out clips and writes it as a standalone KWT (**distilled** students);
4. the **same KWT sizes pretrained directly** with ``--direct-task`` for the same ``--steps``
   steps and batch (**direct** students); ``--plain ENCODERS`` adds fixed-size students (e.g.
   ``mobile_tiny``) distilled on their own and pretrained directly, the same steps;
5. one ``evaluate`` call (frozen linear probe, ``--seeds`` seeds, logmel-stats and random-init
   baselines), then fp32 and int8 ONNX exports of every model (int8 calibrated on held-out
   clips): file size and single-window latency (0.96 s, 1 thread, median of ``--repeats``).

``OUT/results.json`` is rewritten after every stage (the runs are reused when present);
``OUT/pareto.png`` plots the average accuracy against MACs per second. Short-clip suites
(fsdd, arabic-commands) use the short-clip slice settings of ``benchmarks/fsdd.py``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, median, table, time_calls, write_json  # noqa: E402
from fsdd import SHORT_CLIPS  # noqa: E402

CLI = [sys.executable, "-m", "pocketear"]
SPACE = ["encoder.dims=16,32,48,64", "encoder.depths=2,4,6,8", "encoder.heads=1,2",
         "encoder.mlp_ratios=2,4", "encoder.head_dim=32"]


def suite_manifests(args: argparse.Namespace) -> tuple[Any, str, Path, Path]:
    """(suite manifest, data dir, pretraining manifest, held-out manifest) of ``--suite``."""
    from pocketear.evaluate.suite_arabic import ArabicCommandsSuite
    from pocketear.evaluate.suite_fsdd import FSDDSuite
    from pocketear.evaluate.suites import SyntheticSuite

    if args.suite == "synthetic":
        suite = SyntheticSuite(minutes=args.minutes)
        where = args.synthetic_dir or args.out
        suite.tasks(where, progress=True)
        manifest, data_dir, keep = suite.folder(where) / "manifest.csv", str(where), (
            "kind", "longform")
    else:
        suite = (FSDDSuite(args.fsdd) if args.suite == "fsdd"
                 else ArabicCommandsSuite(args.arabic))
        manifest = suite.manifest(None, progress=True)
        data_dir, keep = (args.fsdd if args.suite == "fsdd" else args.arabic), ("split", "train")
    with open(manifest, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get(keep[0]) == keep[1]]
    base = Path(manifest).parent
    for r in rows:  # absolute paths: the new manifests live in OUT
        r["path"] = str((base / r["path"]).resolve())
    held = set(np.random.default_rng(0).permutation(len(rows))[: max(1, len(rows) // 10)])
    parts = {"pretrain": [r for i, r in enumerate(rows) if i not in held],
             "heldout": [rows[i] for i in sorted(held)]}
    paths = []
    for name, part in parts.items():
        path = args.out / f"{name}.csv"
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(part)
        paths.append(path)
    return manifest, data_dir, paths[0], paths[1]


def pretrain(out: Path, task: str, encoder: str, data: Path, steps: int, sets: list[str]) -> None:
    """``pocketear pretrain`` into ``out`` unless it finished before; an interrupted one resumes."""
    if (out / "summary.json").is_file():
        return
    if (out / "checkpoints" / "last.pt").is_file():
        subprocess.run([*CLI, "pretrain", "--resume", "--out", str(out), "--steps", str(steps),
                        "--no-progress"], check=True)
        return
    flags = [a for s in sets for a in ("--set", s)]
    subprocess.run([*CLI, "pretrain", "--task", task, "--encoder", encoder, "--data", str(data),
                    "--steps", str(steps), *flags, "--out", str(out), "--no-progress"],
                   check=True)


def onnx_figures(run: Path, out: Path, calibration: Path, repeats: int) -> dict[str, Any]:
    """ONNX fp32 and int8 file size and single-window latency (0.96 s, 1 thread) of ``run``.

    Int8 is written even when its embeddings fall below the export's cosine limit (``force``;
    the minimum cosine to fp32 is reported); a model too small to quantise (no layer of 4,096
    weights) has no int8 figures.
    """
    from pocketear.export import ExportError, OnnxEmbedder, export_onnx

    wave = np.random.default_rng(0).uniform(-0.5, 0.5, 15_600).astype(np.float32)
    res: dict[str, Any] = {}
    for kind in ("fp32", "int8"):
        try:
            rep = export_onnx(run, out.with_suffix(f".{kind}.onnx"), int8=kind == "int8",
                              calibration=calibration, force=True, verbose=False)
        except ExportError as err:
            res[f"{kind}_error"] = str(err).split(": ", 1)[-1][:120]
            continue
        emb = OnnxEmbedder(rep["path"], threads=1)
        res[f"{kind}_bytes"] = rep["bytes"]
        res[f"{kind}_ms"] = 1e3 * median(time_calls(lambda e=emb: e.embed(wave), repeats, 3))
        if kind == "int8":
            res["int8_min_cosine"] = rep["parity_int8"]["min_cosine"]
    return res


def scores(evaluation: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Method → {task: mean accuracy (linear probe, clip view, all labels), "avg": mean}."""
    out: dict[str, dict[str, float]] = {}
    for r in evaluation["results"]:
        if r["probe"] == "linear" and r["view"] == "clip" and r["shots"] is None:
            out.setdefault(r["method"], {})[r["task"]] = 100 * r["mean"]
    for per in out.values():
        per["avg"] = float(np.mean([v for k, v in per.items() if k != "avg"]))
    return out


def pareto_plot(rows: list[dict[str, Any]], baselines: dict[str, float], path: Path,
                title: str) -> None:
    """Average accuracy vs multiply-adds per second, one series per kind of model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6, 4))
    kinds = dict.fromkeys(r["kind"] for r in rows)
    for kind, marker in zip(kinds, "*osD^v<>", strict=False):
        mine = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["macs_per_second"])
        ax.plot([r["macs_per_second"] / 1e6 for r in mine], [r["avg"] for r in mine],
                marker=marker, label=kind, linestyle="-" if len(mine) > 1 else "none")
    for name, value in baselines.items():
        ax.axhline(value, linestyle=":", color="grey")
        ax.text(0.01, value, f" {name}", transform=ax.get_yaxis_transform(), fontsize=7,
                color="grey", va="bottom")
    ax.set_xscale("log")
    for axis in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
        axis(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.set_xlabel("M multiply-adds per second of audio")
    ax.set_ylabel("average accuracy (%)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    """Teacher, supernet, subnets, direct students, evaluation, int8 figures, Pareto plot."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suite", default="fsdd", choices=("fsdd", "arabic-commands", "synthetic"))
    p.add_argument("--fsdd", default="../shared/data/fsdd")
    p.add_argument("--arabic", help="Arabic Speech Commands: folder, zip or prepared manifest")
    p.add_argument("--minutes", type=float, default=30, help="synthetic suite: minutes")
    p.add_argument("--synthetic-dir", type=Path,
                   help="synthetic suite: where its corpus is (or is made; default --out)")
    p.add_argument("--out", type=Path, default=Path("out/distill"))
    p.add_argument("--teacher", type=Path, help="an existing teacher run (default: pretrain one)")
    p.add_argument("--teacher-task", default="slicer")
    p.add_argument("--teacher-encoder", default="mobile_100")
    p.add_argument("--teacher-steps", type=int, default=1800)
    p.add_argument("--steps", type=int, default=1800, help="student steps (both kinds)")
    p.add_argument("--direct-task", default="slicer")
    p.add_argument("--budgets", default="0.1,0.25,0.5",
                   help="student budgets, fractions of the teacher's MACs per second")
    p.add_argument("--plain", default="",
                   help="encoders (comma-separated, e.g. mobile_tiny) also distilled on their "
                        "own (no supernet) and pretrained directly")
    p.add_argument("--distill-set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra --set of the distillation runs (e.g. task.teacher_frames=readout)")
    p.add_argument("--seed", type=int, default=0, help="pretraining seed of the students")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seeds", type=int, default=3, help="probe seeds of the evaluation")
    p.add_argument("--repeats", type=int, default=20, help="latency repeats")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from pocketear.model import load

    manifest, data_dir, train, heldout = suite_manifests(args)
    short = args.suite != "synthetic"
    common = [f"optim.batch_size={args.batch}", "train.threads=1", f"train.seed={args.seed}"]
    res: dict[str, Any] = {"machine": machine_info(), "suite": args.suite,
                           "settings": {k: str(v) for k, v in vars(args).items()}}
    path, runs = args.out / "results.json", args.out / "runs"
    teacher = args.teacher or runs / "teacher"
    if args.teacher is None:
        pretrain(teacher, args.teacher_task, args.teacher_encoder, train, args.teacher_steps,
                 [*common, *(SHORT_CLIPS.get(args.teacher_task, []) if short else [])])
    teacher_macs = load(teacher).encoder.macs_per_second()
    supernet = runs / "supernet"
    t0 = time.perf_counter()
    pretrain(supernet, "distill", "kwt_super", train, args.steps,
             [*common, *SPACE, f"task.teacher={teacher.resolve()}", *args.distill_set,
              *(["task.slice_frames=32", "task.max_pad_fraction=0.5"] if short else [])])
    res["supernet_wall_s"] = time.perf_counter() - t0
    write_json(path, res)
    students: dict[str, Path] = {}
    for frac in args.budgets.split(","):
        out = runs / f"distilled-{frac}"
        if not (out / "subnet.json").is_file():
            subprocess.run([*CLI, "subnet", str(supernet), "--macs-budget",
                            str(float(frac) * teacher_macs), "--data", str(heldout),
                            "--out", str(out), "--no-progress"], check=True)
        students[f"distilled-{frac}"] = out
        options = json.loads((out / "subnet.json").read_text())
        sub = load(out).config["encoder"]
        direct = runs / ("direct-" + options["subnet"].replace(",", "-").replace("=", ""))
        pretrain(direct, args.direct_task, "kwt1", train, args.steps,
                 [*common, *(SHORT_CLIPS.get(args.direct_task, []) if short else []),
                  *(f"encoder.{k}={v}" for k, v in sub.items() if k not in ("name", "readout"))])
        students[f"direct-{frac}"] = direct
        res.setdefault("subnets", {})[frac] = {k: options[k] for k in
                                               ("subnet", "params", "macs_per_second")}
        write_json(path, res)
    for enc in filter(None, args.plain.split(",")):  # fixed-size students, both ways
        students[f"distilled-{enc}"] = runs / f"distilled-{enc}"
        pretrain(runs / f"distilled-{enc}", "distill", enc, train, args.steps,
                 [*common, f"task.teacher={teacher.resolve()}", *args.distill_set,
                  *(["task.slice_frames=32", "task.max_pad_fraction=0.5"] if short else [])])
        students[f"direct-{enc}"] = runs / f"direct-{enc}"
        pretrain(runs / f"direct-{enc}", args.direct_task, enc, train, args.steps,
                 [*common, *(SHORT_CLIPS.get(args.direct_task, []) if short else [])])
    models = {"teacher": teacher, **students}
    evaluation = args.out / "eval"
    done = evaluation / "results.json"
    if done.is_file() and {str(Path(m["run_dir"]).resolve()) for m in json.loads(
            done.read_text())["methods"].values() if m.get("run_dir")} != {
                str(Path(r).resolve()) for r in models.values()}:
        done.unlink()  # another set of models: evaluate them all again, in one call
    if not done.is_file():
        subprocess.run([*CLI, "evaluate", *map(str, models.values()), "--suite", args.suite,
                        "--data-dir", data_dir, "--baselines", "--no-supervised",
                        "--seeds", str(args.seeds), "--out", str(evaluation)], check=True,
                       env={**os.environ, "POCKETEAR_SYNTH_MINUTES": str(args.minutes)})
    ev = json.loads((evaluation / "results.json").read_text())
    by_run = {str(Path(m["run_dir"]).resolve()): name for name, m in ev["methods"].items()
              if m.get("run_dir")}
    acc = scores(ev)
    rows = []
    for name, run in models.items():
        pre = load(run)
        kind, _, size = name.partition("-")
        row = {"model": name, "kind": kind if size[:1] in ("", "0", "1") else f"{kind} {size}",
               "encoder": pre.config["encoder"]["name"], "params": pre.encoder.params,
               "macs_per_second": pre.encoder.macs_per_second(),
               **acc[by_run[str(Path(run).resolve())]]}
        row |= onnx_figures(run, args.out / "onnx" / f"{name}.onnx", heldout, args.repeats)
        rows.append(row)
        res["rows"] = rows
        write_json(path, res)
    res["baselines"] = {k: v for k, v in acc.items() if ev["methods"][k]["kind"] == "baseline"}
    res["teacher_macs_per_second"] = teacher_macs
    write_json(path, res)
    pareto_plot(rows, {k: v["avg"] for k, v in res["baselines"].items()},
                args.out / "pareto.png", f"{args.suite}: accuracy vs compute")
    tasks = [k for k in rows[0] if k in ev["tasks"]]
    def onnx(r: dict[str, Any], kind: str) -> list[str]:
        if f"{kind}_bytes" not in r:
            return ["-", "-"]
        return [f"{r[f'{kind}_bytes'] / 1e3:.0f}", f"{r[f'{kind}_ms']:.2f}"]

    print(table([[r["model"], f"{r['macs_per_second'] / 1e6:.2f}", f"{r['params']:,}",
                  *(f"{r[t]:.1f}" for t in tasks), f"{r['avg']:.1f}", *onnx(r, "fp32"),
                  *onnx(r, "int8")] for r in rows],
                ["model", "M MACs/s", "params", *tasks, "avg", "fp32 KB", "fp32 ms",
                 "int8 KB", "int8 ms"]))
    print(f"wrote {path} and {args.out / 'pareto.png'}")


if __name__ == "__main__":
    main()
