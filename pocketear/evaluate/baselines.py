"""Honest baselines measured in the same run: log-mel statistics, random init, supervised.

Why: a pretext task is only "working" when its frozen embeddings beat both trivial features
(``logmel-stats``) and the same architecture with random weights (``random-init``), while the
same encoder trained on the labels (``supervised``) shows how far from the ceiling it is. The
end-to-end trainer here also runs the optional fine-tuning mode, starting from a checkpoint.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from pocketear.encoders.base import Encoder
from pocketear.evaluate.features import logmel_stats
from pocketear.frontends.logmel import LogMel, LogMelConfig
from pocketear.model import Pretrained, pad_frames, segment
from pocketear.train.build import build_encoder

BASELINES = ("logmel-stats", "random-init", "supervised")
DEFAULT_ENCODER = "mobile_100"


@dataclass
class TrainBudget:
    """The end-to-end training budget: ``epochs`` passes over the train clips, at least
    ``steps`` and at most ``max_steps`` optimiser steps.

    Steps, not seconds, are the budget so results do not depend on machine load. On the
    synthetic suite (~180 train clips) validation accuracy plateaus after 50–80 steps of 16
    crops, so the floor of 100 steps decides there; on FSDD (2,400 train clips, no validation
    split) a fixed 100 steps was less than one epoch and left ``supervised`` far below what the
    encoder can learn, so larger tasks get ``epochs`` passes.

    Attributes:
        steps: fewest optimiser steps.
        epochs: passes over the train clips (when that is more than ``steps``).
        max_steps: most optimiser steps.
        batch_size: random crops per step.
        lr: Adam learning rate.
        eval_every: steps between validation checks (early stopping).
        patience: checks without improvement before stopping.
        max_seconds: wall-clock cap per run (a safety net; steps are the budget).
    """

    steps: int = 100
    epochs: float = 3.0
    max_steps: int = 1500
    batch_size: int = 16
    lr: float = 2e-3
    eval_every: int = 10
    patience: int = 5
    max_seconds: float = 180.0

    def total_steps(self, n_train: int) -> int:
        """Optimiser steps for ``n_train`` train clips."""
        return int(min(self.max_steps, max(self.steps,
                                           math.ceil(self.epochs * n_train / self.batch_size))))


@dataclass
class TrainResult:
    """What an end-to-end run did."""

    steps: int
    seconds: float
    best_valid: float | None
    history: list[dict[str, float]] = field(default_factory=list)


class Classifier(nn.Module):
    """Encoder → clip embedding → linear head."""

    def __init__(self, encoder: Encoder, n_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.embed_dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.embed(x))


def default_reference(mean: np.ndarray, std: np.ndarray,
                      cfg: LogMelConfig | None = None) -> Pretrained:
    """An untrained default model (``mobile_100``, default log-mel) for baseline-only runs;
    its normalisation stats come from the evaluated data."""
    cfg = cfg or LogMelConfig()
    frontend = LogMel(cfg)
    frontend.set_stats(mean, std)
    config: dict[str, Any] = {"encoder": {"name": DEFAULT_ENCODER}, "frontend": cfg.to_dict()}
    return Pretrained(frontend, build_encoder(config), config, source="")


def random_init(reference: Pretrained, seed: int) -> Pretrained:
    """The reference's encoder architecture freshly initialised with ``seed``; same frontend and
    normalisation, so only the weights differ."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = build_encoder(reference.config)
    return Pretrained(copy.deepcopy(reference.frontend), encoder, reference.config,
                      source=f"random-init seed {seed}")


def _crops(clips: list[np.ndarray], idx: np.ndarray, frames: int,
           rng: np.random.Generator) -> torch.Tensor:
    out = []
    for i in idx:
        x = pad_frames(torch.from_numpy(clips[int(i)]), frames)
        start = int(rng.integers(0, x.shape[0] - frames + 1))
        out.append(x[start: start + frames])
    return torch.stack(out)[:, None]


