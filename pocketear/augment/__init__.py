"""Augmentations of log-mel slices, registered by name and composed from a run's config.

A run config lists them as ``{name, params}`` entries; ``pocketear list augmentations`` names
them. Importing this package registers them. A task applies ``task.view(x, rng)`` to the slices its
definition treats as separate views (a triplet's anchor, positive and negative; TemporalGap's
two slices; the encoder inputs of Audio2Vec), so every view gets its own random draw.

Some augmentations learn from the corpus before training (``pre_norm``/``post_norm`` statistics,
``kmix`` centroids): the training loop calls ``Compose.fit`` on a fresh run and stores
``Compose.state()`` in the run folder as ``augment_state.npz``, reloaded on ``--resume``.
"""

from pocketear.augment.base import Augmentation, Clips, Compose, NamedChains, build_augment
from pocketear.augment.byol import PostNorm, PreNorm, RandomResizeCrop
from pocketear.augment.masking import GaussianNoise, SpecAugment
from pocketear.augment.mixing import KMix, LogMixupExp
from pocketear.augment.spectral import MelWarp, RandomEQ, TimeStretch

__all__ = ["Augmentation", "Clips", "Compose", "GaussianNoise", "KMix", "LogMixupExp", "MelWarp",
           "NamedChains", "PostNorm", "PreNorm", "RandomEQ", "RandomResizeCrop", "SpecAugment",
           "TimeStretch", "build_augment"]
