"""The evaluation runner end to end: a checkpoint and the baselines on one manifest suite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pocketear.data.corpus import ManifestError
from pocketear.evaluate.baselines import TrainBudget
from pocketear.evaluate.runner import evaluate
from pocketear.evaluate.suites import EvalTask, Suite, SyntheticSuite, resolve_suite
from tests.conftest import write_tone_manifest

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SMALL = TrainBudget(steps=6, batch_size=8, eval_every=3, patience=1)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Low vs high tones (8 + 8 clips, 1.5 s) with a manifest, and a 2-step tiny checkpoint."""
    from pocketear.train.config import load_config
    from pocketear.train.loop import pretrain

    root = tmp_path_factory.mktemp("runner")
    manifest = write_tone_manifest(root, 16, seconds=1.5)
    # 1.5 s clips: triplet's default disjoint anchor/positive needs 1.9 s, so allow overlap
    cfg = load_config(None, ["task.name=triplet", "task.min_separation_frames=0",
                             "encoder.name=mobile_tiny",
                             f"data.source={root / 'audio'}", "train.steps=2",
                             "optim.batch_size=4", "data.workers=1"])
    pretrain(cfg, root / "run", progress=False)
    return {"root": root, "manifest": manifest, "run": root / "run"}


@pytest.fixture(scope="module")
def results(labelled: dict[str, Any]) -> dict[str, Any]:
    return evaluate([str(labelled["run"])], str(labelled["manifest"]), labelled["root"] / "eval",
                    probes=("linear", "knn"), shots=(1,), seeds=2, baselines=True,
                    progress=False, workers=1, budget=SMALL)


def test_results_cover_every_method_probe_shot_and_seed(results: dict[str, Any],
                                                        labelled: dict[str, Any]) -> None:
    assert set(results["methods"]) == {"triplet", "logmel-stats", "random-init", "supervised"}
    assert results["methods"]["triplet"]["kind"] == "pretrained"
    keys = {(r["method"], r["probe"], r["shots"]) for r in results["results"]}
    for m in results["methods"]:
        for probe in ("linear", "knn"):
            for shots in (None, 1):
                assert (m, probe, shots) in keys
    for r in results["results"]:
        assert len(r["values"]) == 2 and r["mean"] == pytest.approx(np.mean(r["values"]))
        assert 0.0 <= r["mean"] <= 1.0
    summary = results["tasks"]["labels"]
    assert (summary["n_train"], summary["n_valid"], summary["n_test"]) == (8, 4, 4)
    saved = json.loads((labelled["root"] / "eval" / "results.json").read_text())
    assert saved["results"] == results["results"]
    assert (labelled["root"] / "eval" / "results.csv").read_text().count("\n") > 8
    assert "logmel-stats" in (labelled["root"] / "eval" / "table.txt").read_text()


def test_logmel_stats_row_equals_a_probe_fitted_by_hand(results: dict[str, Any],
                                                         labelled: dict[str, Any]) -> None:
    """The runner's bookkeeping (clip order, splits, labels) against a direct computation."""
    from pocketear.data.corpus import Corpus
    from pocketear.evaluate.features import logmel_stats, logmels
    from pocketear.evaluate.probes import LinearProbe, Segments
    from pocketear.frontends.logmel import LogMelConfig

    corpus = Corpus.open(labelled["manifest"])
    feats = logmels(corpus, labelled["root"] / "hand", LogMelConfig(), workers=1,
                    progress=False)
    emb = logmel_stats(feats)
    labels, split = corpus.column("label"), corpus.column("split")
    y = np.asarray([["high", "low"].index(labels[i]) for i in emb.items])
    sel = {s: np.asarray([j for j, i in enumerate(emb.items) if split[i] == s])
           for s in ("train", "valid", "test")}
    seg = {s: Segments(emb.segments[idx], np.arange(len(idx)), y[idx]) for s, idx in sel.items()}
    acc = LinearProbe().fit(seg["train"], seg["valid"], 2).accuracy(seg["test"])
    row = next(r for r in results["results"] if (r["method"], r["probe"], r["shots"])
               == ("logmel-stats", "linear", None))
    assert row["values"] == [acc, acc]


def test_kshot_rows_use_one_clip_per_class_and_vary_with_seed(results: dict[str, Any]) -> None:
    # a 1-shot random-init probe gets a different train clip and a different encoder per seed
    row = next(r for r in results["results"] if (r["method"], r["probe"], r["shots"])
               == ("random-init", "linear", 1))
    assert len(row["values"]) == 2


def test_confusion_and_maps_are_saved(results: dict[str, Any]) -> None:
    conf = results["confusion"]["triplet/labels/linear"]
    assert conf["labels"] == ["high", "low"] and np.asarray(conf["matrix"]).sum() == 4
    assert len(results["embeddings_2d"]["triplet/labels"]["x"]) == 4


