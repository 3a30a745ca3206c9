"""Environmental sound textures with overlapping events.

Why: the ``scene`` task needs stationary-ish textures whose long-term spectra overlap between
classes (random cut-offs, levels and mixtures), plus class-agnostic impacts and clicks so a
single loud event does not give the class away.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from pocketear.data.synth.speech import babble

SR = 16000
SCENES: tuple[str, ...] = ("rain", "wind", "traffic", "birds", "machine", "crowd")


def colored_noise(n: int, rng: np.random.Generator, beta: float) -> np.ndarray:
    """Unit-RMS noise with a 1/f**beta power spectrum (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / SR)
    spec *= np.maximum(f, 20.0) ** (-beta / 2.0)
    y = np.fft.irfft(spec, n)
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def slow_envelope(n: int, rng: np.random.Generator, rate: float, depth: float) -> np.ndarray:
    """Positive random envelope varying at about ``rate`` Hz with relative ``depth``."""
    m = max(int(n / SR * rate) + 3, 3)
    knots = np.exp(depth * rng.standard_normal(m))
    x = np.linspace(0.0, m - 1.0, n)
    return np.interp(x, np.arange(m), knots)


def _filt(x: np.ndarray, kind: str, freq: float | list[float], order: int = 2) -> np.ndarray:
    """Butterworth filter helper (cut-offs clipped to a valid range)."""
    freq = np.clip(np.asarray(freq, dtype=float), 20.0, 0.45 * SR)
    return signal.sosfilt(signal.butter(order, freq, kind, fs=SR, output="sos"), x)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _add(out: np.ndarray, y: np.ndarray, pos: int) -> None:
    """Add ``y`` into ``out`` at ``pos`` (clipped to the buffer; pos may be negative)."""
    a, b = max(pos, 0), min(pos + len(y), len(out))
    if b > a:
        out[a:b] += y[a - pos : b - pos]


def rain(n: int, rng: np.random.Generator) -> np.ndarray:
    """High-passed hiss plus dense drop crackle (damped sinusoids at Poisson times)."""
    hiss = _filt(colored_noise(n, rng, rng.uniform(0.0, 1.0)), "highpass", rng.uniform(500, 3000))
    out = _unit(hiss) * rng.uniform(0.3, 1.0) * slow_envelope(n, rng, 0.5, 0.2)
    drops = np.zeros(n)
    rate = rng.uniform(30, 250)
    times = rng.integers(0, n, rng.poisson(rate * n / SR))
    tk = np.arange(int(0.012 * SR)) / SR
    bank = [
        np.sin(2 * np.pi * f * tk) * np.exp(-tk / d)
        for f, d in zip(rng.uniform(1200, 6500, 6), rng.uniform(0.001, 0.004, 6), strict=True)
    ]
    for i, ti in enumerate(times):
        _add(drops, bank[i % 6] * rng.lognormal(0.0, 0.7), int(ti))
    return out + _unit(drops) * rng.uniform(0.5, 1.5) if len(times) else out


def wind(n: int, rng: np.random.Generator) -> np.ndarray:
    """Low-passed noise with slow gusts and a faint whistle resonance."""
    base = _filt(colored_noise(n, rng, rng.uniform(0.5, 1.5)), "lowpass", rng.uniform(200, 1200))
    gust = slow_envelope(n, rng, rng.uniform(0.3, 2.0), rng.uniform(0.3, 0.8))
    out = _unit(base) * gust
    fc = rng.uniform(400, 1500)
    whistle = _filt(rng.standard_normal(n), "bandpass", [fc * 0.95, fc * 1.05])
    return out + _unit(whistle) * gust**2 * rng.uniform(0.0, 0.4)


def traffic(n: int, rng: np.random.Generator) -> np.ndarray:
    """Brown rumble, engine harmonics and passing vehicles (swelling band noise)."""
    t = np.arange(n) / SR
    out = _unit(_filt(colored_noise(n, rng, 2.0), "lowpass", rng.uniform(150, 500)))
    f_eng = rng.uniform(25, 70)
    eng = sum(np.sin(2 * np.pi * f_eng * h * t + rng.uniform(0, 6.3)) / h for h in range(1, 6))
    out += _unit(eng) * rng.uniform(0.1, 0.5) * slow_envelope(n, rng, 0.5, 0.3)
    hiss = _unit(_filt(rng.standard_normal(n), "bandpass", [rng.uniform(200, 600), 3000]))
    for _ in range(rng.poisson(1 + n / SR / 4)):
        c, w = rng.uniform(-1, n / SR + 1), rng.uniform(0.4, 2.5)
        out += hiss * np.exp(-0.5 * ((t - c) / w) ** 2) * rng.uniform(0.5, 1.5)
    return out


