"""TemporalGap: predict the normalised time distance between two slices of one clip.

Tagliasacchi, Gfeller, de Chaumont Quitry & Roblek, "Pre-training audio representations with
self-supervision", IEEE Signal Processing Letters 27 (2020), arXiv:1905.11796, Sec. 2
("TemporalGap").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pocketear.encoders.base import Encoder
from pocketear.errors import InvalidValue
from pocketear.heads.mlp import MLP
from pocketear.losses.regression import mse, soft_binary_cross_entropy
from pocketear.registry import register
from pocketear.tasks.base import (
    Batch,
    ClipNeed,
    Example,
    Task,
    TaskConfig,
    crop,
    pair_need,
    slice_separation,
)


@register("task", "temporal_gap")
class TemporalGap(Task):
    """TemporalGap: regress (or classify) the gap between two slices from their embeddings.

    Tagliasacchi et al. 2019 (arXiv:1905.11796), Sec. 2, TemporalGap: two slices are drawn at
    random from the same clip, encoded by the shared encoder, their embeddings concatenated and
    a small MLP predicts the normalised gap ``|t1 - t2| / max_gap_frames`` (clipped to [0, 1]).
    The paper trains the sigmoid output with cross-entropy against the soft target
    (``regression_loss="xent"``, default; implemented minus the target's entropy, i.e. a binary
    KL divergence with identical gradients, so the loss is 0 at the optimum); ``"mse"`` is the
    plain regression option. ``mode="classification"`` instead predicts one of ``n_bins`` equal
    bins of the normalised gap with softmax cross-entropy.

    Sampler: ``G = min(max_gap_frames, T - S)``; the gap ``g`` is uniform on ``m … G`` with
    ``m = min_separation_frames`` (default ``S``: the two slices never share a frame, so the
    gap cannot be read off identical content — gap 0 would be two copies of one slice), then
    the earlier offset is uniform on its valid positions ``0 … T - S - g`` (so no slice reads
    past the end), and which slice comes first in the example is a fair coin. Normalising by
    the fixed ``max_gap_frames`` (not the clip length) keeps a given target meaning the same
    duration in every clip. Short-clip policy (:class:`ClipNeed`): the clip needs ``S + m``
    frames; one short by at most ``max_pad_fraction`` of that is padded with each bin's silence
    level (encoder input only); shorter ones are not used.

    Example keys: ``first``, ``second`` ``(S, F)``; ``target`` float32 (normalised gap);
    ``gap`` int64 (frames). Logs ``loss``, ``gap_mae`` (normalised units), ``gap_mae_frames``,
    and ``accuracy`` in classification mode.
    """

    @dataclass
    class Config(TaskConfig):
        """TemporalGap hyper-parameters.

        Attributes:
            slice_frames: frames per slice ``S`` (96 = 0.96 s, the paper's patch).
            max_gap_frames: gap normaliser and upper bound of drawn gaps (1000 = 10 s, the
                length of an AudioSet clip, the paper's corpus).
            mode: ``"regression"`` (sigmoid output, the paper) or ``"classification"``.
            regression_loss: ``"xent"`` (the paper's cross-entropy on the soft target) or
                ``"mse"``; regression mode only.
            n_bins: gap bins in classification mode.
            hidden: hidden sizes of the MLP on the concatenated embeddings.
            min_separation_frames: smallest gap drawn; ``None`` (default) = ``S``, disjoint
                slices (the paper's two "slices" of a clip; overlap would let the gap be read
                from shared frames). At most ``max_gap_frames``.
            max_pad_fraction: clips at most this fraction shorter than ``S`` plus the
                separation are padded with each bin's silence level; shorter ones yield
                ``None``.
        """

        max_gap_frames: int = 1000
        mode: str = "regression"
        regression_loss: str = "xent"
        n_bins: int = 10
        hidden: tuple[int, ...] = (128,)
        max_pad_fraction: float = 0.1
        min_separation_frames: int | None = None

    cfg: Config

    def __init__(self, encoder: Encoder, cfg: Config | None = None) -> None:
        super().__init__(encoder, cfg)
        c = self.cfg
        if c.mode not in ("regression", "classification"):
            raise InvalidValue(f"mode must be 'regression' or 'classification', got {c.mode!r}")
        if c.regression_loss not in ("xent", "mse"):
            raise InvalidValue(
                f"regression_loss must be 'xent' or 'mse', got {c.regression_loss!r}")
        if c.max_gap_frames < 1 or c.n_bins < 2:
            raise InvalidValue("need max_gap_frames >= 1 and n_bins >= 2")
        if not 0 <= self.separation <= c.max_gap_frames:
            raise InvalidValue(f"task.min_separation_frames must be in 0 … max_gap_frames "
                             f"({c.max_gap_frames}), got {self.separation}; lower it (null = "
                             "slice_frames) or raise task.max_gap_frames")
        out = 1 if c.mode == "regression" else c.n_bins
        self.head = MLP(2 * encoder.embed_dim, c.hidden, out)
        centres = (torch.arange(c.n_bins, dtype=torch.float32) + 0.5) / c.n_bins
        self.register_buffer("bin_centres", centres, persistent=False)

    @property
    def separation(self) -> int:
        """Smallest gap in frames (``min_separation_frames`` resolved)."""
        return slice_separation(self.cfg)

    def clip_need(self) -> ClipNeed:
        """Two slices at least the smallest gap apart (:func:`pair_need`)."""
        return pair_need(self.cfg)

    def sample(
        self, clip: np.ndarray, rng: np.random.Generator, other: Callable[[], np.ndarray]
    ) -> Example | None:
        """Two slices of one clip at a random gap, in random order, and the normalised gap."""
        c, s = self.cfg, self.cfg.slice_frames
        fitted = self.fit_clip(clip)
        if fitted is None:
            return None
        clip = fitted
        last = len(clip) - s  # last valid offset
        gap = int(rng.integers(self.separation, min(c.max_gap_frames, last), endpoint=True))
        t1 = int(rng.integers(0, last - gap, endpoint=True))
        t2 = t1 + gap
        if rng.random() < 0.5:
            t1, t2 = t2, t1
        return {
            "first": self.view(crop(clip, t1, s), rng),
            "second": self.view(crop(clip, t2, s), rng),
            "target": np.asarray(min(gap / c.max_gap_frames, 1.0), dtype=np.float32),
            "gap": np.asarray(gap, dtype=np.int64),
        }

    def monitor_embeddings(self, batch: Batch) -> torch.Tensor:
        """Clip embeddings of the first slices."""
        return self.encoder.embed(batch["first"].unsqueeze(1))

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Predict the gap from both slices' embeddings: regression or bin classification."""
        c = self.cfg
        x = torch.cat([batch["first"], batch["second"]]).unsqueeze(1)
        z1, z2 = self.encoder.embed(x).chunk(2)
        out = self.head(torch.cat([z1, z2], dim=1))
        target = batch["target"].to(out.dtype)
        logs: dict[str, float] = {}
        if c.mode == "regression":
            logit = out.squeeze(1)
            if c.regression_loss == "xent":
                loss = soft_binary_cross_entropy(logit, target)
            else:
                loss = mse(torch.sigmoid(logit), target)
            with torch.no_grad():
                pred = torch.sigmoid(logit)
        else:
            labels = (target * c.n_bins).floor().long().clamp_(0, c.n_bins - 1)
            loss = F.cross_entropy(out, labels)
            with torch.no_grad():
                pred = out.softmax(dim=1) @ self.bin_centres
                logs["accuracy"] = float((out.argmax(dim=1) == labels).float().mean())
        with torch.no_grad():
            mae = (pred - target).abs().mean()
        logs.update(
            loss=float(loss.detach()),
            gap_mae=float(mae),
            gap_mae_frames=float(mae) * c.max_gap_frames,
        )
        return loss, logs
