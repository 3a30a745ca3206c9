"""Shared fixtures for the task tests: a tiny test-only encoder and synthetic log-mel clips.

The tiny encoder follows the ``Encoder`` contract (``(B, 1, T, F)`` → ``(B, T', D)``, ``embed`` →
``(B, D)``) so the tasks are tested without depending on any registered encoder.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from pocketear.encoders.base import Encoder
from pocketear.tasks.base import Batch, Task

N_MELS = 16


class TinyEncoder(Encoder):
    """Two 3×3 convolutions (one with BatchNorm, to exercise buffers), per-frame flatten, linear."""

    frame_hop_ms = 20.0
    pooling = "max"

    def __init__(self, n_mels: int = N_MELS, embed_dim: int = 32, channels: int = 8) -> None:
        super().__init__()
        self.n_mels, self.embed_dim = n_mels, embed_dim
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d((1, 2), ceil_mode=True),
        )
        freq_out = math.ceil(math.ceil(n_mels / 2) / 2)  # two ceil-mode halvings
        self.proj = nn.Linear(channels * freq_out, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)  # (B, C, T', F')
        h = h.permute(0, 2, 1, 3).flatten(2)  # (B, T', C·F')
        return self.proj(h)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Run these tiny-tensor tests on one intra-op thread; restored afterwards.

    On a busy 2-core machine OpenMP's spinning threads made a step ~50x slower than
    single-threaded.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def make_encoder() -> Callable[..., Encoder]:
    """Factory: ``make_encoder(n_mels=16, seed=0)`` → a freshly initialised ``TinyEncoder``."""

    def factory(n_mels: int = N_MELS, seed: int = 0) -> Encoder:
        torch.manual_seed(seed)
        return TinyEncoder(n_mels=n_mels)

    return factory


def synthetic_clip(rng: np.random.Generator, frames: int = 600, n_mels: int = N_MELS) -> np.ndarray:
    """A normalised log-mel ``(T, F)`` with structure: events, a spectral tilt and a little noise.

    A few band-limited events of varying onset, length and frequency, a slow spectral tilt, and a
    little noise.
    """
    t = np.arange(frames)[:, None]
    f = np.arange(n_mels)[None, :]
    x = 0.3 * np.sin(2 * np.pi * t / rng.uniform(150, 400) + f / n_mels * rng.uniform(0, 3))
    for _ in range(int(rng.integers(4, 9))):
        on, dur = rng.integers(0, frames), rng.integers(20, 150)
        centre, width = rng.uniform(0, n_mels), rng.uniform(1, 4)
        env = ((t >= on) & (t < on + dur)).astype(float)
        x = x + rng.uniform(1, 3) * env * np.exp(-0.5 * ((f - centre) / width) ** 2)
    x = x + 0.2 * rng.standard_normal((frames, n_mels))
    return ((x - x.mean()) / x.std()).astype(np.float32)


@pytest.fixture
def make_batch() -> Callable[..., Batch]:
    """Factory: ``make_batch(task, size=8, seed=0)`` → a collated batch sampled by the task itself.

    The task samples it from synthetic ~600-frame clips with a fixed rng (same seed, same batch).
    """

    def factory(task: Task, size: int = 8, seed: int = 0, frames: int = 600) -> Batch:
        rng = np.random.default_rng(seed)
        n_mels = task.encoder.n_mels
        clips = [synthetic_clip(rng, frames, n_mels) for _ in range(size + 4)]

        examples = []
        for i in range(100 * size):
            cur = i % len(clips)

            def other(cur: int = cur) -> np.ndarray:  # any clip but the current one
                return clips[(cur + 1 + int(rng.integers(len(clips) - 1))) % len(clips)]

            ex = task.sample(clips[cur], rng, other)
            if ex is not None:
                examples.append(ex)
            if len(examples) == size:
                return task.collate(examples)
        raise AssertionError(f"{type(task).__name__} yielded too few examples from 600-frame clips")

    return factory
