"""Tests of the built-in synthetic corpus: manifest, determinism, balance and label fidelity."""

from __future__ import annotations

import csv
from collections import Counter
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal, stats

from pocketear.data.synth import (
    COLUMNS,
    INSTRUMENT_NAMES,
    PERMUTATION_PAIRS,
    SPEAKER_NAMES,
    SR,
    SYNTH_TASKS,
    generate_event,
    plan_corpus,
    write_corpus,
)
from pocketear.data.synth.corpus import _LABELS
from pocketear.data.synth.speech import SPEAKERS

MINUTES = 1.5


def _rows(manifest: Path) -> list[dict[str, str]]:
    with open(manifest, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]]]:
    root = tmp_path_factory.mktemp("synth_a")
    manifest = write_corpus(root, minutes=MINUTES, seed=0, workers=2, progress=False)
    return manifest, _rows(manifest)


def test_manifest_columns_and_paths(corpus: tuple[Path, list[dict[str, str]]]) -> None:
    manifest, rows = corpus
    assert manifest.name == "manifest.csv"
    with open(manifest, newline="") as f:
        assert tuple(next(csv.reader(f))) == COLUMNS
    assert {r["kind"] for r in rows} == {"event", "longform"}
    for r in rows:
        assert not Path(r["path"]).is_absolute()
        assert (manifest.parent / r["path"]).is_file()
        assert r["domain"] in ("speech", "music", "scene")
        assert r["split"] in (("train", "valid", "test") if r["kind"] == "event" else ("pretrain",))
        if r["domain"] == "music" and r["kind"] == "event":
            assert r["pitch"].isdigit()
    assert not list(manifest.parent.rglob("*.tmp"))


def test_durations_and_audio(corpus: tuple[Path, list[dict[str, str]]]) -> None:
    manifest, rows = corpus
    event_s = sum(float(r["duration"]) for r in rows if r["kind"] == "event")
    long_s = sum(float(r["duration"]) for r in rows if r["kind"] == "longform")
    assert abs(event_s + long_s - MINUTES * 60) < 12.0
    for r in rows:
        info = sf.info(manifest.parent / r["path"])
        assert info.samplerate == SR and info.subtype == "PCM_16"
        assert abs(info.frames / SR - float(r["duration"])) < 1e-3
        if r["kind"] == "event":
            assert abs(float(r["duration"]) - 1.0) < 0.01
        else:
            assert 10.0 <= float(r["duration"]) <= 30.0
        y, _ = sf.read(manifest.parent / r["path"], dtype="float32")
        assert np.isfinite(y).all() and np.abs(y).max() <= 1.0
        assert np.sqrt(np.mean(y**2)) > 1e-3, r["path"]


def test_label_balance_and_columns(corpus: tuple[Path, list[dict[str, str]]]) -> None:
    _, rows = corpus
    events = [r for r in rows if r["kind"] == "event"]
    for _task, (domain, col) in SYNTH_TASKS.items():
        classes = dict(_LABELS[domain])[col]
        counts = Counter(r[col] for r in events if r["domain"] == domain)
        per_class = [counts.get(c, 0) for c in classes]
        assert max(per_class) - min(per_class) <= 1
        assert all(r[col] == "" for r in events if r["domain"] != domain)
    for r in rows:
        if r["kind"] == "longform":
            assert r["word"] == "" and r["pitch"] == ""
            key = {"speech": "speaker", "music": "instrument", "scene": "scene"}[r["domain"]]
            assert r[key] != ""


