"""What every exporter shares: the traced graph (DFT log-mel + encoder windows), names, metadata.

:mod:`pocketear.export.onnx`, :mod:`~pocketear.export.quantize`, :mod:`~pocketear.export.pte`,
:mod:`~pocketear.export.runtime` and :mod:`~pocketear.export.stream` import from here and never
from each other's internals, so the export modules form no import cycle.

- :class:`DftLogMel`: the :class:`~pocketear.frontends.logmel.LogMel` of a model as ops every
  exporter lowers (a strided convolution with a windowed DFT basis instead of ``stft``).
- :class:`ClipModel`: waveform → clip embedding, exactly as ``Pretrained.embed`` computes it.
- :func:`window_samples`, :func:`model_metadata`, :func:`file_sha256`: the geometry and the
  metadata written with every exported file.
- :func:`as_pretrained`: a checkpoint, run folder or loaded ``Pretrained`` → ``Pretrained``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from pocketear.errors import UserError

if TYPE_CHECKING:
    from pocketear.model import Pretrained

FP32_TOLERANCE = 1e-4  # max abs diff of embeddings, relative to max(1, max |embedding|)
INPUT_NAME, OUTPUT_NAME = "wave", "embedding"
DFT_BASIS = "dft_basis"  # buffer (and ONNX initialiser) name of the windowed DFT basis


class ExportError(UserError, RuntimeError):
    """An export that was refused (parity outside tolerance) or could not be produced.

    A :class:`~pocketear.errors.UserError` (the CLI prints it as one line) that stays a
    ``RuntimeError`` for callers that catch that.
    """


def dft_tables(n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos(2πj/n)`` and ``-sin(2πj/n)`` for ``j < n``, computed in float64, stored float32.

    Shared by :class:`DftLogMel` and the ONNX graph that rebuilds the basis from these tables,
    so both compute the basis with the same float ops.
    """
    ang = 2 * math.pi * torch.arange(n_fft, dtype=torch.float64) / n_fft
    return torch.cos(ang).float(), (-torch.sin(ang)).float()


