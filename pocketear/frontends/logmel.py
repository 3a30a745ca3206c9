"""Export-safe log-mel frontend: waveform ``(B, N)`` → log-mel ``(B, 1, T, n_mels)``.

Built only from ops that ``torch.onnx.export(dynamo=True)`` handles with dynamic batch and
length (``torch.stft`` with ``center=False``, a pad, a matmul, a log), so the frontend ships
inside every exported model and phones compute exactly the features the encoder was trained on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from pocketear.errors import InvalidValue
from pocketear.frontends.base import Frontend, config_key
from pocketear.frontends.mel import mel_filterbank
from pocketear.registry import register

STD_FLOOR = 1e-5
RELATIVE_STD_FLOOR = 0.1  # of the median bin's std; see floor_std


@dataclass(frozen=True)
class LogMelConfig:
    """Log-mel parameters; everything that changes the features, hence the cache key.

    Defaults follow the common small-audio-model setup: 25 ms Hann window, 10 ms hop,
    64 mel bins over 60–7800 Hz at 16 kHz, natural log with a small floor.

    Raises:
        InvalidValue: A window or hop under one sample, ``win_length > n_fft``, a band outside
            ``[0, sample_rate / 2]``, ``n_mels < 1`` or ``log_eps <= 0`` (a user's config).
    """

    name: ClassVar[str] = "logmel"
    sample_rate: int = 16000
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int = 512
    n_mels: int = 64
    fmin: float = 60.0
    fmax: float = 7800.0
    log_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.win_length < 1 or self.hop_length < 1:
            raise InvalidValue(f"window and hop must be >= 1 sample; got {self}")
        if self.win_length > self.n_fft:
            raise InvalidValue(f"win_length {self.win_length} exceeds n_fft {self.n_fft}")
        if not 0.0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise InvalidValue(f"need 0 <= fmin < fmax <= sample_rate / 2; got {self}")
        if self.n_mels < 1 or self.log_eps <= 0:
            raise InvalidValue(f"n_mels must be >= 1 and log_eps > 0; got {self}")

    @property
    def win_length(self) -> int:
        """Window length in samples (400 at the defaults)."""
        return int(round(self.sample_rate * self.win_ms / 1000.0))

    @property
    def hop_length(self) -> int:
        """Hop length in samples (160 at the defaults)."""
        return int(round(self.sample_rate * self.hop_ms / 1000.0))

    def num_frames(self, n_samples: int) -> int:
        """Frames produced for ``n_samples`` (no centring; short inputs give one frame)."""
        return max(1, 1 + (n_samples - self.win_length) // self.hop_length)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields, for configs and checkpoints."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LogMelConfig:
        """Inverse of :meth:`to_dict`; rejects unknown keys so typos do not pass silently.

        Raises:
            InvalidValue: An unknown key (a typo in the user's frontend config).
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InvalidValue(
                f"unknown LogMelConfig keys {sorted(unknown)}; known: {sorted(names)}"
            )
        return cls(**dict(d))

    def key(self) -> str:
        """Short stable hex hash of the config, used to key feature caches (:func:`config_key`)."""
        return config_key(self)


@register("frontend", "logmel")
class LogMel(Frontend):
    """Log-mel spectrogram, matching librosa and exportable to ONNX with dynamic batch/length.

    Framing is ``center=False``: frame ``t`` covers samples ``[t*hop, t*hop + win_length)``, so
    ``T = 1 + (N - win_length) // hop_length`` (98 frames per second at the defaults); inputs
    shorter than one window are right-padded with zeros to one window. ``torch.stft`` frames by
    ``n_fft`` and centres the ``win_length`` window inside each frame, so the input is padded by
    ``(n_fft - win_length) / 2`` on both sides: the result equals librosa's
    ``melspectrogram(center=False)`` on that padded signal (see the tests).

    ``torch.stft`` is called with ``return_complex=True`` and viewed as real with
    ``torch.view_as_real``: the same tensor as the deprecated ``return_complex=False`` (which
    warns and is slated to become an error), and it exports with the dynamo exporter too.

    Normalisation stats (``mean``, ``std``; per mel bin) come from :class:`Frontend`: they travel
    in ``state_dict()``, checkpoints and ONNX exports. Until :meth:`set_stats` is called (or a
    state dict with ``normalised=True`` is loaded) :meth:`forward` returns raw log-mel.
    """

    Config = LogMelConfig
    mel_fb: torch.Tensor
    window: torch.Tensor

    def __init__(self, cfg: LogMelConfig | None = None, **overrides: Any) -> None:
        super().__init__(cfg, **overrides)
        cfg = self.cfg
        # Derived from the config, so not persistent: a checkpoint never pins an old filterbank.
        fb = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
        self.register_buffer("mel_fb", torch.from_numpy(fb), persistent=False)
        # Periodic Hann, as librosa's get_window("hann", fftbins=True).
        window = torch.hann_window(cfg.win_length, periodic=True, dtype=torch.float32)
        self.register_buffer("window", window, persistent=False)

    def forward(self, wave: torch.Tensor, normalise: bool = True) -> torch.Tensor:
        """Waveform ``(B, N)`` or ``(N,)`` at ``sample_rate`` → ``(B, 1, T, n_mels)``.

        Args:
            wave: float audio in [-1, 1]; cast to float32.
            normalise: apply ``(x - mean) / std`` when stats are set; pass False to get raw
                log-mel (e.g. while computing the stats themselves).
        """
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        if wave.dim() != 2:
            raise ValueError(f"expected a waveform (B, N) or (N,); got shape {tuple(wave.shape)}")
        wave = wave.to(self.window.dtype)
        cfg = self.cfg
        win = cfg.win_length
        left = (cfg.n_fft - win) // 2
        right = cfg.n_fft - win - left
        # sym_max keeps the short-input pad symbolic under export (no guard on the length).
        short = torch.sym_max(0, win - wave.shape[-1])
        padded = F.pad(wave, (left, right + short))
        spec = torch.stft(
            padded,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=win,
            window=self.window,
            center=False,
            return_complex=True,
        )
        # Squaring then adding the two slices is ~5x faster than .pow(2).sum(-1) here (a
        # reduction over a size-2 axis) and bit-identical.
        sq = torch.view_as_real(spec).square()
        power = sq[..., 0] + sq[..., 1]  # (B, F_fft, T)
        mel = torch.matmul(power.transpose(1, 2), self.mel_fb.t())  # (B, T, n_mels), contiguous
        out = torch.log(mel + cfg.log_eps)
        if normalise:
            out = self.normalise(out)
        return out.unsqueeze(1)


def floor_std(std: np.ndarray, relative: float = RELATIVE_STD_FLOOR) -> np.ndarray:
    """Per-bin std floored at ``relative`` × the median bin's std (and at ``STD_FLOOR``).

    Band-limited audio resampled to 16 kHz (8 kHz recordings such as FSDD, telephone speech)
    leaves the mel bins above the old Nyquist nearly constant: on FSDD their std is ≤ 0.01
    while the median bin's is ~3.1, so the few clips with any energy there became 35–300σ
    inputs. Why 0.1: the bins of real audio have stds within a factor of about 2 of the median
    (2.0–4.2 on FSDD's 50 live bins), so a 0.1 floor leaves every one of them untouched, while a
    bin that holds under 1 % of the typical variance is treated as carrying the typical
    bin's noise: a jump of the whole log-mel range (~4 units on FSDD) then maps to ~13σ, not
    hundreds. Flooring is idempotent (the median does not change), so it is safe to apply to
    stats that were floored already.
    """
    std = np.asarray(std, dtype=np.float32)
    if std.size == 0:
        return std
    floor = max(relative * float(np.median(std)), STD_FLOOR)
    return np.maximum(std, floor).astype(np.float32)


def compute_stats(logmels: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean and std over all frames of a stream of log-mel arrays ``(T, F)``.

    One pass with float64 accumulators, merging per-array moments (Chan et al.), so a whole
    corpus can be streamed without holding it and without the cancellation of a naive
    sum-of-squares. The std is floored per bin at a tenth of the median bin's std
    (:func:`floor_std`) and at 1e-5, so a constant or nearly constant bin (band-limited audio)
    cannot turn rare deviations into huge inputs.
    Arrays with extra leading axes (e.g. ``(1, T, F)``) are flattened to frames.

    Returns:
        ``(mean, std)``, float32 arrays of shape ``(F,)``.

    Raises:
        ValueError: if the stream holds no frames or feature sizes differ.
    """
    count = 0
    mean: np.ndarray | None = None
    m2: np.ndarray | None = None
    for arr in logmels:
        x = np.asarray(arr, dtype=np.float64)
        x = x.reshape(-1, x.shape[-1])
        n = x.shape[0]
        if n == 0:
            continue
        b_mean = x.mean(axis=0)
        b_m2 = ((x - b_mean) ** 2).sum(axis=0)
        if mean is None or m2 is None:
            count, mean, m2 = n, b_mean, b_m2
            continue
        if x.shape[1] != mean.shape[0]:
            raise ValueError(f"feature size changed from {mean.shape[0]} to {x.shape[1]}")
        total = count + n
        delta = b_mean - mean
        mean = mean + delta * (n / total)
        m2 = m2 + b_m2 + delta**2 * (count * n / total)
        count = total
    if mean is None or m2 is None:
        raise ValueError("compute_stats got no frames")
    std = floor_std(np.sqrt(m2 / count))
    return mean.astype(np.float32), std

