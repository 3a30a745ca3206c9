"""Probes: accuracy on separable embeddings, chance on shuffled labels, clip averaging."""

from __future__ import annotations

import numpy as np
import pytest

from pocketear.evaluate.probes import Segments, average_by_clip
from pocketear.registry import available, create


def _clusters(n_clips: int, n_classes: int, seed: int, segs: int = 3, dim: int = 32,
              spread: float = 1.0) -> Segments:
    """Clips of a class share a centre; each clip has ``segs`` noisy segments."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(0, 3, (n_classes, dim))
    y = np.arange(n_clips) % n_classes
    clip = np.repeat(np.arange(n_clips), segs)
    x = centres[y[clip]] + rng.normal(0, spread, (len(clip), dim))
    return Segments(x.astype(np.float32), clip, y)


def test_all_probes_registered() -> None:
    assert {"linear", "mlp", "knn"} <= set(available("probe"))


@pytest.mark.parametrize("name", ["linear", "mlp", "knn"])
def test_probe_separates_separable_embeddings(name: str) -> None:
    train, valid, test = (_clusters(n, 5, s) for n, s in ((100, 0), (30, 1), (100, 2)))
    probe = create("probe", name).fit(train, valid, 5, seed=0)
    assert probe.accuracy(test) >= 0.95


def test_linear_probe_on_shuffled_labels_is_near_chance() -> None:
    train, valid, test = (_clusters(n, 5, s, spread=3.0) for n, s in
                          ((200, 0), (50, 1), (400, 2)))
    rng = np.random.default_rng(0)
    # labels independent of the embeddings everywhere: nothing to learn, nothing leaks
    train.y, valid.y, test.y = (rng.permutation(s.y) for s in (train, valid, test))
    acc = create("probe", "linear").fit(train, valid, 5, seed=0).accuracy(test)
    assert abs(acc - 0.2) < 0.07, acc


def test_linear_probe_selects_c_on_valid() -> None:
    train, valid = _clusters(60, 3, 0), _clusters(30, 3, 1)
    probe = create("probe", "linear").fit(train, valid, 3)
    assert probe.chosen_c in probe.grid
    assert create("probe", "linear").fit(train, None, 3).chosen_c == 1.0


def test_clip_prediction_averages_segment_probabilities() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    clip = np.array([0, 0, 0, 1])
    avg = average_by_clip(proba, clip, 2)
    np.testing.assert_allclose(avg, [[1.4 / 3, 1.6 / 3], [0.6, 0.4]])
    # one confident segment outvoted by two mildly confident ones: averaging, not max
    assert avg[0].argmax() == 1

    train, test = _clusters(60, 3, 0), _clusters(12, 3, 5, segs=4)
    probe = create("probe", "linear").fit(train, None, 3)
    seg = probe.predict_proba(test.x)
    want = np.stack([seg[test.clip == j].mean(0) for j in range(len(test))])
    np.testing.assert_allclose(probe.predict_clips(test), want)


def test_classes_missing_from_train_get_zero_probability() -> None:
    train = _clusters(40, 2, 0)
    probe = create("probe", "knn").fit(train, None, n_classes=4)
    p = probe.predict_proba(train.x[:5])
    assert p.shape == (5, 4) and np.all(p[:, 2:] == 0)
    np.testing.assert_allclose(p.sum(1), 1.0)


@pytest.mark.parametrize("name", ["linear", "mlp", "knn"])
def test_probes_handle_one_shot(name: str) -> None:
    full = _clusters(30, 5, 0, segs=2)
    keep = np.arange(5)  # one clip per class
    seg = np.isin(full.clip, keep)
    one = Segments(full.x[seg], full.clip[seg], full.y[keep])
    probe = create("probe", name).fit(one, _clusters(10, 5, 1), 5, seed=1)
    assert probe.accuracy(_clusters(50, 5, 2)) >= 0.8