def test_plan_is_half_events_and_stratified() -> None:
    jobs = plan_corpus(6.0, seed=0)
    ev = [j for j in jobs if j["kind"] == "event"]
    lf = [j for j in jobs if j["kind"] == "longform"]
    assert len(ev) == 180 and abs(sum(float(j["seconds"]) for j in lf) - 180.0) < 10.0
    assert {j["domain"] for j in lf} == {"speech", "music", "scene"}
    for _task, (domain, col) in SYNTH_TASKS.items():
        splits = Counter((j[col], j["split"]) for j in ev if j["domain"] == domain)
        for c in dict(_LABELS[domain])[col]:
            assert splits[(c, "train")] >= 3 and splits[(c, "test")] >= 1, (col, c)
    # A smaller corpus is a prefix of a larger one (same labels and splits per clip).
    small = {j["path"]: j for j in plan_corpus(2.0, seed=0) if j["kind"] == "event"}
    assert all(small[j["path"]] == j for j in ev if j["path"] in small)
    for domain in ("speech", "music", "scene"):  # every primary class: one train, one test
        first = [j for j in small.values() if j["domain"] == domain]
        col = _LABELS[domain][0][0]
        for c in dict(_LABELS[domain])[col]:
            assert {j["split"] for j in first if j[col] == c} >= {"train", "test"}


def test_determinism(corpus: tuple[Path, list[dict[str, str]]], tmp_path: Path) -> None:
    manifest, rows = corpus
    again = write_corpus(tmp_path / "same", minutes=MINUTES, seed=0, workers=1, progress=False)
    other = write_corpus(tmp_path / "other", minutes=MINUTES, seed=1, workers=1, progress=False)
    assert again.read_bytes() == manifest.read_bytes()  # independent of ``workers``
    assert other.read_bytes() != manifest.read_bytes()
    for r in rows[::7]:
        a = sf.read(manifest.parent / r["path"])[0]
        assert np.array_equal(a, sf.read(again.parent / r["path"])[0])
        b = sf.read(other.parent / r["path"])[0]
        assert a.shape != b.shape or not np.array_equal(a, b)
    # Same arguments again: reused, not regenerated.
    mtime = again.stat().st_mtime_ns
    assert write_corpus(again.parent, minutes=MINUTES, seed=0, progress=False) == again
    assert again.stat().st_mtime_ns == mtime


def _f0_autocorr(y: np.ndarray) -> float:
    """Median autocorrelation F0 over the loud 40 ms frames."""
    frames = [y[i : i + 640] for i in range(0, len(y) - 640, 320)]
    energy = np.array([np.sum(f**2) for f in frames])
    lo, hi = SR // 400, SR // 60
    est = []
    for f, e in zip(frames, energy, strict=True):
        if e > 0.3 * energy.max():
            f = f - f.mean()
            ac = np.correlate(f, f, "full")[len(f) - 1 :]
            est.append(SR / (lo + np.argmax(ac[lo:hi])))
    return float(np.median(est))


def test_speaker_f0_ordering() -> None:
    est = []
    for i, spk in enumerate(SPEAKER_NAMES):
        labels = {"word": "tana", "speaker": spk}
        ys = [
            generate_event("speech", labels, np.random.default_rng([7, i, r]), degrade_audio=False)
            for r in range(2)
        ]
        est.append(np.median([_f0_autocorr(y) for y in ys]))
    nominal = [s.f0 for s in SPEAKERS]
    assert stats.spearmanr(est, nominal)[0] >= 0.9
    assert np.all(np.abs(np.log2(np.array(est) / nominal)) < 0.3)


def _f0_harmonic_sum(y: np.ndarray) -> float:
    """F0 maximising a 1/k-weighted sum of log magnitudes at k * f0 (robust to octave errors)."""
    n = 1 << 16
    mag = np.abs(np.fft.rfft(y * np.hanning(len(y)), n))
    freqs = np.fft.rfftfreq(n, 1.0 / SR)
    logmag = np.log(mag / mag.max() + 1e-3) - np.log(1e-3)
    cands = 60.0 * 2.0 ** (np.arange(0, 1200 * np.log2(1000 / 60), 5) / 1200)
    score = np.zeros(len(cands))
    for k in range(1, 9):
        fk = k * cands
        lo = np.searchsorted(freqs, fk * 0.99)
        hi = np.minimum(np.searchsorted(freqs, fk * 1.01) + 1, len(logmag))
        peak = np.maximum.reduceat(np.append(logmag, 0.0), np.ravel(np.column_stack([lo, hi])))
        score += np.where(fk < 7500, peak[::2], 0.0) / k
    return float(cands[np.argmax(score)])


