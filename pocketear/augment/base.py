"""The augmentation contract and its composition from config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pocketear.frontends.logmel import LogMelConfig


class Augmentation:
    """``aug(x, rng)``: a new ``(T, F)`` float32 log-mel slice of the same shape.

    Slices are normalised log-mels (per-bin mean 0, std 1 on the pretraining corpus), so
    amplitudes are in units of each bin's standard deviation. ``bind(frontend)`` gives
    augmentations that need it the frontend's configuration (mel bin frequencies).
    """

    def bind(self, frontend: LogMelConfig) -> Augmentation:
        return self

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


class Compose(Augmentation):
    """Apply augmentations in order."""

    def __init__(self, augmentations: Sequence[Augmentation]) -> None:
        self.augmentations = list(augmentations)

    def bind(self, frontend: LogMelConfig) -> Compose:
        self.augmentations = [a.bind(frontend) for a in self.augmentations]
        return self

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for aug in self.augmentations:
            x = aug(x, rng)
        return np.ascontiguousarray(x, dtype=np.float32)


def build_augment(specs: Sequence[Mapping[str, Any]] | None,
                  frontend: LogMelConfig | None = None) -> Compose | None:
    """``[{name, params}, ...]`` → a bound :class:`Compose` (None when the list is empty).

    Raises:
        ValueError: an entry without ``name``, an unknown name or a bad parameter.
    """
    from pocketear.registry import available, create

    if not specs:
        return None
    augs = []
    for i, spec in enumerate(specs):
        spec = dict(spec)
        name = spec.pop("name", None)
        params = dict(spec.pop("params", None) or {})
        if not name or spec:
            raise ValueError(f"augment[{i}]: expected {{name: ..., params: {{...}}}}, got "
                             f"{dict(spec, name=name)}")
        if name not in available("augmentation"):
            raise ValueError(f"augment[{i}]: unknown augmentation {name!r}; available: "
                             f"{', '.join(available('augmentation'))}")
        try:
            augs.append(create("augmentation", name, **params))
        except TypeError as err:
            raise ValueError(f"augment[{i}] ({name}): {err}") from None
    return Compose(augs).bind(frontend or LogMelConfig())
