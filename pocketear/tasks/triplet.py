"""Triplet: anchor and positive from one clip, negative from another; margin loss.

Jansen, Plakal, Pandya, Ellis, Hershey, Liu, Moore & Saurous, "Unsupervised learning of semantic
audio representations", ICASSP 2018 (the loss, eq. (1), and temporal proximity as the source of
positives); the baseline of Tagliasacchi et al. 2019, arXiv:1905.11796, Sec. 2/3. Semi-hard
in-batch negatives: Schroff, Kalenichenko & Philbin, "FaceNet", CVPR 2015, Sec. 3.2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pocketear.encoders.base import Encoder
from pocketear.errors import InvalidValue
from pocketear.losses.distributed import gather, world
from pocketear.losses.metric import squared_distance, triplet_hinge, triplet_semihard_hinge
from pocketear.registry import register
from pocketear.tasks.base import (
    Batch,
    ClipNeed,
    Example,
    Task,
    TaskConfig,
    crop,
    pair_need,
    separated_pair,
    slice_separation,
)

NEGATIVES = ("semihard", "random")


@register("task", "triplet")
class Triplet(Task):
    """Triplet margin loss on slices: same-clip positives, other-clip negatives.

    Loss (Jansen et al. 2018, eq. (1)): mean of ``max(0, ||a - p||² - ||a - n||² + δ)`` with
    squared L2 distances; by default on L2-normalised embeddings with ``δ = 0.1`` (with unit
    vectors the margin has a fixed scale and cannot be met by inflating norms). The margin is
    kept as it was: eq. (1) defines ``δ`` as a non-negative hyper-parameter, and no value from
    the paper has been verified, so 0.1 is this project's choice, not a number reproduced from
    the paper.

    Negatives (``negatives``): with ``"random"`` each anchor's negative is its example's own
    ``negative`` slice, a random other clip; once the encoder separates clips at all, ``d_an``
    exceeds ``d_ap + δ`` for almost every such triplet and the loss is zero (97 % of triplets
    from step 10 on FSDD, issue 12). ``"semihard"`` (default) mines each anchor's negative in
    the batch, FaceNet-style (Sec. 3.2): the candidates are the anchor, positive and negative
    slices of every *other* example plus the anchor's own negative, i.e. ``3B - 2`` slices of
    other clips; the anchor's own positive and anchor are never candidates. The choice is
    :func:`~pocketear.losses.metric.semihard_negatives`: the closest candidate farther than
    the positive (a semi-hard one whenever one lies inside the margin), else the farthest
    candidate (the least hard, not the hardest: FaceNet reports that hardest negatives
    collapse the model early). Clip identity is inferred from the batch layout (each example
    is one clip); a random negative that happens to come from another example's clip (about
    ``B / N`` chance per example for ``N`` clips) stays a candidate.

    Sampler: anchor and positive offsets are uniform over ordered pairs of valid offsets
    ``0 … T - S`` at least ``min_separation_frames`` apart (default ``S``: disjoint slices,
    Jansen et al.'s temporal proximity — the positive is a *nearby* segment, not a shifted copy
    of the anchor; 0: independent, may overlap). The negative is a slice at a uniform valid
    offset of ``other()``; if that clip is shorter than ``S`` it is padded with each bin's
    silence level (any different clip is a valid negative). Short-clip policy
    (:class:`ClipNeed`): the clip needs ``S + min_separation_frames`` frames; one short by at
    most ``max_pad_fraction`` of that is padded with each bin's silence level, a shorter one
    yields ``None``.

    Example keys: ``anchor``, ``positive``, ``negative`` ``(S, F)``. Logs ``loss``,
    ``frac_active`` (triplets the loss uses with a non-zero hinge: the trivial-task monitor
    watches it), ``frac_active_random`` (the same for the sampled random negatives, whatever
    ``negatives`` is), ``d_ap``, ``d_an`` (mean squared distances to the positive and to the
    negative the loss uses, in the space the loss uses) and ``triplet_acc`` (fraction with
    ``d_ap`` below the distance to the sampled random negative: comparable across settings).
    """

    @dataclass
    class Config(TaskConfig):
        """Triplet hyper-parameters.

        Attributes:
            slice_frames: frames per slice ``S`` (96 = 0.96 s, the paper's patch).
            margin: hinge margin ``δ`` on squared distances.
            normalize: L2-normalise embeddings before the distances.
            min_separation_frames: minimum ``|t_anchor - t_positive|``; ``None`` (default) =
                ``S``, non-overlapping anchor and positive; 0 allows overlap.
            max_pad_fraction: clips at most this fraction shorter than needed are padded with
                each bin's silence level; shorter ones yield ``None``.
            negatives: ``"semihard"`` (in-batch semi-hard mining, FaceNet Sec. 3.2) or
                ``"random"`` (each example's own random other-clip slice: the old behaviour).
        """

        margin: float = 0.1
        normalize: bool = True
        min_separation_frames: int | None = None
        max_pad_fraction: float = 0.1
        negatives: str = "semihard"

    cfg: Config

    def __init__(self, encoder: Encoder, cfg: Config | None = None) -> None:
        super().__init__(encoder, cfg)
        if self.cfg.margin < 0 or self.separation < 0:
            raise InvalidValue("margin and min_separation_frames must be >= 0")
        if self.cfg.negatives not in NEGATIVES:
            raise InvalidValue(f"task.negatives={self.cfg.negatives!r} is unknown; use "
                             f"{' or '.join(NEGATIVES)} (e.g. --set task.negatives=semihard)")

    @property
    def separation(self) -> int:
        """Minimum anchor–positive offset difference (``min_separation_frames`` resolved)."""
        return slice_separation(self.cfg)

    def clip_need(self) -> ClipNeed:
        """Anchor and positive ``min_separation_frames`` apart (:func:`pair_need`)."""
        return pair_need(self.cfg)

    def sample(
        self, clip: np.ndarray, rng: np.random.Generator, other: Callable[[], np.ndarray]
    ) -> Example | None:
        """Anchor and positive from ``clip``, a negative slice from ``other()``."""
        s = self.cfg.slice_frames
        fitted = self.fit_clip(clip)
        if fitted is None:
            return None
        clip = fitted
        a, p = separated_pair(len(clip) - s, self.separation, rng)
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
        """Clip embeddings of the anchors."""
        return self.encoder.embed(batch["anchor"].unsqueeze(1))

    @staticmethod
    def candidate_mask(batch_size: int, device: torch.device | None = None, rank: int = 0,
                       world: int = 1) -> torch.Tensor:
        """``(B, W·3B)`` bool: which of the ``W`` ranks' ``[anchors; positives; negatives]`` count.

        ``W`` is 1 without torchrun. Row ``i``: all but anchor ``i`` and positive ``i`` of this
        rank (the slices of anchor ``i``'s clip).
        """
        own = torch.eye(batch_size, dtype=torch.bool, device=device)
        mine = torch.cat([own, own, torch.zeros_like(own)], dim=1)
        blocks = [mine if r == rank else torch.zeros_like(mine) for r in range(world)]
        return ~torch.cat(blocks, dim=1)

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Triplet hinge with mined semi-hard (default) or the sampled random negatives."""
        c = self.cfg
        x = torch.cat([batch["anchor"], batch["positive"], batch["negative"]]).unsqueeze(1)
        z = self.encoder.embed(x)
        za, zp, zn = z.chunk(3)
        d_used = None  # distance to the mined negative (semihard); None: the sampled one
        if c.negatives == "random":
            hinge = triplet_hinge(za, zp, zn, margin=c.margin, normalize=c.normalize)
        else:
            # mined among every rank's slices, as in one process with the global batch
            valid = self.candidate_mask(len(za), z.device, *world())
            hinge, _, d_used = triplet_semihard_hinge(za, zp, gather(z), valid, margin=c.margin,
                                                      normalize=c.normalize)
        loss = hinge.mean()
        with torch.no_grad():
            random_hinge = triplet_hinge(za, zp, zn, margin=c.margin, normalize=c.normalize)
            if c.normalize:
                za, zp, zn = (F.normalize(t, dim=-1) for t in (za, zp, zn))
            d_ap, d_an = squared_distance(za, zp), squared_distance(za, zn)
            logs = {
                "loss": float(loss.detach()),
                "frac_active": float((hinge > 0).float().mean()),
                "frac_active_random": float((random_hinge > 0).float().mean()),
                "d_ap": float(d_ap.mean()),
                "d_an": float((d_an if d_used is None else d_used).mean()),
                "triplet_acc": float((d_ap < d_an).float().mean()),
            }
        return loss, logs
