"""Features: predict engineered descriptors of a log-mel slice from its embedding.

A cheap auxiliary objective in the spirit of PASE's regression "workers" (Pascual, Ravanelli,
Serrà, Bonafonte & Bengio, "Learning Problem-agnostic Speech Representations from Multiple
Self-supervised Tasks", Interspeech 2019: small heads on the shared encoder regress signal
features such as the log power spectrum, MFCCs and prosody): here the
descriptors of the very slice the encoder reads, computed from its log-mel, regressed by one MLP
with a mean squared error on standardised targets. Usable alone or as an extra head of
``multi``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pocketear.encoders.base import Encoder
from pocketear.errors import InvalidValue
from pocketear.heads.mlp import MLP
from pocketear.losses.distributed import gather
from pocketear.losses.regression import mse, r_squared
from pocketear.registry import register
from pocketear.tasks.base import Batch, ClipNeed, Example, Task, TaskConfig

TARGETS = ("mean", "std", "centroid", "flux")


def target_sizes(targets: Sequence[str], n_mels: int) -> dict[str, int]:
    """Values per target group: ``F`` for ``mean`` and ``std``, 1 for ``centroid`` and ``flux``."""
    return {t: n_mels if t in ("mean", "std") else 1 for t in targets}


def slice_descriptors(x: np.ndarray, targets: Sequence[str]) -> np.ndarray:
    """The descriptors ``targets`` of a normalised log-mel slice ``(T, F)``, concatenated.

    - ``mean``, ``std``: each mel bin's mean and standard deviation over the frames (the
      log-mel statistics of the ``logmel-stats`` baseline, per slice).
    - ``centroid``: the spectral centroid in mel-bin units, ``Σ_f f p_tf / (F - 1)`` with
      ``p_tf = softmax_f(x_tf)`` (the linear "power" ``exp`` of the log-mel, normalised per
      frame), averaged over frames; in ``[0, 1]``. The slice is the *normalised* log-mel the
      task sees (each bin's corpus mean removed, scaled by its std), so this is the centroid of
      the power relative to the corpus' average spectrum, not of the raw spectrum.
    - ``flux``: spectral flux, the root mean square of the frame-to-frame log-mel change,
      averaged over frame pairs (0 for a one-frame slice).

    Returns float32 ``(sum of target_sizes,)``.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 1:
        raise ValueError(f"expected a (T, F) slice with T >= 1, got shape {x.shape}")
    out: list[np.ndarray] = []
    for t in targets:
        if t == "mean":
            out.append(x.mean(axis=0))
        elif t == "std":
            out.append(x.std(axis=0))
        elif t == "centroid":
            p = np.exp(x - x.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            bins = np.arange(x.shape[1]) / max(x.shape[1] - 1, 1)
            out.append(np.asarray([(p @ bins).mean()]))
        elif t == "flux":
            d = np.diff(x, axis=0)
            out.append(np.asarray([np.sqrt((d**2).mean(axis=1)).mean() if len(d) else 0.0]))
        else:
            raise ValueError(f"unknown descriptor {t!r}; known: {', '.join(TARGETS)}")
    return np.concatenate(out).astype(np.float32)


@register("task", "features")
class Features(Task):
    """Regress a slice's log-mel statistics and spectral descriptors from its embedding.

    Sampler: one slice of ``S`` frames at a uniform offset (short-clip policy as TemporalGap's:
    a clip short of ``S`` by at most ``max_pad_fraction`` is padded with each bin's silence
    level). The targets (:func:`slice_descriptors`) are computed on the slice's real frames,
    before augmentation; the encoder reads the augmented view (``Task.view``), as Audio2Vec's
    decoders' targets stay clean.

    Loss: an MLP on the clip embedding predicts the standardised targets; MSE per target group
    (``mean``: ``F`` values, ``std``: ``F``, ``centroid``: 1, ``flux``: 1), averaged over groups so
    every group counts alike whatever its size. Standardisation: each target value's mean and
    variance over every training example seen so far (running sums in buffers, updated by
    ``after_step`` from the last training batch, so ``step`` can be called repeatedly on one
    batch and ``--resume`` keeps them); before the first update, the batch's own statistics.

    Pitch is not offered: pYIN on the waveform would dominate the step time, and on a 64-bin
    log-mel F0 is not resolvable below a few semitones.

    Example keys: ``x`` ``(S, F)``; ``targets`` ``(K,)`` float32. Logs ``loss``, ``r2`` (over the
    standardised targets) and ``mse_<group>`` per target group.
    """

    @dataclass
    class Config(TaskConfig):
        """Features hyper-parameters.

        Attributes:
            slice_frames: frames per slice ``S`` (96 = 0.96 s).
            targets: descriptor groups to predict, from ``mean``, ``std``, ``centroid``,
                ``flux`` (see :func:`slice_descriptors`).
            hidden: hidden sizes of the MLP head.
            max_pad_fraction: clips at most this fraction shorter than ``S`` are padded with each
                bin's silence level (never part of a target); shorter ones yield ``None``.
        """

        targets: tuple[str, ...] = ("mean", "std", "centroid")
        hidden: tuple[int, ...] = (256,)
        max_pad_fraction: float = 0.1

    cfg: Config

    def __init__(self, encoder: Encoder, cfg: Config | None = None) -> None:
        super().__init__(encoder, cfg)
        c = self.cfg
        unknown = [t for t in c.targets if t not in TARGETS]
        if not c.targets or unknown or len(set(c.targets)) != len(c.targets):
            raise InvalidValue(f"task.targets must list distinct descriptors from "
                               f"{', '.join(TARGETS)}, got {list(c.targets)}")
        self.sizes = target_sizes(c.targets, encoder.n_mels)
        k = sum(self.sizes.values())
        self.head = MLP(encoder.embed_dim, c.hidden, k)
        # running sums of the targets over training examples: count, mean, sum of squared
        # deviations (Chan et al.'s pairwise update), float64 so long runs stay exact
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(k, dtype=torch.float64))
        self.register_buffer("m2", torch.zeros(k, dtype=torch.float64))
        self._pending: torch.Tensor | None = None

    def clip_need(self) -> ClipNeed:
        """One slice of ``S`` frames, short by at most ``max_pad_fraction`` of it."""
        return ClipNeed.of(self.cfg.slice_frames, self.cfg.max_pad_fraction)

    def sample(
        self, clip: np.ndarray, rng: np.random.Generator, other: Callable[[], np.ndarray]
    ) -> Example | None:
        """One slice (augmented view) and the descriptors of its clean, real frames."""
        cut = self.random_slice(clip, rng)
        if cut is None:
            return None
        clean, start = cut
        real = max(1, min(len(clean), len(clip) - start))  # padding lies at the end
        return {"x": self.view(clean, rng),
                "targets": slice_descriptors(clean[:real], self.cfg.targets)}

    def monitor_embeddings(self, batch: Batch) -> torch.Tensor:
        """Clip embeddings of the slices."""
        return self.encoder.embed(batch["x"].unsqueeze(1))

    def standardise(self, targets: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` targets standardised by the running statistics (the batch's before any)."""
        if float(self.count) >= 2:
            mean, var = self.mean, self.m2 / self.count
        else:
            t = gather(targets.detach().double())  # the global batch under torchrun
            mean, var = t.mean(0), t.var(0, correction=0)
        std = var.clamp_min(1e-12).sqrt().clamp_min(1e-3)  # constant targets: no blow-up
        return ((targets.double() - mean) / std).to(targets.dtype)

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """MSE of the head's predictions against the standardised descriptors, per group."""
        targets = batch["targets"].float()
        pred = self.head(self.encoder.embed(batch["x"].unsqueeze(1))).float()
        z = self.standardise(targets)
        parts, logs, i = [], {}, 0
        for name, size in self.sizes.items():
            part = mse(pred[:, i:i + size], z[:, i:i + size])
            parts.append(part)
            logs[f"mse_{name}"] = float(part.detach())
            i += size
        loss = torch.stack(parts).mean()
        with torch.no_grad():
            logs.update(loss=float(loss.detach()), r2=float(r_squared(pred, z)))
            # every rank folds in the global batch, so the statistics stay equal across ranks
            self._pending = gather(targets.detach().double()) if self.training else None
        return loss, logs

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        """Fold the last training batch's targets into the running statistics."""
        if self._pending is None:
            return
        t, self._pending = self._pending, None
        n_b = float(len(t))
        mean_b, m2_b = t.mean(0), ((t - t.mean(0)) ** 2).sum(0)
        n = float(self.count)
        delta = mean_b - self.mean
        total = n + n_b
        self.mean += delta * (n_b / total)
        self.m2 += m2_b + delta**2 * (n * n_b / total)
        self.count += n_b
