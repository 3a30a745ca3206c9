"""``evaluate``: checkpoints and honest baselines on one suite, same splits, same seeds.

For every task of the suite: frozen embeddings of every method (cached on disk), probes trained
on the train split (model selection on valid) and scored on test at the clip level, for all
labels and for k-shot draws, over seeds ``0..n-1``; baselines measured in the same run. Writes
``results.json`` (schema in the module docstring of :mod:`pocketear.evaluate`), ``results.csv``
and ``table.txt``.
"""

from __future__ import annotations

import copy
import json
import os
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from pocketear.evaluate import baselines as bl
from pocketear.evaluate.features import (
    Embeddings,
    extract,
    group_standardise,
    logmels,
    normaliser,
)
from pocketear.evaluate.probes import Segments
from pocketear.evaluate.splits import VALID_FRACTION, kshot_indices
from pocketear.evaluate.suites import EvalTask, Suite, resolve_suite
from pocketear.evaluate.table import format_table, write_csv
from pocketear.evaluate.views import DEFAULT_VIEW, parse_view, probe_label
from pocketear.frontends.logmel import LogMelConfig
from pocketear.model import Pretrained, load
from pocketear.registry import available, create

FINE_TUNE = "fine-tune"
MAX_MAP_POINTS = 500


@dataclass
class Method:
    """One row of the tables: a checkpoint or a baseline."""

    name: str
    kind: str
    info: dict[str, Any]
    model: Pretrained | None = None


def _run_dir(checkpoint: Path) -> Path:
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" \
        else checkpoint.parent


def _load_methods(checkpoints: list[str], names: list[str] | None = None) -> list[Method]:
    if names is not None and len(names) != len(checkpoints):
        raise ValueError(f"{len(names)} names for {len(checkpoints)} checkpoints")
    taken = set(bl.BASELINES)
    out = []
    for i, ckpt in enumerate(checkpoints):
        model = load(ckpt)
        path = Path(model.source).resolve()
        base = names[i] if names else str(model.config.get("task", {}).get("name") or path.stem)
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        out.append(Method(name, "pretrained", {
            "kind": "pretrained", "checkpoint": str(path), "run_dir": str(_run_dir(path)),
            "encoder": model.config["encoder"]["name"], "params": int(model.encoder.params),
        }, model))
    return out


def _confusion(y: np.ndarray, pred: np.ndarray, n: int) -> list[list[int]]:
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (y, pred), 1)
    return m.tolist()


def _map2d(x: np.ndarray, labels: list[str]) -> dict[str, list]:
    """PCA of standardised clip embeddings to 2-D, at most ``MAX_MAP_POINTS`` points."""
    if len(x) > MAX_MAP_POINTS:
        keep = np.sort(np.random.default_rng(0).choice(len(x), MAX_MAP_POINTS, replace=False))
        x, labels = x[keep], [labels[i] for i in keep]
    x = x.astype(np.float64)
    x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-8)
    if len(x) >= 2:
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        xy = x @ vt[:2].T
    else:
        xy = np.zeros((len(x), 2))
    if xy.shape[1] < 2:
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    return {"x": [round(float(v), 5) for v in xy[:, 0]],
            "y": [round(float(v), 5) for v in xy[:, 1]], "labels": list(labels)}


