"""SLICER: student–teacher contrastive learning at the instance and the cluster level, with k-mix.

Seth, Ghosh, Tyagi, Umesh & Manocha, "SLICER: Learning universal audio representations using
low-resource self-supervised pre-training", ICASSP 2023 (arXiv:2211.01519), Sec. 2: a student
and a momentum (EMA) teacher; a symmetric instance-level InfoNCE between the student's
projection of one view and the teacher's of the other, in both view orders, with a queue of
past teacher keys as extra negatives (MoCo, He et al. 2020); a cluster-level contrastive loss on
the student's softmax assignments of the two views (Li et al. 2021, "Contrastive Clustering",
eqs. (5)–(7)); k-mix augmentation (the ``kmix`` augmentation: mixup partners chosen through
k-means clusters of the corpus).

The defaults follow the official code (GitHub ``Sreyan88/LAPE``: ``src/upstream/slicer/`` and
``src/utils/utils.py``; the code has no licence and was not used here): heads, cluster
count, losses, queue, temperatures, EMA and the augmentation chain. What cannot be a task
default, and the remaining differences, are named in :class:`SLICER`'s docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pocketear.encoders.base import Encoder
from pocketear.errors import InvalidValue
from pocketear.losses.contrastive import cluster_contrastive, info_nce
from pocketear.losses.distributed import gather
from pocketear.registry import register
from pocketear.tasks._twoview import TwoViewConfig, TwoViewTask, frozen_copy, projection_mlp
from pocketear.tasks.base import Batch

# The official config's augmentations in their listed order (``src/upstream/slicer/config.yaml``
# of Sreyan88/LAPE: MixupBYOLA (ratio 0.4), RandomResizeCrop (virtual crop 1.0–1.5, scales
# 0.6–1.5), Kmix (ratio 0.4, top_k 128, 4 clusters, 20 k-means iterations)), inside BYOL-A's
# Pre-/Post-Norm (Niizumi et al. 2021, "BYOL for Audio", IJCNN, Sec. 3.2): k-mix is applied
# *in addition to* BYOL-A's mixup, on the mixed and cropped slice. Our reading: the config lists
# them in the order they are applied; the order is not stated separately.
SLICER_AUGMENT = [
    {"name": "pre_norm"},
    {"name": "log_mixup_exp", "params": {"alpha": 0.4}},
    {"name": "random_resize_crop", "params": {"time_canvas": 1.5, "freq_canvas": 1.0,
                                              "time_scale": [0.6, 1.5],
                                              "freq_scale": [0.6, 1.5]}},
    {"name": "kmix", "params": {"k": 4, "partner": "farthest", "top_k": 128, "iters": 20,
                                "alpha": 0.4}},
    {"name": "post_norm"},
]

PROJECTORS = ("linear", "mlp")


class EpochCappedQueue(nn.Module):
    """FIFO of past teacher keys (MoCo, He et al. 2020, Sec. 3.2), capped at a fraction of an epoch.

    The cap applies once the epoch's length is known (:meth:`learn_epoch`). The buffers hold only
    the filled rows, so a checkpoint carries no empty rows (the official 65,536 × 128 queue would
    add 32 MB to every checkpoint of a small corpus); loading a state dict resizes them. ``seen``
    counts the examples whose keys were pushed, ``cap`` is the learnt limit (0: not learnt yet,
    ``size`` applies). Rows are in ring order; the losses use them as a set of negatives, so the
    order does not matter.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 0:
            raise InvalidValue(f"queue size must be >= 0, got {size}")
        self.size = int(size)
        self.register_buffer("data", torch.zeros(0, dim))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))  # oldest row once full
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("cap", torch.zeros((), dtype=torch.long))

    @property
    def limit(self) -> int:
        """Most keys kept: ``size``, or the learnt ``cap`` once it is set and smaller."""
        cap = int(self.cap)
        return min(self.size, cap) if cap > 0 else self.size

    @property
    def count(self) -> int:
        """Keys held now."""
        return len(self.data)

    def keys(self) -> torch.Tensor:
        """The held keys ``(count, D)``, in ring order (a set of negatives)."""
        return self.data

    @torch.no_grad()
    def push(self, keys: torch.Tensor, examples: int) -> None:
        """Append ``keys`` (the keys of ``examples`` examples), overwriting the oldest."""
        self.seen.add_(int(examples))
        limit = self.limit
        if limit == 0:
            return
        keys = keys.detach().to(self.data.dtype)[-limit:]
        room = limit - len(self.data)
        if room > 0:  # still growing: rows stay in arrival order, the oldest at row 0
            self.data = torch.cat([self.data, keys[:room]])
            keys = keys[room:]
        if len(keys):
            idx = (self.ptr + torch.arange(len(keys), device=self.data.device)) % limit
            self.data[idx] = keys
            self.ptr.copy_((self.ptr + len(keys)) % limit)

    @torch.no_grad()
    def set_cap(self, cap: int) -> None:
        """Limit the queue to its ``cap`` newest keys from now on."""
        self.cap.fill_(max(1, int(cap)))
        n = len(self.data)
        order = (self.ptr + torch.arange(n, device=self.data.device)) % max(n, 1)  # oldest first
        self.data = self.data[order][-self.limit:].clone()
        self.ptr.zero_()

    def learn_epoch(self, epoch: int, fraction: float) -> None:
        """At the start of ``epoch`` ≥ 1: cap at ``fraction`` × the examples of one epoch."""
        if fraction > 0 and epoch >= 1 and int(self.cap) == 0 and int(self.seen) > 0:
            self.set_cap(int(fraction * int(self.seen) / epoch))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str,
                              *args: Any, **kwargs: Any) -> None:
        saved = state_dict.get(prefix + "data")
        if isinstance(saved, torch.Tensor) and saved.dim() == 2 \
                and saved.shape[1] == self.data.shape[1]:
            self.data = torch.zeros(saved.shape, dtype=self.data.dtype, device=self.data.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


@register("task", "slicer")
class SLICER(TwoViewTask):
    """Symmetric instance InfoNCE (student vs EMA teacher, queue negatives) + cluster loss.

    Defaults as the official code (``Sreyan88/LAPE``): instance projector Linear(D→128); cluster
    head Linear(D→D)–ReLU–Linear(D→128)–Softmax (128 clusters); cluster loss without its entropy
    term (computed and logged, not added); τ 0.07, cluster τ 1.0; EMA 0.999; queue 65,536; the
    augmentation chain pre_norm → mixup → RRC → k-mix (4 spherical k-means clusters, farthest
    cluster first) → post_norm (``SLICER_AUGMENT``).

    Not task settings (run settings; give them on the command line for the official setup):

    - optimiser: the official code uses SGD lr 0.03, momentum 0.9, weight decay 1e-4 —
      ``--set optim.name=sgd --set optim.lr=0.03`` (momentum 0.9 and weight decay 1e-4 are the
      ``optim`` defaults). The project default is AdamW (``optim.lr`` 2e-3); both run under the
      loop's warm-up + cosine schedule, which the official schedule may not match.
    - batch: 128 per GPU on 4 GPUs in the official config — ``--set optim.batch_size=128``.
    - encoder: the official code runs only BYOL-A's AudioNTT2020 (2048-d, max + mean pooling);
      here any registered encoder, with its own read-out (``encoder.*``).

    The queue cap (our rule, the one deliberate difference): a queue longer than the corpus
    holds each clip's own keys from earlier epochs as negatives of its new views (false
    negatives of the teacher's nearly identical embedding). MoCo's and SLICER's corpora
    (ImageNet, AudioSet) are far larger than the queue, so they never meet this; FSDD (2,400
    clips) would. Both views' keys are pushed, so a queue of ``Q`` keys spans the last ``Q/2``
    examples; with independent epoch permutations a clip's previous visit lies ``U₁ + U₂`` epochs
    back (triangular on 0–2 epochs of ``N`` examples), so its own old keys are in the queue for
    a fraction ``(Q / 2N)² / 2`` of queries when ``Q ≤ 2N``. Rule: at the start of epoch 1 the
    task learns ``N`` (examples pushed in epoch 0) and caps the queue at ``queue_epoch_fraction
    × N`` keys (default 0.5: ≈ 3 % of queries meet an own old key; 1,200 keys on FSDD; against
    the default 65,536 the cap binds only below 131,072 examples per epoch). The first
    epoch needs no cap: no clip repeats within it. The cap and the counts live in the task's
    buffers, so ``--resume`` keeps them. ``queue_epoch_fraction: 0`` gives the official
    uncapped queue.

    Remaining differences, each a parameter: ``projector: mlp`` (BYOL's MLP projector, our
    earlier default); ``cluster_entropy: true`` (Contrastive Clustering's entropy term);
    ``hidden_dim``; k-mix's ``partner`` ranking (``kmix`` params ``partner: nearest|other|same``,
    ``k``, ``top_k``, ``spherical``; see :class:`~pocketear.augment.mixing.KMix`). k-mix's
    centroids are fitted on the chain's output before k-mix (mixed and cropped windows,
    ``Compose.fit``); the official code clusters the corpus before any augmentation.

    Keys of the teacher are pushed to the queue by ``after_step`` (so calling ``step`` twice
    on one batch gives the same loss). Logs ``loss``, ``instance``, ``cluster``,
    ``cluster_entropy`` and ``accuracy`` (fraction of queries whose own key scores highest among
    the batch's keys).
    """

    default_augment = SLICER_AUGMENT

    @dataclass
    class Config(TwoViewConfig):
        """SLICER hyper-parameters (defaults: the official code, ``Sreyan88/LAPE``).

        Attributes:
            slice_frames: frames per segment ``S``.
            same_segment: True: both views come from one segment (only augmentations differ).
            max_pad_fraction: clips at most this fraction shorter than ``S`` are padded.
            min_separation_frames: with ``same_segment: false`` only, the views' offsets differ
                by at least this many frames (``None``: ``S / 2``; see ``TwoViewConfig``).
            proj_dim: L2-normalised instance projection (128).
            projector: ``"linear"`` (official: Linear(D→proj_dim)) or ``"mlp"`` (BYOL's
                Linear–BatchNorm–ReLU–Linear with ``hidden_dim``, this project's earlier head).
            hidden_dim: hidden width of the cluster head (and of the ``mlp`` projector);
                0: the encoder's embedding size ``D`` (official).
            n_clusters: ``K``, clusters of the cluster-level head (128).
            temperature: instance InfoNCE temperature ``τ`` (0.07).
            cluster_temperature: temperature of the cluster-level NT-Xent (1.0, as Contrastive
                Clustering).
            cluster_weight: weight of the cluster-level loss (1.0: total = instance + cluster).
            cluster_entropy: add the cluster-marginal entropy term of Contrastive Clustering
                (eq. (7)); the official code computes it but does not add it (False).
            entropy_weight: its weight when ``cluster_entropy`` is on (1.0).
            tau: EMA decay of the teacher (0.999).
            queue_size: past teacher keys kept as extra negatives (65,536; 0 disables the queue).
            queue_epoch_fraction: from epoch 1 on, the queue keeps at most this fraction of one
                epoch's examples as keys (0.5; 0: no cap, the official queue; see the class
                docstring for the rule).
        """

        same_segment: bool = True
        proj_dim: int = 128
        projector: str = "linear"
        hidden_dim: int = 0
        n_clusters: int = 128
        temperature: float = 0.07
        cluster_temperature: float = 1.0
        cluster_weight: float = 1.0
        cluster_entropy: bool = False
        entropy_weight: float = 1.0
        tau: float = 0.999
        queue_size: int = 65_536
        queue_epoch_fraction: float = 0.5

    cfg: Config

    def __init__(self, encoder: Encoder, cfg: Config | None = None) -> None:
        super().__init__(encoder, cfg)
        c = self.cfg
        if not 0.0 <= c.tau <= 1.0 or c.temperature <= 0 or c.cluster_temperature <= 0:
            raise InvalidValue("need 0 <= tau <= 1 and positive temperatures")
        if c.n_clusters < 2:
            raise InvalidValue(f"n_clusters must be >= 2, got {c.n_clusters}")
        if c.projector not in PROJECTORS:
            raise InvalidValue(f"task.projector must be one of {', '.join(PROJECTORS)}, got "
                             f"{c.projector!r}")
        if c.hidden_dim < 0 or c.queue_epoch_fraction < 0:
            raise InvalidValue("task.hidden_dim and task.queue_epoch_fraction must be >= 0")
        d = encoder.embed_dim
        hidden = c.hidden_dim or d
        self.projector = nn.Linear(d, c.proj_dim) if c.projector == "linear" else \
            projection_mlp(d, hidden, c.proj_dim)
        self.cluster_head = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(),
                                          nn.Linear(hidden, c.n_clusters))
        self.teacher_encoder = frozen_copy(encoder)
        self.teacher_projector = frozen_copy(self.projector)
        self.queue = EpochCappedQueue(c.queue_size, c.proj_dim)
        self._pending: torch.Tensor | None = None

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module, float]]:
        """The teacher's encoder and projector, both updated with the decay ``tau``."""
        return [(self.encoder, self.teacher_encoder, self.cfg.tau),
                (self.projector, self.teacher_projector, self.cfg.tau)]

    def on_epoch_start(self, epoch: int) -> None:
        """Cap the queue at the start of epoch 1, once an epoch's length is known."""
        self.queue.learn_epoch(epoch, self.cfg.queue_epoch_fraction)

    def after_step(self, step: int) -> None:
        """Push the last training step's teacher keys to the queue."""
        if self._pending is not None:
            self.queue.push(self._pending, len(self._pending) // 2)
            self._pending = None

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Symmetric instance InfoNCE against the teacher plus the weighted cluster loss."""
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
        cluster, entropy = cluster_contrastive(a1, a2, c.cluster_temperature, c.entropy_weight,
                                               add_entropy=c.cluster_entropy)
        loss = instance + c.cluster_weight * cluster
        with torch.no_grad():
            # keys of the last training step wait for after_step; evaluation drops them
            self._pending = F.normalize(gather(torch.cat([k1, k2])), dim=-1) \
                if self.training else None
            sim = F.normalize(q1, dim=-1) @ F.normalize(k2, dim=-1).T
            acc = float((sim.argmax(1) == torch.arange(len(sim), device=sim.device)).float().mean())
        return loss, {"loss": float(loss.detach()), "instance": float(instance.detach()),
                      "cluster": float(cluster.detach()), "cluster_entropy": float(entropy),
                      "accuracy": acc}
