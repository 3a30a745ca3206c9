"""Evaluation suites: named sets of labelled tasks, and labelled manifests as one-task suites.

A suite only says *what* to classify (clips, labels, splits, groups); the runner decides how
(embeddings, probes, baselines). A new suite is one file: subclass :class:`Suite`, implement
``tasks(data_dir, progress)`` and decorate it with ``@register("suite", name)``.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pocketear.data.corpus import Corpus, ManifestError
from pocketear.errors import InvalidValue
from pocketear.evaluate.metrics import DEFAULT_METRIC, check_metric
from pocketear.evaluate.splits import (
    SPLITS,
    VALID_FRACTION,
    carve_valid,
    check_class_counts,
    check_split_values,
    group_split,
    stratified_split,
)
from pocketear.registry import available, create, register

DEFAULT_DATA_DIR = Path("~/.cache/pocketear/suites").expanduser()


def prepared_manifest(path: Path, recipe: str, raw_folder: str, out_root: Path, name: str,
                      progress: bool = True) -> Path:
    """The manifest of a dataset suite's source, prepared once under ``out_root``.

    ``path`` is a manifest (used as is), a folder holding ``manifest.csv`` and not the raw
    layout (its ``raw_folder``, e.g. FSDD's ``recordings``), or the raw dataset (folder or
    archive), prepared with ``recipe`` into ``out_root/NAME-KEY`` (KEY: a hash of its absolute
    path) and prepared again when the source is newer than that manifest.
    """
    if path.suffix.lower() in (".csv", ".tsv"):
        return path
    if (path / "manifest.csv").is_file() and not (path / raw_folder).is_dir():
        return path / "manifest.csv"
    from pocketear.data.recipes import prepare

    key = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    out = out_root / f"{name}-{key}"
    manifest = out / "manifest.csv"
    if manifest.is_file() and manifest.stat().st_mtime >= path.stat().st_mtime:
        return manifest
    return Path(prepare(recipe, str(path), out, progress=progress))  # type: ignore[arg-type]
MINUTES_ENV = "POCKETEAR_SYNTH_MINUTES"
DEFAULT_MINUTES = 30.0  # 300 labelled events per domain: ~60 test clips per task


@dataclass
class EvalTask:
    """One classification task: clips, their labels and their train/valid/test split.

    Attributes:
        name: task name (a column of the results table).
        corpus: the clips; row ``i`` has label ``labels[i]`` and split ``split[i]``.
        labels: class name of every clip.
        split: ``train``, ``valid`` or ``test`` for every clip.
        groups: optional group (e.g. speaker) of every clip: for reporting and for the
            label-free per-group standardisation view.
        folds: optional further splits of the same clips (e.g. rotations of unseen speakers);
            every score is then the mean over ``[split, *folds]``.
        metric: how every method is scored on the test clips, a name of
            :data:`~pocketear.evaluate.metrics.METRICS` (``accuracy``).
    """

    name: str
    corpus: Corpus
    labels: list[str]
    split: list[str]
    groups: list[str] | None = None
    folds: list[list[str]] = field(default_factory=list)
    metric: str = DEFAULT_METRIC

    def __post_init__(self) -> None:
        n = len(self.corpus)
        if len(self.labels) != n or any(len(s) != n for s in [self.split, *self.folds]) or (
                self.groups is not None and len(self.groups) != n):
            raise ValueError(f"task {self.name}: labels/split/folds/groups must have one entry "
                             "per clip")
        self.split = check_split_values(self.split, f"task {self.name}")
        self.folds = [check_split_values(f, f"task {self.name}") for f in self.folds]
        check_metric(self.metric, f"task {self.name}")

    @property
    def splits(self) -> list[list[str]]:
        """Every split the task is scored on: ``split`` and then ``folds``."""
        return [self.split, *self.folds]

    @property
    def classes(self) -> list[str]:
        """Sorted class names; the class id of a label is its position here."""
        return sorted(set(self.labels))

    def targets(self) -> np.ndarray:
        """Class id of every clip."""
        ids = {c: i for i, c in enumerate(self.classes)}
        return np.asarray([ids[y] for y in self.labels], dtype=np.int64)

    def indices(self, split: str, fold: int = 0) -> np.ndarray:
        """Clip indices of one split (of fold ``fold``)."""
        return np.asarray([i for i, s in enumerate(self.splits[fold]) if s == split],
                          dtype=np.int64)

    def subset(self, keep: np.ndarray) -> EvalTask:
        """The task restricted to clip indices ``keep`` (e.g. dropping undecodable files)."""
        keep = [int(i) for i in keep]
        return EvalTask(
            self.name, Corpus([self.corpus[i] for i in keep], self.corpus.source,
                              self.corpus.columns),
            [self.labels[i] for i in keep], [self.split[i] for i in keep],
            None if self.groups is None else [self.groups[i] for i in keep],
            [[f[i] for i in keep] for f in self.folds], self.metric)

    def with_valid(self, fraction: float = VALID_FRACTION, seed: int = 0
                   ) -> tuple[EvalTask, list[dict[str, Any]]]:
        """The task with a validation part carved from train in every split that lacks one.

        The rule (the same for every row of a table): the carved clips leave train for *every*
        method (probes, k-shot draws, supervised, fine-tuning), so all rows train on the same
        clips and select their hyper-parameters (a probe's C, the supervised epochs and
        learning rate) on the same held-out clips; test is untouched. The carved part mirrors
        how test relates to train: group-disjoint when the task has groups and its test groups
        are unseen in train (e.g. unseen speakers), stratified by class otherwise (test
        speakers also speak in train, as in FSDD's official split). One fixed ``seed`` for all
        methods and seeds.

        Returns:
            The new task and, per carved split, what was carved (``results.json``'s
            ``tasks.<name>.valid_carved``).
        """
        y = np.asarray(self.labels)
        groups = None if self.groups is None else np.asarray(self.groups)
        splits, report = [], []
        for fold, split in enumerate(self.splits):
            part = np.asarray(split)
            train = np.where(part == "train")[0]
            if (part == "valid").any() or len(train) < 2:
                splits.append(list(split))
                continue
            unseen = groups is not None and not set(groups[part == "test"]) & set(groups[train])
            carved, disjoint = carve_valid(y, train, groups if unseen else None, fraction, seed)
            part = part.copy()
            part[carved] = "valid"
            splits.append(part.tolist())
            report.append({
                "fold": fold, "fraction": fraction, "n_train": int(len(train) - len(carved)),
                "n_valid": int(len(carved)), "group_disjoint": bool(disjoint),
                "valid_groups": sorted(set(groups[carved].tolist())) if disjoint else None,
                "classes_in_valid": len(set(y[carved].tolist())),
                "classes": len(set(y[train].tolist()))})
        if not report:
            return self, []
        task = EvalTask(self.name, self.corpus, self.labels, splits[0], self.groups, splits[1:],
                        self.metric)
        return task, report

    def chance(self) -> float:
        """Test accuracy of always answering the most frequent training class (fold mean)."""
        scores = []
        for fold in range(len(self.splits)):
            train = Counter(self.labels[i] for i in self.indices("train", fold))
            test = [self.labels[i] for i in self.indices("test", fold)]
            if not train or not test:
                scores.append(0.0)
                continue
            top = max(sorted(train), key=lambda c: train[c])
            scores.append(sum(y == top for y in test) / len(test))
        return float(np.mean(scores))

    def summary(self) -> dict[str, Any]:
        """The ``tasks`` entry of results.json."""
        out = {
            "n_train": len(self.indices("train")), "n_valid": len(self.indices("valid")),
            "n_test": len(self.indices("test")), "classes": self.classes,
            "chance": self.chance(),
        }
        if self.folds:
            out["folds"] = len(self.splits)
        return out


class Suite:
    """A named list of evaluation tasks."""

    name: str = ""

    def tasks(self, data_dir: str | os.PathLike[str] | None = None,
              progress: bool = True) -> list[EvalTask]:
        """Prepare (download, generate or open) the data under ``data_dir``; return the tasks."""
        raise NotImplementedError


@register("suite", "synthetic")
class SyntheticSuite(Suite):
    """Built-in synthetic world (no download): word, speaker, instrument, pitch, scene.

    Args:
        minutes: audio of the generated corpus (half of it labelled 1 s events); default 30 or
            the ``POCKETEAR_SYNTH_MINUTES`` environment variable. Below ~20 minutes the test
            splits hold a handful of clips per task and accuracies move by tens of points
            between corpora.
        seed: corpus seed.
        workers: generator processes.
    """

    name = "synthetic"

    def __init__(self, minutes: float | None = None, seed: int = 0, workers: int = 2) -> None:
        if minutes is None:
            minutes = float(os.environ.get(MINUTES_ENV, DEFAULT_MINUTES))
        self.minutes, self.seed, self.workers = float(minutes), int(seed), int(workers)

    def folder(self, data_dir: str | os.PathLike[str] | None = None) -> Path:
        """Where the corpus lives: ``data_dir/synthetic-<minutes>min-seed<seed>``."""
        root = Path(data_dir).expanduser() if data_dir else DEFAULT_DATA_DIR
        return root / f"synthetic-{self.minutes:g}min-seed{self.seed}"

    def tasks(self, data_dir: str | os.PathLike[str] | None = None,
              progress: bool = True) -> list[EvalTask]:
        """Generate the synthetic corpus once under ``data_dir``; one task per factor."""
        from pocketear.data.synth.corpus import SYNTH_TASKS, write_corpus

        manifest = write_corpus(self.folder(data_dir), minutes=self.minutes, seed=self.seed,
                                workers=self.workers, progress=progress)
        events = Corpus.from_manifest(manifest).filter(kind="event")
        out = []
        for task, (domain, column) in SYNTH_TASKS.items():
            rows = events.filter(domain=domain)
            labels, split = rows.column(column), rows.column("split")
            # a small corpus may miss a class in train or test: leave such classes out
            pairs = set(zip(labels, split, strict=True))
            usable = {y for y in labels if y and (y, "train") in pairs and (y, "test") in pairs}
            if len(usable) < len(set(labels) - {""}):
                warnings.warn(f"synthetic suite ({self.minutes:g} min): task {task} leaves out "
                              f"{len(set(labels) - usable - {''})} class(es) that lack a train or "
                              "test clip; use more minutes", stacklevel=2)
            if len(usable) < 2:
                continue
            keep = [i for i, y in enumerate(labels) if y in usable]
            rows = Corpus([rows[i] for i in keep], rows.source, rows.columns)
            out.append(EvalTask(task, rows, [labels[i] for i in keep],
                                check_split_values(rows.column("split"), str(manifest)),
                                rows.column("speaker") if domain == "speech" else None))
        if not out:
            raise InvalidValue(f"{manifest}: the synthetic corpus ({self.minutes:g} min) is "
                               "too small for any task; use minutes >= 2")
        return out


class ManifestSuite(Suite):
    """Any labelled manifest (``path,label[,split][,group]``) as a one-task suite.

    Without a ``split`` column the clips get a seeded stratified 60/20/20 split; with a group
    column the split keeps groups (e.g. speakers) disjoint.

    Args:
        path: CSV/TSV manifest.
        label: column holding the class.
        group: column holding the group; default ``group`` when the manifest has one.
        split: column holding train/valid/test; used when present.
        seed: seed of the generated split.
    """

    def __init__(self, path: str | os.PathLike[str], label: str = "label",
                 group: str | None = None, split: str = "split", seed: int = 0) -> None:
        self.path = Path(path)
        self.label, self.group, self.split_column, self.seed = label, group, split, seed
        self.name = self.path.stem

    def tasks(self, data_dir: str | os.PathLike[str] | None = None,
              progress: bool = True) -> list[EvalTask]:
        """One task on the manifest's ``label`` column (``data_dir`` is not used)."""
        corpus = Corpus.open(self.path)
        source = corpus.source
        if self.label not in corpus.columns:
            what = "no 'label' column" if self.label == "label" else \
                f"unknown column {self.label!r}"
            raise ManifestError(
                f"{source}: {what} (columns: {', '.join(['path', *corpus.columns])}); a labelled "
                "manifest needs a header like 'path,label[,split][,group]'")
        labels = corpus.column(self.label)
        empty = [i + 2 for i, y in enumerate(labels) if not y]
        if empty:
            raise ManifestError(f"{source}, line {empty[0]}: empty {self.label!r}; every clip "
                                f"needs a label ({len(empty)} row(s) lack one)")
        check_class_counts(labels, source)
        group_col = self.group or ("group" if "group" in corpus.columns else None)
        groups = corpus.column(group_col) if group_col else None
        if self.split_column in corpus.columns:
            split = check_split_values(corpus.column(self.split_column), source)
            for s in ("train", "test"):
                if s not in split:
                    raise ManifestError(f"{source}: no clip has split '{s}'; a task needs train "
                                        "and test clips")
        elif groups is not None:
            split = group_split(labels, groups, self.seed, source=source)
        else:
            split = stratified_split(labels, self.seed)
        return [EvalTask(self.name, corpus, labels, split, groups)]


def resolve_suite(suite: str | Suite, **options: Any) -> Suite:
    """A registered suite by name, or a labelled manifest by path."""
    if isinstance(suite, Suite):
        return suite
    names = available("suite")
    if suite in names:
        return create("suite", suite, **options)
    path = Path(suite).expanduser()
    if path.exists() or path.suffix.lower() in (".csv", ".tsv"):
        return ManifestSuite(path, **options)
    raise ManifestError(f"unknown suite {suite!r}: registered suites are {', '.join(names)}; or "
                        "pass a labelled manifest (CSV/TSV with columns path,label[,split]"
                        "[,group])")


__all__ = ["SPLITS", "EvalTask", "ManifestSuite", "Suite", "SyntheticSuite", "resolve_suite"]
