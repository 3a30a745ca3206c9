"""Losses of the masked-prediction family, computed on masked positions only.

Pure functions. Both take a boolean mask ``(B, T)`` and ignore every unmasked
position, which the tests check by changing predictions there: data2vec (Baevski et al. 2022,
§3.3, "we regress targets at masked time-steps") and HuBERT (Hsu et al. 2021, §II.B, α = 1: loss
on masked frames only, the variant the paper found best).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_regression(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                      beta: float = 0.0) -> torch.Tensor:
    """Mean regression loss over masked positions of ``(B, T, D)`` predictions.

    ``beta = 0``: squared error (data2vec 2.0's L2 loss). ``beta > 0``: data2vec's Eq. (3),
    Smooth L1 — squared ``(y - f)² / (2β)`` for ``|y - f| ≤ β``, else ``|y - f| - β / 2``.
    """
    if pred.shape != target.shape or mask.shape != pred.shape[:2]:
        raise ValueError(f"shapes: pred {tuple(pred.shape)}, target {tuple(target.shape)}, "
                         f"mask {tuple(mask.shape)}")
    p, t = pred[mask], target[mask]
    if beta <= 0:
        return (p - t).pow(2).mean()
    return F.smooth_l1_loss(p, t, beta=beta)


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                         mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``(B, T, K)`` logits against ``(B, T)`` integer labels, masked only."""
    if logits.shape[:2] != labels.shape or mask.shape != labels.shape:
        raise ValueError(f"shapes: logits {tuple(logits.shape)}, labels {tuple(labels.shape)}, "
                         f"mask {tuple(mask.shape)}")
    return F.cross_entropy(logits[mask], labels[mask])


def instance_norm_time(h: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Normalise ``(B, T, D)`` features per sequence and channel over time (data2vec §3.3)."""
    return F.instance_norm(h.transpose(1, 2).float(), eps=eps).transpose(1, 2)


def top_k_average(layers: list[torch.Tensor], k: int) -> torch.Tensor:
    """data2vec Eq. (1)–(2): the average of the top ``k`` instance-normalised layer outputs.

    All layers are averaged when there are fewer than ``k``.
    """
    if not layers or k < 1:
        raise ValueError("need at least one layer and k >= 1")
    top = layers[-k:]
    return torch.stack([instance_norm_time(h) for h in top]).mean(0)