class _TaskRun:
    """Everything measured on one task."""

    def __init__(self, task: EvalTask, ctx: dict[str, Any]) -> None:
        self.task, self.ctx = task, ctx
        self.rows: list[dict[str, Any]] = []
        self.confusion: dict[str, dict[str, Any]] = {}
        self.maps: dict[str, dict[str, list]] = {}

    # --- data -------------------------------------------------------------------------
    def prepare(self, methods: list[Method], reference: Pretrained | None) -> None:
        ctx, task = self.ctx, self.task
        cfg = reference.frontend.cfg if reference is not None else LogMelConfig()
        self.feats = logmels(task.corpus, ctx["cache_dir"], cfg, ctx["workers"], ctx["progress"])
        self.reference = reference or bl.default_reference(self.feats.mean, self.feats.std, cfg)
        self.views = [v for v in ctx["views"] if task.groups is not None or not parse_view(v)[1]]
        pools = sorted({parse_view(v)[0] for v in self.views})
        # (method, seed, parts, group_std) -> embeddings; seed 0 for all but random-init
        self.embs: dict[tuple[str, int, int, bool], Embeddings] = {}
        kw = {"workers": ctx["workers"], "progress": ctx["progress"]}
        for parts in pools:
            tag = f" seg{parts}" if parts else ""
            for m in methods:
                if m.model is not None:
                    self.embs[m.name, 0, parts, False] = extract(
                        m.model, task.corpus, ctx["cache_dir"], **kw, parts=parts,
                        desc=f"{m.name} {task.name}{tag}")
            if ctx["baselines"]:
                self.embs["logmel-stats", 0, parts, False] = bl.logmel_stats(self.feats, parts)
                for seed in range(ctx["seeds"]):
                    model = bl.random_init(self.reference, seed)
                    self.embs["random-init", seed, parts, False] = extract(
                        model, task.corpus, ctx["cache_dir"], **kw, parts=parts,
                        desc=f"random-init/{seed} {task.name}{tag}")
        present = set(range(len(task.corpus)))
        for e in self.embs.values():
            present &= set(e.items.tolist())
        present &= set(int(e["item"]) for e in self.feats.index["entries"])
        if len(present) < len(task.corpus):
            warnings.warn(f"task {task.name}: {len(task.corpus) - len(present)} undecodable "
                          "clip(s) left out for every method", stacklevel=2)
        self.rows_used = np.asarray(sorted(present), dtype=np.int64)
        self.used, self.carved = task.subset(self.rows_used), []
        if ctx["valid_fraction"]:  # the same carved valid for every method (with_valid)
            self.used, self.carved = self.used.with_valid(ctx["valid_fraction"])
        self.n_classes = len(task.classes)
        cls = {c: i for i, c in enumerate(task.classes)}
        self.y = np.asarray([cls[v] for v in self.used.labels], dtype=np.int64)
        self.folds = [tuple(self.used.indices(s, f) for s in ("train", "valid", "test"))
                      for f in range(len(self.used.splits))]
        self.test = self.folds[0][2]
        self.pos = {k: self._positions(e.items) for k, e in self.embs.items()}
        std_pools = {parse_view(v)[0] for v in self.views if parse_view(v)[1]}
        if self.used.groups is not None and std_pools:
            groups = np.asarray(self.used.groups)
            for (name, seed, parts, _), e in list(self.embs.items()):
                if parts not in std_pools:
                    continue
                g = np.full(len(e), "", dtype=object)  # the group of each of e's clips
                g[self.pos[name, seed, parts, False]] = groups
                self.embs[name, seed, parts, True] = group_standardise(e, g)
                self.pos[name, seed, parts, True] = self.pos[name, seed, parts, False]

    def _positions(self, items: np.ndarray) -> np.ndarray:
        where = {int(r): j for j, r in enumerate(items)}
        return np.asarray([where[int(r)] for r in self.rows_used], dtype=np.int64)

    def segments(self, key: tuple[str, int, int, bool], sel: np.ndarray) -> Segments:
        x, owner = self.embs[key].gather(self.pos[key][sel])
        return Segments(x, owner, self.y[sel])

    def clips(self, model: Pretrained) -> list[np.ndarray]:
        """Normalised log-mels of the used clips, for end-to-end training."""
        feats = logmels(self.task.corpus, self.ctx["cache_dir"], model.frontend.cfg,
                        self.ctx["workers"], False)
        where = {int(e["item"]): j for j, e in enumerate(feats.index["entries"])}
        mean, std = normaliser(model)
        return [(feats[where[int(r)]] - mean) / std for r in self.rows_used]

    def train_sel(self, train: np.ndarray, shots: int | None, seed: int) -> np.ndarray:
        return train if shots is None else kshot_indices(self.y, train, shots, seed)

    # --- measurements -----------------------------------------------------------------
    def record(self, method: str, probe: str, view: str, shots: int | None,
               values: list[float]) -> None:
        self.rows.append({
            "method": method, "task": self.task.name, "probe": probe_label(probe, view),
            "view": view, "shots": shots, "metric": "accuracy", "mean": float(np.mean(values)),
            "std": float(np.std(values)), "values": [float(v) for v in values]})

    def keep_confusion(self, method: str, probe: str, pred: np.ndarray) -> None:
        self.confusion[f"{method}/{self.task.name}/{probe}"] = {
            "labels": self.task.classes,
            "matrix": _confusion(self.y[self.test], pred, self.n_classes)}

    def probe_rows(self, method: str, probe_name: str, view: str, seeded: bool,
                   bar: tqdm) -> None:
        """One probe on one method's embeddings in one view, every shot setting and seed;
        each value is the mean test accuracy over the task's folds."""
        ctx = self.ctx
        for shots in ctx["shots_all"]:
            values, memo = [], None
            for seed in range(ctx["seeds"]):
                key = (method, seed if seeded else 0, *parse_view(view))
                if memo is not None and not (seeded or create("probe", probe_name).stochastic
                                             or shots is not None):
                    values.append(memo)  # identical data and a deterministic fit
                    bar.update()
                    continue
                accs = []
                for f, (train, valid, test) in enumerate(self.folds):
                    probe = create("probe", probe_name)
                    segs = self.segments(key, self.train_sel(train, shots, seed))
                    probe.fit(segs, self.segments(key, valid) if len(valid) else None,
                              self.n_classes, seed)
                    test_segs = self.segments(key, test)
                    pred = probe.predict_clips(test_segs).argmax(1)
                    accs.append(float((pred == test_segs.y).mean()))
                    if f == 0 and seed == 0 and shots is None:
                        self.keep_confusion(method, probe_label(probe_name, view), pred)
                values.append(float(np.mean(accs)))
                memo = values[-1]
                bar.update()
            self.record(method, probe_name, view, shots, values)

    def end_to_end(self, method: str, start: Pretrained, fresh: bool,
                   labels: list[tuple[str, str]], bar: tqdm) -> list[dict[str, Any]]:
        """Supervised (``fresh``: random init per seed) or fine-tuning runs, every fold; rows
        under each (probe, view) in ``labels`` (the same numbers, so every table shows the
        reference)."""
        clips, runs = self.clips(start), []
        budget = self.ctx["budget"]
        for shots in self.ctx["shots_all"]:
            values, chosen = [], None  # lr chosen by the grid, reused unless grid_every_run
            for seed in range(self.ctx["seeds"]):
                accs = []
                for f, (train, valid, test) in enumerate(self.folds):
                    def make(seed: int = seed) -> Any:
                        return (bl.random_init(start, seed).encoder if fresh
                                else copy.deepcopy(start.encoder))
                    reuse = chosen is not None and not budget.grid_every_run
                    model, info = bl.train_supervised(
                        make, clips, self.y, self.train_sel(train, shots, seed), valid,
                        self.n_classes, seed, budget, (chosen,) if reuse else None)
                    chosen = chosen if reuse else info.lr
                    pred = bl.predict_clips(model, clips, test).argmax(1)
                    accs.append(float((pred == self.y[test]).mean()))
                    runs.append({"method": method, "task": self.task.name, "shots": shots,
                                 "seed": seed, "fold": f, **info.summary(),
                                 "lr_from": "reused" if reuse else
                                 "grid" if info.grid else "fixed", "n_valid": len(valid),
                                 "test_acc": accs[-1]})
                    if f == 0 and seed == 0 and shots is None:
                        for probe, view in labels:
                            self.keep_confusion(method, probe_label(probe, view), pred)
                        self.maps[f"{method}/{self.task.name}"] = _map2d(
                            bl.embed_clips(model.encoder, clips, test),
                            [self.used.labels[i] for i in test])
                values.append(float(np.mean(accs)))
                bar.update()
            for probe, view in labels:
                self.record(method, probe, view, shots, values)
        return runs

    def embedding_maps(self) -> None:
        labels = [self.used.labels[i] for i in self.test]
        for (method, seed, parts, group_std), emb in self.embs.items():
            if seed == 0 and parts == 0 and not group_std:
                x = emb.clip_means(self.pos[method, seed, parts, group_std][self.test])
                self.maps[f"{method}/{self.task.name}"] = _map2d(x, labels)


