"""``evaluate``: checkpoints and honest baselines on one suite, same splits, same seeds.

For every task of the suite: frozen embeddings of every method (cached on disk), probes trained
on the train split (model selection on valid) and scored on test at the clip level, for all
labels and for k-shot draws, over seeds ``0..n-1``; baselines measured in the same run. Writes
``results.json`` (schema in the module docstring of :mod:`pocketear.evaluate`), ``results.csv``
and ``table.txt``. The settings are one :class:`~pocketear.evaluate.config.EvalConfig`; each
task is scored with its own metric (:mod:`pocketear.evaluate.metrics`).
"""

from __future__ import annotations

import copy
import json
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from pocketear.errors import InvalidValue
from pocketear.evaluate import baselines as bl
from pocketear.evaluate.config import EvalConfig
from pocketear.evaluate.features import (
    Embeddings,
    extract,
    group_standardise,
    logmels,
    normalised,
)
from pocketear.evaluate.metrics import score
from pocketear.evaluate.probes import Segments
from pocketear.evaluate.splits import kshot_indices
from pocketear.evaluate.suites import EvalTask, Suite, resolve_suite
from pocketear.evaluate.table import format_table, write_csv
from pocketear.evaluate.views import DEFAULT_VIEW, parse_view, probe_label
from pocketear.frontends.logmel import LogMelConfig
from pocketear.model import Pretrained, load
from pocketear.registry import create

FINE_TUNE = "fine-tune"
MAX_MAP_POINTS = 500


@dataclass
class Method:
    """One row of the tables: a checkpoint or a baseline."""

    name: str
    kind: str
    info: dict[str, Any]
    model: Pretrained | None = None


@dataclass(frozen=True)
class _Context:
    """What every task of one evaluation shares: the checked config and what it resolves to."""

    config: EvalConfig
    cache_dir: Path
    budget: bl.TrainBudget
    baselines: list[bl.Baseline]  # the baselines measured, in table order

    @property
    def frozen_baselines(self) -> list[bl.Baseline]:
        """Baselines read by the probes (frozen embeddings)."""
        return [b for b in self.baselines if not b.end_to_end]

    @property
    def end_to_end_baselines(self) -> list[bl.Baseline]:
        """Baselines trained end to end on the labels."""
        return [b for b in self.baselines if b.end_to_end]


def _run_dir(checkpoint: Path) -> Path:
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" \
        else checkpoint.parent


