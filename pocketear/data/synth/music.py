"""Additive harmonic instrument notes at known MIDI pitches.

Why: the ``instrument`` task needs timbre (partial amplitudes, odd/even balance, inharmonicity,
envelopes, vibrato, noise) and the ``pitch`` task the fundamental; every instrument plays every
pitch label so the two tasks are not confounded. Timbre parameters jitter per note (dynamics) so
an instrument is a distribution, not a template.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

SR = 16000
# Seven pitch classes spanning C3..C5 in major thirds; coprime with the 6 instruments so a
# round-robin over clips visits every (instrument, pitch) pair.
PITCHES: tuple[int, ...] = (48, 52, 56, 60, 64, 68, 72)


@dataclass(frozen=True)
class Instrument:
    """Spectral envelope, envelope and articulation of one instrument family."""

    name: str
    n_partials: int
    attack: float  # s
    slope: float = 1.0  # partial amplitude ~ k**-slope
    roll: float = 0.0  # and ~ exp(-roll * (k - 1))
    even: float = 1.0  # gain of even partials (clarinet-like when small)
    decay: float = 0.0  # s, attack overshoot decaying to the sustain level
    sustain: float = 1.0  # level
    release: float = 0.1  # s
    vib_rate: float = 0.0  # Hz
    vib_depth: float = 0.0  # relative
    noise: float = 0.0  # breath / bow noise level
    decay_rate: float = 0.0  # 1/s, free decay of the whole note (plucked, struck)
    partial_decay: float = 0.0  # 1/s per partial index: upper partials die first
    inharm: float = 0.0  # stiffness B: f_k = k f0 sqrt((1 + B k^2) / (1 + B))
    formant: float = 0.0  # Hz of a spectral bump (brass brightness), 0 = none
    pluck_pos: float = 0.0  # relative pluck position (comb on partials), 0 = none


INSTRUMENTS: tuple[Instrument, ...] = (
    # few harmonics + breath noise, soft attack, light vibrato
    Instrument(
        "flute",
        8,
        0.08,
        slope=0.0,
        roll=0.9,
        decay=0.1,
        sustain=0.85,
        release=0.12,
        vib_rate=5.0,
        vib_depth=0.004,
        noise=0.07,
    ),
    # odd harmonics
    Instrument(
        "clarinet",
        25,
        0.03,
        even=0.08,
        roll=0.05,
        decay=0.05,
        sustain=0.9,
        release=0.08,
        noise=0.01,
    ),
    # bright, with a brightness bump that grows with velocity
    Instrument(
        "brass",
        30,
        0.06,
        slope=0.6,
        roll=0.03,
        decay=0.1,
        sustain=0.8,
        vib_rate=4.5,
        vib_depth=0.002,
        noise=0.006,
        formant=1300.0,
    ),
    # sawtooth-like, slow attack, vibrato, body resonances
    Instrument(
        "strings",
        40,
        0.12,
        decay=0.1,
        sustain=0.9,
        release=0.15,
        vib_rate=6.0,
        vib_depth=0.006,
        noise=0.02,
    ),
    # plucked: comb-filtered partials, upper partials decay faster
    Instrument("pluck", 40, 0.003, release=0.05, decay_rate=2.5, partial_decay=0.8, pluck_pos=0.18),
    # struck bar / bell: slightly inharmonic, fast decay
    Instrument(
        "bell",
        12,
        0.002,
        slope=0.3,
        roll=0.4,
        release=0.05,
        decay_rate=5.0,
        partial_decay=1.5,
        inharm=0.006,
    ),
)
INSTRUMENT_NAMES: tuple[str, ...] = tuple(i.name for i in INSTRUMENTS)

# Fixed "body" resonances of the bowed string (a violin-like corpus).
_BODY = [
    signal.butter(1, [f * 0.85, f * 1.15], "bandpass", fs=SR, output="sos")
    for f in (280.0, 460.0, 1100.0, 2600.0)
]


def midi_to_hz(m: float) -> float:
    """Equal-tempered frequency of MIDI note ``m`` (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((m - 69.0) / 12.0)


def _adsr(inst: Instrument, n_on: int, n: int) -> np.ndarray:
    """Attack-decay-sustain while held (``n_on`` samples), then release; length ``n``."""
    t = np.arange(n) / SR
    att = max(inst.attack, 1e-3)
    env = np.where(t < att, t / att, 1.0)
    if inst.decay > 0:
        env = np.where(
            t >= att, inst.sustain + (1 - inst.sustain) * np.exp(-(t - att) / inst.decay), env
        )
    t_off = n_on / SR
    level_off = env[min(n_on, n - 1)]
    rel = level_off * np.exp(-(t - t_off) / max(inst.release / 4.0, 1e-3))
    return np.where(t < t_off, env, rel)


def note(
    instrument: str,
    midi: float,
    seconds: float,
    rng: np.random.Generator,
    velocity: float | None = None,
) -> np.ndarray:
    """One note held for ``seconds`` (plus release), peak-normalised float32.

    Args:
        instrument: one of ``INSTRUMENT_NAMES``.
        midi: MIDI pitch (fractional allowed: detuning).
        seconds: time the note is held before release.
        rng: random generator (timbre jitter, phases, noise).
        velocity: 0..1 dynamics; louder notes are brighter. Random when None.
    """
    inst = INSTRUMENTS[INSTRUMENT_NAMES.index(instrument)]
    vel = rng.uniform(0.4, 1.0) if velocity is None else velocity
    n_on = int(seconds * SR)
    n = n_on + int(inst.release * SR)
    t = np.arange(n) / SR
    f0 = midi_to_hz(midi)
    k = np.arange(1, inst.n_partials + 1, dtype=np.float64)
    ratio = k * np.sqrt((1 + inst.inharm * k**2) / (1 + inst.inharm))
    slope = inst.slope + rng.uniform(-0.15, 0.15) + 0.4 * (1.0 - vel)
    amp = k**-slope * np.exp(-(inst.roll * rng.uniform(0.8, 1.2)) * (k - 1))
    amp[1::2] *= inst.even
    if inst.formant:
        fk = f0 * ratio
        amp *= 1.0 + 3.0 * vel * np.exp(-0.5 * (np.log(fk / inst.formant) / 0.5) ** 2)
    if inst.pluck_pos:
        pos = inst.pluck_pos * rng.uniform(0.7, 1.3)
        amp *= np.abs(np.sin(np.pi * k * pos)) + 0.05
    amp[f0 * ratio > 0.45 * SR] = 0.0

    vib = 1.0 + inst.vib_depth * rng.uniform(0.5, 1.5) * np.sin(
        2 * np.pi * inst.vib_rate * rng.uniform(0.9, 1.1) * t + rng.uniform(0, 6.3)
    )
    vib *= 1.0 + 0.0015 * np.interp(t, np.linspace(0, t[-1], 8), rng.standard_normal(8))
    phase = 2 * np.pi * np.cumsum(f0 * vib) / SR
    keep = amp > 0
    parts = np.sin(phase[:, None] * ratio[keep] + rng.uniform(0, 2 * np.pi, keep.sum()))
    if inst.decay_rate:
        decay = np.exp(-t[:, None] * (inst.decay_rate + inst.partial_decay * (k[keep] - 1)))
        y = (parts * decay) @ amp[keep]
    else:
        y = parts @ amp[keep]
    if inst.noise:
        nz = signal.lfilter([1.0], [1.0, -0.6], rng.standard_normal(n))
        hp = signal.butter(2, min(6 * f0, 7000), "highpass", fs=SR, output="sos")
        nz = signal.sosfilt(hp, nz)
        y += nz * inst.noise * np.sqrt(np.mean(y**2)) / (np.std(nz) + 1e-9) * 3.0
    if inst.name == "strings":
        y = y + sum(signal.sosfilt(s, y) for s in _BODY)
    y *= _adsr(inst, n_on, n)
    return (y / (np.max(np.abs(y)) + 1e-9)).astype(np.float32)


def music_event(instrument: str, pitch: int, rng: np.random.Generator, n: int = SR) -> np.ndarray:
    """A single note (detuned by up to ±20 cents) at a random onset in an ``n``-sample clip."""
    y = note(instrument, pitch + rng.uniform(-0.2, 0.2), rng.uniform(0.45, 0.8), rng)
    out = np.zeros(n, np.float32)
    i = int(rng.uniform(0.0, 0.08) * SR)
    m = min(len(y), n - i)
    out[i : i + m] = y[:m]
    fade = min(int(0.01 * SR), m)
    out[n - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return out * rng.uniform(0.6, 1.0)


def music_longform(instrument: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """A phrase: a random walk over a scale, varied note lengths, rests and ringing overlaps."""
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    tonic = int(rng.integers(45, 60))
    degree = int(rng.integers(0, 7))
    beat = rng.uniform(0.2, 0.45)
    out = np.zeros(n, np.float32)
    pos = int(rng.uniform(0.05, 0.3) * SR)
    while pos < n:
        degree = int(np.clip(degree + rng.choice([-2, -1, -1, 0, 1, 1, 2, 3]), 0, 14))
        midi = tonic + 12 * (degree // 7) + scale[degree % 7]
        length = beat * rng.choice([0.5, 1, 1, 1, 2, 3])
        y = note(instrument, midi, length * rng.uniform(0.7, 1.0), rng) * rng.uniform(0.5, 1.0)
        m = min(len(y), n - pos)
        out[pos : pos + m] += y[:m]
        pos += int(length * SR)
        if rng.random() < 0.12:
            pos += int(beat * rng.choice([1, 2]) * SR)
    return out / (np.max(np.abs(out)) + 1e-9)
