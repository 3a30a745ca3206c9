"""``audiontt``: the BYOL-A / SLICER CNN on log-mel patches.

Our implementation of the encoder described in Niizumi et al. 2021, "BYOL for Audio:
Self-Supervised Learning for General-Purpose Audio Representation" (IJCNN 2021, §4.1 and Fig. 3;
itself a modification of the network of Koizumi et al. 2020, "The NTT DCASE2020 challenge task 6
system"), and used by SLICER (Seth et al., ICASSP 2023, §3). Written from the paper's
description, not from its reference code.

Three blocks ``Conv 3×3 (64 channels, bias) → BN → ReLU → MaxPool 2×2``, then every output frame
flattens its ``64 × F/8`` map (512 for 64 mels) and an MLP ``Linear(512, d) → ReLU →
Dropout(0.3) → Linear(d, d) → ReLU`` maps it to ``d``. ``forward`` gives one frame per 8 input
frames (80 ms at a 10 ms hop); ``embed`` is max-over-time + mean-over-time (the paper's pooling,
``pooling = "meanmax"``).

Parameter counts with 64 mels: ``audiontt_512`` 600,192, ``audiontt_1024`` 1,649,792,
``audiontt_2048`` 5,321,856 (asserted in the tests).

Pooling uses ``ceil_mode``, so any number of frames works: a trailing partial window still yields
a frame and inputs of fewer than 8 frames give one frame (the paper uses fixed 96-frame inputs,
where ceil and floor mode agree).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pocketear.encoders.base import Encoder
from pocketear.errors import InvalidValue
from pocketear.registry import register

INPUT_HOP_MS = 10.0
CHANNELS = 64
N_BLOCKS = 3


def _block(in_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, CHANNELS, 3, padding=1),
        nn.BatchNorm2d(CHANNELS),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2, ceil_mode=True),
    )


class AudioNTT(Encoder):
    """BYOL-A's CNN: three conv blocks and a two-layer MLP per frame.

    Args:
        embed_dim: ``d``, width of the MLP and of the frame features.
        n_mels: mel bins of the input (the MLP input is ``64 × ceil(n_mels / 8)``).
        dropout: dropout between the MLP layers (0.3 in the paper).

    Raises:
        InvalidValue: A size below 1 or a dropout outside ``[0, 1)`` (a user's encoder config).
    """

    input_frames = 96
    pooling = "meanmax"

    def __init__(self, embed_dim: int = 2048, n_mels: int = 64, dropout: float = 0.3) -> None:
        super().__init__()
        if embed_dim < 1 or n_mels < 1 or not 0.0 <= dropout < 1.0:
            raise InvalidValue(f"need embed_dim, n_mels >= 1 and 0 <= dropout < 1; got "
                               f"{embed_dim}, {n_mels}, {dropout}")
        self.embed_dim, self.n_mels = int(embed_dim), int(n_mels)
        self.time_stride = 2**N_BLOCKS
        self.frame_hop_ms = INPUT_HOP_MS * self.time_stride
        self.features = nn.Sequential(*(_block(1 if i == 0 else CHANNELS)
                                        for i in range(N_BLOCKS)))
        freq = self.n_mels
        for _ in range(N_BLOCKS):
            freq = -(-freq // 2)
        self.freq_bins_out = freq
        self.fc = nn.Sequential(
            nn.Linear(CHANNELS * freq, self.embed_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(self.embed_dim, self.embed_dim),
            nn.ReLU(inplace=True),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(B, 1, T, n_mels)`` → frame features ``(B, ceil(T / 8), embed_dim)``."""
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[-1] != self.n_mels:
            raise ValueError(f"{type(self).__name__} expects log-mel (B, 1, T, {self.n_mels}), "
                             f"got {tuple(x.shape)}")
        h = self.features(x)  # (B, C, T', F')
        h = h.permute(0, 2, 1, 3).flatten(2)  # (B, T', C·F'), channel-major like the paper
        return self.fc(h)

    def extra_repr(self) -> str:
        """Sizes and frame hop, for ``print(encoder)``."""
        return f"embed_dim={self.embed_dim}, n_mels={self.n_mels}, frame_hop_ms={self.frame_hop_ms}"


@register("encoder", "audiontt_512")
def audiontt_512(embed_dim: int = 512, n_mels: int = 64, **kwargs: Any) -> AudioNTT:
    """BYOL-A CNN with d = 512 (600,192 params at 64 mels)."""
    return AudioNTT(embed_dim=embed_dim, n_mels=n_mels, **kwargs)


@register("encoder", "audiontt_1024")
def audiontt_1024(embed_dim: int = 1024, n_mels: int = 64, **kwargs: Any) -> AudioNTT:
    """BYOL-A CNN with d = 1024 (1,649,792 params at 64 mels)."""
    return AudioNTT(embed_dim=embed_dim, n_mels=n_mels, **kwargs)


@register("encoder", "audiontt_2048")
def audiontt_2048(embed_dim: int = 2048, n_mels: int = 64, **kwargs: Any) -> AudioNTT:
    """BYOL-A CNN with d = 2048 (5,321,856 params at 64 mels; the paper's main model)."""
    return AudioNTT(embed_dim=embed_dim, n_mels=n_mels, **kwargs)
