"""Windowing of log-mel clips: how a clip of any length becomes encoder inputs.

Shared by embedding (``pocketear.model``), the baselines, target making and export, so every
path cuts a clip the same way: no window is padded (a short clip is one window of its own
length), and the last window is aligned to the end so no audio is dropped.
"""

from __future__ import annotations

import numpy as np
import torch


def pad_frames(logmel: torch.Tensor, frames: int) -> torch.Tensor:
    """Pad a ``(T, F)`` log-mel at the end to at least ``frames`` frames.

    Each bin is padded with its own minimum over the clip (its silence level), not one flat value
    for the whole spectrum.
    """
    if logmel.shape[0] >= frames:
        return logmel
    fill = logmel.amin(dim=0) if logmel.numel() else torch.zeros(logmel.shape[1])
    return torch.cat([logmel, fill.expand(frames - logmel.shape[0], logmel.shape[1])])


def segment(logmel: torch.Tensor, frames: int, hop: int | None = None) -> torch.Tensor:
    """Windows ``(S, frames, F)`` of a ``(T, F)`` log-mel (hop defaults to ``frames``).

    The last window is aligned to the end so no audio is dropped. A clip shorter than one window
    is one window of its own length ``(1, T, F)``: it is embedded as it is, never padded.
    """
    hop = hop or frames
    x = torch.as_tensor(logmel)
    if x.shape[0] <= frames:
        return x[None]
    starts = list(range(0, x.shape[0] - frames + 1, hop))
    if starts[-1] + frames < x.shape[0]:
        starts.append(x.shape[0] - frames)
    return torch.stack([x[s : s + frames] for s in starts])


def time_parts(x: torch.Tensor | np.ndarray, parts: int) -> list:
    """``parts`` consecutive, (nearly) equal time slices of a ``(T, F)`` log-mel.

    Frames are repeated when ``T < parts`` so every part holds at least one frame.
    """
    n = x.shape[0]
    bounds = np.linspace(0, n, parts + 1)
    out = []
    for k in range(parts):
        lo = min(int(np.floor(bounds[k])), n - 1)
        hi = max(int(np.floor(bounds[k + 1])), lo + 1)
        out.append(x[lo:hi])
    return out
