"""Splits: stratified, group-disjoint, k-shot draws, split-value checks."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from pocketear.data.corpus import ManifestError
from pocketear.evaluate.splits import (
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
