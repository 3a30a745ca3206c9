"""What the contrastive and teacher–student tasks share: two-view sampling, EMA, a key queue.

Two views of one clip, EMA teachers and a queue of past keys. Not a task itself (the leading
underscore keeps it out of the registry's auto-import).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pocketear.errors import InvalidValue
from pocketear.tasks.base import Batch, ClipNeed, Example, Task, TaskConfig, crop, separated_pair


@dataclass
class TwoViewConfig(TaskConfig):
    """Two-view sampler settings (documented again by each task's Config).

    Attributes:
        slice_frames: frames per view ``S``.
        same_segment: both views from one segment (BYOL-A: only the augmentations differ) or
            from two random segments of the clip (COLA).
        max_pad_fraction: clips at most this fraction shorter than needed are padded with each
            bin's silence level (encoder input only); shorter ones are not used.

    A task whose views are two segments adds ``min_separation_frames`` to its Config (COLA):
    the views' offsets then differ by at least that many frames (``None`` = ``ceil(S / 2)``:
    they overlap at most half), so a short clip cannot turn the task into matching two
    near-copies of one segment. Without the field, two segments are drawn independently.
    """

    same_segment: bool = True
    max_pad_fraction: float = 0.1


class TwoViewTask(Task):
    """Sampler of two views ``view1``, ``view2`` ``(S, F)`` of one clip; subclasses add ``step``.

    Each view has its own augmentation draw (``Task.view``). One segment: the offset is uniform over
    ``0 … T - S``. Two segments: the ordered pair of offsets is uniform over the pairs at least
    ``min_separation_frames`` apart, so the clip needs ``S + min_separation_frames`` frames.
    Short-clip policy (:class:`ClipNeed`): a clip short of that by at most ``max_pad_fraction`` of
    it is padded with each bin's silence level.
    """

    Config = TwoViewConfig
    cfg: TwoViewConfig

    @property
    def separation(self) -> int:
        """Minimum offset difference of the two views (0 with ``same_segment``)."""
        c = self.cfg
        if c.same_segment:
            return 0
        m = getattr(c, "min_separation_frames", 0)  # only configs with the field (COLA) set one
        if m is None:
            return -(-c.slice_frames // 2)
        if m < 0:
            raise InvalidValue(
                f"task.min_separation_frames must be >= 0 (or null for S/2), got {m}")
        return int(m)

    def clip_need(self) -> ClipNeed:
        """``S`` plus the views' separation, short by at most ``max_pad_fraction`` of it."""
        settings = "task.slice_frames or task.max_pad_fraction"
        if not self.cfg.same_segment:
            settings = "task.slice_frames, task.min_separation_frames or task.max_pad_fraction"
        return ClipNeed.of(self.cfg.slice_frames + self.separation, self.cfg.max_pad_fraction,
                           settings)

    def sample(
        self, clip: np.ndarray, rng: np.random.Generator, other: Callable[[], np.ndarray]
    ) -> Example | None:
        """Two views of one clip: one segment twice, or two segments ``separation`` apart."""
        s = self.cfg.slice_frames
        fitted = self.fit_clip(clip)
        if fitted is None:
            return None
        last = len(fitted) - s
        if self.cfg.same_segment:
            a = b = int(rng.integers(0, last, endpoint=True))
        else:
            a, b = separated_pair(last, self.separation, rng)
        return {"view1": self.view(crop(fitted, a, s), rng),
                "view2": self.view(crop(fitted, b, s), rng)}

    def embed_views(self, batch: Batch, encoder: nn.Module | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip embeddings of both views in one encoder pass (BatchNorm sees both)."""
        enc = encoder if encoder is not None else self.encoder
        x = torch.cat([batch["view1"], batch["view2"]]).unsqueeze(1)
        return enc.embed(x).chunk(2)

    def monitor_embeddings(self, batch: Batch) -> torch.Tensor:
        """Clip embeddings of the first views."""
        return self.encoder.embed(batch["view1"].unsqueeze(1))


def projection_mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """BYOL's projector/predictor: Linear → BatchNorm → ReLU → Linear (Grill et al. 2020, §3.3)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, out_dim))


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy for an EMA teacher: same weights, no gradients (the driver updates it by EMA)."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


class KeyQueue(nn.Module):
    """FIFO of the last ``size`` keys ``(size, D)`` (MoCo, He et al. 2020, Sec. 3.2).

    Kept in buffers, so it is saved with the task and restored on ``--resume``. ``keys()`` returns
    only the filled rows, in ring-buffer order (not oldest first): the losses use them as a set of
    negatives, so the order does not matter.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 0:
            raise InvalidValue(f"queue size must be >= 0, got {size}")
        self.register_buffer("data", torch.zeros(size, dim))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def push(self, keys: torch.Tensor) -> None:
        """Append ``keys`` ``(N, D)`` (detached), overwriting the oldest; a no-op at size 0."""
        size = self.data.shape[0]
        if size == 0:
            return
        keys = keys.detach().to(self.data.dtype)[-size:]
        idx = (self.ptr + torch.arange(len(keys), device=self.ptr.device)) % size
        self.data[idx] = keys
        self.ptr.copy_((self.ptr + len(keys)) % size)
        self.count.copy_(torch.clamp(self.count + len(keys), max=size))

    def keys(self) -> torch.Tensor:
        """The filled rows ``(count, D)``, in ring-buffer order."""
        return self.data[: int(self.count)]