@pytest.mark.parametrize("instrument", INSTRUMENT_NAMES)
def test_note_fundamental_at_midi_pitch(instrument: str) -> None:
    for pitch in (48, 60, 72):
        labels = {"instrument": instrument, "pitch": str(pitch)}
        y = generate_event("music", labels, np.random.default_rng(pitch), degrade_audio=False)
        f0 = _f0_harmonic_sum(y)
        semitones = 12 * np.log2(f0 / (440.0 * 2 ** ((pitch - 69) / 12)))
        assert abs(semitones) < 1.0, (instrument, pitch, f0)


def _logspec(y: np.ndarray) -> np.ndarray:
    """Log energies in 32 log-spaced bands, trimmed to the active region (bands x frames)."""
    edges = np.geomspace(100, 7500, 33)
    f, _, z = signal.stft(y, SR, nperseg=512, noverlap=352)
    p = np.abs(z) ** 2
    bands = np.log(np.stack([p[(f >= a) & (f < b)].sum(0) for a, b in pairwise(edges)]) + 1e-9)
    active = np.flatnonzero(p.sum(0) > 1e-3 * p.sum(0).max())
    return bands[:, active[0] : active[-1] + 1]


def _time_norm(s: np.ndarray, m: int = 24) -> np.ndarray:
    grid = np.linspace(0, s.shape[1] - 1, m)
    return np.stack([np.interp(grid, np.arange(s.shape[1]), row) for row in s])


def test_permutation_pairs_need_temporal_order() -> None:
    def rms(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.sqrt(np.mean((a - b) ** 2)))

    mean_ab, mean_ac, time_ab, time_aa = [], [], [], []
    for a, b in PERMUTATION_PAIRS:
        other = "nupa" if "s" in a else "shoki"
        for spk in SPEAKER_NAMES[::3]:

            def spec(word: str, seed: int = 5, spk: str = spk) -> np.ndarray:
                rng = np.random.default_rng(seed)
                labels = {"word": word, "speaker": spk}
                return _logspec(generate_event("speech", labels, rng, degrade_audio=False))

            sa, sa2, sb, sc = spec(a), spec(a, 6), spec(b), spec(other)
            mean_ab.append(rms(sa.mean(1), sb.mean(1)))
            mean_ac.append(rms(sa.mean(1), sc.mean(1)))
            time_ab.append(rms(_time_norm(sa), _time_norm(sb)))
            time_aa.append(rms(_time_norm(sa), _time_norm(sa2)))
    # Clip-level means of a pair are close (closer than to another word) ...
    assert np.mean(mean_ab) < 0.7 * np.mean(mean_ac)
    # ... but the time courses differ far more than two renditions of the same word.
    assert np.mean(time_ab) > 1.4 * np.mean(time_aa)
    assert np.mean(time_ab) > 2.5 * np.mean(mean_ab)


def test_generate_event_rejects_unknown_domain() -> None:
    with pytest.raises(ValueError):
        generate_event("noise", {}, np.random.default_rng(0))


def test_interrupted_run_leaves_no_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pocketear.data.synth.corpus as corpus_mod

    write_corpus(tmp_path, minutes=0.3, seed=0, workers=1, progress=False)
    assert (tmp_path / "manifest.csv").exists()

    def boom(args: tuple) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(corpus_mod, "_make_clip", boom)
    with pytest.raises(KeyboardInterrupt):
        write_corpus(tmp_path, minutes=0.3, seed=1, workers=1, progress=False)
    assert not (tmp_path / "manifest.csv").exists()
