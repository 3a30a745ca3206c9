"""SPICE's pitch encoder: each CQT frame on its own, 1-D convolutions along frequency.

Gfeller, Frank, Roblek, Sharifi, Tagliasacchi & Velimirović, "SPICE: Self-supervised Pitch
Estimation", IEEE/ACM TASLP 28 (2020), §II-B and Fig. 1: the input is one CQT frame (a slice of
``F = 128`` bins), the encoder six convolutional layers (kernel 3 along frequency, batch norm,
ReLU, max pooling by 2) and two fully connected layers down to a scalar pitch. A frame at a
time, no context across time: what makes a pitch shift of the input a shift of the output.
The paper's channel table is not in our sources (``docs/PAPERS.md`` §6, NOT FOUND); its smallest
model has 180 k parameters, so the default here is a ~145 k-parameter stack of (16, 32, 64, 128,
128, 128) channels. Centring each slice on its mean (``center=True``, our choice) makes the
output ignore loudness, which the paper leaves to the convolutions.

Inputs wider than ``slice_bins`` (default 128 of the frontend's 190 bins) are cropped at
``offset``: the slice the calibrated pitch is read from at inference.
:class:`~pocketear.tasks.spice.Spice` feeds slices of exactly ``slice_bins`` at random offsets.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pocketear.encoders.base import Encoder
from pocketear.errors import InvalidValue
from pocketear.registry import register

CQT_HOP_MS = 32.0  # the CQT frontend's default hop (512 samples at 16 kHz)
SLICE_BINS = 128  # SPICE's slice of the 190-bin CQT (narrower inputs: all their bins)


class SpiceEncoder(Encoder):
    """CQT ``(B, 1, T, F)`` → per-frame features ``(B, T, embed_dim)``, every frame alone.

    ``forward_features`` is the flattened convolution output (the read-out's default source);
    ``project`` the fully connected layer whose output the pitch and confidence heads read.

    Raises:
        InvalidValue: a slice wider than the input, an offset past its end, or sizes < 1.
    """

    pooling = "mean"
    input_frames = 30  # ~0.96 s at a 32 ms hop, the window the other encoders are read on

    def __init__(self, n_mels: int = 190, slice_bins: int | None = None, offset: int = 0,
                 channels: tuple[int, ...] = (16, 32, 64, 128, 128, 128), embed_dim: int = 48,
                 center: bool = True) -> None:
        super().__init__()
        slice_bins = min(SLICE_BINS, n_mels) if slice_bins is None else slice_bins
        if min(n_mels, slice_bins, embed_dim, len(channels), *channels) < 1:
            raise InvalidValue(f"spice encoder sizes must be >= 1; got n_mels={n_mels}, "
                               f"slice_bins={slice_bins}, channels={channels}")
        if not 0 <= offset <= n_mels - slice_bins:
            raise InvalidValue(f"spice encoder: a {slice_bins}-bin slice at offset {offset} "
                               f"does not fit {n_mels} input bins; lower offset or slice_bins")
        self.n_mels, self.slice_bins, self.offset = int(n_mels), int(slice_bins), int(offset)
        self.embed_dim, self.center = int(embed_dim), bool(center)
        self.channels = tuple(int(c) for c in channels)
        self.frame_hop_ms = CQT_HOP_MS
        layers: list[nn.Module] = []
        width, c_in = self.slice_bins, 1
        for c_out in self.channels:
            layers += [nn.Conv1d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm1d(c_out),
                       nn.ReLU(inplace=True), nn.MaxPool1d(2, ceil_mode=True)]
            c_in, width = c_out, -(-width // 2)
        self.convs = nn.Sequential(*layers)
        self.bins_out = width
        self.proj = nn.Sequential(nn.Linear(c_in * width, self.embed_dim), nn.ReLU())

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T, F)`` with ``F`` = ``slice_bins`` or ``n_mels`` → ``(B, T, feature_dim)``."""
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[-1] not in (self.slice_bins, self.n_mels):
            raise ValueError(f"SpiceEncoder expects a CQT (B, 1, T, {self.n_mels}) or slices "
                             f"(B, 1, T, {self.slice_bins}), got {tuple(x.shape)}")
        if x.shape[-1] != self.slice_bins:
            x = x[..., self.offset: self.offset + self.slice_bins]
        b, t = x.shape[0], x.shape[2]
        frames = x.reshape(b * t, 1, self.slice_bins)
        if self.center:
            frames = frames - frames.mean(dim=-1, keepdim=True)
        return self.convs(frames).flatten(1).reshape(b, t, -1)

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """The fully connected layer (with ReLU) the pitch head reads."""
        return self.proj(h)

    def macs_per_second(self, frames_per_second: int = round(1000 / CQT_HOP_MS)) -> int:
        """Multiply-adds per second of audio at the CQT's frame rate (31 frames per second)."""
        return super().macs_per_second(frames_per_second)

    @property
    def feature_dim(self) -> int:
        """Width of the flattened convolution output: last channels × remaining bins."""
        return self.channels[-1] * self.bins_out

    def extra_repr(self) -> str:
        """Slice, offset and channels, for ``print(encoder)``."""
        return (f"n_mels={self.n_mels}, slice_bins={self.slice_bins}, offset={self.offset}, "
                f"channels={self.channels}, embed_dim={self.embed_dim}")


@register("encoder", "spice")
def spice(n_mels: int = 190, **kwargs: Any) -> SpiceEncoder:
    """SPICE's frame encoder at ~145 k parameters (for the ``cqt`` frontend and ``spice`` task)."""
    return SpiceEncoder(n_mels=n_mels, **kwargs)
