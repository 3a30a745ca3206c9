"""Export-safe constant-Q transform: waveform ``(B, N)`` → log-CQT ``(B, 1, T, n_bins)``.

SPICE (Gfeller et al., "SPICE: Self-supervised Pitch Estimation", IEEE/ACM TASLP 2020, §II-A)
reads pitch off a CQT because a pitch shift is a translation along its frequency axis: 16 kHz,
a 512-sample (32 ms) hop, 24 bins per octave from C1. This module computes the same transform
as ``librosa.cqt`` (Schörkhuber & Klapuri, "Constant-Q transform toolbox for music
processing", SMC 2010: one octave at a time, halving the sample rate between octaves), built
only from ops the ONNX exporter handles with dynamic batch and length (pad, ``torch.stft``,
matmul, strided ``conv1d``), so it can ship inside an exported pitch model like ``LogMel``.

Per octave, top first: a rectangular-window STFT (``n_fft`` = the octave's longest filter, next
power of two, frames centred with zero padding) is multiplied by the FFT of the octave's
filters — Hann-windowed complex exponentials of ``Q · sr / f`` samples, ``Q = filter_scale / α``
with ``α`` librosa's relative bandwidth, L1-normalised — then the signal is low-passed and
decimated by 2 (a 41-tap Kaiser FIR, as ``scipy.signal.resample_poly`` designs it) and the hop
halves. Magnitudes are scaled by ``1 / sqrt(filter length)`` (librosa's ``scale=True``).

Parity (``tests/frontends/test_cqt.py``, ``docs/benchmarks.md`` §1): the same filters and
decimator give ``librosa.cqt(..., sparsity=0, res_type="polyphase")`` to float32 precision;
librosa's defaults (a sparsified basis, soxr decimation) differ by a stated tolerance.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import firwin, get_window

from pocketear.errors import InvalidValue
from pocketear.frontends.base import Frontend, config_key
from pocketear.registry import register

C1_HZ = 32.70319566257483  # MIDI note 24
HANN_BANDWIDTH = 1.50018310546875  # equivalent noise bandwidth, in bins
DECIMATOR_HALF = 10  # taps each side per unit of the factor 2: resample_poly's default


@dataclass(frozen=True)
class CQTConfig:
    """CQT parameters; the defaults are SPICE's (190 bins reach 7.69 kHz, under 8 kHz).

    Raises:
        InvalidValue: ``hop_length`` not divisible by ``2 ** (octaves - 1)`` (each octave halves
            it), a top filter above Nyquist, or a non-positive value.
    """

    name: ClassVar[str] = "cqt"
    sample_rate: int = 16000
    hop_length: int = 512
    fmin: float = C1_HZ
    n_bins: int = 190
    bins_per_octave: int = 24
    filter_scale: float = 1.0
    log_eps: float = 1e-6

    def __post_init__(self) -> None:
        if min(self.sample_rate, self.hop_length, self.n_bins, self.bins_per_octave) < 1:
            raise InvalidValue(f"CQT sizes must be >= 1; got {self}")
        if self.fmin <= 0 or self.filter_scale <= 0 or self.log_eps <= 0:
            raise InvalidValue(f"fmin, filter_scale and log_eps must be > 0; got {self}")
        if self.hop_length % 2 ** (self.n_octaves - 1):
            raise InvalidValue(
                f"hop_length {self.hop_length} must be divisible by 2**{self.n_octaves - 1} "
                f"(each of the {self.n_octaves} octaves halves it)")
        top = self.frequencies()[-1]
        # librosa's check: the top filter's band reaches f (1 + B / 2Q), B = 1.5 for Hann
        if top * (1 + HANN_BANDWIDTH / (2 * self.q()[-1])) > self.sample_rate / 2:
            raise InvalidValue(f"the top bin ({top:.0f} Hz) reaches above Nyquist: use fewer "
                               f"bins or a higher sample rate")

    @property
    def n_octaves(self) -> int:
        """Octaves computed, one sample rate each (8 at the defaults)."""
        return math.ceil(self.n_bins / self.bins_per_octave)

    @property
    def n_mels(self) -> int:
        """``n_bins`` under the name the encoders and the feature cache use for the width F."""
        return self.n_bins

    def frequencies(self) -> np.ndarray:
        """Centre frequency of every bin in Hz, ascending."""
        return self.fmin * 2.0 ** (np.arange(self.n_bins) / self.bins_per_octave)

    def q(self) -> np.ndarray:
        """Quality factor per bin: ``filter_scale / α``, α the relative bandwidth."""
        logf = np.log2(self.frequencies())
        bpo = np.empty_like(logf)  # local bins per octave, as librosa estimates it
        if len(logf) > 1:
            bpo[0], bpo[-1] = 1 / (logf[1] - logf[0]), 1 / (logf[-1] - logf[-2])
            bpo[1:-1] = 2 / (logf[2:] - logf[:-2])
        else:
            bpo[:] = self.bins_per_octave
        alpha = (2.0 ** (2 / bpo) - 1) / (2.0 ** (2 / bpo) + 1)
        return self.filter_scale / alpha

    def num_frames(self, n_samples: int) -> int:
        """Frames produced for ``n_samples`` (centred frames: one per hop, plus one)."""
        return 1 + n_samples // self.hop_length

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields, for configs and checkpoints."""
        return dataclasses.asdict(self)

    def key(self) -> str:
        """Short stable hex hash of the config, used to key feature caches (:func:`config_key`)."""
        return config_key(self)


