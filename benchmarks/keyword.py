"""Label-deficient keyword spotting (issue 8): data2vec-pretrained KWT vs training from scratch.

data2vec pretraining of KWT on unlabeled audio, then fine-tuning / linear probing with few
labels, against the same model trained from scratch on the same labels (the setting of Bovbjerg
& Tan, "Improving label-deficient keyword spotting through self-supervised pretraining", arXiv
2210.01703, 2022; results in ``docs/benchmarks.md`` §7.2).

Usage::

    nice -n 10 .venv/bin/python benchmarks/keyword.py --data ../shared/data/fsdd \
        --out out/keyword [--sizes kwt1,kwt2,kwt3] [--seeds 3] [--steps kwt1=300,...]
    nice -n 10 .venv/bin/python benchmarks/keyword.py --dataset arabic-commands \
        --data PATH_TO_ARABIC_SPEECH_COMMANDS --out out/keyword_arabic [...]

Protocol, after Bovbjerg & Tan 2022 (pretrain on the unlabelled part, fine-tune on a labelled
20 %), on FSDD digits (the 10 digits stand in for keywords; ``Speech Commands`` works the same
way from a manifest with ``digit``/``split`` columns replaced — not run here, no copy on this
machine):

1. Pretrain ``data2vec`` (v1: masked frames replaced by the mask token, EMA teacher, top-8
   layer average targets) on the **audio of the official train split, without labels**, once
   per KWT size (seed 0). Clips are ~0.25–0.66 s, so models use 64-frame windows
   (``encoder.input_frames=64``); the budget per size is ``--steps`` (scaled so the whole
   benchmark fits ~25 min on 2 shared cores: the papers pretrain for 10^5 updates, we do
   10^2). The teacher's EMA is shortened accordingly (τ 0.99 → 0.999 over the run instead of
   0.999 → 0.9999 over tens of thousands of updates): at τ ≥ 0.999 a few hundred updates
   would leave the teacher almost at its random initialisation.
2. Label settings, each drawn per seed: ``20%`` (a class-stratified 20 % of the train clips)
   and ``k-shot`` (``--shots`` clips per digit). Test: the official test split (300 clips).
3. For each seed and setting: **fine-tune** the pretrained encoder + a linear head end to end
   vs the same architecture **from scratch** (random init with that seed), identical budget
   (``pocketear.evaluate.baselines.train_end_to_end``: random crops, Adam, fixed steps, no
   validation split, as the fsdd suite); and a **linear probe** (logistic regression on frozen
   embeddings) of the pretrained vs the random-init encoder. With several ``--ft-lr``
   candidates, each method and seed fine-tunes at every one and reports the test accuracy at
   the lr that scores best on ``--valid-per-class`` labelled train clips outside the label
   subset (the test split never chooses).

``--dataset arabic-commands``: the same comparison on Arabic Speech Commands (40 keywords, the
``arabic-commands`` suite, official speaker-disjoint split), closer to the paper's protocol:
the training speakers' clips are cut once (``--split-seed``) per speaker and keyword into 80 %
unlabelled, the only audio data2vec pretrains on, and 20 % labelled
(:func:`~pocketear.evaluate.suite_arabic.label_deficient_split`); the official valid speakers
are not used. With several ``--ft-lr`` candidates, whole speakers holding ``--lr-valid`` of the
labelled part are held out to choose the lr (never the test split) and the rest is the ``20%``
setting (the same labels every seed; a seed changes the head, the random init and the
batches); the ``k-shot`` setting draws ``--shots`` clips per keyword from it per seed. Windows
of 96 frames (the clips are 1 s). Test: the official test speakers (2,400 clips).

``--task wav2vec2`` / ``wav2vec_c`` pretrains that masked task instead of data2vec, at the same
budget and with everything else alike (issue 18: the quantised-target family beside data2vec);
its runs are ``OUT/pretrain_TASK_SIZE``.

Writes ``OUT/keyword.json`` and prints a table (mean ± std over seeds).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, table, write_json  # noqa: E402

from pocketear.data.corpus import Corpus  # noqa: E402
from pocketear.evaluate import baselines as bl  # noqa: E402
from pocketear.evaluate.features import logmels, normaliser  # noqa: E402
from pocketear.evaluate.probes import LinearProbe, Segments  # noqa: E402
from pocketear.evaluate.splits import carve_valid  # noqa: E402
from pocketear.evaluate.suite_arabic import (  # noqa: E402
    ArabicCommandsSuite,
    label_deficient_split,
)
from pocketear.evaluate.suite_fsdd import FSDDSuite  # noqa: E402
from pocketear.model import Pretrained, load  # noqa: E402
from pocketear.train.config import load_config  # noqa: E402
from pocketear.train.loop import pretrain  # noqa: E402

FRAMES = {"fsdd": 64, "arabic-commands": 96}
DEFAULT_DATA = {"fsdd": "../shared/data/fsdd", "arabic-commands": None}
DEFAULT_STEPS = {"kwt1": 1000, "kwt2": 250, "kwt3": 100}
DEFAULT_FT = {"kwt1": 200, "kwt2": 100, "kwt3": 50}
# Per pretext task: its run-length-dependent settings (data2vec's EMA, shortened as above).
TASK_SETS = {
    "data2vec": lambda steps: [f"task.anneal_steps={steps}", "task.ema_start=0.99",
                               "task.ema_end=0.999"],
    "wav2vec2": lambda steps: [],
    "wav2vec_c": lambda steps: [],
}


def parse_sizes(spec: str, default: dict[str, int]) -> dict[str, int]:
    """``"kwt1=300,kwt2=100"`` over ``default``: the per-size values of an option."""
    out = dict(default)
    for part in filter(None, spec.split(",")):
        k, v = part.split("=")
        out[k] = int(v)
    return out


@dataclass
class KeywordData:
    """One dataset as the protocol uses it.

    Attributes:
        corpus: the clips (row ``i`` has class id ``y[i]``).
        pretrain: manifest whose ``split=train`` rows are the unlabelled pretraining audio.
        y: class id of every clip.
        n_classes: number of classes.
        pool: the labelled clips the label settings draw from.
        test: the test clips.
        valid: fixed clips choosing the fine-tuning lr, or None (drawn per seed outside the
            label subset, ``--valid-per-class``).
        fixed_labels: the percentage setting is all of ``pool`` (else a per-seed fraction).
        frames: the models' window in frames.
        info: sizes of the parts, for the JSON.
    """

    corpus: Corpus
    pretrain: Path
    y: np.ndarray
    n_classes: int
    pool: np.ndarray
    test: np.ndarray
    valid: np.ndarray | None
    fixed_labels: bool
    frames: int
    info: dict[str, Any]


def fsdd_data(source: str) -> KeywordData:
    """FSDD: pretrain on the official train split, labels drawn from it per seed."""
    manifest = FSDDSuite(source).manifest(progress=True)
    corpus = Corpus.open(manifest)
    y = np.asarray([int(d) for d in corpus.column("digit")])
    split = np.asarray(corpus.column("split"))
    train_all, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    return KeywordData(corpus, manifest, y, 10, train_all, test, None, False, FRAMES["fsdd"],
                       {"n_train_clips": int(len(train_all)), "n_test": int(len(test))})


def write_pretrain_manifest(path: Path, corpus: Corpus, idx: np.ndarray) -> Path:
    """``path,split`` of the clips ``idx`` (split ``train``, no label column)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "split"])
        writer.writerows([corpus[int(i)].path, "train"] for i in idx)
    return path


