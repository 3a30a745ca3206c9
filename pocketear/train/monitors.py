"""Training monitors: representation collapse, and pretext tasks solved trivially.

Collapse monitors work on a batch of embeddings and are logged every N steps by the driver; a
second monitor warns when a task is solved trivially from the start.

Pure functions and classes returning Python values; they never take part in the loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


def embedding_std(emb: torch.Tensor, normalize: bool = False) -> float:
    """Mean over dimensions of the per-dimension standard deviation across the batch.

    Falls to 0 when every example gets the same embedding (complete collapse). With
    ``normalize=True`` rows are L2-normalised first (SimSiam's monitor: about ``1/sqrt(D)`` for
    embeddings spread over the sphere), which makes the number comparable across encoders. The
    population std (no Bessel correction) is used so a batch of one gives 0, not NaN.
    """
    emb = emb.detach().to(torch.float64).reshape(emb.shape[0], -1)
    if normalize:
        emb = F.normalize(emb, dim=1)
    return float(emb.std(dim=0, correction=0).mean())


def effective_rank(emb: torch.Tensor, center: bool = False, eps: float = 1e-12) -> float:
    """Effective rank ``exp(H(p))`` with ``p = σ / Σσ`` the normalised singular values.

    Roy & Vetterli 2007, "The effective rank: a measure of effective dimensionality" (EUSIPCO):
    between 1 (rank-one) and ``min(B, D)`` (all singular values equal). A falling effective rank
    is dimensional collapse even when the per-dimension std stays healthy. ``center=True``
    subtracts the batch mean first (measures the spread, not the offset). Returns 0 for an
    all-zero matrix.
    """
    emb = emb.detach().to(torch.float64).reshape(emb.shape[0], -1)
    if center:
        emb = emb - emb.mean(dim=0, keepdim=True)
    s = torch.linalg.svdvals(emb)
    total = s.sum()
    if total <= eps:
        return 0.0
    p = s / total
    entropy = -torch.xlogy(p, p).sum()
    return float(torch.exp(entropy))


def collapse_logs(emb: torch.Tensor) -> dict[str, float]:
    """Both monitors under the names the driver logs: ``emb_std`` and ``emb_eff_rank``."""
    return {"emb_std": embedding_std(emb), "emb_eff_rank": effective_rank(emb)}


# --- trivial-task monitor ------------------------------------------------------------------

# Logged values that say a pretext task is already solved: key -> (direction, threshold, what).
# ``frac_active``: triplets with a non-zero hinge (Triplet); ``accuracy``: the pretext
# classification of COLA / SLICER (in-batch pairs) and TemporalGap (gap bins).
SOLVED_SIGNALS: dict[str, tuple[str, float, str]] = {
    "frac_active": ("<=", 0.01, "of its triplets have a non-zero hinge"),
    "accuracy": (">=", 0.99, "pretext accuracy"),
}
GENERIC_HINT = ("harder negatives, longer clips, or a larger minimum separation between the "
                "slices or views of one clip")
TASK_HINTS = {
    "triplet": ("harder negatives (task.negatives=semihard), longer clips, or a larger "
                "task.min_separation_frames"),
}


@dataclass
class TrivialTaskMonitor:
    """Warns once when a task looks solved trivially at the start of training.

    Fed the logged values of the first steps (``update``), it fires when, over the last
    ``recent`` logged steps, the loss has fallen to at most ``loss_ratio`` of its first logged
    value (or has been at most ``zero_loss`` from the start), or a task-reported signal of
    :data:`SOLVED_SIGNALS` says the pretext is solved (e.g. Triplet's ``frac_active`` ≈ 0). A
    pretext task that is solved in its first few hundred steps teaches the encoder little:
    issue 12 found Triplet's hinge zero for 97 % of triplets from step 10 on short clips. Pure:
    no I/O; the driver prints and stores the message.

    Attributes:
        task: task name, used in the message and to pick the advice.
        until_step: only steps up to this one are judged ("from the start").
        recent: logged steps averaged for the evidence (robust to one noisy batch).
        loss_ratio: loss at most this fraction of its first value counts as near zero.
        zero_loss: an absolute loss at most this counts as zero.
    """

    task: str
    until_step: int = 500
    recent: int = 3
    loss_ratio: float = 0.01
    zero_loss: float = 1e-6
    warning: str | None = field(default=None, init=False)  # the message, once fired
    _first: float | None = field(default=None, init=False)
    _history: dict[str, list[float]] = field(default_factory=dict, init=False)

    def update(self, step: int, logs: dict[str, float]) -> str | None:
        """Feed one logged step; returns the warning the first time it fires, else None."""
        if self.warning is not None or step > self.until_step:
            return None
        for key in ("loss", *SOLVED_SIGNALS):
            v = logs.get(key)
            if isinstance(v, int | float) and math.isfinite(v):
                self._history.setdefault(key, []).append(float(v))
        losses = self._history.get("loss", [])
        if self._first is None and losses:
            self._first = losses[0]
        evidence = self._loss_evidence(step) or self._signal_evidence(step)
        if evidence is not None:
            hint = TASK_HINTS.get(self.task, GENERIC_HINT)
            self.warning = (f"{self.task}: this task is solved trivially on this data: "
                            f"{evidence}; try {hint}")
        return self.warning

    def _loss_evidence(self, step: int) -> str | None:
        losses = self._history.get("loss", [])
        if self._first is None or len(losses) < self.recent:
            return None
        now = sum(losses[-self.recent:]) / self.recent
        if max(abs(v) for v in losses) <= self.zero_loss:
            return f"loss {now:.2g} at step {step}, at most {self.zero_loss:g} since the start"
        if len(losses) <= self.recent:
            return None  # a fall needs the first value outside the recent ones
        if self._first > self.zero_loss and 0 <= now <= self.loss_ratio * self._first:
            return (f"loss {now:.2g} at step {step}, {100 * now / self._first:.2g} % of its "
                    f"first value {self._first:.3g}")
        return None

    def _signal_evidence(self, step: int) -> str | None:
        for key, (op, threshold, what) in SOLVED_SIGNALS.items():
            vals = self._history.get(key, [])
            if len(vals) < self.recent:
                continue
            now = sum(vals[-self.recent:]) / self.recent
            if (now <= threshold) if op == "<=" else (now >= threshold):
                return f"{100 * now:.3g} % {what} at step {step} ({key})"
        return None
