"""SLICER: student–teacher contrastive learning at the instance and the cluster level, with k-mix.

Seth, Ghosh, Tyagi, Umesh & Manocha, "SLICER: Learning universal audio representations using
low-resource self-supervised pre-training", ICASSP 2023 (arXiv:2211.01519), Sec. 2: a student
and a momentum (EMA) teacher; a symmetric instance-level InfoNCE between the student's
projection of one view and the teacher's of the other, in both view orders, with a queue of
past teacher keys as extra negatives (MoCo, He et al. 2020); a cluster-level contrastive loss on
the student's softmax assignments of the two views (Li et al. 2021, "Contrastive Clustering",
eqs. (5)–(7)); k-mix augmentation (the ``kmix`` augmentation: mixup partners chosen through
k-means clusters of the corpus). The paper's code has no licence; this follows the paper's text.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pocketear.encoders.base import Encoder
from pocketear.losses.contrastive import cluster_contrastive, info_nce
from pocketear.losses.distributed import gather
from pocketear.registry import register
from pocketear.tasks._twoview import (
    KeyQueue,
    TwoViewConfig,
    TwoViewTask,
    frozen_copy,
    projection_mlp,
)
from pocketear.tasks.base import Batch

# k-mix in BYOL-A's chain in place of plain mixup (SLICER Sec. 2.2).
SLICER_AUGMENT = [
    {"name": "pre_norm"},
    {"name": "kmix"},
    {"name": "random_resize_crop"},
    {"name": "post_norm"},
]


@register("task", "slicer")
class SLICER(TwoViewTask):
    """Symmetric instance InfoNCE (student vs EMA teacher, queue negatives) + cluster loss.

    Keys of the teacher are pushed to the queue by ``after_step`` (so calling ``step`` twice
    on one batch gives the same loss). Keep ``queue_size`` well below the number of clips: a
    clip's own key from the previous epoch would otherwise sit in the queue as a negative.

    Logs ``loss``, ``instance``, ``cluster``, ``cluster_entropy`` and ``accuracy`` (fraction of
    queries whose own key scores highest among the batch's keys).
    """

    default_augment = SLICER_AUGMENT

    @dataclass
    class Config(TwoViewConfig):
        """SLICER hyper-parameters.

        Attributes:
            slice_frames: frames per segment ``S``.
            same_segment: True: both views come from one segment (only augmentations differ).
            max_pad_fraction: clips at most this fraction shorter than ``S`` are padded.
            proj_dim: L2-normalised instance projection (128).
            hidden_dim: hidden width of the projection and cluster heads.
            n_clusters: ``K``, clusters of the cluster-level head.
            temperature: instance InfoNCE temperature ``τ`` (0.07).
            cluster_temperature: temperature of the cluster-level NT-Xent (1.0, as Contrastive
                Clustering).
            cluster_weight: weight of the cluster-level loss.
            entropy_weight: weight of the cluster-marginal entropy term (1.0).
            tau: EMA decay of the teacher (0.999).
            queue_size: past teacher keys kept as extra negatives (0 disables the queue).
        """

        same_segment: bool = True
        proj_dim: int = 128
        hidden_dim: int = 1024
        n_clusters: int = 64
        temperature: float = 0.07
        cluster_temperature: float = 1.0
        cluster_weight: float = 1.0
        entropy_weight: float = 1.0
        tau: float = 0.999
        queue_size: int = 1024

    cfg: Config

    def __init__(self, encoder: Encoder, cfg: Config | None = None) -> None:
        super().__init__(encoder, cfg)
        c = self.cfg
        if not 0.0 <= c.tau <= 1.0 or c.temperature <= 0 or c.cluster_temperature <= 0:
            raise ValueError("need 0 <= tau <= 1 and positive temperatures")
        if c.n_clusters < 2:
            raise ValueError(f"n_clusters must be >= 2, got {c.n_clusters}")
        d = encoder.embed_dim
        self.projector = projection_mlp(d, c.hidden_dim, c.proj_dim)
        self.cluster_head = nn.Sequential(nn.Linear(d, c.hidden_dim), nn.ReLU(),
                                          nn.Linear(c.hidden_dim, c.n_clusters))
        self.teacher_encoder = frozen_copy(encoder)
        self.teacher_projector = frozen_copy(self.projector)
        self.queue = KeyQueue(c.queue_size, c.proj_dim)
        self._pending: torch.Tensor | None = None

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module, float]]:
        return [(self.encoder, self.teacher_encoder, self.cfg.tau),
                (self.projector, self.teacher_projector, self.cfg.tau)]

    def after_step(self, step: int) -> None:
        if self._pending is not None:
            self.queue.push(self._pending)
            self._pending = None

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        c = self.cfg
        z = torch.cat(self.embed_views(batch))
        q1, q2 = self.projector(z).chunk(2)
        with torch.no_grad():
            k1, k2 = self.teacher_projector(
                torch.cat(self.embed_views(batch, self.teacher_encoder))).chunk(2)
        negatives = self.queue.keys()
        instance = 0.5 * (info_nce(q1, k2, c.temperature, negatives)
                          + info_nce(q2, k1, c.temperature, negatives))
        a1, a2 = F.softmax(self.cluster_head(z), dim=-1).chunk(2)
        cluster, entropy = cluster_contrastive(a1, a2, c.cluster_temperature, c.entropy_weight)
        loss = instance + c.cluster_weight * cluster
        with torch.no_grad():
            # keys of the last training step wait for after_step; evaluation drops them
            self._pending = F.normalize(gather(torch.cat([k1, k2])), dim=-1) \
                if self.training else None
            sim = F.normalize(q1, dim=-1) @ F.normalize(k2, dim=-1).T
            acc = float((sim.argmax(1) == torch.arange(len(sim))).float().mean())
        return loss, {"loss": float(loss.detach()), "instance": float(instance.detach()),
                      "cluster": float(cluster.detach()), "cluster_entropy": float(entropy),
                      "accuracy": acc}