def octave_basis(cfg: CQTConfig, octave: int) -> tuple[np.ndarray, int]:
    """Frequency-domain filters of octave ``octave`` (0 = top), scaled; and their ``n_fft``.

    Returns ``(basis, n_fft)``: complex ``(bins, n_fft // 2 + 1)``, ascending bins, with every
    constant of the response folded in (``length / n_fft``, ``sqrt(2)`` per octave below the
    top, ``1 / sqrt(length at the full rate)``), as librosa's ``vqt`` scales its bases.
    """
    freqs, q = cfg.frequencies(), cfg.q()
    hi = cfg.n_bins - octave * cfg.bins_per_octave
    sl = slice(max(0, hi - cfg.bins_per_octave), hi)
    sr = cfg.sample_rate / 2 ** octave
    lengths = q[sl] * sr / freqs[sl]
    n_fft = int(2 ** math.ceil(math.log2(lengths.max())))
    filters = np.zeros((len(lengths), n_fft), dtype=np.complex128)
    for row, (length, f) in enumerate(zip(lengths, freqs[sl], strict=True)):
        t = np.arange(-length // 2, length // 2)
        sig = np.exp(2j * np.pi * f / sr * t) * get_window("hann", len(t), fftbins=True)
        sig /= np.abs(sig).sum()
        start = (n_fft - len(t)) // 2
        filters[row, start:start + len(t)] = sig * length / n_fft
    basis = np.fft.fft(filters, axis=1)[:, : n_fft // 2 + 1]
    full_lengths = q[sl] * cfg.sample_rate / freqs[sl]
    return basis * math.sqrt(2 ** octave) / np.sqrt(full_lengths)[:, None], n_fft


@register("frontend", "cqt")
class CQT(Frontend):
    """Log-magnitude CQT matching librosa's, exportable with dynamic batch and length.

    ``forward`` returns ``log(|CQT| + log_eps)`` as ``(B, 1, T, n_bins)``, low bins first, the
    layout of ``LogMel``; :meth:`magnitude` returns ``|CQT|`` as ``(B, n_bins, T)``, librosa's
    layout. Frame ``t`` is centred on sample ``t · hop_length``. Normalisation stats are pooled
    over all bins (``pooled_stats``): one mean and std, so a pitch shift stays a translation.
    """

    Config = CQTConfig
    pooled_stats = True

    def __init__(self, cfg: CQTConfig | None = None, **overrides: Any) -> None:
        super().__init__(cfg, **overrides)
        cfg = self.cfg
        self.n_ffts: list[int] = []
        for octave in range(cfg.n_octaves):
            basis, n_fft = octave_basis(cfg, octave)
            self.n_ffts.append(n_fft)
            # Derived from the config, so not persistent (as LogMel's filterbank).
            self.register_buffer(f"basis_re{octave}", torch.from_numpy(basis.real).float(),
                                 persistent=False)
            self.register_buffer(f"basis_im{octave}", torch.from_numpy(basis.imag).float(),
                                 persistent=False)
            self.register_buffer(f"window{octave}", torch.ones(n_fft), persistent=False)
        taps = firwin(4 * DECIMATOR_HALF + 1, 0.5, window=("kaiser", 5.0)) * math.sqrt(2)
        self.register_buffer("decimator", torch.from_numpy(taps).float().view(1, 1, -1),
                             persistent=False)

    @property
    def n_bins(self) -> int:
        """Number of CQT bins (the feature dimension F)."""
        return self.cfg.n_bins

    def context_samples(self) -> int:
        """Samples each side of a frame's centre that its value depends on (filters, decimators).

        A chunk read with this much audio around it gives the same frames as the whole file.
        """
        half = 2 * DECIMATOR_HALF  # decimator taps each side, at the rate it runs
        return max(n_fft // 2 * 2 ** o + half * (2 ** o - 1) for o, n_fft in enumerate(self.n_ffts))

    def magnitude(self, wave: torch.Tensor) -> torch.Tensor:
        """``|CQT|`` of ``wave`` ``(B, N)`` or ``(N,)`` as ``(B, n_bins, T)``."""
        x = wave.unsqueeze(0) if wave.dim() == 1 else wave
        x = x.float()
        hop = self.cfg.hop_length
        octaves = []
        for octave, n_fft in enumerate(self.n_ffts):
            padded = F.pad(x, (n_fft // 2, n_fft // 2))
            spec = torch.view_as_real(torch.stft(
                padded, n_fft, hop, window=getattr(self, f"window{octave}"), center=False,
                return_complex=True))
            re, im = spec[..., 0], spec[..., 1]
            b_re, b_im = getattr(self, f"basis_re{octave}"), getattr(self, f"basis_im{octave}")
            out_re = b_re @ re - b_im @ im
            out_im = b_re @ im + b_im @ re
            octaves.append(torch.sqrt(out_re ** 2 + out_im ** 2))
            if octave + 1 < len(self.n_ffts):
                half = 2 * DECIMATOR_HALF
                x = F.conv1d(F.pad(x.unsqueeze(1), (half, half)), self.decimator,
                             stride=2).squeeze(1)
                hop //= 2
        frames = min(o.shape[-1] for o in octaves)
        return torch.cat([o[..., :frames] for o in reversed(octaves)], dim=1)

    def forward(self, wave: torch.Tensor, normalise: bool = True) -> torch.Tensor:
        """Log-CQT ``(B, 1, T, n_bins)`` of ``wave`` ``(B, N)``; normalised when stats are set."""
        out = torch.log(self.magnitude(wave) + self.cfg.log_eps).transpose(1, 2)
        if normalise:
            out = self.normalise(out)
        return out.unsqueeze(1)
