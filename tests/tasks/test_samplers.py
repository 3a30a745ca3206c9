"""Statistical tests of the seed tasks' samplers.

Clips encode their own frame index (``clip[t, :] = t``), so every slice in an example tells where
it was cut: ``slice[0, 0]`` is its offset, and ``slice[:, 0]`` must be consecutive indices that
stay inside the clip. Uniformity is tested with a randomised probability integral transform:
for ``k`` uniform on ``0 … n-1`` and ``V ~ U(0, 1)``, ``(k + V) / n`` is exactly ``U(0, 1)``, so
a Kolmogorov–Smirnov test applies to discrete offsets. Seeds are fixed: the tests are
deterministic; the thresholds (p > 1e-3) only matter if the sampler changes.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from scipy import stats

from pocketear.registry import get

F = 4
S = 96
P_MIN = 1e-3


def index_clip(frames: int, base: float = 0.0) -> np.ndarray:
    """A ``(frames, F)`` clip whose row ``t`` holds ``base + t`` in every bin."""
    return np.repeat(base + np.arange(frames, dtype=np.float32)[:, None], F, axis=1)


def offset(sl: np.ndarray, clip_frames: int, base: float = 0.0) -> int:
    """Offset of a slice cut from an ``index_clip``; asserts it is contiguous and in the clip."""
    col = sl[:, 0] - base
    start = int(col[0])
    np.testing.assert_array_equal(col, start + np.arange(len(col)))
    assert start >= 0 and start + len(col) <= clip_frames, "slice reads past the clip's end"
    return start


def uniform_p(values: np.ndarray, n: np.ndarray | int, rng: np.random.Generator) -> float:
    """KS p-value that integer ``values`` are uniform on ``0 … n-1`` (randomised PIT)."""
    u = (np.asarray(values) + rng.random(len(values))) / n
    return float(stats.kstest(u, "uniform").pvalue)


def make(name: str, make_encoder, **overrides):
    cls = get("task", name)
    return cls(make_encoder(n_mels=F), cls.Config(**overrides))


def never() -> np.ndarray:
    raise AssertionError("other() must not be called by this task")


# --- Audio2Vec (CBoW and SkipGram share the sampler) -----------------------------------------


@pytest.mark.parametrize("name", ["audio2vec_cbow", "audio2vec_skipgram"])
@pytest.mark.parametrize(("n_side", "gap"), [(2, 0), (1, 10)])
def test_audio2vec_context_contiguous_and_uniform(name, n_side, gap, make_encoder) -> None:
    task = make(name, make_encoder, n_side=n_side, gap_frames=gap)
    frames = 600
    window = (2 * n_side + 1) * S + 2 * n_side * gap
    assert task.window_frames == window
    clip, rng = index_clip(frames), np.random.default_rng(0)
    starts = []
    for _ in range(4000):
        ex = task.sample(clip, rng, never)
        assert ex["context"].shape == (2 * n_side, S, F) and ex["centre"].shape == (S, F)
        assert ex["context"].dtype == np.float32 and ex["centre"].dtype == np.float32
        slices = [*ex["context"][:n_side], ex["centre"], *ex["context"][n_side:]]
        offs = [offset(s, frames) for s in slices]
        assert np.all(np.diff(offs) == S + gap), f"not contiguous/in order: {offs}"
        starts.append(offs[0])
    assert min(starts) >= 0 and max(starts) <= frames - window
    assert uniform_p(np.array(starts), frames - window + 1, np.random.default_rng(1)) > P_MIN
    counts = Counter(starts)  # every valid start is reachable
    assert set(counts) == set(range(frames - window + 1))


@pytest.mark.parametrize("name", ["audio2vec_cbow", "audio2vec_skipgram"])
def test_audio2vec_short_clip_policy(name, make_encoder) -> None:
    task = make(name, make_encoder)  # window 480, max_pad_fraction 0.1 -> pad up to 48 frames
    rng = np.random.default_rng(0)
    exact = task.sample(index_clip(480), rng, never)
    assert offset(exact["context"][0], 480) == 0
    padded = task.sample(index_clip(440), rng, never)
    assert padded is not None
    last = padded["context"][-1][:, 0]  # frames 384..439 then 40 padded frames
    np.testing.assert_array_equal(last[:56], np.arange(384, 440))
    np.testing.assert_array_equal(last[56:], 0.0)  # the bin's silence level (its minimum)
    assert task.sample(index_clip(431), rng, never) is None  # 49 frames short: > 10 %
    strict = make(name, make_encoder, max_pad_fraction=0.0)
    assert strict.sample(index_clip(479), rng, never) is None


# --- TemporalGap -----------------------------------------------------------------------------


@pytest.mark.parametrize(("frames", "max_gap", "sep"),
                         [(600, 1000, None), (600, 200, None), (1500, 1000, None),
                          (600, 1000, 0), (600, 200, 30)])
def test_temporal_gap_label_and_uniformity(frames, max_gap, sep, make_encoder) -> None:
    task = make("temporal_gap", make_encoder, max_gap_frames=max_gap, min_separation_frames=sep)
    clip, rng = index_clip(frames), np.random.default_rng(0)
    g_max = min(max_gap, frames - S)
    g_min = S if sep is None else sep  # default: disjoint slices
    gaps, firsts, swapped = [], [], []
    for _ in range(5000):
        ex = task.sample(clip, rng, never)
        t1, t2 = offset(ex["first"], frames), offset(ex["second"], frames)
        gap = abs(t1 - t2)
        assert int(ex["gap"]) == gap
        assert ex["target"].dtype == np.float32 and 0.0 <= ex["target"] <= 1.0
        assert round(float(ex["target"]) * max_gap) == gap  # label x max_gap == true gap
        assert abs(float(ex["target"]) - gap / max_gap) < 1e-6
        gaps.append(gap)
        firsts.append(min(t1, t2))
        if gap:
            swapped.append(t1 > t2)
    gaps_a, firsts_a = np.array(gaps), np.array(firsts)
    assert gaps_a.min() >= g_min and gaps_a.max() <= g_max
    check = np.random.default_rng(1)
    assert uniform_p(gaps_a - g_min, g_max - g_min + 1, check) > P_MIN  # gap uniform on m … G
    # given the gap, the earlier offset is uniform on 0 … T - S - gap
    assert uniform_p(firsts_a, frames - S - gaps_a + 1, check) > P_MIN
    assert stats.binomtest(sum(swapped), len(swapped), 0.5).pvalue > P_MIN  # random order


def test_temporal_gap_short_clip_policy(make_encoder) -> None:
    task = make("temporal_gap", make_encoder)  # disjoint slices: needs 2S = 192 frames
    assert task.min_frames == 2 * S - 19  # 10 % of 192, rounded down
    rng = np.random.default_rng(0)
    ex = task.sample(index_clip(180), rng, never)  # 12 frames short (<= 10 %): padded
    assert ex is not None and int(ex["gap"]) == S  # the only disjoint pair: 0 and S
    later = ex["first"] if ex["first"][0, 0] == S else ex["second"]
    np.testing.assert_array_equal(later[:84, 0], np.arange(S, 180))
    np.testing.assert_array_equal(later[84:], 0.0)
    assert task.sample(index_clip(172), rng, never) is None  # 20 frames short: > 10 %
    overlap = make("temporal_gap", make_encoder, min_separation_frames=0)
    assert overlap.min_frames == S - 9
    ex = overlap.sample(index_clip(90), rng, never)  # 6 frames short: padded, gap 0
    assert ex is not None and int(ex["gap"]) == 0 and float(ex["target"]) == 0.0
    assert overlap.sample(index_clip(86), rng, never) is None
    with pytest.raises(ValueError, match="min_separation_frames"):
        make("temporal_gap", make_encoder, max_gap_frames=50)  # S = 96 > 50


# --- Triplet ---------------------------------------------------------------------------------


class Other:
    """``other()`` stand-in: counts calls and returns a clip whose values start at 10 000."""

    def __init__(self, frames: int = 300) -> None:
        self.frames, self.calls = frames, 0

    def __call__(self) -> np.ndarray:
        self.calls += 1
        return index_clip(self.frames, base=10_000.0)


def test_triplet_negative_from_other_and_uniform_offsets(make_encoder) -> None:
    task = make("triplet", make_encoder, min_separation_frames=0)
    frames, other = 600, Other(300)
    clip, rng = index_clip(frames), np.random.default_rng(0)
    anchors, positives, negatives = [], [], []
    for i in range(4000):
        ex = task.sample(clip, rng, other)
        assert other.calls == i + 1  # one call per example
        anchors.append(offset(ex["anchor"], frames))
        positives.append(offset(ex["positive"], frames))
        negatives.append(offset(ex["negative"], other.frames, base=10_000.0))
    check = np.random.default_rng(1)
    for offs, n in (
        (anchors, frames - S + 1),
        (positives, frames - S + 1),
        (negatives, 300 - S + 1),
    ):
        assert uniform_p(np.array(offs), n, check) > P_MIN
    # independent anchor/positive offsets: their difference is triangular, not concentrated
    assert stats.pearsonr(anchors, positives).pvalue > P_MIN


def test_triplet_min_separation_uniform_over_pairs(make_encoder) -> None:
    m = S
    task = make("triplet", make_encoder, min_separation_frames=m)
    frames = S + m + 3  # valid offsets 0 … m+3; unordered pairs at least m apart: 10
    clip, rng = index_clip(frames), np.random.default_rng(0)
    pairs = Counter()
    for _ in range(6000):
        ex = task.sample(clip, rng, Other())
        a, p = offset(ex["anchor"], frames), offset(ex["positive"], frames)
        assert abs(a - p) >= m
        pairs[(a, p)] += 1
    valid = {(a, p) for a in range(m + 4) for p in range(m + 4) if abs(a - p) >= m}
    assert set(pairs) == valid and len(valid) == 20
    assert stats.chisquare([pairs[k] for k in sorted(valid)]).pvalue > P_MIN


def test_triplet_default_positive_does_not_overlap_anchor(make_encoder) -> None:
    task = make("triplet", make_encoder)
    assert task.separation == S and task.min_frames == 2 * S - 19
    clip, rng = index_clip(400), np.random.default_rng(0)
    for _ in range(500):
        ex = task.sample(clip, rng, Other())
        assert abs(offset(ex["anchor"], 400) - offset(ex["positive"], 400)) >= S


def test_triplet_short_clips(make_encoder) -> None:
    task = make("triplet", make_encoder, min_separation_frames=0)
    rng = np.random.default_rng(0)
    assert task.sample(index_clip(80), rng, never) is None  # 16 frames short: > 10 %
    ex = task.sample(index_clip(90), rng, Other())  # 6 short: padded with the minimum
    np.testing.assert_array_equal(ex["anchor"][90:], 0.0)
    ex = task.sample(index_clip(600), rng, Other(50))  # short negative clip: padded
    np.testing.assert_array_equal(ex["negative"][:50, 0], 10_000 + np.arange(50))
    np.testing.assert_array_equal(ex["negative"][50:], 10_000.0)
    sep = make("triplet", make_encoder, min_separation_frames=S)
    assert sep.sample(index_clip(2 * S - 30), rng, never) is None
    ex = sep.sample(index_clip(2 * S), rng, Other())
    assert {offset(ex["anchor"], 2 * S), offset(ex["positive"], 2 * S)} == {0, S}


def test_collate_stacks(make_encoder) -> None:
    task = make("temporal_gap", make_encoder)
    rng = np.random.default_rng(0)
    batch = task.collate([task.sample(index_clip(600), rng, never) for _ in range(3)])
    assert batch["first"].shape == (3, S, F) and batch["target"].shape == (3,)


# --- padding: per-bin silence, never a loss target ---------------------------------------------


def tilted_clip(frames: int) -> np.ndarray:
    """A clip whose bins sit at very different levels (bin ``f`` around ``-10 f``).

    A global minimum would pad the loud bins far below anything they ever hold.
    """
    rng = np.random.default_rng(frames)
    return (-10.0 * np.arange(F)[None, :] + rng.random((frames, F))).astype(np.float32)


def test_padding_uses_each_bins_own_silence_level(make_encoder) -> None:
    clip = tilted_clip(90)
    ex = make("triplet", make_encoder, min_separation_frames=0).sample(
        clip, np.random.default_rng(0), Other())
    np.testing.assert_array_equal(ex["anchor"][90:], np.broadcast_to(clip.min(0), (6, F)))
    ex = make("cola", make_encoder, same_segment=True).sample(
        clip, np.random.default_rng(0), never)
    np.testing.assert_array_equal(ex["view1"][90:], np.broadcast_to(clip.min(0), (6, F)))


@pytest.mark.parametrize("name", ["audio2vec_cbow", "audio2vec_skipgram"])
def test_audio2vec_padding_never_reaches_a_loss_target(name, make_encoder) -> None:
    """Padded frames are flagged in the example and the decoders' loss ignores them.

    Whatever the padded target frames hold, the loss is the same (while real target frames
    count).
    """
    task = make(name, make_encoder, n_side=1, slice_frames=32, max_pad_fraction=0.5)
    assert task.min_frames == 48  # window 96, up to half of it padding
    rng = np.random.default_rng(0)
    frames = 60  # slices at 0, 32, 64: the centre ends in 4 padded frames, the last context
    examples = [task.sample(tilted_clip(frames), rng, never) for _ in range(4)]  # slice is all
    for ex in examples:  # padding
        np.testing.assert_array_equal(ex["centre_valid"], 32 + np.arange(32) < frames)
        np.testing.assert_array_equal(ex["context_valid"][0], np.ones(32, bool))
        np.testing.assert_array_equal(ex["context_valid"][1], np.zeros(32, bool))
    key = "centre" if name == "audio2vec_cbow" else "context"  # what the decoders reconstruct
    batch = task.collate(examples)
    task.eval()
    loss = task.step(batch)[0]
    pad = ~batch[f"{key}_valid"].bool()
    assert pad.any() and (~pad).any()
    changed = {**batch, key: batch[key].clone()}
    changed[key][pad] = 1e3  # any value on the padded target frames
    torch.testing.assert_close(task.step(changed)[0], loss)
    control = {**batch, key: batch[key].clone()}
    control[key][~pad] += 1.0  # the real target frames do count
    assert not torch.isclose(task.step(control)[0], loss)


@pytest.mark.parametrize("name", ["data2vec", "hubert", "beats"])
def test_masked_tasks_never_target_a_frame_that_reads_padding(name, make_encoder) -> None:
    task = make(name, make_encoder)  # TinyEncoder: stride 2 (48 output frames per 96)
    rng = np.random.default_rng(0)
    assert task.min_frames == 24
    assert task.sample(index_clip(23), rng, never) is None
    for frames in (24, 41, 95):
        ex = task.sample(index_clip(frames), rng, never)
        real_out = frames // 2  # output frame j reads input frames 2j, 2j + 1
        np.testing.assert_array_equal(ex["valid"], np.arange(48) < real_out)
        mask = ex["mask"] if ex["mask"].ndim == 1 else ex["mask"].any(0)
        assert not mask[~ex["valid"]].any()


def test_cola_two_segments_overlap_at_most_half(make_encoder) -> None:
    task = make("cola", make_encoder)
    assert task.separation == S // 2 and task.min_frames == S + S // 2 - 14
    clip, rng = index_clip(200), np.random.default_rng(0)
    diffs = []
    for _ in range(2000):
        ex = task.sample(clip, rng, never)
        diffs.append(abs(offset(ex["view1"], 200) - offset(ex["view2"], 200)))
    assert min(diffs) >= S // 2
    assert task.sample(index_clip(S + S // 2 - 15), rng, never) is None
    free = make("cola", make_encoder, min_separation_frames=0)
    assert free.min_frames == S - 9
    byol = make("byol_a", make_encoder)  # one segment: no separation
    assert byol.separation == 0 and byol.min_frames == S - 9
