"""BYOL-A / SLICER / SpecAugment augmentations: statistics of their draws, fit and state."""

from __future__ import annotations

import numpy as np
import pytest

from pocketear.augment import (
    Clips,
    Compose,
    GaussianNoise,
    KMix,
    LogMixupExp,
    PostNorm,
    PreNorm,
    RandomResizeCrop,
    SpecAugment,
    build_augment,
)
from pocketear.frontends.logmel import LogMelConfig

CFG = LogMelConfig()
F = CFG.n_mels


def _slice(seed: int = 0, frames: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((frames, F)).astype(np.float32)


def test_log_mixup_exp_formula_ratio_and_fifo_bank() -> None:
    aug = LogMixupExp(alpha=0.4, bank_size=1)
    rng = np.random.default_rng(0)
    m, x = _slice(1), _slice(2)
    np.testing.assert_array_equal(aug(m, rng), m)  # empty bank: unchanged
    assert aug.last_lambda == 0.0
    out = aug(x, rng)  # the bank holds only m
    lam = aug.last_lambda
    assert 0.0 < lam < 0.4
    np.testing.assert_allclose(out, np.log((1 - lam) * np.exp(x) + lam * np.exp(m)), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_array_equal(aug.bank.items[0], x)  # FIFO of size 1: x replaced m
    lams = []
    for _ in range(3000):
        aug(_slice(frames=2), rng)
        lams.append(aug.last_lambda)
    lams = np.asarray(lams)
    assert lams.min() >= 0.0 and lams.max() < 0.4
    assert abs(lams.mean() - 0.2) < 0.01 and abs(lams.std() - 0.4 / np.sqrt(12)) < 0.01
    assert np.histogram(lams, bins=4, range=(0, 0.4))[0].min() > 650  # ~750 per quarter


def test_log_mixup_exp_partner_length_is_matched() -> None:
    aug = LogMixupExp(bank_size=4)
    rng = np.random.default_rng(0)
    aug(_slice(1, frames=100), rng)
    assert aug(_slice(2, frames=30), rng).shape == (30, F)  # long partner cropped
    aug.reset()
    aug(_slice(3, frames=5), rng)
    assert aug(_slice(4, frames=30), rng).shape == (30, F)  # short partner wrapped
    assert len(aug.bank) == 2
    aug.reset()
    assert len(aug.bank) == 0


def test_random_resize_crop_sizes_in_range() -> None:
    t = 96
    aug = RandomResizeCrop()  # canvas 1.5 x 1.0, scales 0.6-1.5
    rng = np.random.default_rng(0)
    sizes, offsets = [], []
    for _ in range(2000):
        out = aug(_slice(frames=t), rng)
        assert out.shape == (t, F) and out.dtype == np.float32
        sizes.append(aug.last_crop)
        offsets.append(aug.last_offset)
    h, w = np.asarray(sizes).T
    i, j = np.asarray(offsets).T
    assert h.min() >= round(0.6 * t) and h.max() <= round(1.5 * t)
    assert w.min() >= round(0.6 * F) and w.max() <= F  # frequency canvas is 1.0
    assert (i + h).max() <= 144 and (j + w).max() <= F and i.min() >= 0 and j.min() >= 0
    # time scale uniform on (0.6, 1.5): mean 1.05·T; frequency clipped at 1.0 w.p. 0.5/0.9
    assert abs(h.mean() / t - 1.05) < 0.02
    assert abs((w == F).mean() - 0.5 / 0.9) < 0.04


def test_random_resize_crop_of_fixed_size_is_a_shift() -> None:
    x = _slice(5, frames=40)
    same = RandomResizeCrop(time_canvas=1.0, time_scale=(1, 1), freq_scale=(1, 1),
                            interpolation="bilinear")
    np.testing.assert_allclose(same(x, np.random.default_rng(0)), x, atol=1e-6)
    shift = RandomResizeCrop(time_scale=(1, 1), freq_scale=(1, 1), interpolation="bilinear")
    rng = np.random.default_rng(1)
    for _ in range(10):
        out = shift(x, rng)
        d = shift.last_offset[0] - 10  # the slice sits at frames 10..50 of a 60-frame canvas
        canvas = np.zeros((60, F), np.float32)
        canvas[10:50] = x
        np.testing.assert_allclose(out, canvas[10 + d : 50 + d], atol=1e-6)


def _three_sounds(n: int = 30) -> list[np.ndarray]:
    """Clips of three kinds, far apart in their time-averaged spectrum."""
    rng = np.random.default_rng(0)
    shapes = [np.linspace(-3, 3, F), np.linspace(3, -3, F), 3 * np.cos(np.linspace(0, 6, F))]
    return [(shapes[i % 3] + 0.3 * rng.standard_normal((50 + i, F))).astype(np.float32)
            for i in range(n)]


@pytest.mark.parametrize("partner", ["same", "other"])
def test_kmix_partner_from_the_chosen_cluster(partner: str) -> None:
    clips = _three_sounds()
    aug = KMix(k=3, partner=partner, bank_size=16)
    aug.fit(clips, np.random.default_rng(0))
    assert aug.centroids is not None and aug.centroids.shape == (3, F)
    truth = {}  # true kind -> cluster id: the clustering recovers the three kinds
    for i, c in enumerate(clips):
        truth.setdefault(i % 3, set()).add(aug.assign(c))
    assert all(len(v) == 1 for v in truth.values()) and len(set.union(*truth.values())) == 3
    rng = np.random.default_rng(1)
    mixed = 0
    for _ in range(300):
        x = clips[int(rng.integers(len(clips)))][:20]
        aug(x, rng)
        if aug.last_partner_cluster is None:
            continue
        mixed += 1
        assert 0 < aug.last_lambda < 0.4
        if partner == "same":
            assert aug.last_partner_cluster == aug.last_cluster
        else:
            assert aug.last_partner_cluster != aug.last_cluster
    assert mixed > 250


def test_kmix_without_eligible_partner_leaves_the_slice() -> None:
    clips = _three_sounds()
    aug = KMix(k=3, partner="other")
    aug.fit(clips, np.random.default_rng(0))
    rng = np.random.default_rng(0)
    x = clips[0][:20]
    aug(x, rng)
    np.testing.assert_array_equal(aug(x, rng), x)  # the bank holds only x's own cluster
    assert aug.skipped == 1 and aug.last_partner_cluster is None
    assert aug(clips[1][:20], rng) is not None and aug.last_partner_cluster == aug.assign(x)


def test_kmix_state_round_trip_and_errors() -> None:
    aug = KMix(k=3)
    with pytest.raises(RuntimeError, match="no centroids"):
        aug(_slice(), np.random.default_rng(0))
    aug.fit(_three_sounds(), np.random.default_rng(0))
    other = KMix(k=3)
    other.load_state(aug.state())
    np.testing.assert_array_equal(other.centroids, aug.centroids)
    with pytest.raises(ValueError, match="centroids"):
        other.load_state({"mean": np.zeros(3)})
    with pytest.raises(ValueError, match="distinct"):
        KMix().fit([_slice()] * 3, np.random.default_rng(0))
    small = KMix(k=64)
    small.fit(_three_sounds(6), np.random.default_rng(0))
    assert small.centroids.shape[0] == 6  # capped at the number of clips


def _ranked_kmix(partner: str, top_k: int = 4) -> KMix:
    """k-mix with hand-placed centroids on one axis, at 0, 1, 3 and 10.

    Seen from cluster 0 the farthest is 3, then 2, then 1, then 0 itself.
    """
    aug = KMix(k=4, partner=partner, top_k=top_k, bank_size=64)
    axis = np.ones(F, np.float32) / np.sqrt(F)
    aug.load_state({"centroids": np.stack([pos * axis for pos in (0.0, 1.0, 3.0, 10.0)])})
    return aug


def _member(aug: KMix, cluster: int, frames: int = 10) -> np.ndarray:
    x = np.tile(aug.centroids[cluster], (frames, 1))
    assert aug.assign(x) == cluster
    return x


def test_kmix_defaults_are_the_official_ones() -> None:
    aug = KMix()
    assert (aug.k, aug.partner, aug.top_k, aug.iters, aug.spherical) == (4, "farthest", 128, 20,
                                                                          True)
    assert (aug.alpha, aug.bank.size) == (0.4, 2048)


@pytest.mark.parametrize(("partner", "bank", "want"), [
    ("farthest", {1: 3, 2: 3}, 2),  # cluster 3 is empty: the next farthest with members
    ("farthest", {1: 3, 2: 3, 3: 1}, 3),
    ("farthest", {0: 6}, 0),  # only its own cluster (ranked last) has members
    ("nearest", {1: 3, 2: 3}, 1),
    ("nearest", {0: 1, 1: 3, 3: 3}, 0),  # its own cluster comes first
])
def test_kmix_ranks_clusters_by_centroid_distance(partner: str, bank: dict, want: int) -> None:
    aug = _ranked_kmix(partner)
    for cluster, n in bank.items():
        for _ in range(n):
            aug.bank.push(_member(aug, cluster), cluster)
    assert len(aug.bank) >= aug.top_k  # past the random phase
    np.testing.assert_array_equal(aug.ranking(0), [3, 2, 1, 0] if partner == "farthest"
                                  else [0, 1, 2, 3])
    pool = aug.candidates(0)
    assert len(pool) == min(bank[want], aug.top_k) and set(aug.bank.tags[pool]) == {want}
    aug(_member(aug, 0), np.random.default_rng(0))
    assert aug.last_partner_cluster == want and 0 < aug.last_lambda < 0.4


def test_kmix_random_partner_while_the_bank_is_small_and_top_k_newest() -> None:
    aug = _ranked_kmix("farthest", top_k=4)
    aug.bank.push(_member(aug, 1), 1)
    aug.bank.push(_member(aug, 2), 2)
    aug.bank.push(_member(aug, 1), 1)  # 3 < top_k entries: any entry may be the partner
    np.testing.assert_array_equal(aug.candidates(0), [0, 1, 2])
    for _ in range(3):
        aug.bank.push(_member(aug, 2), 2)
    aug.bank.push(_member(aug, 2), 2)  # cluster 2 now holds slots 1, 3, 4, 5, 6
    np.testing.assert_array_equal(np.sort(aug.candidates(0)), [3, 4, 5, 6])  # its 4 newest
    # seen from cluster 3 the farthest is 0 (no entries), then 1: slots 0 and 2
    assert list(aug.ranking(3)) == [0, 1, 2, 3]
    np.testing.assert_array_equal(np.sort(aug.candidates(3)), [0, 2])


def test_kmix_spherical_centroids_are_unit_length() -> None:
    clips = _three_sounds()
    spherical, plain = KMix(k=3), KMix(k=3, spherical=False)
    spherical.fit(clips, np.random.default_rng(0))
    plain.fit(clips, np.random.default_rng(0))
    np.testing.assert_allclose(np.linalg.norm(spherical.centroids, axis=1), 1.0, rtol=1e-5)
    assert np.linalg.norm(plain.centroids, axis=1).min() > 5  # the clips' own scale (~14)
    # both recover the three kinds
    for aug in (spherical, plain):
        assert len({tuple(aug.assign(c) for c in clips[i::3]) for i in range(3)}) == 3
        assert all(len(set(aug.assign(c) for c in clips[i::3])) == 1 for i in range(3))


def test_spec_augment_mask_widths_in_range() -> None:
    aug = SpecAugment(time_masks=2, time_width=12, freq_masks=3, freq_width=8, fill=0.0)
    rng = np.random.default_rng(0)
    x = _slice(frames=96) + 5.0  # nothing is 0 before masking
    widths = {0: [], 1: []}
    for _ in range(500):
        out = aug(x, rng)
        assert len(aug.last_masks) == 5
        masked = np.zeros_like(x, bool)
        for axis, start, w in aug.last_masks:
            widths[axis].append(w)
            assert start >= 0 and start + w <= x.shape[axis]
            if axis == 0:
                masked[start : start + w] = True
            else:
                masked[:, start : start + w] = True
        np.testing.assert_array_equal(out == 0.0, masked)
        np.testing.assert_array_equal(out[~masked], x[~masked])
    assert set(widths[0]) == set(range(13)) and set(widths[1]) == set(range(9))
    capped = SpecAugment(time_masks=1, time_width=50, freq_masks=0, max_time_ratio=0.1)
    for _ in range(200):
        capped(x, rng)
        assert capped.last_masks[0][2] <= 9  # at most 10 % of 96 frames


def test_gaussian_noise_std() -> None:
    x = _slice(frames=200)
    noise = GaussianNoise(sigma=0.3)(x, np.random.default_rng(0)) - x
    assert abs(noise.std() - 0.3) < 0.01 and abs(noise.mean()) < 0.01
    half = GaussianNoise(sigma=0.3, p=0.5)
    rng = np.random.default_rng(1)
    applied = np.mean([not np.array_equal(half(x[:2], rng), x[:2]) for _ in range(2000)])
    assert abs(applied - 0.5) < 0.04


def test_post_norm_standardises_augmented_views() -> None:
    rng = np.random.default_rng(0)
    clips = [(rng.standard_normal((60 + i, F)) * 1.0).astype(np.float32) for i in range(40)]
    chain = build_augment([{"name": "pre_norm"}, {"name": "log_mixup_exp"},
                           {"name": "random_resize_crop"}, {"name": "post_norm"}], CFG)
    assert chain is not None
    chain.fit(Clips(lambda i: clips[i], len(clips)), np.random.default_rng(0))
    pre, mix, _, post = chain.augmentations
    assert isinstance(pre, PreNorm) and isinstance(post, PostNorm)
    assert abs(float(pre.mean)) < 0.02 and abs(float(pre.std) - 1) < 0.02  # nearly identity
    assert len(mix.bank) == 0  # fit leaves the banks empty
    # mixup (log of a sum of exps) raises the mean: post_norm learnt that and undoes it
    assert float(post.mean) > 0.05
    views = np.stack([chain(c[:40], np.random.default_rng(i)) for i, c in enumerate(clips * 3)])
    assert abs(views.mean()) < 0.05 and abs(views.std() - 1) < 0.05
    raw = Compose(chain.augmentations[:3])
    raw.reset()
    plain = np.stack([raw(c[:40], np.random.default_rng(i)) for i, c in enumerate(clips * 3)])
    assert abs(plain.mean()) > 0.05  # without post_norm the views drift


def test_compose_state_round_trip_and_mismatch() -> None:
    specs = [{"name": "pre_norm", "params": {"per_bin": True}}, {"name": "kmix",
             "params": {"k": 3}}, {"name": "post_norm"}]
    chain = build_augment(specs, CFG)
    assert chain is not None
    chain.fit(_three_sounds(), np.random.default_rng(0))
    state = chain.state()
    assert set(state) == {"0.PreNorm.mean", "0.PreNorm.std", "1.KMix.centroids",
                          "2.PostNorm.mean", "2.PostNorm.std"}
    assert state["0.PreNorm.mean"].shape == (F,) and state["2.PostNorm.mean"].shape == ()
    again = build_augment(specs, CFG)
    assert again is not None
    again.load_state(state)
    x = _three_sounds()[4][:30]
    np.testing.assert_array_equal(again(x, np.random.default_rng(3)),
                                  chain(x, np.random.default_rng(3)))
    with pytest.raises(ValueError, match="does not match"):
        again.load_state({"0.KMix.centroids": state["1.KMix.centroids"]})
    with pytest.raises(ValueError, match="mean"):
        again.load_state({k: v for k, v in state.items() if k != "2.PostNorm.std"})
    assert build_augment([{"name": "gaussian_noise"}], CFG).state() == {}


@pytest.mark.parametrize(("name", "params", "match"), [
    ("log_mixup_exp", {"alpha": 0.0}, "alpha"),
    ("log_mixup_exp", {"bank_size": 0}, "bank_size"),
    ("kmix", {"partner": "near"}, "partner"),
    ("kmix", {"k": 1}, "k >= 2"),
    ("kmix", {"top_k": 0}, "top_k"),
    ("kmix", {"iters": 0}, "iters"),
    ("random_resize_crop", {"time_scale": (0.0, 1.0)}, "time_scale"),
    ("random_resize_crop", {"time_canvas": 0.5}, "canvas"),
    ("random_resize_crop", {"interpolation": "nearest"}, "interpolation"),
    ("spec_augment", {"freq_masks": -1}, "freq_masks"),
    ("spec_augment", {"max_time_ratio": 0.0}, "max_time_ratio"),
    ("gaussian_noise", {"sigma": 0.0}, "sigma"),
    ("post_norm", {"max_clips": 0}, "max_clips"),
    ("pre_norm", {"p": 0.5}, "unexpected keyword"),
])
def test_bad_params_are_value_errors(name: str, params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_augment([{"name": name, "params": params}], CFG)


class _Recorder(PostNorm):
    """post_norm that records the lengths of the clips it is fitted on."""

    def fit(self, clips, rng, progress=False):
        self.lengths = [len(c) for c in clips]
        super().fit(clips, rng, progress)


def test_compose_fit_windows_only_after_stochastic_members() -> None:
    clips = _three_sounds(9)  # 50..58 frames
    first, after_pre, after_mix = _Recorder(), _Recorder(), _Recorder()
    Compose([first, PreNorm(), after_pre, LogMixupExp(), after_mix]).fit(
        clips, np.random.default_rng(0), frames=20)
    whole = [len(c) for c in clips]
    assert first.lengths == whole and after_pre.lengths == whole  # k-mix would see whole clips
    assert after_mix.lengths == [20] * 9  # training-like windows after mixup
    Compose([LogMixupExp(), after_mix]).fit(clips, np.random.default_rng(0))
    assert after_mix.lengths == whole  # no frames given: whole clips
