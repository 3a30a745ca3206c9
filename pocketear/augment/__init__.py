"""Augmentations of log-mel slices, registered (``pocketear list augmentations``) and composed
from config as a list of ``{name, params}`` (DESIGN §2).

Importing this package registers them. A task applies ``task.view(x, rng)`` to the slices its
definition treats as separate views (a triplet's anchor, positive and negative; TemporalGap's
two slices; the encoder inputs of Audio2Vec), so every view gets its own random draw.
"""

from pocketear.augment.base import Augmentation, Compose, build_augment
from pocketear.augment.spectral import MelWarp, RandomEQ, TimeStretch

__all__ = ["Augmentation", "Compose", "MelWarp", "RandomEQ", "TimeStretch", "build_augment"]
