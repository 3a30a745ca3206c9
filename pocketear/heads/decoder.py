"""Small decoders back to log-mel: embedding → slice, and frame vectors → frames.

``SliceDecoder`` is Audio2Vec's decoder (Tagliasacchi et al. 2019): it mirrors the encoder, going
from the embedding back to a spectrogram slice. ``FrameDecoder`` maps a sequence of frame vectors
to per-frame outputs (Wav2vec-C's consistency network). Both are discarded after pretraining, so
they are kept small.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from pocketear.errors import InvalidValue


class SliceDecoder(nn.Module):
    """Embedding ``(B, D)`` → log-mel slice ``(B, frames, n_mels)``.

    A linear layer maps the embedding to a coarse ``(C0, ⌈S/2^k⌉, ⌈F/2^k⌉)`` grid, then
    ``k = len(channels)`` blocks of [ConvTranspose2d(4, stride 2) → BatchNorm → ReLU] double
    the time and frequency resolution, a 3×3 convolution maps to one channel (linear output:
    normalised log-mel is signed) and the result is cropped to exactly ``(S, F)``, so any slice
    size works.
    BatchNorm keeps the activations at unit scale through the upsampling stack; without it the
    default initialisation shrinks them layer by layer and the decoder starts out very slowly.

    Args:
        in_dim: embedding size ``D`` (or ``2N·D`` for concatenated context embeddings).
        frames: ``S``, frames of the slice to reconstruct.
        n_mels: ``F``, mel bins of the slice.
        channels: channels of the coarse grid and of each upsampling block (halving is typical).
    """

    def __init__(
        self, in_dim: int, frames: int, n_mels: int, channels: Sequence[int] = (32, 16, 8)
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels:
            raise InvalidValue("channels must name at least one block")
        self.frames, self.n_mels = frames, n_mels
        scale = 2 ** len(channels)
        self.grid = (channels[0], math.ceil(frames / scale), math.ceil(n_mels / scale))
        self.project = nn.Linear(in_dim, math.prod(self.grid))
        blocks: list[nn.Module] = [nn.BatchNorm2d(channels[0]), nn.ReLU()]
        outs = (*channels[1:], channels[-1])
        for cin, cout in zip(channels, outs, strict=True):
            blocks += [
                nn.ConvTranspose2d(cin, cout, kernel_size=4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
            ]
        self.upsample = nn.Sequential(*blocks)
        self.out = nn.Conv2d(outs[-1], 1, kernel_size=3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(B, D)`` → reconstructed slices ``(B, frames, n_mels)``."""
        x = self.project(z).view(z.shape[0], *self.grid)
        x = self.out(self.upsample(x))
        return x[:, 0, : self.frames, : self.n_mels]


class FrameDecoder(nn.Module):
    """Frame vectors ``(B, T, in_dim)`` → frame outputs ``(B, T, out_dim)``, with local context.

    A 1-D convolution to ``hidden`` channels → GELU, ``layers − 1`` residual [convolution →
    GELU] blocks (``kernel`` frames wide, same padding), then a linear map to ``out_dim``
    (linear: normalised log-mel is signed). Wav2vec-C's consistency network uses it to map
    quantised codes back to the input frames they stand for.

    Args:
        in_dim: size of the input frame vectors.
        out_dim: size of each output frame (e.g. stacked log-mel frames).
        hidden: channels of the convolutions.
        layers: convolutions (at least 1).
        kernel: their width in frames (odd).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 128, layers: int = 2,
                 kernel: int = 3) -> None:
        super().__init__()
        if layers < 1 or kernel < 1 or kernel % 2 == 0 or hidden < 1:
            raise InvalidValue(f"need layers >= 1, hidden >= 1 and an odd kernel; got {layers}, "
                               f"{hidden}, {kernel}")
        self.convs = nn.ModuleList(
            nn.Conv1d(in_dim if i == 0 else hidden, hidden, kernel, padding=kernel // 2)
            for i in range(layers))
        self.out = nn.Linear(hidden, out_dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``(B, T, in_dim)`` → ``(B, T, out_dim)``."""
        y = h.transpose(1, 2)
        for i, conv in enumerate(self.convs):
            z = nn.functional.gelu(conv(y))
            y = z if i == 0 else y + z
        return self.out(y.transpose(1, 2))
