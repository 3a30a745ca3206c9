"""Embedding extraction: shapes, segment windows, and the on-disk cache being reused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pocketear.data.corpus import Corpus
from pocketear.evaluate import features
from pocketear.evaluate.baselines import default_reference, random_init
from pocketear.evaluate.features import (
    Embeddings,
    extract,
    group_standardise,
    logmel_stats,
    logmels,
    model_key,
)
from pocketear.frontends.logmel import LogMelConfig
from pocketear.model import Pretrained, time_parts
from pocketear.train.build import build_encoder


def _model(corpus: Corpus, cache: Path, seed: int = 0) -> Pretrained:
    feats = logmels(corpus, cache, LogMelConfig(), workers=1, progress=False)
    ref = default_reference(feats.mean, feats.std)
    ref.config = {**ref.config, "encoder": {"name": "mobile_tiny"}}
    ref.encoder = build_encoder(ref.config).eval()
    return random_init(ref, seed)


def test_extract_segments_and_reuses_the_cache(tone_folder: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = Corpus.from_folder(tone_folder)
    cache = tmp_path / "cache"
    model = _model(corpus, cache)
    calls = {"n": 0}
    original = Pretrained.embed_clips

    def counting(self, logmels, *args, **kwargs):
        calls["n"] += len(logmels)  # clips the encoder ran on
        return original(self, logmels, *args, **kwargs)

    monkeypatch.setattr(Pretrained, "embed_clips", counting)
    emb = extract(model, corpus, cache, workers=1, progress=False)
    assert calls["n"] == len(corpus) == len(emb) == 12
    # 3 s clips = 298 frames -> windows of 96 frames: 0, 96, 192 and one aligned to the end
    assert np.diff(emb.offsets).tolist() == [4] * 12
    assert emb.segments.shape == (48, model.embed_dim) and emb.segments.dtype == np.float32
    assert sorted(emb.items.tolist()) == list(range(12))

    again = extract(model, corpus, cache, workers=1, progress=False)
    assert calls["n"] == 12  # served from the .npz: the encoder did not run
    np.testing.assert_array_equal(again.segments, emb.segments)
    files = list((cache / "emb").glob("*.npz"))
    assert len(files) == 1
    with np.load(files[0], allow_pickle=False) as z:  # plain arrays, no pickle
        assert set(z.files) == {"segments", "offsets", "items"}

    other = _model(corpus, cache, seed=1)  # other weights -> other key -> recomputed
    assert model_key(other) != model_key(model)
    extract(other, corpus, cache, workers=1, progress=False)
    assert calls["n"] == 24
    extract(model, corpus, cache, hop=48, workers=1, progress=False)  # other segmenting
    assert calls["n"] == 36


def test_embeddings_match_embedding_the_audio_directly(tone_folder: Path,
                                                       tmp_path: Path) -> None:
    corpus = Corpus.from_folder(tone_folder)
    model = _model(corpus, tmp_path)
    emb = extract(model, corpus, tmp_path, workers=1, progress=False)
    j = int(np.where(emb.items == 3)[0][0])
    direct = model.embed(corpus[3].path)  # float32 round trip through the float16 cache
    np.testing.assert_allclose(emb.clip_means([j])[0], direct, atol=2e-2, rtol=2e-2)


def test_damaged_cache_file_is_recomputed(tone_folder: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = Corpus.from_folder(tone_folder)
    model = _model(corpus, tmp_path)
    extract(model, corpus, tmp_path, workers=1, progress=False)
    (path,) = (tmp_path / "emb").glob("*.npz")
    path.write_bytes(b"not an npz")
    emb = extract(model, corpus, tmp_path, workers=1, progress=False)
    assert len(emb) == 12


def test_gather_and_logmel_stats(tone_folder: Path, tmp_path: Path) -> None:
    emb = Embeddings(np.arange(12, dtype=np.float32).reshape(6, 2),
                     np.array([0, 1, 3, 6]), np.array([5, 7, 9]))
    x, owner = emb.gather(np.array([2, 0]))
    assert x.tolist() == [[6, 7], [8, 9], [10, 11], [0, 1]] and owner.tolist() == [0, 0, 0, 1]
    np.testing.assert_allclose(emb.clip_means(np.array([1])), [[3.0, 4.0]])

    corpus = Corpus.from_folder(tone_folder)
    feats = logmels(corpus, tmp_path, LogMelConfig(), workers=1, progress=False)
    stats = logmel_stats(feats)
    assert stats.segments.shape == (12, 2 * 64) and np.diff(stats.offsets).tolist() == [1] * 12
    np.testing.assert_allclose(stats.segments[0, :64], feats[0].mean(0), rtol=1e-5)
    assert torch.is_tensor(torch.from_numpy(stats.segments))
    assert features.EMB_VERSION >= 1


@pytest.mark.parametrize(("frames", "parts"), [(298, 3), (100, 3), (2, 3), (1, 1), (7, 7)])
def test_time_parts_cover_the_clip_in_order(frames: int, parts: int) -> None:
    x = np.arange(frames * 2, dtype=np.float32).reshape(frames, 2)
    pieces = time_parts(x, parts)
    assert len(pieces) == parts and all(len(p) >= 1 for p in pieces)
    if frames >= parts:  # an exact partition, nearly equal lengths
        np.testing.assert_array_equal(np.concatenate(pieces), x)
        assert max(map(len, pieces)) - min(map(len, pieces)) <= 1


def test_part_pooling_of_logmel_stats_and_of_encoders(tone_folder: Path, tmp_path: Path) -> None:
    corpus = Corpus.from_folder(tone_folder)
    feats = logmels(corpus, tmp_path, LogMelConfig(), workers=1, progress=False)
    stats = logmel_stats(feats, parts=3)
    assert stats.segments.shape == (12, 6 * 64)
    third = time_parts(feats[0], 3)[1]
    np.testing.assert_allclose(stats.segments[0, 128:192], third.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.segments[0, 192:256], third.std(0), rtol=1e-4, atol=1e-5)

    model = _model(corpus, tmp_path)
    emb = extract(model, corpus, tmp_path, workers=1, progress=False, parts=3)
    assert emb.segments.shape == (12, 3 * model.embed_dim)
    mean, std = features.normaliser(model)
    x = torch.from_numpy((feats[0] - mean) / std)
    direct = np.concatenate([model.embed_segments(p).mean(0) for p in time_parts(x, 3)])
    np.testing.assert_allclose(emb.segments[0], direct, rtol=1e-4, atol=1e-5)


def test_group_standardise_uses_each_groups_own_statistics() -> None:
    rng = np.random.default_rng(0)
    seg = np.concatenate([rng.normal(5, 2, (6, 3)), rng.normal(-3, 0.5, (4, 3))]).astype(np.float32)
    emb = Embeddings(seg, np.array([0, 2, 4, 6, 8, 10]), np.arange(5))  # 2 segments per clip
    out = group_standardise(emb, np.array(["a", "a", "a", "b", "b"]))
    for rows in (slice(0, 6), slice(6, 10)):
        np.testing.assert_allclose(out.segments[rows].mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(out.segments[rows].std(0), 1, atol=1e-4)
    np.testing.assert_array_equal(out.offsets, emb.offsets)