def test_unknown_probe_and_empty_run_are_refused(labelled: dict[str, Any],
                                                 tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown probe 'svm'"):
        evaluate([], str(labelled["manifest"]), tmp_path, probes=("svm",), progress=False)
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate([], str(labelled["manifest"]), tmp_path, baselines=False, progress=False)


def test_methods_take_given_names(labelled: dict[str, Any], tmp_path: Path) -> None:
    run = str(labelled["run"])
    res = evaluate([run, run], str(labelled["manifest"]), tmp_path, baselines=False,
                   progress=False, workers=1, names=["a#s0", "a#s1"])
    assert set(res["methods"]) == {"a#s0", "a#s1"}
    with pytest.raises(ValueError, match="2 names for 1 checkpoints"):
        evaluate([run], str(labelled["manifest"]), tmp_path, names=["a", "b"], progress=False)


def test_baselines_without_supervised(labelled: dict[str, Any], tmp_path: Path) -> None:
    res = evaluate([str(labelled["run"])], str(labelled["manifest"]), tmp_path, seeds=1,
                   supervised=False, progress=False, workers=1)
    assert {r["method"] for r in res["results"]} == {"triplet", "logmel-stats", "random-init"}
    assert "supervised" not in res["methods"] and res["end_to_end"] == []


def test_unknown_suite_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="registered suites are .*synthetic"):
        resolve_suite("no-such-suite")


def test_synthetic_suite_has_its_five_tasks(tmp_path: Path) -> None:
    tasks = SyntheticSuite(minutes=3.0).tasks(tmp_path, progress=False)
    assert [t.name for t in tasks] == ["word", "speaker", "instrument", "pitch", "scene"]
    for t in tasks:
        assert {"train", "test"} <= set(t.split) and len(t.classes) >= 2
        assert len(t.labels) == len(t.corpus)
    assert (tmp_path / "synthetic-3min-seed0" / "manifest.csv").is_file()


class _FoldSuite(Suite):
    """The tone manifest as one task with two folds and two groups."""

    name = "folds"

    def __init__(self, manifest: Path) -> None:
        self.manifest = manifest

    def tasks(self, data_dir: Any = None, progress: bool = True) -> list[EvalTask]:
        from pocketear.data.corpus import Corpus

        corpus = Corpus.open(self.manifest)
        labels = corpus.column("label")
        groups = ["a" if i < 8 else "b" for i in range(len(corpus))]
        fold0 = ["test" if g == "a" else "train" for g in groups]
        fold1 = ["test" if g == "b" else "train" for g in groups]
        return [EvalTask("tones", corpus, labels, fold0, groups, [fold1])]


def test_views_and_folds(labelled: dict[str, Any], tmp_path: Path) -> None:
    from pocketear.data.corpus import Corpus
    from pocketear.evaluate.features import group_standardise, logmel_stats, logmels
    from pocketear.evaluate.probes import LinearProbe, Segments
    from pocketear.frontends.logmel import LogMelConfig

    views = ("clip", "seg3", "group-std", "seg3+group-std")
    res = evaluate([], _FoldSuite(labelled["manifest"]), tmp_path / "eval", probes=("linear",),
                   seeds=1, baselines=True, progress=False, workers=1, budget=SMALL, views=views)
    assert res["tasks"]["tones"]["folds"] == 2 and res["config"]["views"] == list(views)
    got = {(r["method"], r["probe"]): r for r in res["results"]}
    for method in ("logmel-stats", "random-init", "supervised"):
        for view in views:
            label = "linear" if view == "clip" else f"linear+{view}"
            assert got[method, label]["view"] == view
    # fold averaging and the group-std view, recomputed by hand for logmel-stats
    corpus = Corpus.open(labelled["manifest"])
    feats = logmels(corpus, tmp_path / "hand", LogMelConfig(), workers=1, progress=False)
    emb = logmel_stats(feats, parts=3)
    groups = np.asarray(["a" if i < 8 else "b" for i in emb.items])
    emb = group_standardise(emb, groups)
    labels = corpus.column("label")
    y = np.asarray([["high", "low"].index(labels[i]) for i in emb.items])
    # the folds lack valid: the runner carves one from train (one group there: stratified)
    carved = res["tasks"]["tones"]["valid_carved"]
    assert [(c["fold"], c["n_valid"], c["group_disjoint"]) for c in carved] == \
        [(0, 2, False), (1, 2, False)]
    task, _ = _FoldSuite(labelled["manifest"]).tasks()[0].with_valid()
    accs = []
    for fold, test_group in enumerate(("a", "b")):
        part = np.asarray(task.splits[fold])[emb.items]
        assert set(groups[part == "test"]) == {test_group}
        tr, va, te = (np.where(part == s)[0] for s in ("train", "valid", "test"))
        probe = LinearProbe().fit(Segments(emb.segments[tr], np.arange(len(tr)), y[tr]),
                                  Segments(emb.segments[va], np.arange(len(va)), y[va]), 2)
        accs.append(probe.accuracy(Segments(emb.segments[te], np.arange(len(te)), y[te])))
    assert got["logmel-stats", "linear+seg3+group-std"]["values"] == [pytest.approx(
        np.mean(accs))]


def test_group_views_skip_tasks_without_groups(labelled: dict[str, Any],
                                               tmp_path: Path) -> None:
    res = evaluate([], str(labelled["manifest"]), tmp_path, probes=("knn",), seeds=1,
                   progress=False, workers=1, budget=SMALL, views=("clip", "group-std"))
    assert {r["probe"] for r in res["results"]} == {"knn"}
    with pytest.raises(ValueError, match="unknown view 'seg'"):
        evaluate([], str(labelled["manifest"]), tmp_path, views=("seg",), progress=False)
