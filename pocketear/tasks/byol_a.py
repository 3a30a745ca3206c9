"""BYOL-A: BYOL for audio — two augmented views of one segment, an EMA target, no negatives.

Niizumi, Takeuchi, Ohishi, Harada & Kashino, "BYOL for Audio: self-supervised learning for
general-purpose audio representation", IJCNN 2021 (arXiv:2103.06695): Sec. 3.1 (one segment, two
views from augmentations), Sec. 3.2–3.3 (pre-norm → mixup → random-resize-crop → post-norm),
eq. (1)–(2) (the loss, symmetrised); BYOL itself: Grill et al. 2020, Sec. 3.1 (online network
with projector and predictor, target = EMA of the online encoder and projector, ``τ``),
Sec. 3.3 (MLPs: 4096 hidden, BatchNorm, ReLU, 256 out). BYOL-A keeps ``τ = 0.99`` fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pocketear.encoders.base import Encoder
from pocketear.errors import InvalidValue
from pocketear.losses.contrastive import byol_loss
from pocketear.registry import register
from pocketear.tasks._twoview import TwoViewConfig, TwoViewTask, frozen_copy, projection_mlp
from pocketear.tasks.base import Batch

# The paper's augmentation chain (Sec. 3.3), used when the run config names none.
BYOL_A_AUGMENT = [
    {"name": "pre_norm"},
    {"name": "log_mixup_exp", "params": {"alpha": 0.4}},
    {"name": "random_resize_crop"},
    {"name": "post_norm"},
]


@register("task", "byol_a")
class BYOLA(TwoViewTask):
    """Online (encoder → projector → predictor) predicts the EMA target's other-view projection.

    That is, the target's projection of the other view; the loss is symmetrised over the two
    view orders.

    The target (EMA copies of encoder and projector) starts equal to the online network and is
    updated by the driver after every optimiser step (``ema_pairs``). Without augmentations the
    two views of one segment are identical and the task is trivial: the default augmentation
    chain is the paper's (``default_augment``), used when the run config lists none.

    Logs ``loss`` and ``cosine`` (mean cosine between predictions and target projections).
    """

    default_augment = BYOL_A_AUGMENT

    @dataclass
    class Config(TwoViewConfig):
        """BYOL-A hyper-parameters.

        Attributes:
            slice_frames: frames per segment ``S`` (96 in the paper).
            same_segment: True (the paper): both views come from one segment.
            max_pad_fraction: clips at most this fraction shorter than ``S`` are padded.
            hidden_dim: hidden width of projector and predictor (4096).
            proj_dim: output width of projector and predictor (256).
            tau: EMA decay of the target network (0.99).
        """

        same_segment: bool = True
        hidden_dim: int = 4096
        proj_dim: int = 256
        tau: float = 0.99

    cfg: Config

    def __init__(self, encoder: Encoder, cfg: Config | None = None) -> None:
        super().__init__(encoder, cfg)
        c = self.cfg
        if not 0.0 <= c.tau <= 1.0:
            raise InvalidValue(f"tau must be in [0, 1], got {c.tau}")
        self.projector = projection_mlp(encoder.embed_dim, c.hidden_dim, c.proj_dim)
        self.predictor = projection_mlp(c.proj_dim, c.hidden_dim, c.proj_dim)
        self.target_encoder = frozen_copy(encoder)
        self.target_projector = frozen_copy(self.projector)

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module, float]]:
        """The target encoder and projector, both updated with the fixed decay ``tau``."""
        return [(self.encoder, self.target_encoder, self.cfg.tau),
                (self.projector, self.target_projector, self.cfg.tau)]

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """BYOL loss of the online predictions against the target's projections, both orders."""
        z1, z2 = self.embed_views(batch)
        p = self.predictor(self.projector(torch.cat([z1, z2])))
        p1, p2 = p.chunk(2)
        with torch.no_grad():
            t1, t2 = self.target_projector(
                torch.cat(self.embed_views(batch, self.target_encoder))).chunk(2)
        loss = byol_loss(p1, t2) + byol_loss(p2, t1)
        with torch.no_grad():
            cos = 0.5 * float(F.cosine_similarity(p1, t2).mean() + F.cosine_similarity(p2, t1)
                              .mean())
        return loss, {"loss": float(loss.detach()), "cosine": cos}
