"""The arabic-commands suite and the 80/20 split, on a fake folder with the real layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pocketear.evaluate import suite_arabic
from pocketear.evaluate.baselines import TrainBudget
from pocketear.evaluate.runner import evaluate
from pocketear.evaluate.splits import kshot_indices
from pocketear.evaluate.suite_arabic import ArabicCommandsSuite, label_deficient_split
from pocketear.evaluate.suites import EvalTask, resolve_suite
from tests.data.recipes.test_recipe_arabic_speech_commands import make_dataset

KEYWORDS = ("backward", "yes", "zoom in")
SPLIT = {f"{i:08d}": s for i, s in enumerate(["train"] * 5 + ["valid"] * 2 + ["test"] * 2, 1)}


@pytest.fixture
def asc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(suite_arabic, "DEFAULT_DATA_DIR", tmp_path / "suites")
    return make_dataset(tmp_path / "asc", SPLIT, KEYWORDS, rounds=5)


def _task(asc: Path) -> EvalTask:
    (task,) = resolve_suite("arabic-commands").tasks(asc, progress=False)
    return task


def _speakers(task: EvalTask, idx: np.ndarray) -> set[str]:
    assert task.groups is not None
    return {task.groups[i] for i in idx}


def test_keyword_task_on_the_official_speaker_disjoint_split(asc: Path) -> None:
    task = _task(asc)
    assert task.name == "arabic-keyword" and task.classes == sorted(KEYWORDS)
    assert len(task.corpus) == 9 * 3 * 5 and task.groups == task.corpus.column("speaker")
    parts = {s: _speakers(task, task.indices(s)) for s in ("train", "valid", "test")}
    assert parts == {s: {g for g, x in SPLIT.items() if x == s} for s in parts}
    assert task.with_valid()[1] == []  # an official valid part: nothing carved from train
    assert task.summary()["n_valid"] == 30
    # prepared once, then the prepared folder is reused as it is
    (prepared,) = (asc.parent / "suites").glob("arabic-commands-*")
    again = ArabicCommandsSuite(prepared).tasks(progress=False)[0]
    assert again.labels == task.labels and again.split == task.split


def test_kshot_draws_per_seed_from_train_speakers_only(asc: Path) -> None:
    task = _task(asc)
    y, train = task.targets(), task.indices("train")
    for k in (1, 5, 10):
        draws = [kshot_indices(y, train, k, seed) for seed in range(3)]
        for d in draws:
            assert set(d) <= set(train) and np.bincount(y[d]).tolist() == [k] * 3
            assert not _speakers(task, d) & _speakers(task, task.indices("test"))
        assert len({tuple(d) for d in draws}) == 3  # a new draw per seed


def test_kshot_and_group_std_through_the_runner(asc: Path, tmp_path: Path) -> None:
    res = evaluate([], "arabic-commands", tmp_path / "eval", data_dir=asc, probes=("linear",),
                   shots=(1,), seeds=2, supervised=False, views=("clip", "group-std"),
                   progress=False, workers=1, budget=TrainBudget(steps=2, batch_size=4))
    assert res["tasks"]["arabic-keyword"]["n_valid"] == 30
    rows = {(r["method"], r["probe"], r["shots"]): r for r in res["results"]}
    assert len(rows["random-init", "linear", 1]["values"]) == 2
    assert ("logmel-stats", "linear+group-std", 1) in rows


def test_label_deficient_split_never_shares_a_clip(asc: Path) -> None:
    task = _task(asc)
    unlabelled, labelled = label_deficient_split(task.split, task.groups, task.labels, 0.2, 0)
    assert not set(unlabelled) & set(labelled)
    assert set(unlabelled) | set(labelled) == set(task.indices("train"))
    heldout = set(task.indices("valid")) | set(task.indices("test"))
    assert not heldout & (set(unlabelled) | set(labelled))
    assert len(labelled) == 5 * 3 and len(unlabelled) == 5 * 3 * 4  # 1 of 5 per cell
    for part in (unlabelled, labelled):  # every keyword and train speaker in both parts
        assert {task.labels[i] for i in part} == set(KEYWORDS)
        assert _speakers(task, part) == _speakers(task, task.indices("train"))
    same = label_deficient_split(task.split, task.groups, task.labels, 0.2, 0)
    other = label_deficient_split(task.split, task.groups, task.labels, 0.2, 1)
    assert np.array_equal(same[1], labelled) and not np.array_equal(other[1], labelled)


def test_label_deficient_split_at_the_real_size() -> None:
    cells = [(s, k) for s in range(30) for k in range(40) for _ in range(10)]
    split = ["train" if s < 18 else "valid" if s < 24 else "test" for s, _ in cells]
    unlabelled, labelled = label_deficient_split(split, [str(s) for s, _ in cells],
                                                 [str(k) for _, k in cells])
    assert (len(unlabelled), len(labelled)) == (5760, 1440)  # 80 / 20 of 18 speakers' clips
    assert max(np.concatenate([unlabelled, labelled])) < 7200  # valid/test never in either
    with pytest.raises(ValueError, match="fraction"):
        label_deficient_split(split, split, split, 1.0)


def test_missing_dataset_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(suite_arabic.SOURCE_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=r"arabic-speech-commands-dataset/archive.*"
                       r"--data-dir.*pocketear prepare arabic_speech_commands"):
        ArabicCommandsSuite().tasks(None, progress=False)
    with pytest.raises(FileNotFoundError, match="no such folder.*--data-dir"):
        ArabicCommandsSuite(tmp_path / "nowhere").tasks(progress=False)


def test_a_manifest_whose_speakers_straddle_is_refused(asc: Path, tmp_path: Path) -> None:
    clip = next((asc / "dataset" / "yes").glob("*.wav"))
    manifest = tmp_path / "bad.csv"
    manifest.write_text("path,label,split,speaker\n"
                        f"{clip},yes,train,00000001\n{clip},yes,test,00000001\n")
    with pytest.raises(ValueError, match="speaker 00000001 has clips in test, train"):
        ArabicCommandsSuite(manifest).tasks(progress=False)
