"""Loss functions shared by the tasks; every loss in ``losses/`` is a pure function."""

from pocketear.losses.metric import squared_distance, triplet_hinge, triplet_margin_loss
from pocketear.losses.regression import (
    binary_entropy,
    mse,
    r_squared,
    soft_binary_cross_entropy,
)

__all__ = [
    "binary_entropy",
    "mse",
    "r_squared",
    "soft_binary_cross_entropy",
    "squared_distance",
    "triplet_hinge",
    "triplet_margin_loss",
]
