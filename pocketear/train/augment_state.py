"""What the run's augmentations learn from the corpus before training, fitted once and stored.

On a fresh run ``Compose.fit`` sees the corpus' normalised clips (k-mix clusters their time
averages; pre/post-norm compute statistics) and its ``state()`` is written to
``RUN_DIR/augment_state.npz`` (plain arrays, loaded with ``allow_pickle=False``; no file when
nothing was learnt). ``--resume`` loads that file instead of refitting. Fitting is seeded by the
run's seed, so a resume that finds no file refits to the same state.

Memory banks (mixup, k-mix) are not stored: a resumed run starts with empty banks, so its mixing
partners differ from an uninterrupted run's (the data order, a function of seed and step, is
unchanged). Storing them would add up to ``bank_size`` slices (~50 MB for 2048 96×64 slices)
to every checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pocketear.augment.base import Augmentation, Clips, Compose
from pocketear.errors import InvalidValue

STATE_FILE = "augment_state.npz"


def prepare_augment(augment: Augmentation | None, clip: Callable[[int], np.ndarray],
                    n_clips: int, run_dir: Path, seed: int, resume: bool,
                    progress: bool = True, frames: int | None = None) -> None:
    """Fit ``augment`` on the clips and save its state, or load the saved state on resume.

    ``frames``: the task's slice length, the window augmented clips are cut to for the members
    fitted after a stochastic augmentation (see :meth:`Compose.fit`).
    """
    if augment is None or not hasattr(augment, "fit"):
        return
    path = Path(run_dir) / STATE_FILE
    if resume and path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            state = {k: saved[k] for k in saved.files}
        try:
            augment.load_state(state)
        except ValueError as err:
            raise InvalidValue(f"{path}: {err}; the run's augment config changed? delete the "
                             "file to refit") from None
        return
    rng = np.random.default_rng([seed, 3])
    if isinstance(augment, Compose):
        augment.fit(Clips(clip, n_clips), rng, progress, frames=frames)
    else:
        augment.fit(Clips(clip, n_clips), rng, progress)
    state = augment.state()
    if not state:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **state)
    os.replace(tmp, path)
