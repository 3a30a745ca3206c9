"""Audio2Vec (CBoW and SkipGram): reconstruct log-mel slices from their temporal neighbours.

Tagliasacchi, Gfeller, de Chaumont Quitry & Roblek, "Pre-training audio representations with
self-supervision", IEEE Signal Processing Letters 27 (2020), arXiv:1905.11796, Sec. 2
("Audio2Vec"): word2vec's two objectives carried over to audio, with a spectrogram slice in the
role of a word. Both variants share the sampler below (a window of ``2N + 1`` equally spaced
slices of one clip), hence one file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pocketear.encoders.base import Encoder
from pocketear.errors import InvalidValue
from pocketear.heads.decoder import SliceDecoder
from pocketear.losses.regression import mse, r_squared
from pocketear.registry import register
from pocketear.tasks.base import Batch, ClipNeed, Example, Task, TaskConfig, crop, valid_frames


@dataclass
class Audio2VecConfig(TaskConfig):
    """Hyper-parameters shared by both Audio2Vec variants (see each variant's ``Config``)."""

    n_side: int = 2
    gap_frames: int = 0
    max_pad_fraction: float = 0.1
    decoder_channels: tuple[int, ...] = (32, 16, 8)


def _valid(batch: Batch, key: str) -> torch.Tensor:
    """Real-audio frames of ``batch[key]`` (all frames for batches made without the mask)."""
    mask = batch.get(f"{key}_valid")
    if mask is None:
        return torch.ones(batch[key].shape[:-1], dtype=torch.bool, device=batch[key].device)
    return mask.bool()


def _real_mse(pred: torch.Tensor, target: torch.Tensor, real: torch.Tensor
              ) -> tuple[torch.Tensor, float]:
    """MSE and R² over the real frames only (``real``: ``pred.shape[:-1]``).

    A batch without any real target frame gives a zero loss that still reaches every decoder
    parameter.
    """
    if not bool(real.any()):
        return pred.sum() * 0.0, 0.0
    p, t = pred[real], target[real]
    loss = mse(p, t)
    with torch.no_grad():
        return loss, float(r_squared(p, t))


class _Audio2Vec(Task):
    """The shared sampler: ``2N + 1`` slices of ``S`` frames, ``gap_frames`` apart, from one clip.

    Window length ``W = (2N + 1)·S + 2N·gap_frames``. The window start is uniform over the valid
    positions ``0 … T - W`` (so no slice reads past the clip's end). Short-clip policy
    (:class:`ClipNeed`): a clip shorter than ``W`` by at most ``max_pad_fraction·W`` frames is
    padded at the end with each bin's silence level and the window starts at 0; a shorter one
    yields ``None``. Padded frames may reach the encoder but never a loss target: the example
    says which frames are real, and the decoders' MSE covers those only (otherwise a decoder
    learns to paint the constant padding, a spectrum no real slice has).

    Example keys: ``context`` ``(2N, S, F)`` — the N past slices then the N future slices, in
    time order — and ``centre`` ``(S, F)``; ``context_valid`` ``(2N, S)`` and ``centre_valid``
    ``(S,)`` bool, True on frames of real audio.
    """

    cfg: Audio2VecConfig
    encodes = "context"  # which slices go through the encoder (and are augmented)

    def __init__(self, encoder: Encoder, cfg: Audio2VecConfig | None = None) -> None:
        super().__init__(encoder, cfg)
        c = self.cfg
        if c.n_side < 1 or c.gap_frames < 0 or c.slice_frames < 1:
            raise InvalidValue("need n_side >= 1, gap_frames >= 0 and slice_frames >= 1")
        if not 0.0 <= c.max_pad_fraction < 1.0:
            raise InvalidValue("max_pad_fraction must be in [0, 1)")

    @property
    def window_frames(self) -> int:
        """Frames spanned by the ``2N + 1`` slices and the gaps between them."""
        c = self.cfg
        return (2 * c.n_side + 1) * c.slice_frames + 2 * c.n_side * c.gap_frames

    def clip_need(self) -> ClipNeed:
        """The whole window, short by at most ``max_pad_fraction`` of it."""
        return ClipNeed.of(self.window_frames, self.cfg.max_pad_fraction,
                           "task.slice_frames, task.n_side, task.gap_frames or "
                           "task.max_pad_fraction")

    def sample(
        self, clip: np.ndarray, rng: np.random.Generator, other: Callable[[], np.ndarray]
    ) -> Example | None:
        """The ``2N`` context slices and the centre slice of one window, with their real frames."""
        c, need = self.cfg, self.window_frames
        fitted = self.fit_clip(clip)
        if fitted is None:
            return None
        start = int(rng.integers(0, len(fitted) - need, endpoint=True))
        step, s = c.slice_frames + c.gap_frames, c.slice_frames
        offsets = [start + k * step for k in range(2 * c.n_side + 1)]
        slices = [crop(fitted, o, s) for o in offsets]
        valid = [valid_frames(len(clip), o, s) for o in offsets]
        centre, centre_valid = slices.pop(c.n_side), valid.pop(c.n_side)
        # augment what the encoder reads; the decoders' targets stay clean
        if self.encodes == "context":
            slices = [self.view(x, rng) for x in slices]
        else:
            centre = self.view(centre, rng)
        return {"context": np.stack(slices), "centre": centre,
                "context_valid": np.stack(valid), "centre_valid": centre_valid}

    def monitor_embeddings(self, batch: Batch) -> torch.Tensor:
        """Clip embeddings of the centre slices."""
        return self.encoder.embed(batch["centre"].unsqueeze(1))

    def _embed_slices(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, K, S, F)`` → ``(B, K, D)`` through the shared encoder, in one batch."""
        b, k, s, f = x.shape
        return self.encoder.embed(x.reshape(b * k, 1, s, f)).view(b, k, -1)


@register("task", "audio2vec_cbow")
class Audio2VecCBoW(_Audio2Vec):
    """Audio2Vec CBoW: decode the centre slice from its past and future slices' embeddings.

    Tagliasacchi et al. 2019 (arXiv:1905.11796), Sec. 2, Audio2Vec (CBoW): the ``2N`` context
    slices go through the same encoder, their embeddings are combined (averaged by default, our
    reading of the paper; concatenation as an option) and a decoder reconstructs the centre
    slice; loss ``||X_0 - Dec(combine(Enc(X_-N), …, Enc(X_N)))||²`` averaged over log-mel bins
    (MSE). The decoder is discarded after pretraining. Sampling: see ``_Audio2Vec``.
    Logs ``loss`` (MSE) and ``r2`` (1 - MSE / variance of the target).
    """

    @dataclass
    class Config(Audio2VecConfig):
        """Audio2Vec CBoW hyper-parameters.

        Attributes:
            slice_frames: frames per slice ``S`` (96 = 0.96 s, the paper's patch).
            n_side: ``N``, context slices on each side of the centre (paper: 2).
            gap_frames: frames skipped between consecutive slices (0 = contiguous).
            max_pad_fraction: clips at most this fraction shorter than the window are padded
                with each bin's silence level (never a loss target); shorter ones yield
                ``None``.
            decoder_channels: channels of the decoder's coarse grid and upsampling blocks.
            combine: ``"mean"`` averages the ``2N`` context embeddings, ``"concat"``
                concatenates them (decoder input ``2N·D``, position-aware).
        """

        combine: str = "mean"

    cfg: Config

    def __init__(self, encoder: Encoder, cfg: Config | None = None) -> None:
        super().__init__(encoder, cfg)
        if self.cfg.combine not in ("mean", "concat"):
            raise InvalidValue(f"combine must be 'mean' or 'concat', got {self.cfg.combine!r}")
        in_dim = encoder.embed_dim * (2 * self.cfg.n_side if self.cfg.combine == "concat" else 1)
        self.decoder = SliceDecoder(
            in_dim, self.cfg.slice_frames, encoder.n_mels, self.cfg.decoder_channels
        )

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Decode the centre from the combined context embeddings; MSE on its real frames."""
        z = self._embed_slices(batch["context"])
        z = z.mean(dim=1) if self.cfg.combine == "mean" else z.flatten(1)
        pred = self.decoder(z)
        loss, r2 = _real_mse(pred, batch["centre"], _valid(batch, "centre"))
        return loss, {"loss": float(loss.detach()), "r2": r2}


@register("task", "audio2vec_skipgram")
class Audio2VecSkipGram(_Audio2Vec):
    """Audio2Vec SkipGram: decode each past and future slice from the centre slice's embedding.

    Tagliasacchi et al. 2019 (arXiv:1905.11796), Sec. 2, Audio2Vec (skip-gram): the centre slice
    is encoded once and one decoder per context position (as in the paper) reconstructs each of
    the ``2N`` surrounding slices; loss = MSE averaged over positions and bins. Option
    ``shared_decoder``: one decoder fed ``z + e_k`` with a learned position embedding ``e_k``
    (``2N`` times fewer decoder parameters). Sampling: see ``_Audio2Vec``.
    Logs ``loss``, ``r2`` and ``mse_pos{k}`` per relative position ``k`` (``-N … -1, +1 … +N``).
    """

    encodes = "centre"

    @dataclass
    class Config(Audio2VecConfig):
        """Audio2Vec SkipGram hyper-parameters.

        Attributes:
            slice_frames: frames per slice ``S`` (96 = 0.96 s, the paper's patch).
            n_side: ``N``, context slices on each side of the centre (paper: 2).
            gap_frames: frames skipped between consecutive slices (0 = contiguous).
            max_pad_fraction: clips at most this fraction shorter than the window are padded
                with each bin's silence level (never a loss target); shorter ones yield
                ``None``.
            decoder_channels: channels of each decoder's coarse grid and upsampling blocks.
            shared_decoder: one decoder plus a learned position embedding instead of one
                decoder per position (the paper's choice, default).
        """

        shared_decoder: bool = False

    cfg: Config

    def __init__(self, encoder: Encoder, cfg: Config | None = None) -> None:
        super().__init__(encoder, cfg)
        c, k = self.cfg, 2 * self.cfg.n_side
        n_decoders = 1 if c.shared_decoder else k
        self.decoders = nn.ModuleList(
            SliceDecoder(encoder.embed_dim, c.slice_frames, encoder.n_mels, c.decoder_channels)
            for _ in range(n_decoders)
        )
        self.position = nn.Embedding(k, encoder.embed_dim) if c.shared_decoder else None
        if self.position is not None:
            nn.init.normal_(self.position.weight, std=0.02)
        self.offsets = [*range(-c.n_side, 0), *range(1, c.n_side + 1)]

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Decode each context slice from the centre's embedding; MSE on their real frames."""
        z = self.encoder.embed(batch["centre"].unsqueeze(1))  # (B, D)
        target = batch["context"]  # (B, 2N, S, F)
        if self.position is not None:
            b, k = target.shape[:2]
            zk = (z[:, None, :] + self.position.weight[None]).reshape(b * k, -1)
            pred = self.decoders[0](zk).view_as(target)
        else:
            pred = torch.stack([dec(z) for dec in self.decoders], dim=1)
        real = _valid(batch, "context")
        loss, r2 = _real_mse(pred, target, real)
        with torch.no_grad():
            logs = {"loss": float(loss.detach()), "r2": r2}
            err = (pred - target).pow(2).mean(dim=3) * real  # (B, 2N, S), zero on padding
            per_pos = err.sum(dim=(0, 2)) / real.sum(dim=(0, 2)).clamp(min=1)
            logs.update(
                {f"mse_pos{o:+d}": float(v) for o, v in zip(self.offsets, per_pos, strict=True)}
            )
        return loss, logs
