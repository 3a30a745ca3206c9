"""The augmentation contract and its composition from config."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from pocketear.errors import InvalidValue
from pocketear.frontends.logmel import LogMelConfig


class Augmentation:
    """``aug(x, rng)``: a new ``(T, F)`` float32 log-mel slice of the same shape.

    Slices are normalised log-mels (per-bin mean 0, std 1 on the pretraining corpus), so
    amplitudes are in units of each bin's standard deviation. ``bind(frontend)`` gives
    augmentations that need it the frontend's configuration (mel bin frequencies).

    Optional hooks, for augmentations that learn something from the corpus before training
    (normalisation statistics, k-means centroids): ``fit(clips, rng, progress)`` is called once by
    the training loop on a fresh run, ``state()`` returns what it learnt as plain arrays (saved in
    the run as ``augment_state.npz``, no pickling) and ``load_state`` restores it on ``--resume``.
    ``reset()`` forgets transient state (memory banks) but keeps what ``fit`` learnt.
    ``stochastic`` is False for augmentations that draw nothing from ``rng`` (normalisations).
    """

    stochastic: bool = True

    def bind(self, frontend: LogMelConfig) -> Augmentation:
        """This augmentation for ``frontend``'s mel bins (default: nothing depends on them)."""
        return self

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The augmented slice, drawing any randomness from ``rng`` only."""
        raise NotImplementedError

    def fit(self, clips: Sequence[np.ndarray], rng: np.random.Generator,
            progress: bool = False) -> None:
        """Learn from the corpus' normalised clips ``(T_i, F)`` (default: nothing to learn)."""

    def state(self) -> dict[str, np.ndarray]:
        """What ``fit`` learnt, as named arrays (empty when nothing)."""
        return {}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore ``state()``; an augmentation without state accepts only an empty one."""
        if state:
            raise InvalidValue(f"{type(self).__name__} has no fitted state, got {sorted(state)}")

    def reset(self) -> None:
        """Forget transient state gathered while augmenting (memory banks)."""

    @property
    def needs_fit(self) -> bool:
        """Whether the subclass overrides :meth:`fit` (so the training loop must call it)."""
        return type(self).fit is not Augmentation.fit


class Clips(Sequence[np.ndarray]):
    """``n`` clips read on demand through ``get(i)`` (the training loop's normalised cache)."""

    def __init__(self, get: Callable[[int], np.ndarray], n: int) -> None:
        self.get, self.n = get, int(n)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return self.get(i % self.n)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.get(i) for i in range(self.n))


class _Augmented(Clips):
    """Clips passed through augmentations, clip ``i`` with its own seeded draw.

    Each clip is first cut to a random window of ``frames`` frames when longer and ``frames`` is
    given.
    """

    def __init__(self, clips: Sequence[np.ndarray], augs: Sequence[Augmentation],
                 seed: int, frames: int | None = None) -> None:
        def get(i: int) -> np.ndarray:
            x, rng = clips[i], np.random.default_rng([seed, i])
            if frames and len(x) > frames:
                start = int(rng.integers(len(x) - frames + 1))
                x = x[start : start + frames]
            for aug in augs:
                x = aug(x, rng)
            return np.asarray(x, dtype=np.float32)

        super().__init__(get, len(clips))


