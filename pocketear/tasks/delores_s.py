"""DeLoRes-S: Barlow Twins' redundancy-reduction loss on two augmented views of one segment.

Ghosh, Seth, Umesh & Manocha, "DeLoRes: Decorrelating latent spaces for low-resource audio
representation learning", 2022 (arXiv:2203.13628), Sec. 3 (DeLoRes-S: BYOL-A's augmentations,
a projector, the Barlow Twins objective); Zbontar, Jing, Misra, LeCun & Deny, "Barlow Twins:
self-supervised learning via redundancy reduction", ICML 2021, eq. (1)–(2) (the loss, ``λ``),
Sec. 2 (projector: Linear → BatchNorm → ReLU blocks, then Linear).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from pocketear.encoders.base import Encoder
from pocketear.errors import InvalidValue
from pocketear.losses.contrastive import barlow_twins, cross_correlation
from pocketear.registry import register
from pocketear.tasks._twoview import TwoViewConfig, TwoViewTask
from pocketear.tasks.base import Batch
from pocketear.tasks.byol_a import BYOL_A_AUGMENT


@register("task", "delores_s")
class DeLoResS(TwoViewTask):
    """Cross-correlation of the two views' projections driven to the identity.

    No target network, no negatives: invariance comes from the diagonal, non-collapse from
    decorrelating the dimensions (the off-diagonal term). Defaults to BYOL-A's augmentations.

    Logs ``loss``, ``on_diagonal`` (mean ``C_ii``, → 1) and ``off_diagonal`` (mean ``|C_ij|``,
    → 0).
    """

    default_augment = BYOL_A_AUGMENT

    @dataclass
    class Config(TwoViewConfig):
        """DeLoRes-S hyper-parameters.

        Attributes:
            slice_frames: frames per segment ``S``.
            same_segment: True: both views come from one segment (only augmentations differ).
            max_pad_fraction: clips at most this fraction shorter than ``S`` are padded.
            projector_dims: widths of the projector's layers, the last one the output (Barlow
                Twins uses 8192 ×3; narrower here for small encoders and CPUs).
            off_diagonal_weight: ``λ`` of the off-diagonal term (5e-3, Barlow Twins').
        """

        same_segment: bool = True
        projector_dims: tuple[int, ...] = field(default_factory=lambda: (2048, 2048))
        off_diagonal_weight: float = 5e-3

    cfg: Config

    def __init__(self, encoder: Encoder, cfg: Config | None = None) -> None:
        super().__init__(encoder, cfg)
        dims = [int(d) for d in self.cfg.projector_dims]
        if not dims or min(dims) < 1:
            raise InvalidValue(f"projector_dims must list positive widths, got {dims}")
        layers: list[nn.Module] = []
        prev = encoder.embed_dim
        for width in dims[:-1]:
            layers += [nn.Linear(prev, width), nn.BatchNorm1d(width), nn.ReLU()]
            prev = width
        layers.append(nn.Linear(prev, dims[-1]))
        self.projector = nn.Sequential(*layers)

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Barlow Twins loss on the cross-correlation of the two views' projections."""
        z1, z2 = self.projector(torch.cat(self.embed_views(batch))).chunk(2)
        loss = barlow_twins(z1, z2, self.cfg.off_diagonal_weight)
        with torch.no_grad():
            c = cross_correlation(z1, z2)
            d = torch.diagonal(c)
            off = (c.abs().sum() - d.abs().sum()) / max(1, c.numel() - len(d))
        return loss, {"loss": float(loss.detach()), "on_diagonal": float(d.mean()),
                      "off_diagonal": float(off)}