class DftLogMel(nn.Module):
    """The :class:`~pocketear.frontends.logmel.LogMel` of ``frontend`` as ONNX-friendly ops.

    Same framing, padding, mel matrix, log floor and normalisation; the power spectrum comes from a
    ``conv1d`` with the windowed DFT basis (real rows then imaginary rows) instead of ``stft``.
    """

    def __init__(self, frontend: nn.Module) -> None:
        super().__init__()
        cfg = frontend.cfg
        self.cfg = cfg
        self.bins = cfg.n_fft // 2 + 1
        left = (cfg.n_fft - cfg.win_length) // 2
        cos_t, nsin_t = dft_tables(cfg.n_fft)
        idx = (torch.arange(self.bins)[:, None] * torch.arange(left, left + cfg.win_length)) \
            % cfg.n_fft
        window = frontend.window.detach().float()
        self.window = window.numpy().copy()  # kept for the compact ONNX basis
        basis = torch.cat([cos_t[idx], nsin_t[idx]]) * window  # same float ops as the ONNX graph
        self.register_buffer(DFT_BASIS, basis[:, None, :].contiguous())
        self.register_buffer("mel_t", frontend.mel_fb.detach().t().contiguous())
        # the stats are copied as buffers (initialisers of the exported graph); the traced
        # forward applies them with the same rule as LogMel.normalise
        self.register_buffer("mean", frontend.mean.detach().clone())
        self.register_buffer("std", frontend.std.detach().clone())
        self.use_stats = bool(frontend.uses_stats)

    @property
    def basis(self) -> torch.Tensor:
        """The windowed DFT basis ``(2 * bins, 1, win_length)``."""
        return getattr(self, DFT_BASIS)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Waveform ``(B, N)`` → normalised log-mel ``(B, 1, T, n_mels)``."""
        short = torch.sym_max(0, self.cfg.win_length - wave.shape[-1])
        x = F.pad(wave, (0, short)).unsqueeze(1)
        spec = F.conv1d(x, self.basis, stride=self.cfg.hop_length)  # (B, 2K, T)
        sq = spec.square()
        power = sq[:, : self.bins] + sq[:, self.bins :]
        out = torch.log(torch.matmul(power.transpose(1, 2), self.mel_t) + self.cfg.log_eps)
        if self.use_stats:
            out = (out - self.mean) / self.std
        return out.unsqueeze(1)


class ClipModel(nn.Module):
    """Waveform ``(B, N)`` → clip embedding ``(B, D)``, exactly as ``Pretrained.embed`` computes it.

    Windows of ``W = min(T, input_frames)`` frames start every ``W`` frames and the last one is
    aligned to the end (``pocketear.model.segment``): a log-mel shorter than one window is one
    window of its own length, never padded. Window starts are ``clamp(min(i*W, T-W), 0)``, so
    the graph has no data-dependent branch and no window is embedded twice. Each window goes
    through the encoder's read-out (``encoder.read``).
    """

    def __init__(self, frontend: nn.Module, encoder: nn.Module) -> None:
        super().__init__()
        self.frontend = frontend
        self.encoder = encoder
        self.frames = int(encoder.input_frames)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Waveform ``(B, N)`` → mean read-out embedding of its windows ``(B, D)``."""
        x = self.frontend(wave)[:, 0]  # (B, T, F)
        b, t, f = x.shape
        w = torch.sym_min(t, self.frames)
        i = torch.arange((t + w - 1) // w, device=x.device)
        starts = torch.clamp(torch.minimum(i * w, torch.full_like(i, t - w)), min=0)
        idx = starts[:, None] + torch.arange(w, device=x.device)[None, :]  # (S, W)
        windows = x[:, idx]  # (B, S, W, F)
        s = windows.shape[1]
        emb = self.encoder.read(windows.reshape(b * s, 1, w, f))
        return emb.reshape(b, s, -1).mean(dim=1)


def window_samples(pre: Pretrained) -> tuple[int, int]:
    """``(window, hop)`` in samples of the encoder windows (15,600 and 15,360 at the defaults)."""
    cfg, frames = pre.frontend.cfg, int(pre.encoder.input_frames)
    return (frames - 1) * cfg.hop_length + cfg.win_length, frames * cfg.hop_length


def as_pretrained(model: str | os.PathLike[str] | Pretrained) -> Pretrained:
    """A loaded ``Pretrained`` for ``model``, whichever form it is given in.

    ``model`` itself when it is a loaded ``Pretrained``, else the checkpoint or run folder
    loaded with :func:`pocketear.model.load`.

    Raises:
        ExportError: a model whose frontend is not the log-mel (:func:`require_logmel`).
    """
    from pocketear.model import Pretrained, load

    return require_logmel(model if isinstance(model, Pretrained) else load(model))


def require_logmel(pre: Pretrained) -> Pretrained:
    """``pre``, if its frontend is the log-mel this module's graph and framing are built for.

    Raises:
        ExportError: another frontend (a spice run's CQT: its export is ``--task-head pitch``).
    """
    from pocketear.frontends.logmel import LogMel

    if not isinstance(pre.frontend, LogMel):
        raise ExportError(f"{pre.source or 'model'}: embedding export and `embed` handle log-mel "
                          f"models; this one reads a {pre.frontend.cfg.name} (a spice run: "
                          "`pocketear pitch`, or export it with --task-head pitch)")
    return pre


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_metadata(pre: Pretrained, int8: bool) -> dict[str, str]:
    """The metadata written with every export; all values are strings.

    Stored as ``metadata_props`` in ONNX and as a ``.json`` beside a ``.pte``.
    """
    from pocketear import __version__

    window, hop = window_samples(pre)
    source = Path(pre.source) if pre.source else None
    return {
        "producer": "pocketear",
        "pocketear_version": __version__,
        "sample_rate": str(pre.sample_rate),
        "window_samples": str(window),
        "hop_samples": str(hop),
        "min_samples": "1",
        "input_frames": str(pre.encoder.input_frames),
        "embedding_size": str(pre.embed_dim),
        "encoder": str(pre.config.get("encoder", {}).get("name", type(pre.encoder).__name__)),
        "frontend": json.dumps(pre.frontend.cfg.to_dict(), sort_keys=True),
        "checkpoint_sha256": file_sha256(source) if source and source.is_file() else "unknown",
        "quantization": "int8-static-qdq-per-channel" if int8 else "none",
        "readout": str(pre.encoder.readout),
        "clip_embedding": "mean over windows (hop = window, last aligned to end; a short input is"
                          " one window of its own length) of the encoder's read-out",
        "input": f"{INPUT_NAME}: float32 (batch, samples) mono in [-1, 1]",
        "output": f"{OUTPUT_NAME}: float32 (batch, embedding_size)",
    }
