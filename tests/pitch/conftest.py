"""Pitch-tracker fixtures: sine notes on disk, an oracle CQT-peak model, a tiny spice run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from pocketear.frontends import CQT
from pocketear.pitch.model import PitchModel

SR = 16000
# The oracle reads pitch as the CQT's peak bin / 190: midi = 24 (C1, bin 0) + 95 · output
ORACLE_OFFSET, ORACLE_SLOPE = 24.0, 95.0


def sine(midi: float | np.ndarray, seconds: float = 1.0) -> np.ndarray:
    """A sine at ``midi`` (a number, or a per-sample MIDI curve), amplitude 0.5."""
    n = int(seconds * SR)
    curve = np.broadcast_to(np.asarray(midi, np.float64), (n,))
    hz = 440.0 * 2 ** ((curve - 69) / 12)
    return (0.5 * np.sin(2 * np.pi * np.cumsum(hz) / SR)).astype(np.float32)


class PeakBin(nn.Module):
    """Oracle 'encoder': the CQT frame's peak bin as a fraction of the bins, ``(B, T, 1)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0].argmax(-1, keepdim=True).float() / x.shape[-1]


class Logit(nn.Module):
    """Inverse of the model's sigmoid, so the pitch output is the encoder's value."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.logit(h, eps=1e-6)


class Sure(nn.Module):
    """Confidence logit 10 (≈ 1) for every frame."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.full_like(h, 10.0)


@pytest.fixture
def oracle() -> PitchModel:
    """A pitch model that reads the CQT peak: a known map to semitones, no training."""
    return PitchModel(CQT(), PeakBin(), Logit(), Sure()).eval()


@pytest.fixture(scope="module")
def spice_run(tmp_path_factory) -> Path:
    """A ``spice`` run of a few steps on sine notes, with a small encoder (not calibrated)."""
    from pocketear.train.api import pretrain

    root = tmp_path_factory.mktemp("spice")
    (root / "notes").mkdir()
    for i, midi in enumerate(range(45, 75, 5)):
        sf.write(root / "notes" / f"n{i}.wav", sine(midi, 1.5), SR)
    torch.manual_seed(0)
    pretrain("spice", root / "notes", root / "run", steps=6, progress=False, overrides=[
        "encoder.channels=[4,8,8]", "encoder.embed_dim=8", "optim.batch_size=4",
        "task.frames_per_clip=2", "data.workers=1", "train.threads=1"])
    return root / "run"

