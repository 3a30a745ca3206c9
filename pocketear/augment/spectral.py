"""Speaker-changing augmentations on log-mel slices: vocal-tract-length warp, speed, EQ.

Why in the log-mel domain: the training loop reads a cache of log-mels, not waveforms, so these
are the spectrogram counterparts of the waveform augmentations that change who seems to speak
(Jaitly & Hinton 2013, "Vocal Tract Length Perturbation (VTLP) improves speech recognition":
a frequency-axis warp by a factor in 0.9–1.1; Ko et al. 2015, "Audio augmentation for speech
recognition": speed perturbation 0.9–1.1; random equalisation as a channel change).
"""

from __future__ import annotations

import numpy as np

from pocketear.augment.base import Augmentation
from pocketear.errors import InvalidValue
from pocketear.frontends.logmel import LogMelConfig
from pocketear.frontends.mel import hz_to_mel, mel_to_hz
from pocketear.registry import register


def mel_centres(cfg: LogMelConfig) -> np.ndarray:
    """Centre frequency (Hz) of every mel bin of the frontend (librosa's Slaney scale)."""
    mels = np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(cfg.fmax), cfg.n_mels + 2)
    return np.asarray(mel_to_hz(mels[1:-1]), dtype=np.float64)


def warp_bins(x: np.ndarray, centres: np.ndarray, alpha: float) -> np.ndarray:
    """The slice as if every frequency were multiplied by ``alpha``.

    Output bin ``i`` reads the input at frequency ``centres[i] / alpha`` (linear interpolation
    on the mel axis; edges hold the border bins).
    """
    mel = np.asarray(hz_to_mel(centres), dtype=np.float64)
    src = np.asarray(hz_to_mel(centres / alpha), dtype=np.float64)
    pos = np.interp(src, mel, np.arange(len(mel)))  # fractional source bin
    lo = np.clip(np.floor(pos).astype(int), 0, len(mel) - 1)
    hi = np.clip(lo + 1, 0, len(mel) - 1)
    w = (pos - lo)[None, :]
    return (x[:, lo] * (1 - w) + x[:, hi] * w).astype(np.float32)


@register("augmentation", "mel_warp")
class MelWarp(Augmentation):
    """Vocal-tract-length warp (VTLP): every frequency times a random factor near 1.

    ``alpha`` is uniform in ``[1 - max_warp, 1 + max_warp]`` (Jaitly & Hinton 2013).

    Args:
        max_warp: largest relative warp (0.15: ±15 %, a child-to-adult range is ~±20 %).
        p: probability of applying it.
    """

    def __init__(self, max_warp: float = 0.15, p: float = 1.0) -> None:
        if not 0.0 <= max_warp < 1.0 or not 0.0 <= p <= 1.0:
            raise InvalidValue(f"need 0 <= max_warp < 1 and 0 <= p <= 1, got {max_warp}, {p}")
        self.max_warp, self.p = float(max_warp), float(p)
        self.centres = mel_centres(LogMelConfig())
        self.last_alpha = 1.0

    def bind(self, frontend: LogMelConfig) -> MelWarp:
        """Use the centre frequencies of ``frontend``'s mel bins."""
        self.centres = mel_centres(frontend)
        return self

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The slice warped by a random factor (or unchanged, with probability ``1 - p``)."""
        if x.shape[1] != len(self.centres):
            raise ValueError(f"mel_warp is bound to {len(self.centres)} mel bins, the slice has "
                             f"{x.shape[1]}")
        self.last_alpha = 1.0
        if rng.random() >= self.p:
            return x
        self.last_alpha = float(rng.uniform(1 - self.max_warp, 1 + self.max_warp))
        return warp_bins(x, self.centres, self.last_alpha)


@register("augmentation", "time_stretch")
class TimeStretch(Augmentation):
    """Speed change: the time axis resampled by a random rate near 1, length kept.

    The rate is uniform in ``[1 - max_rate, 1 + max_rate]`` (> 1: faster); the result is cut
    or padded (with the slice's minimum) to the slice's length.

    Args:
        max_rate: largest relative change (0.1: speed 0.9–1.1, Ko et al. 2015).
        p: probability of applying it.
    """

    def __init__(self, max_rate: float = 0.1, p: float = 1.0) -> None:
        if not 0.0 <= max_rate < 1.0 or not 0.0 <= p <= 1.0:
            raise InvalidValue(f"need 0 <= max_rate < 1 and 0 <= p <= 1, got {max_rate}, {p}")
        self.max_rate, self.p = float(max_rate), float(p)
        self.last_rate = 1.0

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The slice played at a random rate, same length (unchanged with probability ``1 - p``)."""
        self.last_rate = 1.0
        if rng.random() >= self.p or len(x) < 2:
            return x
        rate = self.last_rate = float(rng.uniform(1 - self.max_rate, 1 + self.max_rate))
        t_out = np.arange(len(x)) * rate  # output frame k reads input time k * rate
        keep = t_out <= len(x) - 1
        out = np.full_like(x, x.min())
        idx = np.arange(len(x))
        for f in range(x.shape[1]):
            out[keep, f] = np.interp(t_out[keep], idx, x[:, f])
        return out


@register("augmentation", "random_eq")
class RandomEQ(Augmentation):
    """Random equalisation: a smooth random gain curve over the mel bins (another microphone).

    The curve is a sum of ``n_bands`` cosines over the bin axis with random phases, scaled so
    that its peak is a gain uniform in ``[0, max_gain]`` (in units of the bins' std).

    Args:
        max_gain: largest gain of the curve at its peak.
        n_bands: cosine components (higher: less smooth).
        p: probability of applying it.
    """

    def __init__(self, max_gain: float = 0.5, n_bands: int = 3, p: float = 1.0) -> None:
        if max_gain < 0 or n_bands < 1 or not 0.0 <= p <= 1.0:
            raise InvalidValue(f"need max_gain >= 0, n_bands >= 1, 0 <= p <= 1; got {max_gain}, "
                             f"{n_bands}, {p}")
        self.max_gain, self.n_bands, self.p = float(max_gain), int(n_bands), float(p)
        self.last_curve: np.ndarray | None = None

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The slice plus a random gain curve (or unchanged, with probability ``1 - p``)."""
        self.last_curve = None
        if rng.random() >= self.p:
            return x
        pos = np.linspace(0.0, np.pi, x.shape[1])
        curve = sum(rng.normal() * np.cos((k + 1) * pos + rng.uniform(0, 2 * np.pi))
                    for k in range(self.n_bands))
        peak = float(np.abs(curve).max()) or 1.0
        curve = curve / peak * rng.uniform(0.0, self.max_gain)
        self.last_curve = curve
        return (x + curve[None, :]).astype(np.float32)
