"""Train/valid/test splits and k-shot draws for evaluation tasks.

Why seeded and explicit: every method and baseline of one run must see exactly the same clips,
and a speaker (or any group) must never sit on both sides of a split when the task asks for
generalisation to unseen groups.
"""

from __future__ import annotations

import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from pocketear.data.corpus import ManifestError
from pocketear.errors import InvalidValue

SPLITS = ("train", "valid", "test")
FRACTIONS = (0.6, 0.2, 0.2)
VALID_FRACTION = 0.15  # of the train clips, carved out when a split has no valid part


def check_split_values(values: Sequence[str], source: str) -> list[str]:
    """Validate a manifest's ``split`` column (case and blanks tolerated)."""
    out = [v.strip().lower() for v in values]
    bad = sorted({v for v in out if v not in SPLITS})
    if bad:
        shown = ", ".join(repr(v) for v in bad[:5])
        raise ManifestError(
            f"{source}: split values must be train, valid or test; found {shown}; fix those "
            "rows or drop the 'split' column to get a seeded 60/20/20 split"
        )
    return out


def check_class_counts(labels: Sequence[str], source: str) -> None:
    """Every class needs one clip to train on and one to test on."""
    for label, n in sorted(Counter(labels).items()):
        if n < 2:
            raise ManifestError(
                f"{source}: class {label!r} has {n} example; each class needs ≥ 2 (one to "
                "train, one to test): add examples or remove the class"
            )
    if len(set(labels)) < 2:
        raise ManifestError(f"{source}: only one class ({labels[0]!r}); a classification task "
                            "needs at least two labels")


