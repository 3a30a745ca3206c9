"""Source–filter formant speech: synthetic speakers saying synthetic words.

Why: the ``word`` task must depend on temporal structure (permutation pairs such as /badi/ vs
/diba/ share their phones, so clip-level spectral statistics cannot separate them) and the
``speaker`` task on F0, vocal-tract length and voice quality, as in real speech. A glottal pulse
train (with jitter, vibrato, tilt and breathiness) drives a cascade of time-varying 2nd-order
formant resonators whose targets are interpolated between phones; fricatives and bursts are
band-shaped noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

SR = 16000
HOP = 80  # control rate of the formant tracks: 5 ms


@dataclass(frozen=True)
class Speaker:
    """Voice parameters; ``vtl`` scales every formant (short vocal tract -> higher formants)."""

    name: str
    f0: float  # mean fundamental frequency, Hz
    vtl: float  # formant scale factor
    tilt: float  # one-pole low-pass coefficient on the glottal source (0 = bright)
    breath: float  # aspiration noise mixed into voicing
    jitter: float  # relative std of F0 perturbation
    vib_rate: float  # Hz
    vib_depth: float  # relative
    oq: float  # glottal open quotient


# F0 and vocal-tract length are correlated as in real voices but not perfectly, and voice quality
# differs, so the speaker task is not a pure pitch task.
SPEAKERS: tuple[Speaker, ...] = (
    Speaker("spk0", 88.0, 0.84, 0.55, 0.04, 0.010, 4.5, 0.004, 0.55),
    Speaker("spk1", 102.0, 0.93, 0.35, 0.14, 0.006, 5.0, 0.008, 0.60),
    Speaker("spk2", 118.0, 0.87, 0.65, 0.03, 0.015, 5.5, 0.003, 0.50),
    Speaker("spk3", 136.0, 1.00, 0.45, 0.20, 0.008, 6.0, 0.010, 0.65),
    Speaker("spk4", 156.0, 0.96, 0.25, 0.08, 0.012, 4.8, 0.006, 0.55),
    Speaker("spk5", 180.0, 1.08, 0.50, 0.25, 0.007, 5.2, 0.012, 0.70),
    Speaker("spk6", 205.0, 1.04, 0.30, 0.06, 0.010, 6.2, 0.005, 0.60),
    Speaker("spk7", 232.0, 1.15, 0.55, 0.16, 0.009, 5.6, 0.009, 0.68),
    Speaker("spk8", 258.0, 1.20, 0.40, 0.10, 0.012, 6.5, 0.007, 0.62),
)
SPEAKER_NAMES: tuple[str, ...] = tuple(s.name for s in SPEAKERS)


@dataclass(frozen=True)
class Phone:
    """A phone: formant targets (vowels, nasals) or loci (consonants) plus a noise band."""

    kind: str  # vowel | nasal | fric | stop
    formants: tuple[float, float, float]
    dur: float  # nominal duration, s
    voiced: bool = True
    band: tuple[float, float] = (0.0, 0.0)  # frication / burst band, Hz
    level: float = 0.0  # frication / burst level relative to the vowel level


PHONES: dict[str, Phone] = {
    "a": Phone("vowel", (730, 1090, 2440), 0.16),
    "i": Phone("vowel", (280, 2250, 2950), 0.14),
    "u": Phone("vowel", (310, 870, 2250), 0.15),
    "e": Phone("vowel", (500, 1850, 2500), 0.14),
    "o": Phone("vowel", (540, 850, 2400), 0.15),
    "m": Phone("nasal", (260, 1000, 2200), 0.08),
    "n": Phone("nasal", (260, 1500, 2500), 0.08),
    "s": Phone("fric", (320, 1700, 2600), 0.11, False, (4000, 7600), 0.5),
    "S": Phone("fric", (300, 1900, 2400), 0.12, False, (2000, 4800), 0.45),
    "f": Phone("fric", (300, 900, 2300), 0.10, False, (1200, 7000), 0.15),
    "b": Phone("stop", (300, 800, 2200), 0.09, True, (200, 1500), 0.3),
    "d": Phone("stop", (300, 1700, 2700), 0.09, True, (2500, 5500), 0.35),
    "g": Phone("stop", (300, 2000, 2400), 0.09, True, (1500, 3200), 0.35),
    "p": Phone("stop", (300, 800, 2200), 0.13, False, (300, 1800), 0.35),
    "t": Phone("stop", (300, 1700, 2700), 0.13, False, (3000, 6500), 0.45),
    "k": Phone("stop", (300, 2000, 2400), 0.13, False, (1500, 3500), 0.4),
}

# Three permutation pairs (same phones, different order) plus four other words.
WORDS: dict[str, str] = {
    "badi": "badi",
    "diba": "diba",
    "kosa": "kosa",
    "sako": "sako",
    "mite": "mite",
    "temi": "temi",
    "nupa": "nupa",
    "shoki": "Soki",
    "fegu": "fegu",
    "tana": "tana",
}
WORD_NAMES: tuple[str, ...] = tuple(WORDS)
PERMUTATION_PAIRS: tuple[tuple[str, str], ...] = (
    ("badi", "diba"),
    ("kosa", "sako"),
    ("mite", "temi"),
)

_BANDWIDTHS = np.array([70.0, 100.0, 150.0, 220.0, 300.0])


def _resonator_sos(freqs: np.ndarray, bws: np.ndarray) -> np.ndarray:
    """Klatt resonators (unit DC gain) as second-order sections, shape (frames, n, 6)."""
    r = np.exp(-np.pi * bws / SR)
    b1 = 2.0 * r * np.cos(2.0 * np.pi * freqs / SR)
    c = -(r**2)
    sos = np.zeros(freqs.shape + (6,))
    sos[..., 0] = 1.0 - b1 - c
    sos[..., 3] = 1.0
    sos[..., 4] = -b1
    sos[..., 5] = -c
    return sos


def _vocal_tract(x: np.ndarray, formants: np.ndarray) -> np.ndarray:
    """Filter ``x`` block-wise through time-varying cascade resonators (formants: frames x 5)."""
    bws = np.broadcast_to(_BANDWIDTHS, formants.shape) * (1.0 + formants / 4000.0)
    sos = _resonator_sos(np.minimum(formants, 0.45 * SR), bws)
    zi = np.zeros((formants.shape[1], 2))
    y = np.empty_like(x)
    for f in range(len(sos)):
        sl = slice(f * HOP, (f + 1) * HOP)
        if sl.start >= len(x):
            break
        y[sl], zi = signal.sosfilt(sos[f], x[sl], zi=zi)
    return y


def _glottal_source(f0: np.ndarray, oq: float) -> np.ndarray:
    """Rosenberg glottal flow derivative for a per-sample F0 track (includes lip radiation)."""
    phase = np.cumsum(f0 / SR) % 1.0
    tp, tn = 0.65 * oq, 0.35 * oq
    rise = 0.5 * (1.0 - np.cos(np.pi * np.minimum(phase / tp, 1.0)))
    fall = np.cos(0.5 * np.pi * np.clip((phase - tp) / tn, 0.0, 1.0))
    flow = np.where(phase < tp, rise, np.where(phase < tp + tn, fall, 0.0))
    return np.diff(flow, prepend=0.0) * SR / np.maximum(f0, 1.0)


def _band_noise(n: int, band: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS white noise shaped to ``band`` (Hz)."""
    lo, hi = max(band[0], 50.0), min(band[1], 0.47 * SR)
    sos = signal.butter(2, [lo, hi], btype="bandpass", fs=SR, output="sos")
    y = signal.sosfilt(sos, rng.standard_normal(n + 256))[256:]
    return y / (np.sqrt(np.mean(y**2)) + 1e-9)


