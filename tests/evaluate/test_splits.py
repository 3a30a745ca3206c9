"""Splits: stratified, group-disjoint, k-shot draws, split-value checks."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from pocketear.data.corpus import ManifestError
from pocketear.evaluate.splits import (
    carve_valid,
    check_class_counts,
    check_split_values,
    group_split,
    kshot_indices,
    stratified_split,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stratified_split_keeps_every_class_in_train_and_test(seed: int) -> None:
    labels = [f"c{c}" for c in range(8) for _ in range(2 + c * 3)]  # classes of 2 … 23 clips
    split = stratified_split(labels, seed)
    for c in set(labels):
        sides = {s for y, s in zip(labels, split, strict=True) if y == c}
        assert {"train", "test"} <= sides, c
    big = Counter(s for y, s in zip(labels, split, strict=True) if y == "c7")
    assert (big["train"], big["valid"], big["test"]) == (13, 5, 5)  # 23 clips: round(4.6) each
    assert stratified_split(labels, seed) == split  # deterministic per seed
    assert stratified_split(labels, seed + 10) != split


def test_group_split_is_disjoint_and_stratified_when_possible() -> None:
    # 6 speakers x 10 digits x 5 takes, as in FSDD
    labels = [str(d) for s in range(6) for d in range(10) for _ in range(5)]
    groups = [f"spk{s}" for s in range(6) for d in range(10) for _ in range(5)]
    for seed in range(4):
        split = group_split(labels, groups, seed)
        where: dict[str, set[str]] = {}
        for g, s in zip(groups, split, strict=True):
            where.setdefault(g, set()).add(s)
        assert all(len(v) == 1 for v in where.values()), where
        assert {"train", "test"} <= set(split)
        for d in set(labels):
            sides = {s for y, s in zip(labels, split, strict=True) if y == d}
            assert {"train", "test"} <= sides
        counts = Counter(split)
        assert counts["train"] >= counts["test"]


def test_group_split_needs_two_groups() -> None:
    with pytest.raises(ManifestError, match="at least 2 groups"):
        group_split(["a", "b"], ["g", "g"], source="m.csv")


def test_kshot_draws_exactly_k_per_class_and_differs_across_seeds() -> None:
    labels = np.repeat(np.arange(4), 10)
    pool = np.arange(0, 40, 1)[np.arange(40) % 5 != 0]  # 8 train clips per class
    draws = []
    for seed in range(3):
        idx = kshot_indices(labels, pool, 3, seed)
        assert set(idx) <= set(pool)
        assert np.bincount(labels[idx]).tolist() == [3, 3, 3, 3]
        draws.append(tuple(idx))
    assert len(set(draws)) == 3
    assert tuple(kshot_indices(labels, pool, 3, 0)) == draws[0]


def test_kshot_with_too_few_clips_warns_and_uses_all() -> None:
    labels = np.array([0, 0, 0, 1])
    with pytest.warns(UserWarning, match="fewer than 2"):
        idx = kshot_indices(labels, np.arange(4), 2, 0)
    assert np.bincount(labels[idx]).tolist() == [2, 1]


def test_split_and_class_checks_name_the_source() -> None:
    assert check_split_values(["Train", " test", "valid"], "m.csv") == ["train", "test", "valid"]
    with pytest.raises(ManifestError, match=r"m\.csv: split values .*'dev'"):
        check_split_values(["train", "dev"], "m.csv")
    with pytest.raises(ManifestError, match=r"m\.csv: class 'x' has 1 example; each class needs"
                                            r" ≥ 2 \(one to train, one to test\)"):
        check_class_counts(["a", "a", "x"], "m.csv")


def _speakers(n_speakers: int = 6, n_classes: int = 10, per: int = 5
              ) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray([f"d{c}" for _ in range(n_speakers) for c in range(n_classes)
                         for _ in range(per)])
    groups = np.asarray([f"s{s}" for s in range(n_speakers) for _ in range(n_classes * per)])
    return labels, groups


@pytest.mark.parametrize("seed", [0, 1])
def test_carved_valid_is_group_disjoint_and_covers_every_class(seed: int) -> None:
    labels, groups = _speakers(8)
    labels[(groups == "s3") & (labels == "d9")] = "d8"  # one speaker lacks a class
    train = np.flatnonzero(~np.isin(groups, ["s0", "s1"]))  # six training speakers
    carved, disjoint = carve_valid(labels, train, groups, 0.15, seed)
    rest = np.setdiff1d(train, carved)
    assert disjoint and set(carved) <= set(train) and len(rest) + len(carved) == len(train)
    assert not set(groups[carved]) & set(groups[rest])
    assert set(labels[carved]) == set(labels[rest]) == set(labels[train])
    assert len(set(groups[carved])) == 1  # 1 of 6 speakers is the closest to 15 %


def test_carved_valid_without_groups_is_stratified() -> None:
    labels = np.asarray(["a"] * 40 + ["b"] * 7 + ["c"] * 2 + ["d"])
    train = np.arange(len(labels))
    carved, disjoint = carve_valid(labels, train, None, 0.15)
    assert not disjoint
    assert Counter(labels[carved].tolist()) == {"a": 6, "b": 1, "c": 1}  # "d": its only clip
    # a single training group cannot be split group-disjointly: stratified instead
    _, disjoint = carve_valid(labels, train, ["g"] * len(labels), 0.15)
    assert not disjoint
    with pytest.raises(ValueError, match="valid fraction"):
        carve_valid(labels, train, None, 0.0)


def test_task_with_valid_mirrors_how_test_relates_to_train() -> None:
    from pocketear.data.corpus import Corpus, Item
    from pocketear.evaluate.suites import EvalTask

    labels, groups = _speakers(6)
    unseen = np.where(np.isin(groups, ["s0"]), "test", "train")
    shared = np.where(np.arange(len(labels)) % 5 == 0, "test", "train")  # every speaker
    has_valid = np.where(np.arange(len(labels)) % 5 == 1, "valid", shared)
    corpus = Corpus([Item(f"{i}.wav") for i in range(len(labels))], "m.csv")
    task = EvalTask("t", corpus, labels.tolist(), unseen.tolist(), groups.tolist(),
                    [shared.tolist(), has_valid.tolist()])
    new, report = task.with_valid(0.15)
    assert [(r["fold"], r["group_disjoint"]) for r in report] == [(0, True), (1, False)]
    assert new.splits[2] == task.splits[2]  # a split with valid is left as it is
    for fold in (0, 1):
        part = np.asarray(new.splits[fold])
        assert (part[np.asarray(task.splits[fold]) == "test"] == "test").all()
        assert set(labels[part == "valid"]) == set(labels)
        assert report[fold]["n_valid"] == (part == "valid").sum()
    assert set(groups[np.asarray(new.splits[0]) == "valid"]).isdisjoint(
        groups[np.asarray(new.splits[0]) == "train"])