def _load_methods(checkpoints: list[str], names: list[str] | None = None) -> list[Method]:
    if names is not None and len(names) != len(checkpoints):
        raise InvalidValue(f"{len(names)} names for {len(checkpoints)} checkpoints")
    taken = {b.name for b in bl.registered_baselines()}
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
            "macs_per_second": int(model.encoder.macs_per_second()),
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

    def __init__(self, task: EvalTask, ctx: _Context) -> None:
        self.task, self.ctx = task, ctx
        self.rows: list[dict[str, Any]] = []
        self.confusion: dict[str, dict[str, Any]] = {}
        self.maps: dict[str, dict[str, list]] = {}

    # --- data -------------------------------------------------------------------------
    def prepare(self, methods: list[Method], reference: Pretrained | None) -> None:
        ctx, cfg, task = self.ctx, self.ctx.config, self.task
        fe_cfg = reference.frontend.cfg if reference is not None else LogMelConfig()
        if not isinstance(fe_cfg, LogMelConfig):  # logmel-stats reads log-mels, whatever the
            fe_cfg = LogMelConfig()  # models read (each model's own features: `extract`)
        self.feats = logmels(task.corpus, ctx.cache_dir, fe_cfg, cfg.workers, cfg.progress)
        self.reference = reference or bl.default_reference(self.feats.mean, self.feats.std,
                                                           fe_cfg)
        self.views = [v for v in cfg.views if task.groups is not None or not parse_view(v)[1]]
        pools = sorted({parse_view(v)[0] for v in self.views})
        # (method, seed, parts, group_std) -> embeddings; seed 0 for all but seeded baselines
        self.embs: dict[tuple[str, int, int, bool], Embeddings] = {}
        for parts in pools:
            tag = f" seg{parts}" if parts else ""

            def embed(model: Pretrained, label: str, parts: int = parts, tag: str = tag
                      ) -> Embeddings:
                return extract(model, task.corpus, ctx.cache_dir, workers=cfg.workers,
                               progress=cfg.progress, parts=parts,
                               desc=f"{label} {task.name}{tag}")

            for m in methods:
                if m.model is not None:
                    self.embs[m.name, 0, parts, False] = embed(m.model, m.name)
            for b in ctx.frozen_baselines:
                for seed, e in b.embeddings(self.feats, self.reference, cfg.seeds, parts,
                                            embed).items():
                    self.embs[b.name, seed, parts, False] = e
        present = set(range(len(task.corpus)))
        for e in self.embs.values():
            present &= set(e.items.tolist())
        present &= set(int(e["item"]) for e in self.feats.index["entries"])
        if len(present) < len(task.corpus):
            warnings.warn(f"task {task.name}: {len(task.corpus) - len(present)} undecodable "
                          "clip(s) left out for every method", stacklevel=2)
        self.rows_used = np.asarray(sorted(present), dtype=np.int64)
        self.used, self.carved = task.subset(self.rows_used), []
        if cfg.valid_fraction:  # the same carved valid for every method (with_valid)
            self.used, self.carved = self.used.with_valid(cfg.valid_fraction)
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
        feats = logmels(self.task.corpus, self.ctx.cache_dir, model.frontend.cfg,
                        self.ctx.config.workers, False)
        where = {int(e["item"]): j for j, e in enumerate(feats.index["entries"])}
        return [normalised(model, feats[where[int(r)]]) for r in self.rows_used]

    def train_sel(self, train: np.ndarray, shots: int | None, seed: int) -> np.ndarray:
        return train if shots is None else kshot_indices(self.y, train, shots, seed)

    # --- measurements -----------------------------------------------------------------
    def task_score(self, y: np.ndarray, proba: np.ndarray) -> float:
        """The task's metric of clip probabilities ``proba`` against class ids ``y``."""
        return score(self.task.metric, y, proba)

    def record(self, method: str, probe: str, view: str, shots: int | None,
               values: list[float]) -> None:
        self.rows.append({
            "method": method, "task": self.task.name, "probe": probe_label(probe, view),
            "view": view, "shots": shots, "metric": self.task.metric,
            "mean": float(np.mean(values)), "std": float(np.std(values)),
            "values": [float(v) for v in values]})

    def keep_confusion(self, method: str, probe: str, pred: np.ndarray) -> None:
        self.confusion[f"{method}/{self.task.name}/{probe}"] = {
            "labels": self.task.classes,
            "matrix": _confusion(self.y[self.test], pred, self.n_classes)}

    def probe_rows(self, method: str, probe_name: str, view: str, seeded: bool,
                   bar: tqdm) -> None:
        """One probe on one method's embeddings in one view, every shot setting and seed.

        Each value is the task's test metric, the mean over the task's folds.
        """
        cfg = self.ctx.config
        for shots in cfg.shot_settings:
            values, memo = [], None
            for seed in range(cfg.seeds):
                key = (method, seed if seeded else 0, *parse_view(view))
                if memo is not None and not (seeded or create("probe", probe_name).stochastic
                                             or shots is not None):
                    values.append(memo)  # identical data and a deterministic fit
                    bar.update()
                    continue
                scores = []
                for f, (train, valid, test) in enumerate(self.folds):
                    probe = create("probe", probe_name)
                    segs = self.segments(key, self.train_sel(train, shots, seed))
                    probe.fit(segs, self.segments(key, valid) if len(valid) else None,
                              self.n_classes, seed)
                    test_segs = self.segments(key, test)
                    proba = probe.predict_clips(test_segs)
                    scores.append(self.task_score(test_segs.y, proba))
                    if f == 0 and seed == 0 and shots is None:
                        self.keep_confusion(method, probe_label(probe_name, view),
                                            proba.argmax(1))
                values.append(float(np.mean(scores)))
                memo = values[-1]
                bar.update()
            self.record(method, probe_name, view, shots, values)

    def end_to_end(self, method: str, start: Pretrained, fresh: bool,
                   labels: list[tuple[str, str]], bar: tqdm) -> list[dict[str, Any]]:
        """Supervised (``fresh``: random init per seed) or fine-tuning runs, every fold.

        Rows go under each (probe, view) in ``labels`` (the same numbers, so every table shows
        the reference).
        """
        clips, runs = self.clips(start), []
        cfg, budget = self.ctx.config, self.ctx.budget
        for shots in cfg.shot_settings:
            values, chosen = [], None  # lr chosen by the grid, reused unless grid_every_run
            for seed in range(cfg.seeds):
                scores = []
                for f, (train, valid, test) in enumerate(self.folds):
                    def make(seed: int = seed) -> Any:
                        return (bl.random_init(start, seed).encoder if fresh
                                else copy.deepcopy(start.encoder))
                    reuse = chosen is not None and not budget.grid_every_run
                    model, info = bl.train_supervised(
                        make, clips, self.y, self.train_sel(train, shots, seed), valid,
                        self.n_classes, seed, budget, (chosen,) if reuse else None)
                    chosen = chosen if reuse else info.lr
                    proba = bl.predict_clips(model, clips, test)
                    scores.append(self.task_score(self.y[test], proba))
                    runs.append({"method": method, "task": self.task.name, "shots": shots,
                                 "seed": seed, "fold": f, **info.summary(),
                                 "lr_from": "reused" if reuse else
                                 "grid" if info.grid else "fixed", "n_valid": len(valid),
                                 "test_acc": scores[-1]})
                    if f == 0 and seed == 0 and shots is None:
                        for probe, view in labels:
                            self.keep_confusion(method, probe_label(probe, view),
                                                proba.argmax(1))
                        self.maps[f"{method}/{self.task.name}"] = _map2d(
                            bl.embed_clips(model.encoder, clips, test),
                            [self.used.labels[i] for i in test])
                values.append(float(np.mean(scores)))
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
    checkpoints: Sequence[str | os.PathLike[str]],
    suite: str | Suite,
    out: str | os.PathLike[str],
    config: EvalConfig | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Evaluate checkpoints (files or run folders) on a suite against baselines.

    Args:
        checkpoints: checkpoint files or run folders; methods are named by their pretext task.
        suite: a registered suite name or a labelled manifest (``path,label[,split][,group]``).
        out: folder for results.json, results.csv and table.txt.
        config: the settings (default ``EvalConfig()``).
        **fields: :class:`EvalConfig` fields replacing those of ``config`` (``probes``,
            ``shots``, ``seeds``, ``baselines``, ``supervised``, ``views``, ...).

    Returns:
        The results dict written to ``out/results.json``.

    Raises:
        InvalidValue: an unknown keyword, probe or view, bad shots or seeds, nothing to
            evaluate, or a names list that does not match the checkpoints.
    """
    t0 = time.perf_counter()
    if config is not None and not isinstance(config, EvalConfig):
        raise InvalidValue(f"evaluate's 4th argument is an EvalConfig, got "
                           f"{type(config).__name__}; pass probes, shots, ... as keywords")
    cfg = EvalConfig.build(config, **fields)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = cfg.checked()
    if not checkpoints and not cfg.baselines:
        raise InvalidValue("nothing to evaluate: pass a checkpoint or enable the baselines")
    suite_obj = resolve_suite(suite, **(cfg.suite_options or {}))
    measured = [b for b in bl.registered_baselines()
                if cfg.baselines and (cfg.supervised or not b.end_to_end)]
    ctx = _Context(cfg, Path(cfg.cache_dir) if cfg.cache_dir
                   else out.resolve().parent / ".emb_cache",
                   cfg.budget or bl.TrainBudget(), measured)
    methods = _load_methods([str(c) for c in checkpoints], cfg.names)
    tasks = suite_obj.tasks(cfg.data_dir, cfg.progress)
    reference = methods[0].model if methods else None
    probes = list(cfg.probes)
    names = [m.name for m in methods] + [b.name for b in measured]
    n_settings = len(cfg.shot_settings) * cfg.seeds
    n_frozen = len(methods) + len(ctx.frozen_baselines)
    n_e2e = len(ctx.end_to_end_baselines) + (len(methods) if cfg.fine_tune else 0)
    all_rows, confusion, maps, summaries, runs = [], {}, {}, {}, []
    timing: dict[str, float] = {}
    for task in tasks:
        t_task = time.perf_counter()
        run = _TaskRun(task, ctx)
        run.prepare(methods, reference)
        t_prep = time.perf_counter()
        summaries[task.name] = {**run.used.summary(), "classes": task.classes,
                                **({"valid_carved": run.carved} if run.carved else {})}
        per_task = (n_frozen * len(probes) * len(run.views) + n_e2e) * n_settings
        with tqdm(total=per_task, desc=f"evaluate {task.name}", unit="fit",
                  disable=not cfg.progress, leave=False) as bar:
            for view in run.views:
                for m in methods:
                    for p in probes:
                        run.probe_rows(m.name, p, view, False, bar)
                for p in probes:
                    for b in ctx.frozen_baselines:
                        run.probe_rows(b.name, p, view, b.seeded, bar)
            if ctx.end_to_end_baselines:
                labels = [(p, v) for v in run.views for p in probes]
                labels += [(FINE_TUNE, DEFAULT_VIEW)] if cfg.fine_tune else []
                timing[f"{task.name}/probes"] = time.perf_counter() - t_prep
                for b in ctx.end_to_end_baselines:
                    t_e2e = time.perf_counter()
                    runs += run.end_to_end(b.name, run.reference, True, labels, bar)
                    timing[f"{task.name}/{b.name}"] = time.perf_counter() - t_e2e
            if cfg.fine_tune:
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

    method_info = {m.name: m.info for m in methods} | _baseline_info(measured, reference)
    probe_order = [probe_label(p, v) for v in cfg.views for p in probes] + [FINE_TUNE]
    order = {n: i for i, n in enumerate(names)}
    task_order = {t.name: i for i, t in enumerate(tasks)}
    all_rows.sort(key=lambda r: (probe_order.index(r["probe"]), r["shots"] is not None,
                                 r["shots"] or 0, order[r["method"]], task_order[r["task"]]))
    results = {
        "suite": suite if isinstance(suite, str) else suite_obj.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {"probes": probes + ([FINE_TUNE] if cfg.fine_tune else []),
                   "shots": list(cfg.shots), "seeds": cfg.seeds, "baselines": cfg.baselines,
                   "views": list(cfg.views), "valid_fraction": cfg.valid_fraction,
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
    if cfg.show_table:
        print(table)
    return results


def _baseline_info(measured: list[bl.Baseline], reference: Pretrained | None
                   ) -> dict[str, dict[str, Any]]:
    """``results.json`` ``methods`` entries of the measured baselines.

    Those using the reference encoder name it and its size.
    """
    if not measured:
        return {}
    enc_name = reference.config["encoder"]["name"] if reference else bl.DEFAULT_ENCODER
    enc_params = int((reference.encoder if reference else
                      create("encoder", bl.DEFAULT_ENCODER)).params)
    return {b.name: {"kind": "baseline", "checkpoint": None, "run_dir": None,
                     "encoder": enc_name if b.has_encoder else None,
                     "params": enc_params if b.has_encoder else None} for b in measured}


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