def synth_phones(
    phones: str,
    speaker: Speaker,
    rng: np.random.Generator,
    stretch: float = 1.0,
    f0_scale: float = 1.0,
) -> np.ndarray:
    """Synthesise a phone string (keys of ``PHONES``) for ``speaker``; peak-normalised float32.

    Args:
        phones: phone symbols, e.g. ``"badi"``.
        speaker: voice parameters.
        rng: random generator (durations, F0 contour, noise).
        stretch: global duration factor.
        f0_scale: global F0 factor for this utterance.
    """
    pad = 0.03
    durs = np.array([PHONES[p].dur for p in phones]) * stretch * rng.uniform(0.9, 1.1, len(phones))
    total = float(durs.sum() + 2 * pad)
    n = int(total * SR)
    vtl = speaker.vtl * rng.uniform(0.98, 1.02)
    fk: list[tuple[float, float, float, float]] = []
    voice: list[tuple[float, float]] = [(0.0, 0.0)]
    asp: list[tuple[float, float]] = [(0.0, 0.0)]
    noise_segs: list[tuple[float, float, Phone]] = []
    t0 = pad
    for p, d in zip(phones, durs, strict=True):
        ph, t1 = PHONES[p], t0 + d
        if ph.kind in ("vowel", "nasal"):
            v = 1.0 if ph.kind == "vowel" else 0.3
            fk += [(t0 + 0.3 * d, *ph.formants), (t0 + 0.7 * d, *ph.formants)]
            voice += [(t0 + 0.012, v), (t1 - 0.012, v)]
            asp += [(t0 + 0.01, 0.0), (t1 - 0.01, 0.0)]
        elif ph.kind == "fric":
            fk.append((t0 + 0.5 * d, *ph.formants))
            voice += [(t0 + 0.015, 0.0), (t1 - 0.015, 0.0)]
            asp += [(t0 + 0.01, 0.0), (t1 - 0.01, 0.0)]
            noise_segs.append((t0, t1, ph))
        else:  # stop: closure, burst, (aspiration when voiceless)
            tr = t0 + (0.65 if ph.voiced else 0.45) * d
            fk.append((tr, *ph.formants))
            noise_segs.append((tr, tr + 0.014, ph))
            if ph.voiced:
                voice += [(t0 + 0.01, 0.05), (tr, 0.05)]
                asp += [(t0 + 0.01, 0.0), (t1 - 0.005, 0.0)]
            else:
                voice += [(t0 + 0.01, 0.0), (t1 - 0.004, 0.0)]
                asp += [(tr, 0.0), (tr + 0.012, 0.5), (t1 - 0.005, 0.25)]
        t0 = t1
    voice.append((total, 0.0))
    asp.append((total, 0.0))

    t = np.arange(n) / SR
    tf = np.arange(n // HOP + 2) * HOP / SR
    fk_arr = np.array(fk)
    formants = np.stack(
        [np.interp(tf, fk_arr[:, 0], fk_arr[:, i]) for i in (1, 2, 3)]
        + [np.full_like(tf, 3500.0), np.full_like(tf, 4500.0)],
        axis=1,
    )
    formants *= vtl
    va, aa = np.array(voice), np.array(asp)
    voice_s = np.interp(t, va[:, 0], va[:, 1])
    asp_s = np.interp(t, aa[:, 0], aa[:, 1])

    # F0: declination contour with a random accent, vibrato and smoothed jitter.
    ck = np.array([0.0, total * rng.uniform(0.25, 0.55), total])
    cv = np.array([rng.uniform(1.0, 1.08), rng.uniform(1.02, 1.14), rng.uniform(0.8, 0.92)])
    f0 = speaker.f0 * f0_scale * np.interp(t, ck, cv)
    f0 *= 1.0 + speaker.vib_depth * np.sin(2 * np.pi * speaker.vib_rate * t + rng.uniform(0, 6.3))
    jit = rng.standard_normal(len(tf)) * speaker.jitter
    f0 *= 1.0 + np.interp(t, tf, jit)

    src = _glottal_source(f0, speaker.oq)
    src = signal.lfilter([1.0 - speaker.tilt], [1.0, -speaker.tilt], src)
    src_rms = np.sqrt(np.mean(src**2)) + 1e-9
    breath = rng.standard_normal(n) * speaker.breath * src_rms * (0.4 + 0.6 * (np.abs(src) > 0))
    asp_noise = rng.standard_normal(n) * src_rms
    excitation = voice_s * (src + breath) + asp_s * asp_noise
    y = _vocal_tract(excitation, formants)

    active = voice_s > 0.5
    ref = np.sqrt(np.mean(y[active] ** 2)) if active.any() else np.sqrt(np.mean(y**2)) + 1e-9
    fscale = np.sqrt(vtl)  # smaller speakers: higher frication bands
    for a, b, ph in noise_segs:
        i0, i1 = int(a * SR), min(int(b * SR), n)
        if i1 - i0 < 8:
            continue
        seg = _band_noise(i1 - i0, (ph.band[0] * fscale, ph.band[1] * fscale), rng)
        ramp = min(int(0.02 * SR), (i1 - i0) // 2) if ph.kind == "fric" else 2
        env = np.ones(i1 - i0)
        win = np.hanning(2 * ramp)
        env[:ramp], env[-ramp:] = win[:ramp], win[ramp:]
        y[i0:i1] += seg * env * ph.level * ref
    return (y / (np.max(np.abs(y)) + 1e-9)).astype(np.float32)


def speech_event(word: str, speaker: str, rng: np.random.Generator, n: int = SR) -> np.ndarray:
    """One word by one speaker, placed at a random onset in an ``n``-sample clip."""
    spk = SPEAKERS[SPEAKER_NAMES.index(speaker)]
    y = synth_phones(
        WORDS[word],
        spk,
        rng,
        stretch=rng.uniform(0.85, 1.15),
        f0_scale=2.0 ** (rng.uniform(-1.5, 1.5) / 12.0),
    )
    return _place(y, n, rng) * rng.uniform(0.6, 1.0)


def speech_longform(speaker: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """One speaker saying random words with pauses, filling ``n`` samples."""
    out = np.zeros(n, np.float32)
    pos = int(rng.uniform(0.05, 0.4) * SR)
    while pos < n:
        w = WORD_NAMES[rng.integers(len(WORD_NAMES))]
        y = speech_event(w, speaker, rng, n=0)
        m = min(len(y), n - pos)
        out[pos : pos + m] += y[:m]
        pos += len(y) + int(rng.uniform(0.1, 0.6) * SR)
    return out


def random_speaker(rng: np.random.Generator) -> Speaker:
    """A random voice (not one of ``SPEAKERS``), used for crowd babble."""
    f0 = float(np.exp(rng.uniform(np.log(90.0), np.log(260.0))))
    return Speaker(
        "babble",
        f0,
        float(np.clip(0.8 + (f0 - 90.0) / 170.0 * 0.35 + rng.normal(0, 0.05), 0.82, 1.2)),
        rng.uniform(0.2, 0.7),
        rng.uniform(0.02, 0.25),
        rng.uniform(0.005, 0.015),
        rng.uniform(4.5, 6.5),
        rng.uniform(0.0, 0.01),
        rng.uniform(0.5, 0.7),
    )


def babble(n: int, rng: np.random.Generator, n_voices: int = 6) -> np.ndarray:
    """Many overlapping quiet random voices speaking random CV syllables (crowd texture)."""
    cons, vows = "bdgptkmnsSf", "aiueo"
    out = np.zeros(n, np.float32)
    for _ in range(n_voices):
        n_syl = int(n / SR / 0.22) + 2
        syllables = (cons[rng.integers(len(cons))] + vows[rng.integers(5)] for _ in range(n_syl))
        phones = "".join(syllables)
        y = synth_phones(phones, random_speaker(rng), rng, stretch=rng.uniform(0.8, 1.2))
        y = _place(y, n, rng)
        out += y * rng.uniform(0.3, 1.0)
    return out / max(n_voices, 1) ** 0.5


def _place(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Put ``y`` at a random position of an ``n``-sample buffer (random crop when longer).

    ``n = 0`` returns ``y`` unchanged (used to concatenate words in long-form speech).
    """
    if n <= 0:
        return y
    out = np.zeros(n, np.float32)
    if len(y) <= n:
        i = int(rng.integers(0, n - len(y) + 1))
        out[i : i + len(y)] = y
    else:
        i = int(rng.integers(0, len(y) - n + 1))
        out[:] = y[i : i + n]
    return out