def evaluate(
    checkpoints: list[str],
    suite: str | Suite,
    out: str | os.PathLike[str],
    probes: tuple[str, ...] | list[str] = ("linear",),
    shots: tuple[int, ...] | list[int] = (),
    seeds: int = 3,
    baselines: bool = True,
    data_dir: str | os.PathLike[str] | None = None,
    fine_tune: bool = False,
    progress: bool = True,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    suite_options: dict[str, Any] | None = None,
    workers: int = 2,
    budget: bl.TrainBudget | None = None,
    echo: bool | None = None,
    views: tuple[str, ...] | list[str] = (DEFAULT_VIEW,),
    names: list[str] | None = None,
    valid_fraction: float = VALID_FRACTION,
    supervised: bool = True,
) -> dict[str, Any]:
    """Evaluate checkpoints (files or run folders) on a suite against baselines.

    Args:
        checkpoints: checkpoint files or run folders; methods are named by their pretext task.
        suite: a registered suite name or a labelled manifest (``path,label[,split][,group]``).
        out: folder for results.json, results.csv and table.txt.
        probes: registered probe names (``linear``, ``mlp``, ``knn``).
        shots: k-shot settings run besides "all labels" (exactly k train clips per class).
        seeds: seeds 0..n-1 for probes, k-shot draws, random init and supervised training.
        baselines: also measure logmel-stats, random-init and supervised.
        supervised: with ``baselines``, also train the supervised baseline (the costly one;
            False for studies that only compare frozen read-outs).
        data_dir: where suites keep their data (default ``~/.cache/pocketear/suites``).
        fine_tune: also fine-tune each checkpoint end to end (probe name ``fine-tune``).
        progress: progress bars.
        cache_dir: embedding/log-mel cache (default ``out/../.emb_cache``).
        suite_options: keyword options of the suite (e.g. ``{"minutes": 0.5}``).
        workers: log-mel processes.
        budget: end-to-end training budget (supervised and fine-tuning).
        echo: print the table (default: ``progress``).
        views: label-free ways of reading the embeddings, each a separate set of rows applied
            to every method alike (see :func:`parse_view`): ``clip`` (default), ``seg3``,
            ``group-std`` (tasks with groups only), ``seg3+group-std``.
        names: method names of the checkpoints, in order (default: their pretext task, with
            ``-2``, ``-3`` … on repeats).
        valid_fraction: a split without valid clips gets this fraction of its train clips as
            valid (group-disjoint for unseen-group tasks; see :meth:`EvalTask.with_valid`),
            removed from train for every method alike; 0 leaves such splits without valid.

    Returns:
        The results dict written to ``out/results.json``.
    """
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    probes = list(dict.fromkeys(probes))
    known = available("probe")
    for p in probes:
        if p not in known:
            raise ValueError(f"unknown probe {p!r}; available: {', '.join(known)}")
    views = list(dict.fromkeys(views or [DEFAULT_VIEW]))
    for v in views:
        parse_view(v)
    shots = sorted({int(k) for k in shots})
    if any(k < 1 for k in shots) or seeds < 1:
        raise ValueError(f"shots must be ≥ 1 and seeds ≥ 1; got shots={shots}, seeds={seeds}")
    if not checkpoints and not baselines:
        raise ValueError("nothing to evaluate: pass a checkpoint or enable the baselines")
    suite_obj = resolve_suite(suite, **(suite_options or {}))
    ctx = {"cache_dir": Path(cache_dir) if cache_dir else out.resolve().parent / ".emb_cache",
           "workers": workers, "progress": progress, "baselines": baselines, "seeds": seeds,
           "shots_all": [None, *shots], "budget": budget or bl.TrainBudget(), "views": views,
           "valid_fraction": valid_fraction}
    methods = _load_methods([str(c) for c in checkpoints], names)
    tasks = suite_obj.tasks(data_dir, progress)
    reference = methods[0].model if methods else None
    supervised = baselines and supervised
    names = [m.name for m in methods] + [b for b in bl.BASELINES if baselines and
                                         (supervised or b != "supervised")]
    n_settings = len(ctx["shots_all"]) * seeds
    n_e2e = int(supervised) + (len(methods) if fine_tune else 0)
    all_rows, confusion, maps, summaries, runs = [], {}, {}, {}, []
    timing: dict[str, float] = {}
    for task in tasks:
        t_task = time.perf_counter()
        run = _TaskRun(task, ctx)
        run.prepare(methods, reference)
        t_prep = time.perf_counter()
        summaries[task.name] = {**run.used.summary(), "classes": task.classes,
                                **({"valid_carved": run.carved} if run.carved else {})}
        per_task = ((len(names) - int(supervised)) * len(probes) * len(run.views) + n_e2e) \
            * n_settings
        with tqdm(total=per_task, desc=f"evaluate {task.name}", unit="fit",
                  disable=not progress, leave=False) as bar:
            for view in run.views:
                for m in methods:
                    for p in probes:
                        run.probe_rows(m.name, p, view, False, bar)
                if baselines:
                    for p in probes:
                        run.probe_rows("logmel-stats", p, view, False, bar)
                        run.probe_rows("random-init", p, view, True, bar)
            if supervised:
                labels = [(p, v) for v in run.views for p in probes]
                labels += [(FINE_TUNE, DEFAULT_VIEW)] if fine_tune else []
                t_e2e = time.perf_counter()
                timing[f"{task.name}/probes"] = t_e2e - t_prep
                runs += run.end_to_end("supervised", run.reference, True, labels, bar)
                timing[f"{task.name}/supervised"] = time.perf_counter() - t_e2e
            if fine_tune:
                for m in methods:
                    assert m.model is not None
                    runs += run.end_to_end(m.name, m.model, False,
                                           [(FINE_TUNE, DEFAULT_VIEW)], bar)
        run.embedding_maps()
        all_rows += run.rows
        confusion.update(run.confusion)
        maps.update(run.maps)
        timing[task.name] = time.perf_counter() - t_task
        timing[f"{task.name}/embeddings"] = t_prep - t_task

    method_info = {m.name: m.info for m in methods}
    if baselines:
        enc_name = reference.config["encoder"]["name"] if reference else bl.DEFAULT_ENCODER
        enc_params = int((reference.encoder if reference else
                          create("encoder", bl.DEFAULT_ENCODER)).params)
        none = {"checkpoint": None, "run_dir": None}
        method_info["logmel-stats"] = {"kind": "baseline", **none, "encoder": None,
                                       "params": None}
        for b in ("random-init", "supervised")[: 1 + supervised]:
            method_info[b] = {"kind": "baseline", **none, "encoder": enc_name,
                              "params": enc_params}
    probe_order = [probe_label(p, v) for v in views for p in probes] + [FINE_TUNE]
    order = {n: i for i, n in enumerate(names)}
    task_order = {t.name: i for i, t in enumerate(tasks)}
    all_rows.sort(key=lambda r: (probe_order.index(r["probe"]), r["shots"] is not None,
                                 r["shots"] or 0, order[r["method"]], task_order[r["task"]]))
    results = {
        "suite": suite if isinstance(suite, str) else suite_obj.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {"probes": probes + ([FINE_TUNE] if fine_tune else []), "shots": shots,
                   "seeds": seeds, "baselines": baselines, "views": views,
                   "valid_fraction": valid_fraction,
                   "checkpoints": [m.info["checkpoint"] for m in methods]},
        "methods": method_info,
        "tasks": summaries,
        "results": all_rows,
        "confusion": confusion,
        "embeddings_2d": maps,
        "end_to_end": runs,
    }
    _write_json(out / "results.json", results)
    write_csv(results, out / "results.csv")
    table = format_table(results)
    (out / "table.txt").write_text(table + "\n")
    timing["total"] = time.perf_counter() - t0
    _write_json(out / "timing.json", {"seconds": timing, "end_to_end_runs": runs})
    if progress if echo is None else echo:
        print(table)
    return results


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
