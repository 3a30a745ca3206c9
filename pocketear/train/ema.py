"""Exponential moving average of weights, for tasks with a teacher/target network."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def ema_update(online: nn.Module, target: nn.Module, decay: float) -> None:
    """Target ← decay · target + (1 − decay) · online (parameters); buffers are copied."""
    for p_t, p_o in zip(target.parameters(), online.parameters(), strict=True):
        p_t.lerp_(p_o.detach(), 1.0 - decay)
    for b_t, b_o in zip(target.buffers(), online.buffers(), strict=True):
        b_t.copy_(b_o)