@torch.no_grad()
def predict_clips(model: Classifier, clips: list[np.ndarray], idx: np.ndarray,
                  batch: int = 256) -> np.ndarray:
    """Clip probabilities ``(len(idx), C)``: softmax averaged over each clip's windows."""
    model.eval()
    frames = model.encoder.input_frames
    windows, owner = [], []
    for j, i in enumerate(idx):
        w = segment(torch.from_numpy(clips[int(i)]), frames)
        windows.append(w)
        owner += [j] * len(w)
    if not windows:
        return np.zeros((0, model.head.out_features))
    x = torch.cat(windows)[:, None]
    proba = torch.cat([model(x[s: s + batch]).softmax(-1) for s in range(0, len(x), batch)])
    out = torch.zeros(len(idx), proba.shape[1], dtype=torch.float64)
    own = torch.as_tensor(owner)
    out.index_add_(0, own, proba.double())
    out /= torch.bincount(own, minlength=len(idx)).clamp(min=1)[:, None]
    return out.numpy()


@torch.no_grad()
def embed_clips(encoder: Encoder, clips: list[np.ndarray], idx: np.ndarray) -> np.ndarray:
    """Clip embeddings ``(len(idx), D)`` (mean of window embeddings), e.g. for the 2-D map."""
    encoder.eval()
    out = [encoder.embed(segment(torch.from_numpy(clips[int(i)]), encoder.input_frames)[:, None])
           .mean(0) for i in idx]
    return torch.stack(out).numpy() if out else np.zeros((0, encoder.embed_dim))


def _valid_score(model: Classifier, clips: list[np.ndarray], y: np.ndarray,
                 idx: np.ndarray) -> tuple[float, float]:
    p = predict_clips(model, clips, idx)
    acc = float((p.argmax(1) == y[idx]).mean())
    nll = float(-np.log(np.maximum(p[np.arange(len(idx)), y[idx]], 1e-9)).mean())
    return acc, nll


def train_end_to_end(
    encoder: Encoder,
    clips: list[np.ndarray],
    y: np.ndarray,
    train_idx: np.ndarray,
    valid_idx: np.ndarray,
    n_classes: int,
    seed: int,
    budget: TrainBudget | None = None,
) -> tuple[Classifier, TrainResult]:
    """Train ``encoder`` + a linear head on random ``input_frames`` crops of the train clips.

    Early stopping keeps the weights with the best validation (accuracy, then loss); the
    encoder is trained in place (pass a copy to keep the original).

    Args:
        encoder: the encoder to train (random init for ``supervised``, a checkpoint's copy for
            fine-tuning).
        clips: normalised log-mel ``(T, F)`` of every clip of the task.
        y: class id of every clip.
        train_idx: clips to train on; valid_idx: clips for early stopping (may be empty).
        n_classes: size of the head.
        seed: seeds the head, the crops and the batches.
        budget: steps, batch, learning rate and early stopping.
    """
    budget = budget or TrainBudget()
    rng = np.random.default_rng([seed, 23])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Classifier(encoder, n_classes)
    optimiser = torch.optim.Adam(model.parameters(), lr=budget.lr)
    loss_fn = nn.CrossEntropyLoss()
    frames = encoder.input_frames
    y_t = torch.as_tensor(y)
    best: tuple[tuple[float, float], dict[str, torch.Tensor]] | None = None
    bad, step, history = 0, 0, []
    t0 = time.perf_counter()
    total = budget.total_steps(len(train_idx))
    for step in range(1, total + 1):
        model.train()
        idx = rng.choice(train_idx, size=budget.batch_size, replace=True)
        loss = loss_fn(model(_crops(clips, idx, frames, rng)), y_t[idx])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        over_time = time.perf_counter() - t0 > budget.max_seconds
        if len(valid_idx) and (step % budget.eval_every == 0 or step == total
                               or over_time):
            acc, nll = _valid_score(model, clips, y, valid_idx)
            history.append({"step": step, "loss": float(loss.detach()), "valid_acc": acc,
                            "valid_nll": nll})
            if best is None or (acc, -nll) > best[0]:
                best = ((acc, -nll), copy.deepcopy(model.state_dict()))
                bad = 0
            else:
                bad += 1
                if bad >= budget.patience:
                    break
        if over_time:
            break
    if best is not None:
        model.load_state_dict(best[1])
    model.eval()
    return model, TrainResult(step, time.perf_counter() - t0,
                              None if best is None else best[0][0], history)


__all__ = ["BASELINES", "Classifier", "TrainBudget", "TrainResult", "default_reference",
           "embed_clips", "logmel_stats", "predict_clips", "random_init", "train_end_to_end"]
