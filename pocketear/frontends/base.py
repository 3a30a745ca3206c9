"""What every frontend module answers from its config: rate, hop and frame count."""

from __future__ import annotations

from typing import Any

from torch import nn


class Frontend(nn.Module):
    """Base of the frontends: ``cfg`` holds ``sample_rate``, ``hop_length``, ``num_frames``."""

    cfg: Any

    @property
    def sample_rate(self) -> int:
        """Sample rate the frontend expects, in Hz."""
        return self.cfg.sample_rate

    @property
    def hop_length(self) -> int:
        """Hop between frames, in samples."""
        return self.cfg.hop_length

    def num_frames(self, n_samples: int) -> int:
        """Frames produced for ``n_samples`` samples."""
        return self.cfg.num_frames(n_samples)
