"""Deterministic batches: batch ``s`` is a pure function of (seed, s), so ``--resume`` continues
with exactly the data order of an uninterrupted run without storing sampler state."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pocketear.tasks.base import Batch, Task


class BatchSampler:
    """Walks seeded epoch permutations of the clips and asks the task for one example each."""

    def __init__(
        self,
        clips: Callable[[int], np.ndarray],
        n_clips: int,
        task: Task,
        batch_size: int,
        seed: int = 0,
        max_tries: int = 20,
    ) -> None:
        if n_clips < 1:
            raise ValueError("no clips to train on")
        self.clips, self.n, self.task = clips, n_clips, task
        self.batch_size, self.seed, self.max_tries = batch_size, seed, max_tries
        self._perm_epoch = -1
        self._perm = np.arange(n_clips)
        self.unusable = 0  # clips the task's sampler could not use (too short ...)

    def _clip_index(self, counter: int) -> int:
        epoch, pos = divmod(counter, self.n)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, 1, epoch]).permutation(self.n)
            self._perm_epoch = epoch
        return int(self._perm[pos])

    def batch(self, step: int) -> Batch:
        examples = []
        for k in range(self.batch_size):
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
                raise ValueError(
                    f"the {type(self.task).__name__} sampler rejected {self.max_tries} clips in a "
                    "row: the clips are too short for this task; use longer recordings or a "
                    "smaller slice/context setting"
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
        return (step * self.batch_size) // self.n


def steps_for_epochs(epochs: float, n_clips: int, batch_size: int) -> int:
    return max(1, int(np.ceil(epochs * n_clips / batch_size)))