def arabic_data(source: str | None, out: Path, fraction: float, split_seed: int,
                lr_valid: float | None) -> KeywordData:
    """Arabic Speech Commands: the 80/20 split of the train speakers' clips, official test.

    ``lr_valid``: fraction of the labelled part, whole speakers, held out to choose the
    fine-tuning lr (None: all of it is labels).
    """
    corpus = Corpus.open(ArabicCommandsSuite(source).manifest(progress=True))
    corpus = corpus.filter(split=["train", "test"])  # the official valid speakers: unused
    classes = sorted(set(corpus.column("label")))
    y = np.asarray([classes.index(v) for v in corpus.column("label")])
    split, speakers = corpus.column("split"), corpus.column("speaker")
    unlabelled, labelled = label_deficient_split(split, speakers, corpus.column("label"),
                                                 fraction, split_seed)
    valid = None
    if lr_valid:
        valid, _ = carve_valid(y, labelled, speakers, lr_valid, split_seed)
    pool = labelled if valid is None else np.setdiff1d(labelled, valid)
    test = np.flatnonzero(np.asarray(split) == "test")
    manifest = write_pretrain_manifest(out / "pretrain_unlabelled.csv", corpus, unlabelled)
    return KeywordData(corpus, manifest, y, len(classes), pool, test, valid, True,
                       FRAMES["arabic-commands"], {
                           "n_train_clips": int(len(unlabelled) + len(labelled)),
                           "n_unlabelled": int(len(unlabelled)),
                           "n_labelled": int(len(labelled)), "n_label_pool": int(len(pool)),
                           "n_lr_valid": 0 if valid is None else int(len(valid)),
                           "lr_valid_speakers": [] if valid is None else
                           sorted({speakers[i] for i in valid}),
                           "n_test": int(len(test)), "classes": classes})


