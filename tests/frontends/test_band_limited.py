"""Normalisation that survives band-limited audio (issue 12).

8 kHz recordings resampled to 16 kHz leave the mel bins above 4 kHz at the log floor; a few
clips with a faint hiss there must not become tens-of-σ inputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from pocketear.audio.io import load_audio
from pocketear.data.cache import build_cache
from pocketear.data.corpus import Corpus
from pocketear.frontends.logmel import STD_FLOOR, LogMel, compute_stats, floor_std

BOUND = 20.0


def _bursts(rate: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Speech-like noise bursts (0.3 s on, 0.2 s of digital silence) at ``rate``."""
    t = np.arange(int(rate * seconds)) / rate
    return (0.1 * rng.standard_normal(len(t)) * ((t % 0.5) < 0.3)).astype(np.float32)


def _band_limited_folder(root: Path) -> Path:
    """30 clips recorded at 8 kHz (nothing above 4 kHz once resampled) and one 16 kHz clip.

    The 16 kHz clip has 0.1 s of faint wideband hiss: the only energy the high bins ever see.
    """
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for i in range(30):
        sf.write(root / f"narrow{i:02d}.wav", _bursts(8000, 2.0, rng), 8000)
    stray = load_audio(root / "narrow00.wav", 16000).copy()
    stray[:1600] += 1e-3 * rng.standard_normal(1600).astype(np.float32)
    sf.write(root / "stray.wav", stray, 16000, subtype="FLOAT")
    return root


def test_dead_bins_stay_bounded_after_normalisation(tmp_path: Path) -> None:
    cache = build_cache(Corpus.open(_band_limited_folder(tmp_path / "audio")), tmp_path / "c",
                        workers=1, progress=False)
    mels = list(cache)
    frames = np.concatenate(mels)
    dead = frames.std(0) < 0.1 * np.median(frames.std(0))  # the bins above 4 kHz
    assert dead.sum() >= 10
    raw_std = np.maximum(frames.std(0), STD_FLOOR)  # the old per-bin std
    assert np.abs((frames - cache.mean) / raw_std)[:, dead].max() > BOUND  # the problem is real
    assert np.abs((frames - cache.mean) / cache.std).max() < BOUND
    # the frontend that travels in checkpoints and exports normalises with the same stats
    fe = LogMel().eval()
    fe.set_stats(cache.mean, cache.std)
    with torch.no_grad():
        x = fe(torch.from_numpy(load_audio(tmp_path / "audio" / "stray.wav", 16000))[None])
    assert float(x.abs().max()) < BOUND
    np.testing.assert_allclose(cache.std[~dead], frames.std(0)[~dead], rtol=1e-3)  # live bins


def test_floor_std_is_relative_idempotent_and_leaves_live_bins() -> None:
    std = np.array([3.0, 2.5, 4.0, 3.5, 0.01, 1e-7], np.float32)
    out = floor_std(std)
    np.testing.assert_array_equal(out[:4], std[:4])
    np.testing.assert_allclose(out[4:], 0.1 * np.median(std))
    np.testing.assert_array_equal(floor_std(out), out)
    _, const = compute_stats([np.full((10, 4), -13.8)])  # all bins constant: absolute floor
    np.testing.assert_allclose(const, STD_FLOOR)
    _, std_stream = compute_stats([np.c_[np.random.default_rng(0).normal(0, 3, (500, 3)),
                                         np.zeros((500, 1))]])
    assert std_stream[3] > 0.25  # the constant bin gets a tenth of the median (~3)
