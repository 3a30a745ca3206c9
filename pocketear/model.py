"""The Python API that mirrors the CLI: ``pocketear.pretrain(...)`` and ``pocketear.load(ckpt)``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pocketear.encoders.base import Encoder
from pocketear.frontends.logmel import LogMel
from pocketear.train.build import build_encoder, build_frontend
from pocketear.train.checkpoint import load_checkpoint


def pad_frames(logmel: torch.Tensor, frames: int) -> torch.Tensor:
    """Pad a ``(T, F)`` log-mel at the end to at least ``frames`` frames, each bin with its own
    minimum over the clip (its silence level), not one flat value for the whole spectrum."""
    if logmel.shape[0] >= frames:
        return logmel
    fill = logmel.amin(dim=0) if logmel.numel() else torch.zeros(logmel.shape[1])
    return torch.cat([logmel, fill.expand(frames - logmel.shape[0], logmel.shape[1])])


def segment(logmel: torch.Tensor, frames: int, hop: int | None = None) -> torch.Tensor:
    """Windows ``(S, frames, F)`` of a ``(T, F)`` log-mel (hop defaults to ``frames``); the last
    window is aligned to the end so no audio is dropped. A clip shorter than one window is one
    window of its own length ``(1, T, F)``: it is embedded as it is, never padded."""
    hop = hop or frames
    x = torch.as_tensor(logmel)
    if x.shape[0] <= frames:
        return x[None]
    starts = list(range(0, x.shape[0] - frames + 1, hop))
    if starts[-1] + frames < x.shape[0]:
        starts.append(x.shape[0] - frames)
    return torch.stack([x[s : s + frames] for s in starts])


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


def time_parts(x: torch.Tensor | np.ndarray, parts: int) -> list:
    """``parts`` consecutive, (nearly) equal time slices of a ``(T, F)`` log-mel; frames are
    repeated when ``T < parts`` so every part holds at least one frame."""
    n = x.shape[0]
    bounds = np.linspace(0, n, parts + 1)
    out = []
    for k in range(parts):
        lo = min(int(np.floor(bounds[k])), n - 1)
        hi = max(int(np.floor(bounds[k + 1])), lo + 1)
        out.append(x[lo:hi])
    return out


class Pretrained:
    """A trained encoder with its frontend and normalisation, ready to embed audio."""

    def __init__(self, frontend: LogMel, encoder: Encoder, config: dict[str, Any],
                 source: str = "") -> None:
        self.frontend = frontend.eval()
        self.encoder = encoder.eval()
        self.config = config
        self.source = source

    @property
    def sample_rate(self) -> int:
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
        """Read-out embeddings ``(S, D)`` of consecutive encoder windows of a normalised log-mel
        (one window of the clip's own length when it is shorter than ``input_frames``)."""
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
    state = load_checkpoint(checkpoint)
    cfg = state["config"]
    frontend = build_frontend(cfg)
    frontend.load_state_dict(state["frontend"])
    encoder = build_encoder(cfg)
    prefix = "encoder."
    encoder.load_state_dict({k[len(prefix):]: v for k, v in state["task"].items()
                             if k.startswith(prefix)})
    return Pretrained(frontend, encoder, cfg, source=state["path"])


def pretrain(
    task: str,
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    encoder: str = "mobile_100",
    config: str | os.PathLike[str] | None = None,
    steps: int | None = None,
    epochs: float | None = None,
    overrides: list[str] | None = None,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Same as ``pocketear pretrain``; returns the run summary."""
    from pocketear.train.config import load_config
    from pocketear.train.loop import pretrain as run

    sets = [f"task.name={task}", f"encoder.name={encoder}", f"data.source={Path(data)}"]
    if steps is not None:
        sets.append(f"train.steps={steps}")
    if epochs is not None:
        sets.append(f"train.epochs={epochs}")
    cfg = load_config(config, [*sets, *(overrides or [])])
    return run(cfg, out, resume=resume, progress=progress)
