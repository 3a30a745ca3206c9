"""Metric-learning losses: the triplet margin loss of Jansen et al. 2018 and its negatives.

Random or semi-hard in-batch negatives (Schroff, Kalenichenko & Philbin, FaceNet, CVPR 2015,
Sec. 3.2). Pure functions on ``(B, D)`` embedding tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def squared_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise squared Euclidean distance ``||a_i - b_i||²``, shape ``(B,)``."""
    return (a - b).pow(2).sum(dim=-1)


def triplet_hinge(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float = 0.1,
    normalize: bool = True,
) -> torch.Tensor:
    """Per-triplet hinge ``max(0, ||a-p||² - ||a-n||² + margin)``, shape ``(B,)``.

    Jansen et al. 2018, "Unsupervised learning of semantic audio representations" (ICASSP),
    eq. (1): squared L2 distances and a hinge margin δ. With ``normalize=True`` the embeddings
    are first projected to the unit sphere, so squared distances lie in ``[0, 4]`` and the margin
    has a fixed scale (the embedding cannot satisfy the margin by just growing its norm).
    """
    if normalize:
        anchor, positive, negative = (F.normalize(t, dim=-1) for t in (anchor, positive, negative))
    d_ap = squared_distance(anchor, positive)
    d_an = squared_distance(anchor, negative)
    return F.relu(d_ap - d_an + margin)


def triplet_margin_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float = 0.1,
    normalize: bool = True,
) -> torch.Tensor:
    """Mean over the batch of :func:`triplet_hinge` (Jansen et al. 2018, eq. (1))."""
    return triplet_hinge(anchor, positive, negative, margin=margin, normalize=normalize).mean()


def pairwise_squared_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All squared Euclidean distances ``||a_i - b_j||²``, shape ``(B, M)``.

    Computed from differences, not ``|a|² + |b|² - 2ab`` (whose rounding would blur the strict
    ``d_an > d_ap`` test of :func:`semihard_negatives` on near-ties).
    """
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").pow(2)


def semihard_negatives(d_ap: torch.Tensor, d_an: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Index ``(B,)`` of the semi-hard negative of each anchor among ``M`` candidates.

    FaceNet (Schroff et al. 2015, Sec. 3.2) trains on negatives that are *farther* from the
    anchor than the positive but still inside the margin (``d_ap < d_an < d_ap + δ``): they
    carry gradient without being the hardest negatives, which the paper found to collapse the
    model early in training. The rule used here (the one of the common implementation,
    TensorFlow's ``triplet_semihard_loss``) needs no margin:

    1. among valid candidates with ``d_an > d_ap``, take the closest one. It is the hardest
       semi-hard negative when one lies inside the margin; otherwise no semi-hard negative
       exists and it is the nearest "easy" one (its hinge is 0).
    2. if no valid candidate is farther than the positive (all are hard), fall back to the
       *farthest* valid candidate, the least hard one, not the hardest overall (the collapse
       FaceNet warns about).

    Args:
        d_ap: ``(B,)`` anchor–positive squared distances.
        d_an: ``(B, M)`` anchor–candidate squared distances.
        valid: ``(B, M)`` bool, True where candidate ``j`` may be a negative of anchor ``i``
            (a slice of another clip); every row needs at least one True.

    Returns:
        ``(B,)`` long tensor of candidate indices.
    """
    if d_an.shape != valid.shape or d_an.shape[:1] != d_ap.shape:
        raise ValueError(f"shapes differ: d_ap {tuple(d_ap.shape)}, d_an {tuple(d_an.shape)}, "
                         f"valid {tuple(valid.shape)}")
    if not bool(valid.any(dim=1).all()):
        raise ValueError("every anchor needs at least one valid negative candidate")
    d_an = d_an.detach()
    farther = valid & (d_an > d_ap.detach()[:, None])
    inf = torch.tensor(float("inf"), dtype=d_an.dtype, device=d_an.device)
    closest_farther = torch.where(farther, d_an, inf).argmin(dim=1)
    farthest = torch.where(valid, d_an, -inf).argmax(dim=1)
    return torch.where(farther.any(dim=1), closest_farther, farthest)


def triplet_semihard_hinge(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    candidates: torch.Tensor,
    valid: torch.Tensor,
    margin: float = 0.1,
    normalize: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-anchor hinge of Jansen et al. 2018, eq. (1), with a mined semi-hard negative.

    Args:
        anchor: ``(B, D)`` embeddings of each example's anchor.
        positive: ``(B, D)`` embeddings of each example's positive.
        candidates: ``(M, D)`` embeddings that may serve as negatives.
        valid: ``(B, M)`` bool, which candidates are allowed for which anchor.
        margin: hinge margin ``δ`` on squared distances.
        normalize: L2-normalise all embeddings first (as :func:`triplet_hinge`).

    Returns:
        ``(hinge, d_ap, d_an)``, each ``(B,)``: the hinge ``max(0, d_ap - d_an + δ)`` with the
        negative chosen by :func:`semihard_negatives` (the selection is not differentiated,
        the distances are), and the two squared distances it uses.
    """
    if normalize:
        anchor, positive, candidates = (F.normalize(t, dim=-1)
                                        for t in (anchor, positive, candidates))
    d_ap = squared_distance(anchor, positive)
    with torch.no_grad():
        idx = semihard_negatives(d_ap, pairwise_squared_distance(anchor, candidates), valid)
    d_an = squared_distance(anchor, candidates[idx])
    return F.relu(d_ap - d_an + margin), d_ap, d_an
