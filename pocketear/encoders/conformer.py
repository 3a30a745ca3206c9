"""``conformer_tiny``: a small frame-level conv-transformer for the masked tasks.

Gulati et al., "Conformer: Convolution-augmented Transformer for Speech Recognition",
Interspeech 2020, §2 (Fig. 1–2): a 2-D convolutional subsampling stem, then blocks of
half-step feed-forward → self-attention → convolution module (pointwise conv + GLU, depthwise
conv, BatchNorm, Swish, pointwise conv) → half-step feed-forward → LayerNorm.

Sized for CPU pretraining (≤ 1 M parameters): stem of two stride-2 3×3 convolutions (time and
frequency stride 4, so one token per 40 ms), dim 96, 4 heads, feed-forward 256, depthwise kernel
15, 4 blocks. Departures: learned absolute positions (up to ``max_tokens``) instead of the
paper's relative positional encoding — they keep the encoder a ``TokenEncoder`` whose blocks can
run on a subset of tokens (data2vec 2.0 mode); there the convolution module convolves over the
kept tokens only, i.e. across the gaps left by dropped ones (stated, not hidden).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from pocketear.encoders.base import TokenEncoder
from pocketear.encoders.kwt import Attention
from pocketear.errors import InvalidValue
from pocketear.registry import register

INPUT_HOP_MS = 10.0


class FeedForward(nn.Sequential):
    """Conformer feed-forward module (Gulati et al. 2020, §2): LayerNorm → Linear → Swish → Linear.

    Dropout follows the activation and the second linear layer; the block scales it by 1/2.
    """

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.SiLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, dim), nn.Dropout(dropout))


class ConvModule(nn.Module):
    """Conformer convolution module (Gulati et al. 2020, Fig. 2) on ``(B, N, D)``."""

    def __init__(self, dim: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.pw1 = nn.Conv1d(dim, 2 * dim, 1)
        self.dw = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.bn = nn.BatchNorm1d(dim)
        self.pw2 = nn.Conv1d(dim, dim, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, N, D)`` → ``(B, N, D)``; ``mask`` zeroes padding before the depthwise conv."""
        h = nn.functional.glu(self.pw1(self.norm(x).transpose(1, 2)), dim=1)
        if mask is not None:  # padding tokens must not leak in through the depthwise conv
            h = h * mask[:, None, :].to(h.dtype)
        h = self.pw2(nn.functional.silu(self.bn(self.dw(h))))
        return self.drop(h.transpose(1, 2))


class ConformerBlock(nn.Module):
    """FFN/2 → MHSA → conv → FFN/2 → LayerNorm; returns (output, last FFN output pre-residual)."""

    def __init__(self, dim: int, heads: int, ffn: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.ff1, self.ff2 = FeedForward(dim, ffn, dropout), FeedForward(dim, ffn, dropout)
        self.att_norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.conv = ConvModule(dim, kernel, dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(block output, last FFN output before its residual)`` for tokens ``(B, N, D)``."""
        x = x + 0.5 * self.ff1(x)
        x = x + self.attn(self.att_norm(x), mask)
        x = x + self.conv(x, mask)
        f = 0.5 * self.ff2(x)
        return self.norm(x + f), f


class Conformer(TokenEncoder):
    """Conv-subsampling stem + Conformer blocks; frame features ``(B, ceil(T/4), dim)``.

    Args:
        dim: Model dimension.
        depth: Number of blocks.
        heads: Attention heads.
        ffn: Feed-forward hidden size.
        kernel: Depthwise kernel (odd).
        stem_channels: Channels of the stem convolutions.
        n_mels: Mel bins.
        max_tokens: Longest token sequence (learned positions).
        dropout: Dropout in the blocks.

    Raises:
        InvalidValue: An even kernel or a size below 1, or (from :meth:`tokenize`) an input
            longer than ``max_tokens`` tokens: both come from the user's encoder or task config.
    """

    input_frames = 96
    token_stride = 4

    def __init__(self, dim: int = 96, depth: int = 4, heads: int = 4, ffn: int = 256,
                 kernel: int = 15, stem_channels: int = 32, n_mels: int = 64,
                 max_tokens: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        if kernel % 2 == 0 or min(dim, depth, heads, ffn, stem_channels, n_mels, max_tokens) < 1:
            raise InvalidValue("kernel must be odd and every size >= 1")
        self.embed_dim, self.n_mels, self.max_tokens = int(dim), int(n_mels), int(max_tokens)
        self.frame_hop_ms = INPUT_HOP_MS * self.token_stride
        c = stem_channels
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU())
        freq = math.ceil(math.ceil(n_mels / 2) / 2)  # two stride-2, pad-1, 3×3 convs
        self.stem_proj = nn.Linear(c * freq, dim)
        self.pos = nn.Parameter(torch.zeros(1, max_tokens, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(ConformerBlock(dim, heads, ffn, kernel, dropout)
                                    for _ in range(depth))
        self.final_norm = nn.Identity()  # every block ends with a LayerNorm

    def tokenize(self, x: torch.Tensor) -> torch.Tensor:
        """Stem tokens (one per 4 frames, 40 ms; channels × bins projected) + learned positions."""
        self._check(x)
        h = self.stem(x)  # (B, C, T/4, F/4)
        n = h.shape[2]
        if n > self.max_tokens:
            raise InvalidValue(f"conformer takes at most {self.max_tokens * self.token_stride} "
                               f"frames (max_tokens={self.max_tokens}), got {x.shape[2]}")
        return self.stem_proj(h.permute(0, 2, 1, 3).flatten(2)) + self.pos[:, :n]


@register("encoder", "conformer_tiny")
def conformer_tiny(n_mels: int = 64, **kwargs: Any) -> Conformer:
    """Conformer, dim 96, 4 blocks, 4 heads, FFN 256, kernel 15 (~0.74 M params), 40 ms hop."""
    kwargs.pop("embed_dim", None)
    return Conformer(n_mels=n_mels, **kwargs)
