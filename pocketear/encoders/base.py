"""The encoder contract shared by every registered encoder, and its read-out.

An encoder maps log-mel ``(B, 1, T, F)`` to frame features ``(B, T', D)`` (``forward``). Two clip
embeddings come from those frames:

- ``embed(x)``: the encoder's own pooling (``pooling``) of ``forward``: what pretext tasks train
  through, so their heads are sized ``embed_dim``.
- ``read(x, lengths)``: the **read-out**, what evaluation, ``pocketear embed``, the HEAR module and
  every export use. It is one setting, :class:`Readout` = pooling (``max``, ``mean``,
  ``meanmax``, ``meanstd``) × source (``proj``: the frames of ``forward``; ``features``: the
  frames before the encoder's final projection, ``forward_features``), stored in the run config
  as ``encoder.readout`` (``"meanmax:features"``) and so in every checkpoint.

Why a separate read-out: a linear probe sees only what the pooled vector keeps. The mobile
encoder's 128-d projection max-pooled over time hid what the 512-d map before it had learned
(issue 12; the evidence and the default are in ``docs/benchmarks.md``), and BYOL-A, SLICER and
DeLoRes read mean + max over their widest map. Pooling covers real frames only: ``lengths``
(input frames per example) masks the output frames that padding produced.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pocketear.errors import InvalidValue

POOLINGS = ("max", "mean", "meanmax", "meanstd")
SOURCES = ("proj", "features")


@dataclass(frozen=True)
class Readout:
    """How frame features become one clip vector.

    Attributes:
        pooling: ``max`` / ``mean`` over time, ``meanmax`` (their sum, BYOL-A's pooling; same
            size), ``meanstd`` (mean and std concatenated; twice the size).
        source: ``proj`` (``forward``'s frames) or ``features`` (before the final projection;
            the same as ``proj`` for encoders without one).

    Raises:
        InvalidValue: An unknown pooling or source (the user's ``encoder.readout``).
    """

    pooling: str = "meanmax"
    source: str = "features"

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS or self.source not in SOURCES:
            raise InvalidValue(f"unknown read-out {self}; pooling is one of {', '.join(POOLINGS)}"
                               f" and source one of {', '.join(SOURCES)} (e.g. 'meanmax:features')")

    @classmethod
    def parse(cls, text: str | Readout) -> Readout:
        """``"POOLING[:SOURCE]"`` → :class:`Readout`; a :class:`Readout` is returned unchanged.

        E.g. ``meanmax:features`` or ``max:proj``; the source defaults to ``features``.
        """
        if isinstance(text, Readout):
            return text
        pooling, _, source = str(text).strip().partition(":")
        return cls(pooling, source or "features")

    def __str__(self) -> str:
        return f"{self.pooling}:{self.source}"


DEFAULT_READOUT = Readout()


def frame_mask(lengths: torch.Tensor | None, n_frames: int, stride: int) -> torch.Tensor | None:
    """``(B, n_frames)`` bool, True where an output frame holds real input (None without lengths).

    Frame ``j`` covers input frames from ``j · stride``, so example ``b`` has
    ``ceil(lengths[b] / stride)`` real frames (≥ 1).
    """
    if lengths is None:
        return None
    real = torch.clamp((lengths + stride - 1) // stride, min=1)
    return torch.arange(n_frames, device=lengths.device)[None, :] < real[:, None]


def pool(frames: torch.Tensor, pooling: str, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Pool ``(B, T', D)`` over time (``mask`` ``(B, T')``: frames to include; None: all)."""
    if mask is None:
        mean = frames.mean(dim=1)
        top = frames.amax(dim=1) if pooling in ("max", "meanmax") else None
        std = frames.std(dim=1, correction=0) if pooling == "meanstd" else None
    else:
        m = mask[:, :, None].to(frames.dtype)
        count = m.sum(dim=1).clamp(min=1.0)
        mean = (frames * m).sum(dim=1) / count
        top = torch.where(mask[:, :, None], frames, torch.finfo(frames.dtype).min).amax(dim=1)
        var = (((frames - mean[:, None]) * m) ** 2).sum(dim=1) / count
        std = var.clamp(min=0.0).sqrt()
    if pooling == "max":
        return top
    if pooling == "mean":
        return mean
    if pooling == "meanmax":
        return top + mean
    if pooling == "meanstd":
        return torch.cat([mean, std], dim=-1)
    raise ValueError(f"unknown pooling {pooling!r}; one of {', '.join(POOLINGS)}")


class Encoder(nn.Module):
    """Log-mel ``(B, 1, T, F)`` → frame features ``(B, T', D)``; ``embed`` → clip ``(B, D)``.

    Subclasses set ``embed_dim``, ``frame_hop_ms`` (hop of the output frames), ``input_frames``
    (the window the encoder was designed for, e.g. 96 frames = 0.96 s), ``n_mels`` and
    ``time_stride`` (input frames per output frame). Encoders with a final projection override
    ``forward_features`` (the map before it), ``project`` and ``feature_dim``.
    """

    embed_dim: int
    frame_hop_ms: float
    input_frames: int = 96
    n_mels: int = 64
    pooling: str = "max"
    time_stride: int = 1
    readout: Readout = DEFAULT_READOUT

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Frame features ``(B, T', embed_dim)``: :meth:`project` of :meth:`forward_features`."""
        return self.project(self.forward_features(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Frame features before the final projection ``(B, T', feature_dim)``."""
        raise NotImplementedError

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """The final per-frame projection (identity for encoders without one)."""
        return h

    @property
    def feature_dim(self) -> int:
        """Width of ``forward_features`` (``embed_dim`` unless the encoder projects)."""
        return self.embed_dim

    def pool(self, frames: torch.Tensor) -> torch.Tensor:
        """Clip-level pooling over time declared by the encoder (``pooling``)."""
        return pool(frames, self.pooling)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The training-time clip embedding ``(B, embed_dim)``: ``pooling`` of ``forward``."""
        return self.pool(self.forward(x))

    def read_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Frames the read-out pools: ``forward`` or ``forward_features``, by ``readout.source``."""
        h = self.forward_features(x)
        return self.project(h) if self.readout.source == "proj" else h

    def read(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The read-out clip embedding ``(B, readout_dim)`` of log-mel ``x``.

        Args:
            x: ``(B, 1, T, F)`` log-mel.
            lengths: real input frames per example (``(B,)``); frames after them are padding
                and are left out of the pooling. None: every frame is real.
        """
        frames = self.read_frames(x)
        return pool(frames, self.readout.pooling,
                    frame_mask(lengths, frames.shape[1], self.time_stride))

    def layer_outputs(self, x: torch.Tensor, kind: str = "block") -> list[torch.Tensor]:
        """Per-layer outputs ``[(B, T', D)] * depth``, for encoders that override this.

        Every :class:`TokenEncoder` does; the others raise a clear error (see
        :attr:`has_layer_outputs`).
        """
        raise TypeError(f"{type(self).__name__} has no per-block outputs (layer_outputs needs a "
                        "token encoder: kwt1/2/3, conformer_tiny); use its output (layer 0)")

    @property
    def has_layer_outputs(self) -> bool:
        """Whether :meth:`layer_outputs` is implemented (data2vec's top-K targets need it)."""
        return type(self).layer_outputs is not Encoder.layer_outputs

    @property
    def readout_dim(self) -> int:
        """Size of :meth:`read`'s output."""
        width = self.embed_dim if self.readout.source == "proj" else self.feature_dim
        return 2 * width if self.readout.pooling == "meanstd" else width

    @property
    def params(self) -> int:
        """Number of parameters (all of them, trainable or not)."""
        return sum(p.numel() for p in self.parameters())

    def macs_per_second(self, frames_per_second: int = 100) -> int:
        """Multiply-adds to embed one second of audio, counted with ``torch.utils.flop_counter``.

        Counted on one ``input_frames`` window of the whole encoder (projection included) and
        scaled to one second, since the encoder is applied window by window.
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


class TokenEncoder(Encoder):
    """An encoder whose trunk is a stack of blocks over tokens (``kwt*``, ``conformer_tiny``).

    This is the contract the masked tasks test with ``isinstance``.

    ``tokenize`` is everything before the blocks (positions included), ``encode_tokens`` runs the
    blocks on any subset of tokens (data2vec 2.0 drops masked tokens) and ``layer_outputs``
    gives per-block outputs (data2vec targets, HuBERT's later-iteration features).
    Subclasses define ``tokenize`` (``(B, 1, T, F)`` → ``(B, N, D)``, positions added),
    ``blocks`` (a ``ModuleList`` of blocks returning ``(out, ffn_out)``), ``final_norm`` and
    ``token_stride`` (input frames per token).
    """

    blocks: nn.ModuleList
    final_norm: nn.Module
    token_stride: int = 1
    pooling = "mean"

    def tokenize(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Log-mel ``(B, 1, T, F)`` → tokens ``(B, N, D)`` with positions added."""
        raise NotImplementedError

    @property
    def time_stride(self) -> int:  # type: ignore[override]
        """Input frames per output frame: one token covers ``token_stride`` frames."""
        return self.token_stride

    def encode_tokens(self, h: torch.Tensor, collect: str | None = None,
                      mask: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the blocks on tokens ``(B, N, D)`` (any subset of a sequence's tokens).

        ``collect``: ``None`` (no layer outputs), ``"block"`` (each block's output) or ``"ffn"``
        (each block's MLP output before its residual). ``mask`` ``(B, N)``: real tokens (True);
        padding tokens are kept out of attention. Returns (final features, layer list).
        """
        layers: list[torch.Tensor] = []
        for block in self.blocks:
            h, f = block(h, mask)
            if collect == "block":
                layers.append(h)
            elif collect == "ffn":
                layers.append(f)
        return self.final_norm(h), layers

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The final-normed output of the blocks on every token of ``x``."""
        return self.encode_tokens(self.tokenize(x))[0]

    def read(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The read-out, with padding tokens masked in attention as well as in the pooling."""
        h = self.tokenize(x)
        mask = frame_mask(lengths, h.shape[1], self.token_stride)
        return pool(self.encode_tokens(h, mask=mask)[0], self.readout.pooling, mask)

    def layer_outputs(self, x: torch.Tensor, kind: str = "block") -> list[torch.Tensor]:
        """Per-block outputs ``[(B, N, D)] * depth`` of log-mel ``x`` (``kind``: block | ffn)."""
        if kind not in ("block", "ffn"):
            raise ValueError(f"kind must be 'block' or 'ffn', got {kind!r}")
        return self.encode_tokens(self.tokenize(x), collect=kind)[1]

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[-1] != self.n_mels:
            raise ValueError(f"{type(self).__name__} expects log-mel (B, 1, T, {self.n_mels}), "
                             f"got {tuple(x.shape)}")