class Compose(Augmentation):
    """Apply augmentations in order."""

    def __init__(self, augmentations: Sequence[Augmentation]) -> None:
        self.augmentations = list(augmentations)

    def bind(self, frontend: LogMelConfig) -> Compose:
        """Bind every member to ``frontend``."""
        self.augmentations = [a.bind(frontend) for a in self.augmentations]
        return self

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The members applied in order, as one contiguous float32 slice."""
        for aug in self.augmentations:
            x = aug(x, rng)
        return np.ascontiguousarray(x, dtype=np.float32)

    def fit(self, clips: Sequence[np.ndarray], rng: np.random.Generator,
            progress: bool = False, frames: int | None = None) -> None:
        """Fit members in order, each on the clips as the members before it transform them.

        So ``post_norm`` learns the statistics of augmented inputs, as BYOL-A's Post-Norm does;
        then every member is reset, so training starts with empty memory banks.

        A member preceded only by deterministic ones (``pre_norm``) sees whole clips (k-mix
        clusters whole clips' time averages); one preceded by a stochastic augmentation sees a
        random window of ``frames`` frames of each clip (the task's slice length: what training
        views look like, and it bounds what memory banks hold during the fit).
        """
        for i, aug in enumerate(self.augmentations):
            if aug.needs_fit:
                before = self.augmentations[:i]
                window = frames if any(a.stochastic for a in before) else None
                seen = clips if not before else _Augmented(clips, before,
                                                           int(rng.integers(2**31)), window)
                aug.fit(seen, rng, progress)
        self.reset()

    def state(self) -> dict[str, np.ndarray]:
        """Members' states under keys ``"{index}.{Class}.{key}"``."""
        return {f"{i}.{type(a).__name__}.{k}": v
                for i, a in enumerate(self.augmentations) for k, v in a.state().items()}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Give each member its part of a :meth:`state` dict.

        Raises:
            InvalidValue: a key that names no member of this chain (the config changed).
        """
        parts: dict[int, dict[str, np.ndarray]] = {i: {} for i in range(len(self.augmentations))}
        for key, value in state.items():
            index, cls, name = (key.split(".", 2) + ["", ""])[:3]
            i = int(index) if index.isdigit() else -1
            if i not in parts or type(self.augmentations[i]).__name__ != cls or not name:
                raise InvalidValue(f"augment state key {key!r} does not match the augmentations "
                                 f"{[type(a).__name__ for a in self.augmentations]}")
            parts[i][name] = np.asarray(value)
        for i, aug in enumerate(self.augmentations):
            aug.load_state(parts[i])

    def reset(self) -> None:
        """Reset every member."""
        for aug in self.augmentations:
            aug.reset()


class NamedChains(Augmentation):
    """Several chains under names, fitted and stored as one: a multi-task run's augmentations.

    The ``multi`` task gives each sub-task its own chain (SLICER's, BYOL-A's, none ...); this
    holds them so the training loop fits and stores them like one chain. Each chain is fitted
    on its own task's slice length (``frames[name]``, see :meth:`Compose.fit`), all from one
    ``rng`` in name order; ``state()`` keys are ``"{name}:{chain key}"``. It augments nothing
    itself: every sub-task applies its own chain to its own views.
    """

    def __init__(self, chains: Mapping[str, Compose | None], frames: Mapping[str, int]) -> None:
        self.chains = dict(chains)
        self.frames = dict(frames)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Not applicable: each chain augments its own task's views."""
        raise TypeError("NamedChains holds one chain per task; call the task's own chain")

    def fit(self, clips: Sequence[np.ndarray], rng: np.random.Generator,
            progress: bool = False) -> None:
        """Fit every chain (:meth:`Compose.fit`) on its own task's slice length."""
        for name, chain in self.chains.items():
            if chain is not None:
                chain.fit(clips, rng, progress, frames=self.frames.get(name))

    def state(self) -> dict[str, np.ndarray]:
        """Every chain's state under keys ``"{name}:{key}"``."""
        return {f"{name}:{k}": v for name, chain in self.chains.items() if chain is not None
                for k, v in chain.state().items()}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Give each chain its part of a :meth:`state` dict.

        Raises:
            InvalidValue: a key that names no chain (the run's tasks or augmentations changed).
        """
        parts: dict[str, dict[str, np.ndarray]] = {n: {} for n, c in self.chains.items()
                                                 if c is not None}
        for key, value in state.items():
            name, sep, rest = key.partition(":")
            if not sep or name not in parts:
                raise InvalidValue(f"augment state key {key!r} names none of the chains "
                                   f"{sorted(parts)}")
            parts[name][rest] = value
        for name, part in parts.items():
            self.chains[name].load_state(part)  # type: ignore[union-attr]

    def reset(self) -> None:
        """Reset every chain."""
        for chain in self.chains.values():
            if chain is not None:
                chain.reset()


def build_augment(specs: Sequence[Mapping[str, Any]] | None,
                  frontend: LogMelConfig | None = None) -> Compose | None:
    """``[{name, params}, ...]`` → a bound :class:`Compose` (None when the list is empty).

    Raises:
        InvalidValue: an entry without ``name``, an unknown name or a bad parameter.
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
            raise InvalidValue(f"augment[{i}]: expected {{name: ..., params: {{...}}}}, got "
                             f"{dict(spec, name=name)}")
        if name not in available("augmentation"):
            raise InvalidValue(f"augment[{i}]: unknown augmentation {name!r}; available: "
                             f"{', '.join(available('augmentation'))}")
        try:
            augs.append(create("augmentation", name, **params))
        except TypeError as err:
            raise InvalidValue(f"augment[{i}] ({name}): {err}") from None
    return Compose(augs).bind(frontend or LogMelConfig())
