"""The shared base of the masked-prediction tasks (data2vec, HuBERT, BEATs, wav2vec 2.0, Wav2vec-C).

Masks live at the encoder's output-frame resolution (one flag per frame the loss is computed
on) and are applied in the input log-mel domain: the input frames under a masked output frame
are replaced by a learned vector of ``F`` values (the task's ``mask_token``). That works with any
encoder — a KWT (one token per frame) then sees exactly token masking, as in the papers, while a
CNN's receptive field can still reach past a span's edge (a leak the span length keeps small).
The sampler draws the mask with its own rng, so batches stay a pure function of (seed, step).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from pocketear.augment.masks import span_mask
from pocketear.encoders.base import Encoder, TokenEncoder
from pocketear.errors import InvalidValue
from pocketear.tasks.base import Batch, ClipNeed, Example, Task, TaskConfig, crop


class MaskedTask(Task):
    """Crop a slice, draw a mask over the encoder's output frames; subclasses define the loss.

    Short-clip policy (:class:`ClipNeed`): clips shorter than ``slice_frames`` are padded
    with each bin's silence level when at least ``min_fraction`` of the slice (and at least one
    whole encoder output frame) is real audio, else rejected. Example keys: ``x`` ``(S, F)``
    and ``mask`` ``(T',)`` (or ``(M, T')`` with several masks) — plus ``valid`` ``(T',)``,
    output frames whose input frames are all real audio: a frame that reads any padding is
    never a loss target and never masked.
    """

    min_fraction = 0.25
    # subclasses' configs define mask_prob and mask_length (span masking) or their own draw_mask

    def __init__(self, encoder: Encoder, cfg: TaskConfig | None = None) -> None:
        super().__init__(encoder, cfg)
        if self.cfg.slice_frames < 1:
            raise InvalidValue("slice_frames must be >= 1")
        self.mask_token = nn.Parameter(0.1 * torch.randn(encoder.n_mels))
        self._out_frames: dict[int, int] = {}

    def out_frames(self, frames: int) -> int:
        """Output frames of the encoder for ``frames`` input frames (measured once, cached)."""
        if frames not in self._out_frames:
            if isinstance(self.encoder, TokenEncoder):
                n = -(-frames // int(self.encoder.token_stride))
            else:
                was = self.encoder.training
                self.encoder.eval()
                with torch.no_grad():
                    n = self.encoder(torch.zeros(1, 1, frames, self.encoder.n_mels)).shape[1]
                self.encoder.train(was)
            self._out_frames[frames] = int(n)
        return self._out_frames[frames]

    def frame_spans(self, frames: int) -> np.ndarray:
        """Owner output frame of each input frame ``(S,)`` (stride ``ceil(S / T')``)."""
        n = self.out_frames(frames)
        stride = -(-frames // n)
        return np.minimum(np.arange(frames) // stride, n - 1)

    def clip_need(self) -> ClipNeed:
        """One slice, of which at least ``min_fraction`` (and one output frame) is real audio."""
        s = self.cfg.slice_frames
        stride = -(-s // self.out_frames(s))
        real = min(s, max(int(np.ceil(self.min_fraction * s - 1e-9)), stride, 1))
        return ClipNeed(s, s - real, "task.slice_frames")

    def real_out_frames(self, real: int) -> int:
        """Output frames of a slice with ``real`` real input frames that read no padding."""
        s = self.cfg.slice_frames
        if real >= s:
            return self.out_frames(s)
        return int(self.frame_spans(s)[real])  # frames before the first padded frame's owner

    def draw_mask(self, n: int, n_valid: int, rng: np.random.Generator) -> np.ndarray:
        """Mask ``(n,)`` over the ``n_valid`` real frames (span masking; padding never masked)."""
        mask = np.zeros(n, dtype=bool)
        mask[:n_valid] = span_mask(n_valid, self.cfg.mask_prob, self.cfg.mask_length, rng)
        return mask

    def sample(self, clip: np.ndarray, rng: np.random.Generator,
               other: Callable[[], np.ndarray]) -> Example | None:
        """A random slice ``x``, its ``mask`` (:meth:`draw_mask`) and its ``valid`` frames."""
        if clip.ndim != 2:
            raise ValueError(f"expected a (T, F) log-mel, got shape {clip.shape}")
        s = self.cfg.slice_frames
        if len(clip) < self.min_frames:
            return None
        start = int(rng.integers(0, max(len(clip) - s, 0), endpoint=True))
        real = min(s, len(clip) - start)
        x = self.view(crop(clip, start, s), rng)
        n = self.out_frames(s)
        n_valid = self.real_out_frames(real)
        valid = np.arange(n) < n_valid
        return {"x": x, "mask": self.draw_mask(n, n_valid, rng), "valid": valid}

    def masked_input(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, S, F)`` log-mels with the frames under masked output frames set to the mask token.

        ``mask`` is ``(B, T')``, over the encoder's output frames (:meth:`frame_spans` maps
        input frames to them).
        """
        owner = torch.from_numpy(self.frame_spans(x.shape[1])).to(x.device)
        frames = mask[:, owner]  # (B, S)
        return torch.where(frames[..., None], self.mask_token.to(x.dtype), x)

    def monitor_embeddings(self, batch: Batch) -> torch.Tensor:
        """Clip embeddings of the unmasked slices ``x``."""
        return self.encoder.embed(batch["x"].unsqueeze(1))
