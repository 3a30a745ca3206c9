"""Metric-learning losses: the triplet margin loss of Jansen et al. 2018.

Pure functions on ``(B, D)`` embedding tensors.
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
