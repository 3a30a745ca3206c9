"""``kwt1/2/3``: Keyword Transformer, one token per log-mel frame.

Berg, O'Connor & Tairum Cruz, "Keyword Transformer: A Self-Attention Model for Keyword Spotting",
Interspeech 2021 (arXiv:2104.00769), §2–3 and Table 1: each time frame of the spectrogram is one
token (a linear projection of its mel bins), learned absolute positional embeddings, depth 12,
dimensions 64 / 128 / 192, heads 1 / 2 / 3, MLP 256 / 512 / 768.

Departures, and why:
- No class token: the masked-prediction tasks need frame features and the evaluation pools
  frames (``pooling = "mean"``); a class token would be an untrained output after pretraining.
- Pre-norm blocks by default (``prenorm=True``, with a final LayerNorm): the paper compares
  pre- and post-norm; pre-norm trains stably with the short CPU schedules used here.
  ``prenorm=False`` gives post-norm blocks.
- 64-d log-mel frames instead of 40-d MFCC (the project's frontend); positions up to
  ``max_frames`` (default 256 = 2.56 s); longer inputs raise an error naming the limit (the
  evaluation windows clips into ``input_frames`` = 96-frame windows, far below it).

KWT is a :class:`~pocketear.encoders.base.TokenEncoder` (the contract the masked tasks use:
``tokenize``, ``encode_tokens`` on any subset of tokens, ``layer_outputs``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pocketear.encoders.base import TokenEncoder
from pocketear.errors import InvalidValue
from pocketear.registry import register

INPUT_HOP_MS = 10.0


class Attention(nn.Module):
    """Multi-head self-attention with one fused QKV projection (plain ops: exports to ONNX).

    ``head_dim`` None: ``dim / heads`` per head (attention width = ``dim``, KWT's layout); a
    fixed ``head_dim`` makes the attention ``heads * head_dim`` wide whatever ``dim`` is (the
    once-for-all supernet's subnets, LightHuBERT's layout). The QKV rows are ``[q | k | v]``,
    each ``heads`` blocks of ``head_dim``.

    Raises:
        InvalidValue: ``dim`` not divisible by ``heads`` (a user's encoder config).
    """

    def __init__(self, dim: int, heads: int, head_dim: int | None = None) -> None:
        super().__init__()
        if head_dim is None and dim % heads:
            raise InvalidValue(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.head_dim = heads, int(head_dim or dim // heads)
        width = heads * self.head_dim
        self.qkv = nn.Linear(dim, 3 * width)
        self.out = nn.Linear(width, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attend over tokens ``(B, N, D)`` → ``(B, N, D)``.

        ``mask`` ``(B, N)`` (True: a real token) keeps padding tokens out of every token's
        attention.
        """
        return self.out(attend(self.qkv(x), self.heads, self.head_dim, mask))


def attend(qkv: torch.Tensor, heads: int, head_dim: int,
           mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scaled dot-product attention: fused ``[q | k | v]`` ``(B, N, 3·H·d_h)`` → ``(B, N, H·d_h)``.

    ``mask`` ``(B, N)`` (True: a real token) keeps padding out of every token's attention.
    """
    b, n, _ = qkv.shape
    q, k, v = qkv.view(b, n, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    att = (q @ k.transpose(-2, -1)) * head_dim ** -0.5
    if mask is not None:
        att = att.masked_fill(~mask[:, None, None, :], torch.finfo(att.dtype).min)
    h = att.softmax(dim=-1) @ v  # (B, H, N, d_h)
    return h.transpose(1, 2).reshape(b, n, heads * head_dim)


class TransformerBlock(nn.Module):
    """Self-attention + MLP with residuals; returns (block output, MLP output before its residual).

    The second output exists for data2vec's speech targets, built from the feed-forward output
    before the last residual (Baevski et al., "data2vec: A General Framework for Self-supervised
    Learning in Speech, Vision and Language", ICML 2022, §3.3).
    """

    def __init__(self, dim: int, heads: int, mlp: int, prenorm: bool = True,
                 dropout: float = 0.0, head_dim: int | None = None) -> None:
        super().__init__()
        self.prenorm = prenorm
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, head_dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(mlp, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(block output, MLP output before its residual)`` for tokens ``(B, N, D)``."""
        if self.prenorm:
            x = x + self.drop(self.attn(self.norm1(x), mask))
            f = self.drop(self.mlp(self.norm2(x)))
            return x + f, f
        x = self.norm1(x + self.drop(self.attn(x, mask)))
        f = self.drop(self.mlp(x))
        return self.norm2(x + f), f


class KWT(TokenEncoder):
    """Keyword Transformer over log-mel frames (Berg et al. 2021), frame features ``(B, T, D)``.

    Args:
        dim: Token dimension.
        depth: Number of blocks.
        heads: Attention heads.
        mlp: MLP hidden size.
        n_mels: Mel bins per frame.
        max_frames: Longest input (learned positions).
        prenorm: Pre-norm blocks (default) or post-norm.
        dropout: Dropout in the blocks.
        input_frames: The window the model is applied to when embedding clips (default 96
            frames = 0.96 s, the project's patch; e.g. 64 for sub-second keyword clips).
        head_dim: Width of each attention head (default ``dim / heads``); a subnet extracted
            from the once-for-all supernet keeps the supernet's.

    Raises:
        InvalidValue: A size below 1, or (from :meth:`tokenize`) an input longer than
            ``max_frames``: both come from the user's encoder or task config.
    """

    input_frames = 96

    def __init__(self, dim: int = 64, depth: int = 12, heads: int = 1, mlp: int = 256,
                 n_mels: int = 64, max_frames: int = 256, prenorm: bool = True,
                 dropout: float = 0.0, input_frames: int = 96,
                 head_dim: int | None = None) -> None:
        super().__init__()
        if min(dim, depth, heads, mlp, n_mels, max_frames, input_frames, head_dim or 1) < 1:
            raise InvalidValue("dim, depth, heads, mlp, n_mels and max_frames must be >= 1")
        self.embed_dim, self.n_mels, self.max_frames = int(dim), int(n_mels), int(max_frames)
        self.frame_hop_ms = INPUT_HOP_MS
        self.input_frames = min(int(input_frames), self.max_frames)
        self.proj = nn.Linear(n_mels, dim)
        self.pos = nn.Parameter(torch.zeros(1, max_frames, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp, prenorm, dropout, head_dim)
                                    for _ in range(depth))
        self.final_norm = nn.LayerNorm(dim) if prenorm else nn.Identity()

    def tokenize(self, x: torch.Tensor) -> torch.Tensor:
        """One token per frame: a linear projection of its mel bins plus a learned position."""
        self._check(x)
        t = x.shape[2]
        if t > self.max_frames:
            raise InvalidValue(f"{type(self).__name__} takes at most max_frames={self.max_frames} "
                               f"frames, got {t}; window the input or build it with a larger "
                               "max_frames")
        return self.proj(x[:, 0]) + self.pos[:, :t]


def _kwt(dim: int, heads: int, mlp: int, n_mels: int, kwargs: dict[str, Any]) -> KWT:
    """A preset's KWT; options given (``--set encoder.dim=32``) override the preset's."""
    return KWT(**{"dim": dim, "heads": heads, "mlp": mlp, "n_mels": n_mels, **kwargs})


@register("encoder", "kwt1")
def kwt1(n_mels: int = 64, **kwargs: Any) -> KWT:
    """KWT-1: depth 12, dim 64, 1 head, MLP 256 (~0.62 M params on 64 mel bins)."""
    return _kwt(64, 1, 256, n_mels, kwargs)


@register("encoder", "kwt2")
def kwt2(n_mels: int = 64, **kwargs: Any) -> KWT:
    """KWT-2: depth 12, dim 128, 2 heads, MLP 512 (~2.4 M params)."""
    return _kwt(128, 2, 512, n_mels, kwargs)


@register("encoder", "kwt3")
def kwt3(n_mels: int = 64, **kwargs: Any) -> KWT:
    """KWT-3: depth 12, dim 192, 3 heads, MLP 768 (~5.4 M params)."""
    return _kwt(192, 3, 768, n_mels, kwargs)

