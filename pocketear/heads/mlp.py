"""A small multi-layer perceptron head (e.g. TemporalGap's gap predictor)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Module):
    """``in_dim`` → [Linear → ReLU (→ Dropout)] per hidden size → Linear → ``out_dim``.

    Args:
        in_dim: input features.
        hidden: hidden layer sizes; empty gives a single linear layer.
        out_dim: output features.
        dropout: dropout after each hidden activation (0 disables it).
    """

    def __init__(
        self, in_dim: int, hidden: Sequence[int], out_dim: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_dim
        for width in hidden:
            layers += [nn.Linear(prev, int(width)), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            prev = int(width)
        layers.append(nn.Linear(prev, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(..., in_dim)`` → ``(..., out_dim)``."""
        return self.net(x)