def _allocate(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Sizes (train, valid, test) of one class: ≥ 1 train and ≥ 1 test, valid when n ≥ 3."""
    n_test = max(1, int(round(n * fractions[2])))
    n_valid = int(round(n * fractions[1])) if n >= 3 else 0
    n_valid = max(1, n_valid) if n >= 3 else 0
    n_train = n - n_test - n_valid
    while n_train < 1:  # small classes: give back from valid first, then test
        if n_valid > 0:
            n_valid -= 1
        else:
            n_test -= 1
        n_train = n - n_test - n_valid
    return n_train, n_valid, n_test


def stratified_split(
    labels: Sequence[str], seed: int = 0, fractions: Sequence[float] = FRACTIONS
) -> list[str]:
    """Seeded per-class split; every class with ≥ 2 clips lands in both train and test."""
    rng = np.random.default_rng([seed, 11])
    out = [""] * len(labels)
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, y in enumerate(labels):
        by_class[y].append(i)
    for y in sorted(by_class):
        idx = rng.permutation(by_class[y])
        n_train, n_valid, _ = _allocate(len(idx), fractions)
        for j, i in enumerate(idx):
            out[i] = "train" if j < n_train else "valid" if j < n_train + n_valid else "test"
    return out


def _group_score(assign: dict[str, str], labels: Sequence[str], groups: Sequence[str],
                 fractions: Sequence[float]) -> float:
    """Lower is better: classes missing from train/test dominate, then size mismatch."""
    classes = set(labels)
    seen: dict[str, set[str]] = {s: set() for s in SPLITS}
    count = Counter()
    for y, g in zip(labels, groups, strict=True):
        seen[assign[g]].add(y)
        count[assign[g]] += 1
    missing = len(classes - seen["train"]) + len(classes - seen["test"])
    n = len(labels)
    size = sum(abs(count[s] / n - f) for s, f in zip(SPLITS, fractions, strict=True))
    return missing * 10.0 + size + (0.5 if count["test"] == 0 or count["train"] == 0 else 0.0)


def group_split(
    labels: Sequence[str], groups: Sequence[str], seed: int = 0,
    fractions: Sequence[float] = FRACTIONS, tries: int = 64, source: str = "",
) -> list[str]:
    """Split whole groups (e.g. speakers) so no group spans two splits.

    Like scikit-learn's GroupShuffleSplit, with best-effort stratification: of ``tries`` seeded
    group orders, keep the one whose splits miss the fewest classes and best match ``fractions``.
    """
    uniq = sorted(set(groups))
    if len(uniq) < 2:
        raise ManifestError(f"{source}: a group-disjoint split needs at least 2 groups; found "
                            f"{len(uniq)}; add groups or drop the 'group' column")
    sizes = Counter(groups)
    n = len(labels)
    rng = np.random.default_rng([seed, 13])
    best: tuple[float, dict[str, str]] | None = None
    for _ in range(tries):
        order = [uniq[i] for i in rng.permutation(len(uniq))]
        assign: dict[str, str] = {}
        k = 0
        for split, frac in (("test", fractions[2]), ("valid", fractions[1])):
            filled, target = 0, frac * n
            # add groups while that brings the split closer to its target; test always gets
            # one group and train always keeps one
            while k < len(order) - 1:
                size = sizes[order[k]]
                if (filled or split != "test") and abs(filled + size - target) >= \
                        abs(filled - target):
                    break
                assign[order[k]] = split
                filled += size
                k += 1
        for g in order[k:]:
            assign[g] = "train"
        score = _group_score(assign, labels, groups, fractions)
        if best is None or score < best[0]:
            best = (score, assign)
    assert best is not None
    return [best[1][g] for g in groups]


def _carve_stratified(labels: np.ndarray, train: np.ndarray, fraction: float,
                      rng: np.random.Generator) -> np.ndarray:
    """``fraction`` of each class's train clips (≥ 1, but never a class's last train clip)."""
    out = []
    for y in np.unique(labels[train]):
        members = rng.permutation(train[labels[train] == y])
        if len(members) >= 2:
            out.append(members[:min(len(members) - 1, max(1, round(fraction * len(members))))])
    return np.sort(np.concatenate(out)) if out else np.zeros(0, np.int64)


def _carve_groups(labels: np.ndarray, groups: np.ndarray, train: np.ndarray, fraction: float,
                  rng: np.random.Generator, tries: int = 64) -> np.ndarray | None:
    """Whole train groups holding about ``fraction`` of the train clips.

    Of ``tries`` seeded group orders, the one whose valid part and remaining train part miss
    the fewest classes, then closest to ``fraction``. None when train has fewer than 2 groups.
    """
    uniq = np.unique(groups[train])
    if len(uniq) < 2:
        return None
    sizes = {g: int((groups[train] == g).sum()) for g in uniq}
    classes = set(labels[train].tolist())
    target = fraction * len(train)
    best: tuple[float, set] | None = None
    for _ in range(tries):
        order = [uniq[i] for i in rng.permutation(len(uniq))]
        chosen, filled = {order[0]}, sizes[order[0]]  # one group at least, one left for train
        for g in order[1:-1]:
            if abs(filled + sizes[g] - target) >= abs(filled - target):
                break
            chosen.add(g)
            filled += sizes[g]
        in_valid = np.isin(groups[train], list(chosen))
        missing = len(classes - set(labels[train][in_valid].tolist())) + \
            len(classes - set(labels[train][~in_valid].tolist()))
        score = missing * 10.0 + abs(filled - target) / len(train)
        if best is None or score < best[0]:
            best = (score, chosen)
    assert best is not None
    return np.sort(train[np.isin(groups[train], list(best[1]))])


def carve_valid(labels: Sequence[str] | np.ndarray, train: np.ndarray,
                groups: Sequence[str] | np.ndarray | None = None,
                fraction: float = VALID_FRACTION, seed: int = 0) -> tuple[np.ndarray, bool]:
    """Clips of ``train`` (indices) to move to a validation part, for a split that has none.

    Why: without validation nothing selects a probe's regularisation or the supervised
    baseline's epochs and learning rate, so its "ceiling" is an accident of a fixed budget.
    With ``groups`` the part is group-disjoint (whole groups, e.g. speakers, about ``fraction``
    of the clips, best-effort class coverage as in :func:`group_split`); without (or when train
    holds a single group) it is stratified: ``fraction`` of every class, at least one clip of
    each class that has two or more.

    Returns:
        The carved indices (sorted) and whether they are group-disjoint from the rest of train.
    """
    if not 0.0 < fraction < 1.0:
        raise InvalidValue(f"valid fraction must be in (0, 1), got {fraction}")
    y = np.asarray(labels)
    train = np.asarray(train, dtype=np.int64)
    rng = np.random.default_rng([seed, 19])
    if groups is not None:
        carved = _carve_groups(y, np.asarray(groups), train, fraction, rng)
        if carved is not None:
            return carved, True
    return _carve_stratified(y, train, fraction, rng), False


def kshot_indices(labels: np.ndarray, pool: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Exactly ``k`` clips per class from ``pool`` (indices into ``labels``), seeded.

    A class with fewer than ``k`` clips in the pool contributes all of them, with a warning.
    """
    if k < 1:
        raise InvalidValue(f"shots must be ≥ 1, got {k}")
    rng = np.random.default_rng([seed, 17, k])
    chosen: list[np.ndarray] = []
    short: list[str] = []
    for y in np.unique(labels[pool]):
        members = pool[labels[pool] == y]
        if len(members) < k:
            short.append(str(y))
        chosen.append(rng.permutation(members)[:k])
    if short:
        warnings.warn(f"{k}-shot: class(es) {', '.join(short[:5])} have fewer than {k} training "
                      "clips; using all of them", stacklevel=2)
    return np.sort(np.concatenate(chosen))
