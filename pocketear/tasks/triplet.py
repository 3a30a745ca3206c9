"""Triplet: anchor and positive from one clip, negative from another; margin loss.

Jansen, Plakal, Pandya, Ellis, Hershey, Liu, Moore & Saurous, "Unsupervised learning of semantic
audio representations", ICASSP 2018 (the loss, eq. (1), and temporal proximity as the source of
positives); the baseline of Tagliasacchi et al. 2019, arXiv:1905.11796, Sec. 2/3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pocketear.encoders.base import Encoder
from pocketear.losses.metric import squared_distance, triplet_hinge
from pocketear.registry import register
from pocketear.tasks.base import Batch, Example, Task, TaskConfig, crop


@register("task", "triplet")
class Triplet(Task):
    """Triplet margin loss on slices: same-clip positives, other-clip negatives.

    Loss (Jansen et al. 2018, eq. (1)): mean of ``max(0, ||a - p||² - ||a - n||² + δ)`` with
    squared L2 distances; by default on L2-normalised embeddings with ``δ = 0.1`` (with unit
    vectors the margin has a fixed scale and cannot be met by inflating norms).

    Sampler: anchor and positive offsets are uniform over ordered pairs of valid offsets
    ``0 … T - S`` at least ``min_separation_frames`` apart (0: independent, may overlap; ``S``:
    disjoint slices). The negative is a slice at a uniform valid offset of ``other()``; if that
    clip is shorter than ``S`` it is padded with its minimum (any different clip is a valid
    negative). Short-clip policy: the clip needs ``S + min_separation_frames`` frames; one short
    by at most ``max_pad_fraction`` of that is padded with its minimum, a shorter one yields
    ``None``.

    Example keys: ``anchor``, ``positive``, ``negative`` ``(S, F)``. Logs ``loss``,
    ``frac_active`` (triplets with a non-zero hinge), ``d_ap``, ``d_an`` (mean squared
    distances, in the space the loss uses) and ``triplet_acc`` (fraction with ``d_ap < d_an``).
    """

    @dataclass
    class Config(TaskConfig):
        """Triplet hyper-parameters.

        Attributes:
            slice_frames: frames per slice ``S`` (96 = 0.96 s, the paper's patch).
            margin: hinge margin ``δ`` on squared distances.
            normalize: L2-normalise embeddings before the distances.
            min_separation_frames: minimum ``|t_anchor - t_positive|``; 0 allows overlap.
            max_pad_fraction: clips at most this fraction shorter than needed are padded with
                their minimum; shorter ones yield ``None``.
        """

        margin: float = 0.1
        normalize: bool = True
        min_separation_frames: int = 0
        max_pad_fraction: float = 0.1

    cfg: Config

    def __init__(self, encoder: Encoder, cfg: Config | None = None) -> None:
        super().__init__(encoder, cfg)
        if self.cfg.margin < 0 or self.cfg.min_separation_frames < 0:
            raise ValueError("margin and min_separation_frames must be >= 0")

    def _pair(self, last: int, rng: np.random.Generator) -> tuple[int, int]:
        """Ordered pair uniform over offsets in ``0 … last`` at least ``m`` apart."""
        m = self.cfg.min_separation_frames
        if m == 0:
            a, p = rng.integers(0, last, endpoint=True, size=2)
            return int(a), int(p)
        # Unordered pairs lo + m <= hi <= last  <->  2-subsets {x < y} of {0 … last - m + 1}
        # via lo = x, hi = y - 1 + m; then a fair coin picks which one is the anchor.
        x, y = sorted(rng.choice(last - m + 2, size=2, replace=False))
        lo, hi = int(x), int(y) - 1 + m
        return (lo, hi) if rng.random() < 0.5 else (hi, lo)

    def sample(
        self, clip: np.ndarray, rng: np.random.Generator, other: Callable[[], np.ndarray]
    ) -> Example | None:
        if clip.ndim != 2:
            raise ValueError(f"expected a (T, F) log-mel, got shape {clip.shape}")
        c, s = self.cfg, self.cfg.slice_frames
        need = s + c.min_separation_frames
        if len(clip) < need:
            if need - len(clip) > c.max_pad_fraction * need:
                return None
            clip = crop(clip, 0, need)
        a, p = self._pair(len(clip) - s, rng)
        neg_clip = other()
        if neg_clip.ndim != 2 or neg_clip.shape[1] != clip.shape[1]:
            raise ValueError(f"other() gave shape {neg_clip.shape}, expected (T, {clip.shape[1]})")
        n = int(rng.integers(0, max(len(neg_clip) - s, 0), endpoint=True))
        return {  # each view its own augmentation draw (so no augmentation is a cue)
            "anchor": self.view(crop(clip, a, s), rng),
            "positive": self.view(crop(clip, p, s), rng),
            "negative": self.view(crop(neg_clip, n, s), rng),
        }

    def monitor_embeddings(self, batch: Batch) -> torch.Tensor:
        return self.encoder.embed(batch["anchor"].unsqueeze(1))

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        c = self.cfg
        x = torch.cat([batch["anchor"], batch["positive"], batch["negative"]]).unsqueeze(1)
        za, zp, zn = self.encoder.embed(x).chunk(3)
        hinge = triplet_hinge(za, zp, zn, margin=c.margin, normalize=c.normalize)
        loss = hinge.mean()
        with torch.no_grad():
            if c.normalize:
                za, zp, zn = (F.normalize(t, dim=-1) for t in (za, zp, zn))
            d_ap, d_an = squared_distance(za, zp), squared_distance(za, zn)
            logs = {
                "loss": float(loss.detach()),
                "frac_active": float((hinge > 0).float().mean()),
                "d_ap": float(d_ap.mean()),
                "d_an": float(d_an.mean()),
                "triplet_acc": float((d_ap < d_an).float().mean()),
            }
        return loss, logs
