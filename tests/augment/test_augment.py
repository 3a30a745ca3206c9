"""Augmentations: contract for everything registered, and statistics of each one's draws."""

from __future__ import annotations

import numpy as np
import pytest

from pocketear.augment import MelWarp, RandomEQ, TimeStretch, build_augment
from pocketear.augment.spectral import mel_centres, warp_bins
from pocketear.frontends.logmel import LogMelConfig
from pocketear.registry import available, create
from pocketear.train.config import ConfigError, load_config

CFG = LogMelConfig()


def _slice(seed: int = 0, frames: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((frames, CFG.n_mels)).astype(np.float32)


def _ready(name: str, **params: float):
    """A fresh augmentation, fitted on a small corpus and with its memory banks warmed up.

    This puts stateful ones (k-mix, mixup) in the same state before every call of the test below.
    """
    aug = create("augmentation", name, **params).bind(CFG)
    rng = np.random.default_rng(0)
    clips = [(_slice(100 + i, frames=30 + i) + rng.normal(0, 2, CFG.n_mels)).astype(np.float32)
             for i in range(12)]
    aug.fit(clips, np.random.default_rng(0))
    for i, c in enumerate(clips):
        aug(c[:20], np.random.default_rng(200 + i))
    return aug


@pytest.mark.parametrize("name", available("augmentation"))
def test_every_augmentation_keeps_shape_and_is_seeded(name: str) -> None:
    x = _slice()
    a = _ready(name)(x, np.random.default_rng(1))
    b = _ready(name)(x, np.random.default_rng(1))
    assert a.shape == x.shape and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    other = _ready(name)(x, np.random.default_rng(2))
    if not _ready(name).stochastic:  # normalisations: draw nothing
        np.testing.assert_array_equal(a, other)
        return
    assert not np.array_equal(a, other)
    off = _ready(name, p=0.0)
    np.testing.assert_array_equal(off(x, np.random.default_rng(1)), x)


def test_mel_warp_factors_are_uniform_in_range() -> None:
    aug = MelWarp(max_warp=0.2).bind(CFG)
    rng = np.random.default_rng(0)
    alphas = []
    for _ in range(2000):
        aug(_slice(frames=2), rng)
        alphas.append(aug.last_alpha)
    alphas = np.asarray(alphas)
    assert alphas.min() >= 0.8 and alphas.max() <= 1.2
    assert abs(alphas.mean() - 1.0) < 0.01 and abs(alphas.std() - 0.4 / np.sqrt(12)) < 0.01
    counts = np.histogram(alphas, bins=4, range=(0.8, 1.2))[0]
    assert counts.min() > 400  # ~500 per quarter


def test_mel_warp_moves_a_peak_to_the_warped_frequency() -> None:
    centres = mel_centres(CFG)
    x = np.zeros((3, CFG.n_mels), np.float32)
    x[:, 30] = 1.0  # a peak at bin 30
    for alpha in (0.85, 1.15):
        out = warp_bins(x, centres, alpha)
        peak = int(out[0].argmax())
        expect = int(np.abs(centres - centres[30] * alpha).argmin())
        assert abs(peak - expect) <= 1 and peak != 30


def test_time_stretch_scales_time() -> None:
    aug = TimeStretch(max_rate=0.1)
    ramp = np.repeat(np.arange(50, dtype=np.float32)[:, None], CFG.n_mels, 1)
    rng = np.random.default_rng(3)
    for _ in range(20):
        out = aug(ramp, rng)
        rate = aug.last_rate
        assert 0.9 <= rate <= 1.1
        k = np.arange(10)
        np.testing.assert_allclose(out[k, 0], k * rate, atol=1e-4)  # frame k reads time k·rate


def test_random_eq_is_a_bounded_smooth_curve() -> None:
    aug = RandomEQ(max_gain=0.5, n_bands=3)
    rng = np.random.default_rng(4)
    x = _slice()
    for _ in range(50):
        out = aug(x, rng)
        curve = out - x
        np.testing.assert_allclose(curve, np.broadcast_to(curve[0], curve.shape), atol=1e-5)
        assert np.abs(curve[0]).max() <= 0.5 + 1e-6
        assert np.abs(np.diff(curve[0], 2)).max() < 0.05  # smooth across bins


def test_compose_from_config_and_clear_errors() -> None:
    aug = build_augment([{"name": "mel_warp", "params": {"max_warp": 0.1}},
                         {"name": "random_eq"}], CFG)
    assert aug is not None and len(aug.augmentations) == 2
    assert build_augment([], CFG) is None
    with pytest.raises(ValueError, match="unknown augmentation 'nope'"):
        build_augment([{"name": "nope"}], CFG)
    with pytest.raises(ValueError, match="max_warp"):
        build_augment([{"name": "mel_warp", "params": {"max_warp": 2.0}}], CFG)
    cfg = load_config(None, ["task.name=triplet", "augment=[{name: time_stretch}]"])
    assert cfg["augment"] == [{"name": "time_stretch"}]
    with pytest.raises(ConfigError, match="unknown augmentation"):
        load_config(None, ["task.name=triplet", "augment=[{name: warp}]"])


def test_tasks_augment_each_view_with_its_own_draw() -> None:
    from pocketear.train.build import build_encoder, build_task

    cfg = load_config(None, ["task.name=triplet", "encoder.name=mobile_tiny",
                             "augment=[{name: mel_warp, params: {max_warp: 0.2}}]"])
    task = build_task(cfg, build_encoder(cfg))
    plain = build_task({**cfg, "augment": []}, build_encoder(cfg))
    # every frame alike: any crop is the same slice, so differences come from augmentation
    clip = np.repeat(np.sin(np.arange(CFG.n_mels) / 3.0)[None], 200, 0).astype(np.float32)
    a = task.sample(clip, np.random.default_rng(0), lambda: clip)
    b = plain.sample(clip, np.random.default_rng(0), lambda: clip)
    assert a is not None and b is not None
    np.testing.assert_array_equal(b["anchor"], b["positive"])
    assert not np.allclose(a["anchor"], a["positive"])  # two views, two warps
    assert not np.allclose(a["anchor"], b["anchor"]) and a["anchor"].shape == b["anchor"].shape
