"""A trained encoder ready to embed audio: ``pocketear.load(ckpt)`` and :class:`Pretrained`.

``pocketear.pretrain(...)`` is :func:`pocketear.train.api.pretrain`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from pocketear.encoders.base import Encoder
from pocketear.frontends.base import Frontend
from pocketear.frontends.windows import pad_frames, segment, time_parts
from pocketear.train.build import load_modules

__all__ = ["Pretrained", "load", "pad_frames", "read_windows", "segment", "time_parts"]


@torch.no_grad()
def read_windows(encoder: Encoder, windows: list[torch.Tensor], batch: int = 256
                 ) -> list[np.ndarray]:
    """Read-out embeddings ``(S_i, D)`` of groups of windows ``(S_i, T_i, F)``.

    Windows of equal length go through the encoder together, so no window is padded and every
    embedding is independent of what else is in the batch.
    """
    flat = [w for group in windows for w in group]
    out: list[np.ndarray | None] = [None] * len(flat)
    by_len: dict[int, list[int]] = {}
    for i, w in enumerate(flat):
        by_len.setdefault(int(w.shape[0]), []).append(i)
    for ids in by_len.values():
        for lo in range(0, len(ids), batch):
            part = ids[lo : lo + batch]
            emb = encoder.read(torch.stack([flat[i] for i in part])[:, None]).numpy()
            for i, e in zip(part, emb, strict=True):
                out[i] = e
    dim = encoder.readout_dim
    sizes = np.cumsum([len(g) for g in windows])[:-1]
    stacked = np.stack(out) if flat else np.zeros((0, dim), np.float32)  # type: ignore[arg-type]
    return np.split(stacked, sizes)


class Pretrained:
    """A trained encoder with its frontend and normalisation, ready to embed audio."""

    def __init__(self, frontend: Frontend, encoder: Encoder, config: dict[str, Any],
                 source: str = "") -> None:
        self.frontend = frontend.eval()
        self.encoder = encoder.eval()
        self.config = config
        self.source = source

    @property
    def sample_rate(self) -> int:
        """The rate in Hz the frontend expects audio at (files are resampled to it)."""
        return self.frontend.cfg.sample_rate

    @property
    def embed_dim(self) -> int:
        """Size of the read-out embedding (``encoder.readout_dim``)."""
        return self.encoder.readout_dim

    def logmel(self, audio: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Normalised log-mel ``(T, F)`` of a mono waveform at ``sample_rate``."""
        wave = torch.as_tensor(np.asarray(audio, dtype=np.float32))
        with torch.no_grad():
            return self.frontend(wave[None])[0, 0]

    def embed_segments(self, logmel: torch.Tensor, hop: int | None = None,
                       batch: int = 64) -> np.ndarray:
        """Read-out embeddings ``(S, D)`` of consecutive encoder windows of a normalised log-mel.

        A log-mel shorter than ``input_frames`` is one window of its own length.
        """
        windows = segment(torch.as_tensor(logmel), self.encoder.input_frames, hop)
        return read_windows(self.encoder, [windows], batch)[0]

    def embed_clips(self, logmels: list[torch.Tensor], hop: int | None = None, parts: int = 0,
                    batch: int = 256) -> list[np.ndarray]:
        """Segment embeddings of many normalised log-mels, windows of equal length batched.

        Args:
            logmels: ``(T_i, F)`` log-mels.
            hop: hop between windows in frames (default: the window).
            parts: 0: ``(S_i, D)`` window embeddings per clip. ``k > 0``: ``(1, k·D)`` per
                clip, the mean window embedding of each of ``k`` equal time parts, concatenated
                (:func:`time_parts`).
            batch: windows per encoder call.
        """
        frames = self.encoder.input_frames
        pieces = [time_parts(x, parts) if parts else [x] for x in logmels]
        windows = [segment(torch.as_tensor(p), frames, hop) for ps in pieces for p in ps]
        if not windows:
            return []
        per_piece = read_windows(self.encoder, windows, batch)
        out, k = [], 0
        for ps in pieces:
            mine, k = per_piece[k : k + len(ps)], k + len(ps)
            out.append(np.concatenate([m.mean(axis=0) for m in mine])[None] if parts
                       else mine[0])
        return out

    def embed(self, audio: str | os.PathLike[str] | np.ndarray | torch.Tensor) -> np.ndarray:
        """Clip embedding ``(D,)``: the mean of the window embeddings of a file or waveform."""
        if isinstance(audio, str | os.PathLike):
            from pocketear.audio.io import load_audio

            audio = load_audio(audio, self.sample_rate)
        return self.embed_segments(self.logmel(audio)).mean(axis=0)


def load(checkpoint: str | os.PathLike[str]) -> Pretrained:
    """Load a checkpoint file or run folder (safely: ``weights_only=True``)."""
    frontend, encoder, cfg, path = load_modules(checkpoint)
    return Pretrained(frontend, encoder, cfg, source=path)
