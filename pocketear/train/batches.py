"""Deterministic batches: batch ``s`` is a pure function of (seed, s).

So ``--resume`` continues with exactly the data order of an uninterrupted run without storing
sampler state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pocketear.errors import InvalidValue
from pocketear.tasks.base import Batch, Task


@dataclass(frozen=True)
class ClipFilter:
    """Which clips of a corpus are long enough for a task (filtered before training).

    Attributes:
        usable: indices of the clips the task can use, in corpus order.
        total: clips in the corpus.
        min_frames: the task's need in frames (``Task.min_frames``).
        seconds: the same in seconds.
    """

    usable: np.ndarray
    total: int
    min_frames: int
    seconds: float

    @property
    def short(self) -> int:
        """Clips left out for being too short."""
        return self.total - len(self.usable)

    def message(self, task_name: str) -> str:
        """One line for the log, e.g. "412 of 3,000 clips are shorter than ..." ."""
        return (f"{self.short:,} of {self.total:,} clips are shorter than the {self.seconds:.2f} s "
                f"that {task_name} needs; training on {len(self.usable):,}")


def filter_short_clips(lengths: Sequence[int] | np.ndarray, task: Task, hop_seconds: float,
                       task_name: str | None = None) -> ClipFilter:
    """The clips of ``lengths`` (frames per clip) that ``task`` can use, decided up front.

    Without this, a corpus of mixed lengths fails mid-run once a batch draws too many short
    clips in a row; filtering first makes every draw usable and says how many were left out.

    Raises:
        InvalidValue: when no clip is long enough; the message names the task, its need in
            seconds and the settings that set it.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    need = task.clip_need()
    usable = np.flatnonzero(lengths >= need.min_frames)
    out = ClipFilter(usable, len(lengths), need.min_frames, need.min_frames * hop_seconds)
    if len(lengths) and not len(usable):
        name = task_name or type(task).__name__
        longest = int(lengths.max()) * hop_seconds
        raise InvalidValue(
            f"all {len(lengths):,} clips are shorter than the {out.seconds:.2f} s "
            f"({need.min_frames} frames) that {name} needs (longest: {longest:.2f} s); use "
            f"longer recordings or lower {need.settings} (e.g. --set task.slice_frames=...)")
    return out


class BatchSampler:
    """Walks seeded epoch permutations of the clips and asks the task for one example each.

    ``indices`` (default: all ``n_clips``) restricts the draws — examples and ``other()``
    negatives — to those clips, e.g. the ones :func:`filter_short_clips` kept. ``share`` (default:
    all) is the positions of the global batch this process draws (``Place.share`` under
    torchrun): example ``k`` of step ``s`` is the same whatever the number of processes.
    """

    def __init__(
        self,
        clips: Callable[[int], np.ndarray],
        n_clips: int,
        task: Task,
        batch_size: int,
        seed: int = 0,
        max_tries: int = 20,
        indices: Sequence[int] | np.ndarray | None = None,
        share: range | None = None,
    ) -> None:
        ids = np.arange(n_clips) if indices is None else np.asarray(indices, dtype=np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= n_clips):
            raise ValueError(f"indices must lie in 0 … {n_clips - 1}")
        if len(ids) < 1:
            raise InvalidValue("no clips to train on")
        self._read, self._ids = clips, ids
        self.n, self.task = len(ids), task
        self.batch_size, self.seed, self.max_tries = batch_size, seed, max_tries
        self.share = range(batch_size) if share is None else share
        self._perm_epoch = -1
        self._perm = np.arange(self.n)
        self.unusable = 0  # clips the task's sampler could not use (too short ...)

    def clips(self, i: int) -> np.ndarray:
        """Clip ``i`` of the sampler's own numbering (``0 … n - 1`` over ``indices``)."""
        return self._read(int(self._ids[i]))

    def _clip_index(self, counter: int) -> int:
        epoch, pos = divmod(counter, self.n)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, 1, epoch]).permutation(self.n)
            self._perm_epoch = epoch
        return int(self._perm[pos])

    def batch(self, step: int) -> Batch:
        """This process's share of training step ``step``'s batch (the same on every call).

        A clip the task's sampler rejects (too short ...) is replaced by a seeded random one, at
        most ``max_tries`` times in a row.

        Raises:
            InvalidValue: ``max_tries`` clips in a row were rejected.
        """
        examples = []
        for k in self.share:
            counter = step * self.batch_size + k
            rng = np.random.default_rng([self.seed, 2, counter])
            idx = self._clip_index(counter)
            example = None
            for _ in range(self.max_tries):
                example = self.task.sample(self.clips(idx), rng, self._other(rng, idx))
                if example is not None:
                    break
                self.unusable += 1
                idx = int(rng.integers(self.n))
            if example is None:
                raise InvalidValue(
                    f"the {type(self.task).__name__} sampler rejected {self.max_tries} clips in a "
                    f"row (it needs {self.task.min_frames} frames per clip); leave short clips "
                    "out (filter_short_clips), use longer recordings or lower "
                    f"{self.task.clip_need().settings}"
                )
            examples.append(example)
        return self.task.collate(examples)

    def _other(self, rng: np.random.Generator, exclude: int) -> Callable[[], np.ndarray]:
        def other() -> np.ndarray:
            if self.n == 1:
                return self.clips(exclude)
            j = int(rng.integers(self.n - 1))
            return self.clips(j + (j >= exclude))
        return other

    def epoch_of(self, step: int) -> int:
        """The epoch (pass over the sampler's clips) that step ``step``'s batch starts in."""
        return (step * self.batch_size) // self.n


def steps_for_epochs(epochs: float, n_clips: int, batch_size: int) -> int:
    """Steps of ``batch_size`` examples covering ``epochs`` passes over ``n_clips`` (>= 1)."""
    return max(1, int(np.ceil(epochs * n_clips / batch_size)))


