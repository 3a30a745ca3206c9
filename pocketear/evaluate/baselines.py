"""Honest baselines measured in the same run: log-mel statistics, random init, supervised.

Why: a pretext task is only "working" when its frozen embeddings beat both trivial features
(``logmel-stats``) and the same architecture with random weights (``random-init``), while the
same encoder trained on the labels (``supervised``) shows how far from the ceiling it is. The
end-to-end trainer here also runs the optional fine-tuning mode, starting from a checkpoint.

Each baseline is a registered :class:`Baseline` (``@register("baseline", name)``;
``pocketear list baselines``): the runner, the tables and the verdict read names, order and
roles from the registry (:func:`registered_baselines`), so a baseline is declared once.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from pocketear.data.cache import FeatureCache
from pocketear.encoders.base import Encoder
from pocketear.errors import InvalidValue
from pocketear.evaluate.features import Embeddings, logmel_stats
from pocketear.frontends.logmel import LogMel, LogMelConfig
from pocketear.model import Pretrained, pad_frames, read_windows, segment
from pocketear.registry import available, get, register
from pocketear.train.build import build_encoder

DEFAULT_ENCODER = "mobile_100"


@dataclass
class TrainBudget:
    """The end-to-end training recipe, a learning-rate grid chosen on valid.

    ``epochs`` passes over the train clips (at least ``steps``, at most ``max_steps``
    optimiser steps).

    Steps, not seconds, are the budget so results do not depend on machine load. Each lr of
    ``lrs`` is one run: Adam, linear warm-up over ``warmup`` of the steps, then cosine decay to
    zero (SGDR, Loshchilov & Hutter 2017, eq. 5, one cycle without restarts); validation
    accuracy every ``eval_every`` steps keeps the best weights (that is the chosen epoch) and
    stops a run after ``patience`` checks without improvement. The lr with the best validation
    accuracy (then loss) wins; its weights are kept, not refitted. Without validation clips
    nothing can select, so ``lr`` alone is trained for the whole budget.

    Cost on FSDD (mobile_100, one CPU thread, ~200 crops/s of FSDD's 0.2–1 s clips in
    training): ~2,000 train clips × 5 epochs ≈ 50 s per lr, ~2.5 min for the grid; the runner
    runs the grid once per task and shot setting (seed 0, fold 0) and reuses the chosen lr for
    the other seeds and folds (``grid_every_run`` runs it for each).

    Attributes:
        steps: fewest optimiser steps.
        epochs: passes over the train clips (when that is more than ``steps``).
        max_steps: most optimiser steps.
        batch_size: random crops per step.
        lr: Adam learning rate when there is nothing to select on (no validation clips).
        lrs: the learning-rate grid (one run each when validation clips exist).
        warmup: fraction of the steps with a linear warm-up.
        eval_every: steps between validation checks (0: about twice per epoch, 10–100 steps).
        patience: checks without improvement before a run stops.
        grid_every_run: run the grid for every seed and fold (else once per shot setting).
        max_seconds: wall-clock cap per run (a safety net; steps are the budget).
    """

    steps: int = 150
    epochs: float = 5.0
    max_steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3)
    warmup: float = 0.05
    eval_every: int = 0
    patience: int = 6
    grid_every_run: bool = False
    max_seconds: float = 300.0

    def total_steps(self, n_train: int) -> int:
        """Optimiser steps for ``n_train`` train clips."""
        return int(min(self.max_steps, max(self.steps,
                                           math.ceil(self.epochs * n_train / self.batch_size))))

    def check_every(self, n_train: int) -> int:
        """Steps between validation checks for ``n_train`` train clips."""
        if self.eval_every > 0:
            return self.eval_every
        return int(min(100, max(10, n_train // (2 * self.batch_size))))


@dataclass
class TrainResult:
    """What an end-to-end run did (for a grid: the chosen run, with every run in ``grid``)."""

    steps: int
    seconds: float
    best_valid: float | None
    history: list[dict[str, float]] = field(default_factory=list)
    lr: float = 0.0
    best_step: int = 0
    grid: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The fields of a ``results.json`` end-to-end ``runs`` entry."""
        return {"lr": self.lr, "steps": self.steps, "best_step": self.best_step,
                "best_valid": self.best_valid, "seconds": self.seconds, "grid": self.grid}


