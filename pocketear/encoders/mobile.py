"""``mobile``: the seed paper's small separable-convolution CNN on log-mel patches.

Our reading of the encoder of Tagliasacchi et al. 2019, "Self-supervised audio representation
learning for mobile devices" (arXiv:1905.11796). The paper's exact layer table was not available
to us, so the table below is a reconstruction from its description (separable time/frequency
convolutions, BN, ReLU, max-pooling, channels doubling, 128-d embedding, a budget of a few hundred
thousand parameters and tens of millions of multiply-adds), not a copy of it.

Each block is ``Conv(k×1, over time) → Conv(1×k, over frequency) → BN → ReLU → MaxPool(2×2)``,
with channels ``c, 2c, 4c, 8c`` (``c = 16 × width``). Nothing pools over frequency before the
projection: every output frame flattens its ``channels × remaining mel bins`` map and a Linear
maps it to the embedding, because a prototype on real data showed that frequency position carries
much of the information (global pooling over frequency lost it). ``forward`` returns one feature
per 16 input frames (160 ms at a 10 ms hop); ``embed`` max-pools them over time (what the pretext
tasks train through), while the read-out (``encoders/base.py``) pools the 512-d map before the
projection by default.

Layer table of ``mobile_100`` (width 1.0) on one 96 × 64 patch (0.96 s); MACs counted by
``torch.utils.flop_counter`` (BN, ReLU and pooling not counted)::

    layer                 kernel  in → out  output (T×F)  params    MACs
    block1 time conv      3×1       1 → 3      96×64           9     55 k
    block1 freq conv      1×3       3 → 16     96×64         144    885 k
    block1 BN/ReLU/pool                        48×32          32
    block2 time conv      3×1      16 → 32     48×32       1,536   2.36 M
    block2 freq conv      1×3      32 → 32     48×32       3,072   4.72 M
    block2 BN/ReLU/pool                        24×16          64
    block3 time conv      3×1      32 → 64     24×16       6,144   2.36 M
    block3 freq conv      1×3      64 → 64     24×16      12,288   4.72 M
    block3 BN/ReLU/pool                        12×8          128
    block4 time conv      3×1      64 → 128    12×8       24,576   2.36 M
    block4 freq conv      1×3     128 → 128    12×8       49,152   4.72 M
    block4 BN/ReLU/pool                         6×4          256
    flatten per frame                 128×4 = 512  6×512
    projection (Linear)             512 → 128  6×128      65,664   393 k
    max over time                              128
    total                                                163,065  22.6 M

The first time convolution has ``min(c, k) = 3`` output channels rather than ``c``: it sees one
input channel, so ``k`` temporal filters already span every possible ``k×1`` response, and with no
non-linearity inside the pair ``3 → c`` frequency filters make it exactly a full ``k×k``
convolution. A wider first time conv would cost 4 M MACs (the budget's margin) for nothing.
In general the middle width of a pair is ``min(c_out, c_in × k)``.

Variants: ``mobile_tiny`` (width 0.25, for fast tests), ``mobile_050``, ``mobile_100`` (the
budget: ≤ 250 k parameters, ≤ 25 M MACs per patch), ``mobile_200``.

Any number of frames works: pooling uses ``ceil_mode`` so a trailing partial window still yields a
frame and inputs shorter than the 16-frame stride (e.g. 8 frames) give one output frame, without
padding values that would depend on the log-mel normalisation. Only plain ``Conv2d``,
``BatchNorm2d``, ``ReLU``, ``MaxPool2d`` and ``Linear`` are used, so the model runs in
``channels_last`` memory format (the per-frame flatten is then free) and exports to ONNX.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pocketear.encoders.base import Encoder
from pocketear.errors import InvalidValue
from pocketear.registry import register

INPUT_HOP_MS = 10.0  # frontend hop the frame rate is stated against (LogMelConfig.hop_ms)
BASE_CHANNELS = 16  # channels of the first block at width 1.0


class SeparableBlock(nn.Sequential):
    """``k×1`` time conv → ``1×k`` frequency conv → BN → ReLU → 2×2 max-pool (ceil mode).

    The convolutions have no bias (BN follows) and no non-linearity between them, so the pair is a
    low-rank ``k×k`` convolution at a fraction of its cost.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        mid = min(out_channels, in_channels * kernel_size)
        pad = kernel_size // 2
        super().__init__(
            nn.Conv2d(in_channels, mid, (kernel_size, 1), padding=(pad, 0), bias=False),
            nn.Conv2d(mid, out_channels, (1, kernel_size), padding=(0, pad), bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
        )


class MobileEncoder(Encoder):
    """Small separable CNN (Tagliasacchi et al. 2019, our reading) keeping frequency position.

    Args:
        width: channel multiplier; block ``i`` has ``round(16 × width) × 2**i`` channels.
        embed_dim: size of the frame features and of the clip embedding.
        n_mels: mel bins of the input (any value; the projection adapts to it).
        n_blocks: number of conv blocks; the time stride (and frame hop) is ``2**n_blocks``.
        kernel_size: length of the time and of the frequency kernels (odd).

    Raises:
        InvalidValue: A non-positive width or size, or an even kernel (a user's encoder config).
    """

    input_frames = 96
    pooling = "max"

    def __init__(
        self,
        width: float = 1.0,
        embed_dim: int = 128,
        n_mels: int = 64,
        n_blocks: int = 4,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        if width <= 0 or embed_dim < 1 or n_mels < 1 or n_blocks < 1:
            raise InvalidValue(
                f"need width > 0, embed_dim, n_mels, n_blocks >= 1; got width={width}, "
                f"embed_dim={embed_dim}, n_mels={n_mels}, n_blocks={n_blocks}"
            )
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise InvalidValue(f"kernel_size must be odd and positive, got {kernel_size}")
        self.width = float(width)
        self.embed_dim = int(embed_dim)
        self.n_mels = int(n_mels)
        self.time_stride = 2**n_blocks
        self.frame_hop_ms = INPUT_HOP_MS * self.time_stride
        base = max(1, round(BASE_CHANNELS * width))
        self.channels = tuple(base * 2**i for i in range(n_blocks))
        ins = (1, *self.channels[:-1])
        self.blocks = nn.Sequential(
            *(SeparableBlock(i, o, kernel_size) for i, o in zip(ins, self.channels, strict=True))
        )
        freq = self.n_mels
        for _ in range(n_blocks):
            freq = -(-freq // 2)  # ceil-mode pooling
        self.freq_bins_out = freq
        self.proj = nn.Linear(self.channels[-1] * freq, self.embed_dim)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(B, 1, T, n_mels)`` → the map before the projection, flattened per frame.

        The shape is ``(B, ceil(T / 16), channels × freq_bins_out)`` (512-d for ``mobile_100``).
        """
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[-1] != self.n_mels:
            raise ValueError(
                f"{type(self).__name__} expects log-mel (B, 1, T, {self.n_mels}), "
                f"got {tuple(x.shape)}"
            )
        h = self.blocks(x)  # (B, C, T', F')
        # (B, T', F', C): a free view when h is channels_last; the Linear is order-agnostic.
        return h.permute(0, 2, 3, 1).flatten(2)

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """The per-frame Linear to ``embed_dim``: ``forward`` = ``project(forward_features)``."""
        return self.proj(h)

    @property
    def feature_dim(self) -> int:
        """Width of the pre-projection map: last block's channels × remaining mel bins."""
        return self.channels[-1] * self.freq_bins_out

    def extra_repr(self) -> str:
        """Width, channels, sizes and frame hop, for ``print(encoder)``."""
        return (
            f"width={self.width}, channels={self.channels}, embed_dim={self.embed_dim}, "
            f"n_mels={self.n_mels}, frame_hop_ms={self.frame_hop_ms}"
        )


@register("encoder", "mobile_tiny")
def mobile_tiny(embed_dim: int = 128, n_mels: int = 64, **kwargs: Any) -> MobileEncoder:
    """Mobile CNN at width 0.25 (~23 k params): a fast stand-in for tests and smoke runs."""
    return MobileEncoder(width=0.25, embed_dim=embed_dim, n_mels=n_mels, **kwargs)


@register("encoder", "mobile_050")
def mobile_050(embed_dim: int = 128, n_mels: int = 64, **kwargs: Any) -> MobileEncoder:
    """Mobile CNN at width 0.5 (~57 k params, ~6 M MACs per 0.96 s patch)."""
    return MobileEncoder(width=0.5, embed_dim=embed_dim, n_mels=n_mels, **kwargs)


@register("encoder", "mobile_100")
def mobile_100(embed_dim: int = 128, n_mels: int = 64, **kwargs: Any) -> MobileEncoder:
    """Mobile CNN at width 1.0 (~163 k params, ~23 M MACs per 0.96 s patch; the paper's budget)."""
    return MobileEncoder(width=1.0, embed_dim=embed_dim, n_mels=n_mels, **kwargs)


@register("encoder", "mobile_200")
def mobile_200(embed_dim: int = 128, n_mels: int = 64, **kwargs: Any) -> MobileEncoder:
    """Mobile CNN at width 2.0 (~520 k params, ~88 M MACs per 0.96 s patch)."""
    return MobileEncoder(width=2.0, embed_dim=embed_dim, n_mels=n_mels, **kwargs)