def pretrain_size(size: str, manifest: Path, out: Path, steps: int, batch: int,
                  lr: float, frames: int = FRAMES["fsdd"], task: str = "data2vec"
                  ) -> tuple[Path, dict[str, Any]]:
    """Pretrain ``task`` on one KWT size (or reuse a finished run); returns (run, summary)."""
    run = out / (f"pretrain_{size}" if task == "data2vec" else f"pretrain_{task}_{size}")
    if (run / "summary.json").is_file():
        return run, json.loads((run / "summary.json").read_text())
    cfg = load_config(None, [
        f"task.name={task}", f"task.slice_frames={frames}", *TASK_SETS[task](steps),
        f"encoder.name={size}", f"encoder.input_frames={frames}",
        f"data.source={manifest}", "data.where.split=train", f"data.cache_dir={out / '.cache'}",
        f"train.steps={steps}", "train.seed=0", f"train.threads={torch.get_num_threads()}",
        "train.log_every=10", "train.monitor_every=50",
        f"train.ckpt_every={10 * steps}", f"optim.batch_size={batch}", f"optim.lr={lr}",
        f"optim.warmup_steps={max(1, steps // 10)}", "optim.weight_decay=0.01",
    ])
    return run, pretrain(cfg, run, progress=True)


def stratified(y: np.ndarray, idx: np.ndarray, rng: np.random.Generator,
               fraction: float | None = None, shots: int | None = None) -> np.ndarray:
    """A class-stratified subset of ``idx``: ``fraction`` of each class or ``shots`` per class."""
    picked = []
    for c in np.unique(y[idx]):
        members = idx[y[idx] == c]
        n = shots if shots is not None else max(1, round(fraction * len(members)))
        picked.append(rng.choice(members, size=min(n, len(members)), replace=False))
    return np.sort(np.concatenate(picked))


def segments(model: Pretrained, clips: list[np.ndarray], idx: np.ndarray,
             y: np.ndarray) -> Segments:
    """Window embeddings of clips ``idx`` with their owners and labels, as a probe takes them."""
    embs = model.embed_clips([torch.from_numpy(clips[i]) for i in idx])
    owner = np.repeat(np.arange(len(idx)), [len(e) for e in embs])
    return Segments(np.concatenate(embs), owner, y[idx])


def probe_acc(model: Pretrained, clips: list[np.ndarray], y: np.ndarray, train: np.ndarray,
              test: np.ndarray, seed: int, n_classes: int = 10) -> float:
    """Test accuracy of a linear probe on the frozen embeddings of ``model``."""
    probe = LinearProbe().fit(segments(model, clips, train, y), None, n_classes, seed)
    return probe.accuracy(segments(model, clips, test, y))


def finetune_acc(encoder: torch.nn.Module, clips: list[np.ndarray], y: np.ndarray,
                 train: np.ndarray, test: np.ndarray, seed: int, steps: int,
                 lr: float, valid: np.ndarray | None = None,
                 n_classes: int = 10) -> tuple[float, float]:
    """Test accuracy after fine-tuning, and validation accuracy (NaN without ``valid``)."""
    budget = bl.TrainBudget(steps=steps, epochs=0.0, max_steps=steps, batch_size=16, lr=lr,
                            max_seconds=1e9)
    model, _ = bl.train_end_to_end(encoder, clips, y, train, np.array([], dtype=np.int64),
                                   n_classes, seed, budget)

    def acc(idx: np.ndarray) -> float:
        return float((bl.predict_clips(model, clips, idx).argmax(1) == y[idx]).mean())

    return acc(test), acc(valid) if valid is not None and len(valid) else float("nan")


