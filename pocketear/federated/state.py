"""What crosses the client boundary: the model's shared arrays, nothing of the audio.

One federated treatment for every task, decided per state entry of the task (and the frontend's
normalisation statistics):

- **averaged** (sent both ways, FedAvg/FedProx-weighted by local examples): every floating-point
  parameter and buffer of the task — the encoder, heads, EMA teachers (they follow the averaged
  students, as every client applies the same EMA rule), BatchNorm running statistics, the
  ``features`` task's running target statistics — and the frontend's per-bin mean/std, which
  round 1 takes from each client's own audio (the average is the federation's normalisation);
- **kept on the client** (never sent): queues of past keys (SLICER: they are embeddings of the
  client's own clips), integer counters (BatchNorm's batch count, data2vec's EMA step, queue
  pointers), optimiser moments (a fresh optimiser each round), augmentation memory banks and
  what augmentations fitted on the client's clips (k-mix clusters);
- **refused**: HuBERT's on-the-fly k-means (each client would fit its own, unaligned codebook;
  pass ``task.targets`` from ``pocketear cluster`` on audio the server may see).
"""

from __future__ import annotations

import numpy as np
import torch

from pocketear.errors import InvalidValue
from pocketear.frontends import Frontend
from pocketear.tasks.base import Task

LOCAL_PARTS = ("queue.",)  # state names holding a client's own embeddings
STATS = ("frontend.mean", "frontend.std")


def shared_keys(task: Task) -> list[str]:
    """Names of the task state entries that are averaged across clients, in a fixed order."""
    return [k for k, v in task.state_dict().items()
            if v.is_floating_point() and not any(p in k for p in LOCAL_PARTS)]


def get_arrays(task: Task, frontend: Frontend, keys: list[str]) -> list[np.ndarray]:
    """The shared arrays (``keys``, then the frontend's mean and std), float32 NumPy copies."""
    state = task.state_dict()
    tensors = [*(state[k] for k in keys), frontend.mean, frontend.std]
    return [t.detach().float().cpu().numpy().copy() for t in tensors]


def set_arrays(task: Task, frontend: Frontend | None, keys: list[str],
               arrays: list[np.ndarray], stats: bool = True) -> None:
    """Load arrays of :func:`get_arrays` into ``task`` (and the frontend's stats if ``stats``).

    Raises:
        InvalidValue: the arrays do not match this task's shared state (another task or size).
    """
    if len(arrays) != len(keys) + len(STATS):
        raise InvalidValue(f"received {len(arrays)} arrays for {len(keys)} + 2 shared entries; "
                           "the server and this client run different tasks or encoders")
    state = task.state_dict()
    new = {}
    for key, array in zip(keys, arrays, strict=False):
        if tuple(array.shape) != tuple(state[key].shape):
            raise InvalidValue(f"{key}: received shape {tuple(array.shape)}, the model has "
                               f"{tuple(state[key].shape)}; server and client configs differ")
        new[key] = torch.from_numpy(np.asarray(array)).to(state[key].dtype)
    task.load_state_dict(new, strict=False)
    if stats and frontend is not None:
        frontend.set_stats(np.asarray(arrays[-2]), np.asarray(arrays[-1]))


def check_federated(task_name: str, task_cfg: object) -> None:
    """Refuse what has no federated treatment (see the module docstring).

    Raises:
        InvalidValue: HuBERT without a fixed targets file.
    """
    if task_name == "hubert" and not getattr(task_cfg, "targets", ""):
        raise InvalidValue("federated hubert needs fixed targets: each client would fit its own "
                           "k-means; pass --set task.targets=FILE from `pocketear cluster`")
