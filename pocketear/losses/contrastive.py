"""Contrastive and teacher–student losses (COLA, BYOL-A, SLICER, DeLoRes-S). Pure functions.

Every loss that uses the other examples of the batch (as negatives, or for batch statistics)
gathers them across processes with :func:`pocketear.losses.distributed.gather`, so a run on N
processes optimises the same objective as one process with the global batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pocketear.losses.distributed import gather, local_targets


def bilinear_logits(anchor: torch.Tensor, positive: torch.Tensor,
                    weight: torch.Tensor) -> torch.Tensor:
    """``s(x, x') = g(x)ᵀ W g(x')`` for every anchor against every positive, ``(B, B_global)``.

    COLA (Saeed, Grangier & Zeghidour 2021, "Contrastive learning of general-purpose audio
    representations", ICASSP), Sec. 2.2, eq. (1); the positives are gathered across processes.
    """
    return anchor @ weight @ gather(positive).T


def cosine_logits(anchor: torch.Tensor, positive: torch.Tensor,
                  temperature: float) -> torch.Tensor:
    """Cosine similarity over ``temperature`` (SimCLR's form; COLA's ablation baseline)."""
    a, p = F.normalize(anchor, dim=-1), F.normalize(gather(positive), dim=-1)
    return a @ p.T / temperature


def batch_softmax_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with each row's own positive as the class (COLA eq. (2)).

    The positive of local row ``i`` is gathered column ``rank·B + i``.
    """
    return F.cross_entropy(logits, local_targets(logits.shape[0], logits.device))


def info_nce(query: torch.Tensor, key: torch.Tensor, temperature: float = 0.07,
             queue: torch.Tensor | None = None, in_batch: bool = True) -> torch.Tensor:
    """InfoNCE of L2-normalised ``query`` against its ``key`` (the same row).

    The negatives are the queue's keys and (``in_batch``) the batch's other keys. Oord et al. 2018
    eq. (4) in MoCo's form (He et al. 2020, eq. (1)): ``-log exp(q·k⁺/τ) / Σ exp(q·k/τ)``. ``queue``
    ``(N, D)`` is assumed normalised and detached.
    """
    q, k = F.normalize(query, dim=-1), F.normalize(key, dim=-1)
    if in_batch:
        logits = q @ gather(k).T  # (B, B_global); positives on the local diagonal
        target = local_targets(q.shape[0], q.device)
    else:
        logits = (q * k).sum(-1, keepdim=True)  # (B, 1)
        target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    if queue is not None and len(queue):
        logits = torch.cat([logits, q @ queue.T], dim=1)
    return F.cross_entropy(logits / temperature, target)


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """SimCLR's NT-Xent over ``2N`` rows (Chen et al. 2020, eq. (1)), cosine similarity.

    Row ``i`` of ``a`` and row ``i`` of ``b`` are positives, the other ``2N − 2`` rows
    negatives; averaged over all ``2N`` anchors.
    """
    z = F.normalize(torch.cat([a, b]), dim=-1)
    n = a.shape[0]
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, target)


def cluster_contrastive(p1: torch.Tensor, p2: torch.Tensor, temperature: float = 1.0,
                        entropy_weight: float = 1.0, add_entropy: bool = True
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster-level contrastive loss on soft assignments ``(B, K)`` of two views.

    Li et al. 2021, "Contrastive Clustering" (AAAI), eqs. (5)–(7), the cluster loss SLICER
    (Seth et al. 2023, ICASSP, Sec. 2) adds to its instance loss: column ``k`` of the batch
    assignment matrix is the cluster's representation; the same column in the two views are
    positives, the other ``2K − 2`` columns negatives (NT-Xent, cosine, ``τ_C``). With
    ``add_entropy`` (Contrastive Clustering's eq. (7)) ``entropy_weight`` times the entropy of the
    clusters' batch marginals is subtracted (which rules out putting everything in one cluster);
    it enters as its gap to the maximum, ``2·log K − H`` (a constant offset: same gradients, and
    the loss stays ≥ 0). SLICER's official code computes the entropy but does not add it
    (``return loss #+ ne_loss``, ``ClusterLoss`` in ``src/utils/utils.py`` of GitHub
    ``Sreyan88/LAPE``): ``add_entropy=False``. Assignments are gathered
    across processes first.

    Returns ``(loss, entropy)`` with the entropy (summed over the two views) for logging, either
    way.
    """
    p1, p2 = gather(p1), gather(p2)
    contrast = nt_xent(p1.T, p2.T, temperature)
    entropy = p1.new_zeros(())
    for p in (p1, p2):
        marginal = p.sum(0) / p.sum()
        entropy = entropy - (marginal * torch.log(marginal.clamp_min(1e-12))).sum()
    if not add_entropy:
        return contrast, entropy.detach()
    gap = 2.0 * math.log(p1.shape[1]) - entropy
    return contrast + entropy_weight * gap, entropy.detach()


def byol_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BYOL's normalised MSE ``2 − 2·cos(q, z')``, mean over the batch.

    Grill et al. 2020, eq. (2); BYOL-A, Niizumi et al. 2021, eq. (1). ``target`` is detached
    here.
    """
    q, z = F.normalize(prediction, dim=-1), F.normalize(target.detach(), dim=-1)
    return (2.0 - 2.0 * (q * z).sum(-1)).mean()


def cross_correlation(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Cross-correlation matrix ``(D, D)`` of two batches (Barlow Twins, Zbontar et al. 2021).

    Each batch is standardised per dimension over the (global) batch (eq. (2)).
    """
    z1, z2 = gather(z1), gather(z2)
    n = z1.shape[0]
    z1 = (z1 - z1.mean(0)) / (z1.std(0, correction=0) + eps)
    z2 = (z2 - z2.mean(0)) / (z2.std(0, correction=0) + eps)
    return z1.T @ z2 / n


def barlow_twins(z1: torch.Tensor, z2: torch.Tensor,
                 off_diagonal_weight: float = 5e-3) -> torch.Tensor:
    """Barlow Twins: ``Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij²`` (Zbontar et al. 2021, eq. (1)).

    DeLoRes-S (Ghosh et al. 2022) uses it on BYOL-A's views. ``λ = 5e-3`` is the paper's.
    """
    c = cross_correlation(z1, z2)
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on + off_diagonal_weight * off
