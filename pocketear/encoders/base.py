"""The encoder contract shared by every registered encoder (DESIGN §3)."""

from __future__ import annotations

import torch
from torch import nn


class Encoder(nn.Module):
    """Log-mel ``(B, 1, T, F)`` → frame features ``(B, T', D)``; ``embed`` → clip ``(B, D)``.

    Subclasses set ``embed_dim``, ``frame_hop_ms`` (hop of the output frames), ``input_frames``
    (the window the encoder was designed for, e.g. 96 frames = 0.96 s) and ``n_mels``.
    """

    embed_dim: int
    frame_hop_ms: float
    input_frames: int = 96
    n_mels: int = 64
    pooling: str = "max"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def pool(self, frames: torch.Tensor) -> torch.Tensor:
        """Clip-level pooling over time declared by the encoder (max, mean or meanmax)."""
        if self.pooling == "max":
            return frames.amax(dim=1)
        if self.pooling == "mean":
            return frames.mean(dim=1)
        if self.pooling == "meanmax":
            return frames.amax(dim=1) + frames.mean(dim=1)
        raise ValueError(f"unknown pooling {self.pooling!r}")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.forward(x))

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def macs_per_second(self, frames_per_second: int = 100) -> int:
        """Multiply-adds to embed one second of audio, counted with ``torch.utils.flop_counter``.

        Counted on one ``input_frames`` window and scaled to one second, since the encoder is
        applied window by window.
        """
        from torch.utils.flop_counter import FlopCounterMode

        x = torch.zeros(1, 1, self.input_frames, self.n_mels)
        was_training = self.training
        self.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            self.embed(x)
        self.train(was_training)
        macs = counter.get_total_flops() // 2
        return int(macs * frames_per_second / self.input_frames)