class Classifier(nn.Module):
    """Encoder → its read-out (``encoder.read``) → linear head.

    The head sits on the same clip vector the probes read, so ``supervised`` and fine-tuning
    differ from the linear probe only in training the encoder too.
    """

    def __init__(self, encoder: Encoder, n_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.readout_dim, n_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of log-mel ``(B, 1, T, F)``.

        ``lengths``: real frames per example (padding after them is left out of the pooling).
        """
        return self.head(self.encoder.read(x, lengths))


def default_reference(mean: np.ndarray, std: np.ndarray,
                      cfg: LogMelConfig | None = None) -> Pretrained:
    """An untrained default model (``mobile_100``, default log-mel) for baseline-only runs.

    Its normalisation stats come from the evaluated data.
    """
    cfg = cfg or LogMelConfig()
    frontend = LogMel(cfg)
    frontend.set_stats(mean, std)
    config: dict[str, Any] = {"encoder": {"name": DEFAULT_ENCODER}, "frontend": cfg.to_dict()}
    return Pretrained(frontend, build_encoder(config), config, source="")


def random_init(reference: Pretrained, seed: int) -> Pretrained:
    """The reference's encoder architecture freshly initialised with ``seed``.

    Same frontend and normalisation, so only the weights differ.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = build_encoder(reference.config)
    return Pretrained(copy.deepcopy(reference.frontend), encoder, reference.config,
                      source=f"random-init seed {seed}")


Embed = Callable[[Pretrained, str], Embeddings]


class Baseline:
    """A reference row measured in the same run, on the same splits, as the checkpoints.

    Class attributes say what the runner and the tables do with it:

    Attributes:
        rank: position among the baselines in every table and in ``results.json``.
        reference: a pretrained method "works" only when it beats every reference baseline on
            the suite average (the tables' verdict).
        seeded: a fresh model per seed (its frozen rows read seed ``s``'s embeddings), so the
            spread over seeds includes the initialisation.
        end_to_end: trained on the labels with the reference encoder (no frozen embeddings;
            costly, so ``EvalConfig.supervised=False`` leaves it out).
        has_encoder: uses the reference encoder (``results.json`` names it and its size).
    """

    rank: int = 0
    reference: bool = False
    seeded: bool = False
    end_to_end: bool = False
    has_encoder: bool = True

    def __init__(self, name: str) -> None:
        self.name = name

    def embeddings(self, feats: FeatureCache, reference: Pretrained, seeds: int, parts: int,
                   embed: Embed) -> dict[int, Embeddings]:
        """Frozen embeddings per seed (seed 0 only unless ``seeded``); none when end to end.

        Args:
            feats: raw log-mels of the task's clips.
            reference: the architecture and normalisation the encoder baselines use.
            seeds: seeds ``0..seeds-1`` of the run.
            parts: the view's time parts (0: per window).
            embed: the runner's cached extraction of a model's embeddings (label: progress).
        """
        return {}


@register("baseline", "logmel-stats")
class LogmelStatsBaseline(Baseline):
    """Per-bin mean and std of the log-mel: the trivial features every encoder must beat."""

    rank, reference, has_encoder = 0, True, False

    def embeddings(self, feats: FeatureCache, reference: Pretrained, seeds: int, parts: int,
                   embed: Embed) -> dict[int, Embeddings]:
        return {0: logmel_stats(feats, parts)}


@register("baseline", "random-init")
class RandomInitBaseline(Baseline):
    """The reference encoder with random weights, one init per seed: the architecture alone."""

    rank, reference, seeded = 1, True, True

    def embeddings(self, feats: FeatureCache, reference: Pretrained, seeds: int, parts: int,
                   embed: Embed) -> dict[int, Embeddings]:
        return {seed: embed(random_init(reference, seed), f"{self.name}/{seed}")
                for seed in range(seeds)}


@register("baseline", "supervised")
class SupervisedBaseline(Baseline):
    """The reference encoder trained end to end on the labels: the ceiling."""

    rank, end_to_end = 2, True


def registered_baselines() -> list[Baseline]:
    """Every registered baseline, in table order (``rank``, then name)."""
    kinds = sorted((get("baseline", n).rank, n) for n in available("baseline"))
    return [get("baseline", n)(n) for _, n in kinds]


def _crops(clips: list[np.ndarray], idx: np.ndarray, frames: int,
           rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops of ``min(len, frames)`` frames ``(B, 1, T_max, F)`` and their lengths.

    A longer clip gets a random time shift; a short clip is used whole.

    Shorter crops are padded to the batch's longest with each bin's own minimum
    (:func:`pad_frames`); the classifier masks the padded frames out of its pooling, so no
    flat spectrum that never occurs in real audio feeds the head (issue 12, point 2).
    """
    out, lengths = [], []
    for i in idx:
        x = torch.from_numpy(clips[int(i)])
        n = min(x.shape[0], frames)
        start = int(rng.integers(0, x.shape[0] - n + 1))
        out.append(x[start: start + n])
        lengths.append(n)
    longest = max(lengths)
    return (torch.stack([pad_frames(c, longest) for c in out])[:, None],
            torch.as_tensor(lengths))


def _windows_by_length(clips: list[np.ndarray], idx: np.ndarray, frames: int
                       ) -> tuple[dict[int, list[torch.Tensor]], dict[int, list[int]]]:
    """Every clip's windows grouped by window length, with the position of each one's clip.

    :func:`segment`: a short clip is one window of its own length. Positions are in ``idx``.
    """
    windows: dict[int, list[torch.Tensor]] = {}
    owner: dict[int, list[int]] = {}
    for j, i in enumerate(idx):
        for w in segment(torch.from_numpy(clips[int(i)]), frames):
            windows.setdefault(int(w.shape[0]), []).append(w)
            owner.setdefault(int(w.shape[0]), []).append(j)
    return windows, owner


@torch.no_grad()
def predict_clips(model: Classifier, clips: list[np.ndarray], idx: np.ndarray,
                  batch: int = 256) -> np.ndarray:
    """Clip probabilities ``(len(idx), C)``: softmax averaged over each clip's windows.

    Windows of equal length go through the model together, unpadded, so a clip's prediction
    never depends on what else is in the batch.
    """
    model.eval()
    out = torch.zeros(len(idx), model.head.out_features, dtype=torch.float64)
    count = torch.zeros(len(idx), dtype=torch.float64)
    windows, owner = _windows_by_length(clips, idx, model.encoder.input_frames)
    for n, ws in windows.items():
        own = torch.as_tensor(owner[n])
        for s in range(0, len(ws), batch):
            proba = model(torch.stack(ws[s: s + batch])[:, None]).softmax(-1).double()
            out.index_add_(0, own[s: s + batch], proba)
            count.index_add_(0, own[s: s + batch], torch.ones(len(proba), dtype=torch.float64))
    return (out / count.clamp(min=1)[:, None]).numpy()


@torch.no_grad()
def embed_clips(encoder: Encoder, clips: list[np.ndarray], idx: np.ndarray) -> np.ndarray:
    """Clip read-out embeddings ``(len(idx), D)``, e.g. for the 2-D map.

    The mean over windows, each window at its own length.
    """
    encoder.eval()
    windows = [segment(torch.from_numpy(clips[int(i)]), encoder.input_frames) for i in idx]
    out = [w.mean(0) for w in read_windows(encoder, windows)] if windows else []
    return np.stack(out) if out else np.zeros((0, encoder.readout_dim), np.float32)


def _valid_score(model: Classifier, clips: list[np.ndarray], y: np.ndarray,
                 idx: np.ndarray) -> tuple[float, float]:
    p = predict_clips(model, clips, idx)
    acc = float((p.argmax(1) == y[idx]).mean())
    nll = float(-np.log(np.maximum(p[np.arange(len(idx)), y[idx]], 1e-9)).mean())
    return acc, nll


def _schedule(total: int, warmup: float) -> Callable[[int], float]:
    """Learning-rate factor at step ``i`` (0-based): linear warm-up, then a half cosine to 0."""
    w = max(1, round(warmup * total))

    def factor(i: int) -> float:
        if i < w:
            return (i + 1) / w
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (i - w) / max(1, total - w))))

    return factor


def train_end_to_end(
    encoder: Encoder,
    clips: list[np.ndarray],
    y: np.ndarray,
    train_idx: np.ndarray,
    valid_idx: np.ndarray,
    n_classes: int,
    seed: int,
    budget: TrainBudget | None = None,
    lr: float | None = None,
) -> tuple[Classifier, TrainResult]:
    """Train ``encoder`` + a linear head at one learning rate on random crops of the train clips.

    Early stopping keeps the weights with the best validation (accuracy, then loss); the
    encoder is trained in place (pass a copy to keep the original).

    Args:
        encoder: the encoder to train (random init for ``supervised``, a checkpoint's copy for
            fine-tuning).
        clips: normalised log-mel ``(T, F)`` of every clip of the task.
        y: class id of every clip.
        train_idx: clips to train on.
        valid_idx: clips for early stopping (may be empty).
        n_classes: size of the head.
        seed: seeds the head, the crops and the batches.
        budget: steps, batch, schedule and early stopping.
        lr: peak learning rate (default ``budget.lr``).
    """
    budget = budget or TrainBudget()
    lr = budget.lr if lr is None else float(lr)
    rng = np.random.default_rng([seed, 23])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Classifier(encoder, n_classes)
    total = budget.total_steps(len(train_idx))
    every = budget.check_every(len(train_idx))
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(optimiser, _schedule(total, budget.warmup))
    loss_fn = nn.CrossEntropyLoss()
    frames = encoder.input_frames
    y_t = torch.as_tensor(y)
    best: tuple[tuple[float, float], int, dict[str, torch.Tensor]] | None = None
    bad, step, history = 0, 0, []
    t0 = time.perf_counter()
    for step in range(1, total + 1):
        model.train()
        idx = rng.choice(train_idx, size=budget.batch_size, replace=True)
        x, lengths = _crops(clips, idx, frames, rng)
        loss = loss_fn(model(x, lengths), y_t[idx])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        sched.step()
        over_time = time.perf_counter() - t0 > budget.max_seconds
        if len(valid_idx) and (step % every == 0 or step == total or over_time):
            acc, nll = _valid_score(model, clips, y, valid_idx)
            history.append({"step": step, "loss": float(loss.detach()), "valid_acc": acc,
                            "valid_nll": nll})
            if best is None or (acc, -nll) > best[0]:
                best = ((acc, -nll), step, copy.deepcopy(model.state_dict()))
                bad = 0
            else:
                bad += 1
                if bad >= budget.patience:
                    break
        if over_time:
            break
    if best is not None:
        model.load_state_dict(best[2])
    model.eval()
    return model, TrainResult(step, time.perf_counter() - t0,
                              None if best is None else best[0][0], history, lr,
                              step if best is None else best[1])


def train_supervised(
    make_encoder: Callable[[], Encoder],
    clips: list[np.ndarray],
    y: np.ndarray,
    train_idx: np.ndarray,
    valid_idx: np.ndarray,
    n_classes: int,
    seed: int,
    budget: TrainBudget | None = None,
    lrs: tuple[float, ...] | None = None,
) -> tuple[Classifier, TrainResult]:
    """One :func:`train_end_to_end` run per learning rate, the best on validation kept.

    Each run starts from ``make_encoder()`` (the same weights each time) with the same seed,
    so only the learning rate differs. The winner has the best validation accuracy, then the
    lowest validation loss (ties: the earlier lr in the grid). Without validation clips the
    grid cannot select: ``budget.lr`` alone is trained.

    Args:
        make_encoder: a fresh encoder per run (random init, or a checkpoint's copy).
        clips: normalised log-mel ``(T, F)`` of every clip of the task.
        y: class id of every clip.
        train_idx: clips to train on.
        valid_idx: clips for the lr choice and early stopping (may be empty).
        n_classes: size of the head.
        seed: the same seed for every run.
        budget: steps, batch, schedule and early stopping (as :func:`train_end_to_end`).
        lrs: the grid (default ``budget.lrs``); one value skips the search.
    """
    budget = budget or TrainBudget()
    grid = tuple(lrs if lrs is not None else budget.lrs) if len(valid_idx) else (budget.lr,)
    if not grid:
        raise InvalidValue("the learning-rate grid is empty; give at least one lr")
    best: tuple[tuple[float, float], Classifier, TrainResult] | None = None
    tried: list[dict[str, Any]] = []
    for lr in grid:
        model, res = train_end_to_end(make_encoder(), clips, y, train_idx, valid_idx,
                                      n_classes, seed, budget, lr)
        nll = min((h["valid_nll"] for h in res.history if h["valid_acc"] == res.best_valid),
                  default=0.0)
        tried.append({"lr": lr, "best_valid": res.best_valid, "best_step": res.best_step,
                      "steps": res.steps, "seconds": round(res.seconds, 2)})
        key = (res.best_valid or 0.0, -nll)
        if best is None or key > best[0]:
            best = (key, model, res)
    assert best is not None
    _, model, res = best
    res.grid = tried if len(grid) > 1 else []
    res.seconds = float(sum(t["seconds"] for t in tried))
    return model, res


__all__ = ["Baseline", "Classifier", "TrainBudget", "TrainResult", "default_reference",
           "embed_clips", "logmel_stats", "predict_clips", "random_init", "registered_baselines",
           "train_end_to_end", "train_supervised"]
