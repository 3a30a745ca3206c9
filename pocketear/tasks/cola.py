"""COLA: two segments of one clip are positives, the rest of the batch negatives.

Saeed, Grangier & Zeghidour, "Contrastive learning of general-purpose audio representations",
ICASSP 2021 (arXiv:2010.10915): Sec. 2.1 (segments, no other augmentation), Sec. 2.2 (projection
``g``: dense 512 → LayerNorm → tanh; bilinear similarity, eq. (1); softmax over the batch,
eq. (2)); Table 3 (bilinear beats cosine similarity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from pocketear.encoders.base import Encoder
from pocketear.errors import InvalidValue
from pocketear.losses.contrastive import batch_softmax_loss, bilinear_logits, cosine_logits
from pocketear.losses.distributed import local_targets
from pocketear.registry import register
from pocketear.tasks._twoview import TwoViewConfig, TwoViewTask
from pocketear.tasks.base import Batch


@register("task", "cola")
class COLA(TwoViewTask):
    """Contrastive segments with a bilinear (default) or cosine similarity.

    Each example is two random segments of one clip, at least ``min_separation_frames`` apart
    (default: half a segment); an anchor's positive is its own clip's other segment, the other
    clips' segments in the (global) batch are the distractors. The projection and the bilinear
    matrix ``W`` are discarded after pretraining. ``W`` starts as the identity over ``√d``: a
    scaled dot product that training then bends.

    Logs ``loss`` and ``accuracy`` (fraction of anchors whose positive scores highest).
    """

    @dataclass
    class Config(TwoViewConfig):
        """COLA hyper-parameters.

        Attributes:
            slice_frames: frames per segment ``S`` (96 = the paper's 960 ms).
            same_segment: False (the paper): two segments of the clip.
            min_separation_frames: the two segments' offsets differ by at least this many
                frames; ``None`` (default) = ``ceil(S / 2)``, so they overlap at most half. The
                paper (Sec. 2.1) crops two segments of 10 s AudioSet clips, where about one
                pair of random 960 ms segments in five overlaps, and then little; on 1–2 s
                clips independent draws would mostly overlap and share most of their frames
                (an easy match).
            max_pad_fraction: clips at most this fraction shorter than ``S`` plus the separation
                are padded with each bin's silence level; shorter ones are not used.
            similarity: ``bilinear`` (the paper's) or ``cosine`` (its ablation).
            temperature: softmax temperature of the cosine similarity (unused by bilinear).
            proj_dim: width of the projection ``g`` (512 in the paper).
        """

        same_segment: bool = False
        min_separation_frames: int | None = None
        similarity: str = "bilinear"
        temperature: float = 0.1
        proj_dim: int = 512

    cfg: Config

    def __init__(self, encoder: Encoder, cfg: Config | None = None) -> None:
        super().__init__(encoder, cfg)
        c = self.cfg
        if c.similarity not in ("bilinear", "cosine"):
            raise InvalidValue(f"similarity must be 'bilinear' or 'cosine', got {c.similarity!r}")
        if c.temperature <= 0:
            raise InvalidValue(f"temperature must be > 0, got {c.temperature}")
        self.projection = nn.Sequential(nn.Linear(encoder.embed_dim, c.proj_dim),
                                        nn.LayerNorm(c.proj_dim), nn.Tanh())
        # only the bilinear variant owns W (no unused parameter for the cosine one)
        self.bilinear = nn.Parameter(torch.eye(c.proj_dim) / math.sqrt(c.proj_dim)) \
            if c.similarity == "bilinear" else None

    def logits(self, batch: Batch) -> torch.Tensor:
        """Similarity ``(B, B_global)`` of each anchor's projection to every positive's."""
        anchor, positive = (self.projection(z) for z in self.embed_views(batch))
        if self.bilinear is not None:
            return bilinear_logits(anchor, positive, self.bilinear)
        return cosine_logits(anchor, positive, self.cfg.temperature)

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Softmax over the batch's positives, each anchor's own positive as its class."""
        logits = self.logits(batch)
        loss = batch_softmax_loss(logits)
        with torch.no_grad():
            target = local_targets(len(logits), logits.device)
            acc = float((logits.argmax(1) == target).float().mean())
        return loss, {"loss": float(loss.detach()), "accuracy": acc}
