"""Define a pretext task, register it and pretrain it: the whole extension path in one file.

The task is a toy "arrow of time" objective (after Wei et al., "Learning and Using the Arrow of
Time", CVPR 2018, moved from video frames to log-mel slices): two disjoint slices of one clip, and
the head says whether the first precedes the second. Registering it makes it a task like any
other: ``pocketear list tasks`` shows it, ``--task slice_order`` trains it, the registry-wide
tests would test it.

Run it (about 10 s on two cores; writes into a temporary folder)::

    .venv/bin/python examples/custom_task.py

``tests/test_examples.py`` runs this file, so the example cannot go stale.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

import pocketear
from pocketear import register
from pocketear.encoders.base import Encoder
from pocketear.heads.mlp import MLP
from pocketear.tasks.base import Batch, ClipNeed, Example, Task, TaskConfig, crop


@register("task", "slice_order")
class SliceOrder(Task):
    """Which of two disjoint slices of a clip comes first (a toy arrow-of-time task)."""

    @dataclass
    class Config(TaskConfig):
        """SliceOrder hyper-parameters.

        Attributes:
            slice_frames: frames per slice ``S``.
            hidden: hidden sizes of the MLP on the two concatenated embeddings.
        """

        hidden: tuple[int, ...] = (64,)

    cfg: Config

    def __init__(self, encoder: Encoder, cfg: Config | None = None) -> None:
        super().__init__(encoder, cfg)
        self.head = MLP(2 * encoder.embed_dim, self.cfg.hidden, 1)

    def clip_need(self) -> ClipNeed:
        """Two disjoint slices: ``2 S`` frames (the loop filters shorter clips up front)."""
        return ClipNeed(2 * self.cfg.slice_frames)

    def sample(self, clip: np.ndarray, rng: np.random.Generator,
               other: Callable[[], np.ndarray]) -> Example | None:
        """Two disjoint slices in random order, and whether they are in time order."""
        s = self.cfg.slice_frames
        if self.clip_need().fit(clip) is None:
            return None
        t1 = int(rng.integers(0, len(clip) - 2 * s, endpoint=True))
        t2 = int(rng.integers(t1 + s, len(clip) - s, endpoint=True))
        in_order = bool(rng.random() < 0.5)
        first, second = (t1, t2) if in_order else (t2, t1)
        return {"first": self.view(crop(clip, first, s), rng),
                "second": self.view(crop(clip, second, s), rng),
                "in_order": np.asarray(float(in_order), dtype=np.float32)}

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Binary cross-entropy of the order logit; logs the accuracy."""
        x = torch.cat([batch["first"], batch["second"]]).unsqueeze(1)
        z1, z2 = self.encoder.embed(x).chunk(2)
        logit = self.head(torch.cat([z1, z2], dim=1)).squeeze(1)
        loss = F.binary_cross_entropy_with_logits(logit, batch["in_order"])
        accuracy = float(((logit > 0).float() == batch["in_order"]).float().mean())
        return loss, {"accuracy": accuracy}


def write_chirps(folder: Path, n: int = 12, seconds: float = 3.0, sr: int = 16000) -> Path:
    """Rising and falling chirps: clips whose order in time is audible."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        f0, f1 = sorted(rng.uniform(200, 3000, size=2))[:: 1 if i % 2 else -1]
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds))
        wave = 0.3 * np.sin(phase) + 0.01 * rng.standard_normal(t.size)
        sf.write(folder / f"chirp_{i:02d}.wav", wave.astype(np.float32), sr)
    return folder


def main(out: Path | None = None, steps: int = 20) -> dict:
    """Pretrain ``slice_order`` for ``steps`` steps on a tiny encoder; embed one clip."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(out or tmp)
        audio = write_chirps(root / "audio")
        summary = pocketear.pretrain(
            "slice_order", audio, root / "run", encoder="mobile_tiny", steps=steps,
            overrides=["optim.batch_size=8", "optim.warmup_steps=2", "train.log_every=5"],
            progress=False)
        model = pocketear.load(root / "run")
        emb = model.embed(next(audio.glob("*.wav")))
        print(f"slice_order: {summary['steps']} steps, final loss "
              f"{summary['final']['loss']:.3f}; embedding of one clip: {emb.shape}")
        return {"summary": summary, "embedding": emb}


if __name__ == "__main__":
    main()
