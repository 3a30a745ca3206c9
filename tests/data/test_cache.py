import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import pocketear.data.cache as cache_mod
from pocketear.audio.io import load_audio
from pocketear.data.cache import FeatureCache, build_cache
from pocketear.data.corpus import Corpus
from pocketear.frontends.logmel import LogMel, LogMelConfig


def test_cache_matches_frontend_and_is_reused(tone_folder: Path, tmp_path: Path) -> None:
    corpus = Corpus.open(tone_folder)
    cache = build_cache(corpus, tmp_path / "cache", workers=1, progress=False)
    assert len(cache) == 12 and cache.skipped == []
    wave = load_audio(corpus.paths[3])
    ref = LogMel()(torch.from_numpy(wave)[None], normalise=False)[0, 0].numpy()
    np.testing.assert_allclose(cache[3], ref, atol=2e-2)  # float16 storage
    flat = np.concatenate(list(cache))
    np.testing.assert_allclose(cache.mean, flat.mean(0), rtol=1e-3, atol=1e-3)
    mtime = os.stat(cache.root / "features.f16").st_mtime_ns
    again = build_cache(corpus, tmp_path / "cache", workers=1, progress=False)
    assert again.root == cache.root
    assert os.stat(again.root / "features.f16").st_mtime_ns == mtime


def test_config_change_builds_a_new_cache(tone_folder: Path, tmp_path: Path) -> None:
    corpus = Corpus.open(tone_folder)[:2]
    a = build_cache(corpus, tmp_path / "c", workers=1, progress=False)
    b = build_cache(corpus, tmp_path / "c", LogMelConfig(n_mels=40), workers=1, progress=False)
    assert a.root != b.root and b[0].shape[1] == 40


def test_bad_files_are_skipped_and_counted(tone_folder: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tone_folder / "low" / "corrupt.wav").write_bytes(b"RIFF garbage" * 10)
    (tone_folder / "low" / "empty.wav").write_bytes(b"")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache = build_cache(Corpus.open(tone_folder), tmp_path / "c", workers=2, progress=False)
    assert len(cache) == 12 and len(cache.skipped) == 2
    assert not caught  # plain lines, not Python warnings with a source line
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("skipped: ")]
    assert sorted(line.split(": ")[1] for line in lines) == sorted(p for p, _ in cache.skipped)
    assert all(p.endswith(".wav") and reason for p, reason in cache.skipped)


def test_interrupted_build_leaves_no_valid_cache(tone_folder: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = Corpus.open(tone_folder)[:3]

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_mod, "compute_stats", boom)
    with pytest.raises(KeyboardInterrupt):
        build_cache(corpus, tmp_path / "c", workers=1, progress=False)
    assert list((tmp_path / "c").iterdir()) == []  # nothing half-written remains
    monkeypatch.undo()
    cache = build_cache(corpus, tmp_path / "c", workers=1, progress=False)
    assert len(cache) == 3


def test_damaged_cache_is_detected_and_rebuilt(tone_folder: Path, tmp_path: Path) -> None:
    corpus = Corpus.open(tone_folder)[:2]
    cache = build_cache(corpus, tmp_path / "c", workers=1, progress=False)
    shape, root = cache[1].shape, cache.root
    del cache  # release the memory map before damaging the file under it
    with open(root / "features.f16", "r+b") as f:
        f.truncate(10)
    with pytest.raises(ValueError, match="rebuild"):
        FeatureCache.open(root)
    rebuilt = build_cache(corpus, tmp_path / "c", workers=1, progress=False)
    assert rebuilt[1].shape == shape
