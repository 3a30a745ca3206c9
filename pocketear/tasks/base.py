"""The pretext-task contract (DESIGN §2–3).

A task owns its heads, its sampler (what one training example is, drawn from one clip's log-mel)
and its loss. It owns no optimiser, device, file I/O or logging backend: the train driver does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pocketear.encoders.base import Encoder

Example = dict[str, np.ndarray]
Batch = dict[str, torch.Tensor]


@dataclass
class TaskConfig:
    """Hyper-parameters shared by every task; subclasses add their own fields."""

    slice_frames: int = 96  # frames per slice (0.96 s at a 10 ms hop), the seed paper's patch


class Task(nn.Module):
    """Base class: subclasses implement ``sample`` and ``step``; hooks are optional."""

    Config: type[TaskConfig] = TaskConfig
    # augmentations (``[{name, params}]``) used when the run config names none: the chain that
    # belongs to the method (BYOL-A's); empty for tasks whose views need none
    default_augment: list[dict[str, Any]] = []

    def __init__(self, encoder: Encoder, cfg: TaskConfig | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.cfg = cfg if cfg is not None else self.Config()
        self.augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None

    def view(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One augmented view of a slice (``augment`` of the run config; identity without)."""
        return x if self.augment is None else self.augment(x, rng)

    # --- sampler -------------------------------------------------------------------------
    def sample(
        self, clip: np.ndarray, rng: np.random.Generator, other: Callable[[], np.ndarray]
    ) -> Example | None:
        """One training example from one clip's normalised log-mel ``(T, F)``.

        ``other()`` returns the log-mel of another random clip (for negatives). Returns ``None``
        when the clip cannot yield an example (too short for the task); the driver counts those.
        """
        raise NotImplementedError

    @staticmethod
    def collate(examples: Sequence[Example]) -> Batch:
        """Stack examples key by key into tensors."""
        return {k: torch.from_numpy(np.stack([e[k] for e in examples])) for k in examples[0]}

    # --- objective -----------------------------------------------------------------------
    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss (scalar tensor) and scalar logs for one batch."""
        raise NotImplementedError

    def monitor_embeddings(self, batch: Batch) -> torch.Tensor:
        """Clip embeddings ``(B, D)`` of a batch, for the collapse monitors."""
        key = next(iter(batch))
        x = batch[key]
        if x.dim() == 4:  # (B, S, T, F): take the first slice
            x = x[:, 0]
        return self.encoder.embed(x.unsqueeze(1))

    # --- optional hooks ------------------------------------------------------------------
    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module, float]]:
        """(online, target, decay) pairs the driver updates by EMA after each step."""
        return []

    def on_epoch_start(self, epoch: int) -> None:
        """Called by the driver at the start of every epoch."""

    def after_step(self, step: int) -> None:
        """Called by the driver after optimiser step ``step`` (0-based) and the EMA updates:
        the place for state that must change only when training moves on (a queue of keys, a
        schedule), so ``step`` itself can be called repeatedly on one batch."""

    def param_groups(self) -> list[dict[str, Any]]:
        """Parameter groups for the optimiser (default: all trainable parameters)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]


def crop(clip: np.ndarray, start: int, frames: int, pad_value: float | None = None) -> np.ndarray:
    """``frames`` frames of ``clip`` from ``start``, padded at the end with ``pad_value``
    (default: the clip's minimum, i.e. silence) when the clip is shorter."""
    out = clip[start : start + frames]
    if len(out) < frames:
        fill = float(clip.min()) if pad_value is None else pad_value
        pad = np.full((frames - len(out), clip.shape[1]), fill, dtype=clip.dtype)
        out = np.concatenate([out, pad])
    return np.ascontiguousarray(out, dtype=np.float32)
