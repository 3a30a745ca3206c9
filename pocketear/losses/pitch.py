"""SPICE's losses: relative pitch from two shifted CQT slices, and the confidence target.

Gfeller et al., "SPICE: Self-supervised Pitch Estimation", IEEE/ACM TASLP 28 (2020), §II-B:
the pitch error is ``e = (ŷ1 - ŷ2) - σ (k1 - k2)`` for two pitch shifts of one frame, σ the
output units per CQT bin, and the loss a Huber loss on ``e``; the confidence head learns to
predict ``|e|`` (``(1 - c - |e| / σ)²``). δ = σ / 4 and the scaling follow the unofficial
re-implementation the docs list (``docs/PAPERS.md`` §6), as the paper's values were not found.
Pure functions on tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def relative_pitch_error(y1: torch.Tensor, y2: torch.Tensor, shift: torch.Tensor,
                         sigma: float) -> torch.Tensor:
    """``(y1 - y2) - σ · shift``: how far the outputs' difference is from the true one.

    ``shift`` is how many bins the pitch of view 1 sits above that of view 2 (``k2 - k1`` when
    view ``i`` is the slice starting ``k_i`` bins up: a higher slice sees the pitch lower).
    """
    return (y1 - y2) - sigma * shift.to(y1.dtype)


def pitch_loss(error: torch.Tensor, sigma: float) -> torch.Tensor:
    """Huber loss of the relative-pitch error with δ = σ / 4 (quadratic within a quarter bin)."""
    return F.huber_loss(error, torch.zeros_like(error), delta=0.25 * sigma)


def confidence_loss(confidence: torch.Tensor, error: torch.Tensor, sigma: float) -> torch.Tensor:
    """``(1 - c - |e| / σ)²``: confidence 1 where the error is 0, falling by one per bin of error.

    ``error`` is detached: the confidence learns about the pitch head, it does not shape it.
    """
    return (1.0 - confidence - error.detach().abs() / sigma).pow(2).mean()
