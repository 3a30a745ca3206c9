"""The pretext-task contract (:class:`Task`) and the short-clip helpers its samplers share.

A task owns its heads, its sampler (what one training example is, drawn from one clip's log-mel)
and its loss. It owns no optimiser, device, file I/O or logging backend: the train driver does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pocketear.augment.base import build_augment
from pocketear.encoders.base import Encoder
from pocketear.errors import InvalidValue
from pocketear.frontends.logmel import LogMelConfig

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
    # the encoder and frontend a config that names none gets (a pitch task needs a CQT)
    default_encoder: str = "mobile_100"
    default_frontend: str = "logmel"

    def __init__(self, encoder: Encoder, cfg: TaskConfig | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.cfg = cfg if cfg is not None else self.Config()
        self.augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None

    # --- short-clip policy -----------------------------------------------------------------
    def clip_need(self) -> ClipNeed:
        """What the sampler reads from one clip (default: any clip of at least one frame).

        Samplers that cut fixed windows override this and call :meth:`fit_clip`, so
        the rule the sampler applies and the one the driver filters the corpus with up front
        (:attr:`min_frames`) are one and the same.
        """
        return ClipNeed(1)

    @property
    def min_frames(self) -> int:
        """Fewest frames a clip needs to yield an example (shorter clips are filtered out)."""
        return self.clip_need().min_frames

    def fit_clip(self, clip: np.ndarray) -> np.ndarray | None:
        """``clip`` as a window-cutting sampler reads it: ``clip_need().fit``, None if too short.

        Raises:
            ValueError: ``clip`` is not a ``(T, F)`` log-mel.
        """
        if clip.ndim != 2:
            raise ValueError(f"expected a (T, F) log-mel, got shape {clip.shape}")
        return self.clip_need().fit(clip)

    def random_slice(self, clip: np.ndarray, rng: np.random.Generator
                     ) -> tuple[np.ndarray, int] | None:
        """A uniformly placed window of ``slice_frames`` of ``clip`` and its start frame.

        Short clips are padded as :meth:`fit_clip` allows; None when the clip is too short.
        """
        fitted = self.fit_clip(clip)
        if fitted is None:
            return None
        s = self.cfg.slice_frames
        start = int(rng.integers(0, len(fitted) - s, endpoint=True))
        return crop(fitted, start, s), start

    def set_augment(self, specs: Sequence[Mapping[str, Any]] | None,
                    frontend: LogMelConfig | None = None) -> None:
        """Build :attr:`augment` from the run's ``augment`` list, bound to ``frontend``.

        The train driver calls this once after construction. A task made of other tasks
        (``multi``) overrides it to give each of them its own chain.
        """
        self.augment = build_augment(specs, frontend)

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

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """:meth:`step`, so ``DistributedDataParallel(task)(batch)`` syncs the task's gradients."""
        return self.step(batch)

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
        """Called by the driver after optimiser step ``step`` (0-based) and the EMA updates.

        The place for state that must change only when training moves on (a queue of keys, a
        schedule), so ``step`` itself can be called repeatedly on one batch.
        """

    def param_groups(self) -> list[dict[str, Any]]:
        """Parameter groups for the optimiser (default: all trainable parameters)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]


@dataclass(frozen=True)
class ClipNeed:
    """The one short-clip policy of every sampler: a window of ``frames`` frames.

    Of these, at most ``max_pad`` may be padding at the end (encoder input only, never a loss
    target).

    Attributes:
        frames: frames the sampler cuts its example from (one window).
        max_pad: of these, how many may be missing from a short clip and padded.
        settings: the config keys that set the need, named in the error when no clip of a
            corpus is long enough (e.g. ``"task.slice_frames or task.max_pad_fraction"``).
    """

    frames: int
    max_pad: int = 0
    settings: str = "task.slice_frames"

    @classmethod
    def of(cls, frames: int, max_pad_fraction: float = 0.0,
           settings: str = "task.slice_frames or task.max_pad_fraction") -> ClipNeed:
        """A window of ``frames`` that a clip may miss by at most ``max_pad_fraction`` of it.

        Raises:
            InvalidValue: ``frames < 1`` or ``max_pad_fraction`` outside ``[0, 1)`` (both come
                from the task's config).
        """
        if frames < 1 or not 0.0 <= max_pad_fraction < 1.0:
            raise InvalidValue(f"need frames >= 1 and 0 <= max_pad_fraction < 1, got {frames}, "
                             f"{max_pad_fraction}")
        # the epsilon keeps e.g. 0.1 * 480 = 48 from rounding down to 47
        return cls(frames, int(np.floor(max_pad_fraction * frames + 1e-9)), settings)

    @property
    def min_frames(self) -> int:
        """Shortest usable clip."""
        return max(1, self.frames - self.max_pad)

    def fit(self, clip: np.ndarray) -> np.ndarray | None:
        """``clip`` itself if it holds the window, else padded to ``frames``, or ``None``.

        A clip short of the window by at most ``max_pad`` frames is padded at the end with each
        bin's silence level; a shorter one gives ``None``.
        """
        if len(clip) >= self.frames:
            return clip
        if len(clip) < self.min_frames:
            return None
        return crop(clip, 0, self.frames)


PAIR_SETTINGS = "task.slice_frames, task.min_separation_frames or task.max_pad_fraction"


def slice_separation(cfg: Any) -> int:
    """``cfg.min_separation_frames`` resolved: ``None`` means ``cfg.slice_frames``.

    That is, by default two slices of one clip share no frame (the default of the tasks that cut
    two slices).
    """
    m = cfg.min_separation_frames
    return cfg.slice_frames if m is None else int(m)


def pair_need(cfg: Any) -> ClipNeed:
    """What a clip needs for two slices ``slice_separation(cfg)`` apart."""
    return ClipNeed.of(cfg.slice_frames + slice_separation(cfg), cfg.max_pad_fraction,
                       PAIR_SETTINGS)


def silence(clip: np.ndarray) -> np.ndarray:
    """Each bin's silence level ``(F,)``: the clip's per-bin minimum.

    Per bin, not the clip's global minimum: band-limited audio (8 kHz resampled to 16 kHz) has
    high bins near their own floor, and a global fill would paint a spectrum no real frame has.
    """
    return clip.min(axis=0)


def crop(clip: np.ndarray, start: int, frames: int,
         pad_value: float | np.ndarray | None = None) -> np.ndarray:
    """``frames`` frames of ``clip`` from ``start``, padded at the end if the clip is shorter.

    The padding is ``pad_value`` (default: each bin's silence level, :func:`silence`).
    """
    out = clip[start : start + frames]
    if len(out) < frames:
        fill = silence(clip) if pad_value is None else pad_value
        pad = np.broadcast_to(np.asarray(fill, dtype=clip.dtype),
                              (frames - len(out), clip.shape[1]))
        out = np.concatenate([out, pad])
    return np.ascontiguousarray(out, dtype=np.float32)


def valid_frames(clip_frames: int, start: int, frames: int) -> np.ndarray:
    """``(frames,)`` bool: which frames of ``crop(clip, start, frames)`` are real audio."""
    return np.arange(start, start + frames) < clip_frames


def separated_pair(last: int, separation: int, rng: np.random.Generator) -> tuple[int, int]:
    """Ordered pair of offsets, uniform over the pairs in ``0 … last`` ``separation`` apart or more.

    ``separation`` 0: two independent offsets, which may coincide.
    """
    if separation <= 0:
        a, b = rng.integers(0, last, endpoint=True, size=2)
        return int(a), int(b)
    if last < separation:
        raise ValueError(f"offsets 0 … {last} hold no pair {separation} apart")
    # unordered pairs lo + m <= hi <= last  <->  2-subsets {x < y} of {0 … last - m + 1}
    # via lo = x, hi = y - 1 + m; then a fair coin orders them
    x, y = sorted(rng.choice(last - separation + 2, size=2, replace=False))
    lo, hi = int(x), int(y) - 1 + separation
    return (lo, hi) if rng.random() < 0.5 else (hi, lo)


def ema_decay(step: int, start: float, end: float, anneal_steps: int) -> float:
    """The teacher's EMA decay τ at ``step``, annealed linearly from ``start`` to ``end``.

    Baevski et al., "data2vec", ICML 2022, §3.1: τ goes linearly from ``start`` to ``end`` over
    ``anneal_steps`` updates, then stays at ``end``.
    """
    if anneal_steps <= 0 or step >= anneal_steps:
        return end
    return start + (end - start) * step / anneal_steps