def finetune_selected(encoder: torch.nn.Module, clips: list[np.ndarray], y: np.ndarray,
                      train: np.ndarray, test: np.ndarray, valid: np.ndarray, seed: int,
                      steps: int, lrs: list[float], n_classes: int = 10) -> tuple[float, float]:
    """Fine-tune at every candidate lr; returns the test accuracy at the best lr, and that lr.

    The best lr is the one with the best accuracy on ``valid`` (labelled train clips outside
    ``train``, never the test split).
    """
    if len(lrs) == 1:
        return finetune_acc(copy.deepcopy(encoder), clips, y, train, test, seed, steps,
                            lrs[0], n_classes=n_classes)[0], lrs[0]
    runs = [finetune_acc(copy.deepcopy(encoder), clips, y, train, test, seed, steps, lr, valid,
                         n_classes) for lr in lrs]
    best = int(np.argmax([v for _, v in runs]))  # first of equals: the earlier lr
    return runs[best][0], lrs[best]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Pretrain per KWT size, fine-tune and probe per seed and label setting; returns the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=sorted(FRAMES), default="fsdd",
                    help="fsdd (default) or arabic-commands (Arabic Speech Commands, the 80/20 "
                         "protocol of data2vec-KWS)")
    ap.add_argument("--data", default=None,
                    help="the dataset's folder, archive or prepared manifest (default: "
                         "../shared/data/fsdd for fsdd; for arabic-commands the "
                         "POCKETEAR_ARABIC_COMMANDS environment variable)")
    ap.add_argument("--out", type=Path, default=None,
                    help="default out/keyword (fsdd), out/keyword_arabic (arabic-commands)")
    ap.add_argument("--task", choices=sorted(TASK_SETS), default="data2vec",
                    help="the masked pretext task to pretrain (default data2vec)")
    ap.add_argument("--sizes", default="kwt1,kwt2,kwt3")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--shots", type=int, default=5)
    ap.add_argument("--fraction", type=float, default=0.2,
                    help="labelled share (fsdd: of the train clips per seed; arabic-commands: "
                         "of each train speaker's clips of each keyword, once)")
    ap.add_argument("--split-seed", type=int, default=0,
                    help="arabic-commands: seed of the unlabelled/labelled split and of the lr "
                         "speakers")
    ap.add_argument("--lr-valid", type=float, default=0.2,
                    help="arabic-commands, with several --ft-lr: share of the labelled part "
                         "(whole speakers) held out to choose the lr")
    ap.add_argument("--steps", default="", help="pretraining steps per size, e.g. kwt1=300")
    ap.add_argument("--ft-steps", default="", help="fine-tuning steps per size, e.g. kwt1=120")
    ap.add_argument("--kshot-finetune", default="kwt1,kwt2,kwt3",
                    help="sizes whose k-shot setting is also fine-tuned (others: probes only)")
    ap.add_argument("--batch", default="", help="pretraining batch per size, e.g. kwt1=32 "
                    "(default 32)")
    ap.add_argument("--lr", type=float, default=1e-3, help="pretraining learning rate")
    ap.add_argument("--ft-lr", default="1e-3",
                    help="fine-tuning learning rate, or comma-separated candidates chosen per "
                         "method and seed on a validation draw (--valid-per-class)")
    ap.add_argument("--valid-per-class", type=int, default=30,
                    help="fsdd: labelled train clips per digit, outside the label subset, that "
                         "pick the fine-tuning lr among several --ft-lr (never the test split)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: stable on a shared 2-core machine)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    lrs = [float(v) for v in args.ft_lr.split(",") if v]
    steps, ft_steps = parse_sizes(args.steps, DEFAULT_STEPS), parse_sizes(args.ft_steps,
                                                                         DEFAULT_FT)
    t_start = time.perf_counter()
    if args.out is None:
        args.out = Path("out/keyword" if args.dataset == "fsdd" else "out/keyword_arabic")
    args.out.mkdir(parents=True, exist_ok=True)
    source = args.data or DEFAULT_DATA[args.dataset]
    data = fsdd_data(source) if args.dataset == "fsdd" else arabic_data(
        source, args.out, args.fraction, args.split_seed, args.lr_valid if len(lrs) > 1 else None)
    corpus, y, n_classes = data.corpus, data.y, data.n_classes
    train_all, test = data.pool, data.test
    res: dict[str, Any] = {"machine": machine_info(), "args": {k: str(v) for k, v in
                                                              vars(args).items()},
                           "dataset": args.dataset, "task": args.task, "frames": data.frames,
                           "sizes": {}}
    if args.dataset != "fsdd":
        res["split"] = data.info
    for size in args.sizes.split(","):
        t0 = time.perf_counter()
        batch = parse_sizes(args.batch, {size: 32})[size]
        run, summary = pretrain_size(size, data.pretrain, args.out, steps[size], batch, args.lr,
                                     data.frames, args.task)
        pre = load(run)
        t_pre = time.perf_counter() - t0
        cache = logmels(corpus, args.out / ".emb_cache", pre.frontend.cfg, progress=False)
        mean, std = normaliser(pre)
        items = np.asarray([e["item"] for e in cache.index["entries"]])
        clips_by_item = {int(it): ((cache[i] - mean) / std).astype(np.float32)
                         for i, it in enumerate(items)}
        clips = [clips_by_item[i] for i in range(len(corpus))]
        rows: dict[str, dict[str, list[float]]] = {}
        for setting in (f"{round(100 * args.fraction)}%", f"{args.shots}-shot"):
            acc: dict[str, list[float]] = {k: [] for k in ("scratch", "finetune", "probe_random",
                                                           "probe_pretrained")}
            for seed in range(args.seeds):
                rng = np.random.default_rng([seed, 8])
                if not setting.endswith("%"):
                    train = stratified(y, train_all, rng, shots=args.shots)
                else:
                    train = train_all if data.fixed_labels else \
                        stratified(y, train_all, rng, fraction=args.fraction)
                rand = bl.random_init(pre, seed)
                acc["probe_random"].append(probe_acc(rand, clips, y, train, test, seed,
                                                     n_classes))
                acc["probe_pretrained"].append(probe_acc(pre, clips, y, train, test, seed,
                                                         n_classes))
                if setting.endswith("%") or size in args.kshot_finetune.split(","):
                    if len(lrs) == 1:  # nothing to choose
                        valid = np.zeros(0, np.int64)
                    elif data.valid is not None:
                        valid = data.valid
                    else:
                        valid = stratified(y, np.setdiff1d(train_all, train),
                                           np.random.default_rng([seed, 9]),
                                           shots=args.valid_per_class)
                    for key, enc in (("scratch", rand.encoder), ("finetune", pre.encoder)):
                        a, lr = finetune_selected(enc, clips, y, train, test, valid, seed,
                                                  ft_steps[size], lrs, n_classes)
                        acc[key].append(a)
                        acc.setdefault(f"{key}_lr", []).append(lr)
                print(f"{size} {setting} seed {seed}: " + ", ".join(
                    f"{k} {v[-1]:.3g}" for k, v in acc.items() if v), flush=True)
            rows[setting] = acc
        res["sizes"][size] = {"params": int(pre.encoder.params), "pretrain_batch": batch,
                              "pretrain_steps": steps[size], "finetune_steps": ft_steps[size],
                              "pretrain_seconds": t_pre,
                              "pretrain_final": summary.get("final", {}),
                              "seconds": time.perf_counter() - t0, "results": rows,
                              "n_train_clips": data.info["n_train_clips"],
                              "n_test": int(len(test))}
        write_json(args.out / "keyword.json", res)
    res["seconds"] = time.perf_counter() - t_start
    write_json(args.out / "keyword.json", res)

    def ms(v: list[float]) -> str:
        return f"{100 * np.mean(v):.1f} ± {100 * np.std(v):.1f}" if v else "—"

    def delta(a: list[float], b: list[float]) -> str:
        return f"{100 * (np.mean(a) - np.mean(b)):+.1f}" if a and b else "—"

    out_rows = []
    for size, r in res["sizes"].items():
        for setting, a in r["results"].items():
            out_rows.append((size, setting, ms(a["scratch"]), ms(a["finetune"]),
                             delta(a["finetune"], a["scratch"]), ms(a["probe_random"]),
                             ms(a["probe_pretrained"]),
                             delta(a["probe_pretrained"], a["probe_random"])))
    print(table(out_rows, ["size", "labels", "scratch", f"{args.task} FT", "Δ FT",
                           "probe random", f"probe {args.task}", "Δ probe"]))
    return res


if __name__ == "__main__":
    main()
