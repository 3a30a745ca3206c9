"""Regression losses and metrics: reconstruction of log-mel slices, normalised-gap targets.

Pure functions on tensors: no modules, no state, so every task and test can use them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every element (e.g. every bin of a ``(B, S, F)`` log-mel slice).

    The Audio2Vec objective (Tagliasacchi et al. 2019): the decoded slice against the true one.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"shape mismatch: pred {tuple(pred.shape)} vs target {tuple(target.shape)}"
        )
    return (pred - target).pow(2).mean()


def r_squared(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Coefficient of determination ``1 - SSE / SST`` (SST around the target's global mean).

    Logged next to the MSE because it says how much better than "predict the mean" a decoder is,
    independently of the log-mel's scale. Returns 0 when the target is constant.
    """
    sse = (pred - target).pow(2).sum()
    sst = (target - target.mean()).pow(2).sum()
    if sst <= eps:
        return torch.zeros((), dtype=pred.dtype, device=pred.device)
    return 1.0 - sse / sst


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """Elementwise ``-p log p - (1-p) log(1-p)`` in nats, with ``0 log 0 = 0``."""
    return -(torch.xlogy(p, p) + torch.xlogy(1.0 - p, 1.0 - p))


def soft_binary_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, zero_min: bool = True
) -> torch.Tensor:
    """Cross-entropy between a soft target in ``[0, 1]`` and ``sigmoid(logits)``, averaged.

    TemporalGap's loss in Tagliasacchi et al. 2019: the network outputs the normalised gap through
    a sigmoid and is trained with cross-entropy against the true normalised gap. With soft targets
    the cross-entropy's minimum is the target's entropy, not 0; ``zero_min=True`` subtracts it,
    giving the binary KL divergence: same gradients, but a loss that is 0 at the optimum, so its
    curve (and "did it decrease") is readable.
    """
    target = target.to(logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if zero_min:
        loss = loss - binary_entropy(target)
    return loss.mean()