def chirp(rng: np.random.Generator) -> np.ndarray:
    """One bird syllable: a fast frequency sweep with optional trill and a weak 2nd harmonic."""
    d = rng.uniform(0.03, 0.18)
    t = np.arange(int(d * SR)) / SR
    f_a, f_b = rng.uniform(2200, 5500), rng.uniform(2200, 6500)
    f = f_a + (f_b - f_a) * (t / d) ** rng.uniform(0.5, 2.0)
    f *= 1 + rng.uniform(0, 0.08) * np.sin(2 * np.pi * rng.uniform(20, 60) * t)
    ph = 2 * np.pi * np.cumsum(f) / SR
    return (np.sin(ph) + 0.2 * np.sin(2 * ph)) * np.hanning(len(t))


def birds(n: int, rng: np.random.Generator) -> np.ndarray:
    """Chirp sequences from a few birds over a quiet breeze."""
    out = _unit(_filt(colored_noise(n, rng, 1.0), "lowpass", 800)) * rng.uniform(0.05, 0.3)
    for _ in range(int(rng.integers(1, 4))):
        pos = int(rng.uniform(-0.3, 0.3) * SR)
        while pos < n:
            y = chirp(rng) * rng.uniform(0.3, 1.5)
            _add(out, y, pos)
            pos += len(y) + int(rng.exponential(rng.uniform(0.05, 0.4)) * SR)
    return out


def machine(n: int, rng: np.random.Generator) -> np.ndarray:
    """Hum harmonics with rotation-rate modulation plus band noise (fan / motor)."""
    t = np.arange(n) / SR
    f0 = rng.uniform(40, 160)
    amps = rng.uniform(0.1, 1.0, 12) / np.arange(1, 13) ** rng.uniform(0.3, 1.2)
    hum = sum(
        a * np.sin(2 * np.pi * f0 * (h + 1) * t + rng.uniform(0, 6.3))
        for h, a in enumerate(amps)
        if f0 * (h + 1) < 0.45 * SR
    )
    rot = 1 + rng.uniform(0.05, 0.4) * np.sin(2 * np.pi * rng.uniform(2, 15) * t)
    edges = [rng.uniform(300, 1000), rng.uniform(2e3, 6e3)]
    band = _filt(rng.standard_normal(n), "bandpass", edges)
    return _unit(hum) * rot + _unit(band) * rng.uniform(0.2, 1.0) * rot


def crowd(n: int, rng: np.random.Generator) -> np.ndarray:
    """Babble of several overlapping random voices over pink noise."""
    talk = babble(n, rng, n_voices=int(rng.integers(4, 9)))
    return _unit(talk) + colored_noise(n, rng, 1.0) * rng.uniform(0.05, 0.3)


_TEXTURES = {
    "rain": rain,
    "wind": wind,
    "traffic": traffic,
    "birds": birds,
    "machine": machine,
    "crowd": crowd,
}


def impact(rng: np.random.Generator) -> np.ndarray:
    """A knock / thud / click: damped low resonance plus a short noise burst."""
    d = rng.uniform(0.05, 0.3)
    t = np.arange(int(d * SR)) / SR
    f = rng.uniform(70, 600)
    body = np.sin(2 * np.pi * f * t) * np.exp(-t / rng.uniform(0.01, d / 3))
    burst = rng.standard_normal(len(t)) * np.exp(-t / rng.uniform(0.0005, 0.004))
    return body * rng.uniform(0.0, 1.0) + burst * rng.uniform(0.2, 1.0)


def scene_audio(
    scene: str, n: int, rng: np.random.Generator, event_rate: float = 0.5
) -> np.ndarray:
    """``n`` samples of ``scene`` plus class-agnostic impacts (``event_rate`` per second)."""
    out = _TEXTURES[scene](n, rng)
    ref = np.sqrt(np.mean(out**2)) + 1e-12
    for _ in range(rng.poisson(event_rate * n / SR)):
        y = impact(rng)
        _add(out, y / np.max(np.abs(y)) * ref * rng.uniform(1.0, 4.0), int(rng.integers(0, n)))
    return (out / (np.max(np.abs(out)) + 1e-12)).astype(np.float32)


def scene_event(scene: str, rng: np.random.Generator, n: int = SR) -> np.ndarray:
    """A short excerpt of a scene (fade in/out so clips do not start with a click)."""
    y = scene_audio(scene, n, rng)
    fade = int(0.01 * SR)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    y[:fade] *= ramp
    y[-fade:] *= ramp[::-1]
    return y * rng.uniform(0.6, 1.0)


def scene_longform(scene: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """A long recording: the texture with slowly varying level and more overlapping events."""
    y = scene_audio(scene, n, rng, event_rate=rng.uniform(0.3, 1.5))
    y *= slow_envelope(n, rng, 0.1, 0.25).astype(np.float32)
    return y / (np.max(np.abs(y)) + 1e-9)
