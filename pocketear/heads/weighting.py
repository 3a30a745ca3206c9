"""Loss weights of a multi-task objective, as modules: fixed, learnt by uncertainty, GradNorm.

Each :class:`LossWeighting` turns the ``(T,)`` losses of ``T`` tasks into one loss and says which
weights it used (``weights()``, logged by the ``multi`` task every step). The formulas are the pure
functions of :mod:`pocketear.losses.weighting`; the state (parameters, buffers) lives here, so it
is saved with the task and restored on ``--resume``. Like the heads, they are discarded after
pretraining.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pocketear.errors import InvalidValue
from pocketear.losses.weighting import (
    gradnorm_loss,
    renormalise,
    uncertainty_weighted_sum,
    weighted_sum,
)

SCHEMES = ("fixed", "uncertainty", "gradnorm")


class LossWeighting(nn.Module):
    """``forward(losses, shared)`` → the combined loss; ``weights()`` → the weights it used.

    ``shared``: parameters of the network the tasks share, last layer first (only GradNorm
    reads them). ``update()`` is called once per training step after the optimiser step (the
    ``multi`` task's ``after_step``), so calling ``forward`` twice on one batch gives the same
    loss. ``extra()`` holds per-task values worth logging besides the weights.
    """

    def __init__(self, n_tasks: int) -> None:
        super().__init__()
        if n_tasks < 1:
            raise InvalidValue(f"need at least one task to weigh, got {n_tasks}")
        self.n_tasks = n_tasks

    def forward(self, losses: torch.Tensor,
                shared: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        """The combined loss of the ``(T,)`` task losses."""
        raise NotImplementedError

    def weights(self) -> torch.Tensor:
        """``(T,)`` weights of the last ``forward`` (detached)."""
        raise NotImplementedError

    def extra(self) -> dict[str, torch.Tensor]:
        """Per-task ``(T,)`` values to log besides the weights (none by default)."""
        return {}

    def update(self) -> None:
        """Move the weights on after an optimiser step (nothing for most schemes)."""


def _initial(weights: Sequence[float] | None, n: int) -> torch.Tensor:
    w = torch.ones(n) if weights is None else torch.as_tensor(list(weights), dtype=torch.float32)
    if w.shape != (n,):
        raise InvalidValue(f"need {n} weights (one per task), got {len(w)}")
    return w


class FixedWeights(LossWeighting):
    """``Σ_i w_i L_i`` with constant weights (default 1 each: the plain sum)."""

    def __init__(self, n_tasks: int, weights: Sequence[float] | None = None) -> None:
        super().__init__(n_tasks)
        w = _initial(weights, n_tasks)
        if bool((w < 0).any()) or not bool((w > 0).any()):
            raise InvalidValue(f"fixed weights must be >= 0 with one > 0, got {w.tolist()}")
        # from the config, not learnt: not stored in checkpoints
        self.register_buffer("w", w, persistent=False)

    def forward(self, losses: torch.Tensor,
                shared: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        """``Σ_i w_i L_i``."""
        return weighted_sum(losses, self.w)

    def weights(self) -> torch.Tensor:
        """The constant weights."""
        return self.w.detach().clone()


class UncertaintyWeights(LossWeighting):
    """Learnt log-variances ``s_i``: ``Σ_i exp(-s_i) L_i + s_i`` (Kendall et al., CVPR 2018).

    ``s_i`` are parameters trained by the run's optimiser with the network (their weight decay
    is 0: decay would pull every weight towards 1). The weight of task ``i`` is
    ``exp(-s_i)``; it starts at ``weights[i]`` (default 1, ``s_i = 0``) and settles where
    ``exp(-s_i) = 1 / L_i`` (see :func:`~pocketear.losses.weighting.uncertainty_weighted_sum`).
    The combined loss can be negative (``s_i < 0`` once ``L_i < 1``).
    """

    def __init__(self, n_tasks: int, weights: Sequence[float] | None = None) -> None:
        super().__init__(n_tasks)
        w = _initial(weights, n_tasks)
        if not bool((w > 0).all()):
            raise InvalidValue(f"initial uncertainty weights must be > 0, got {w.tolist()}")
        self.log_vars = nn.Parameter(-torch.log(w))

    def forward(self, losses: torch.Tensor,
                shared: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        """``Σ_i exp(-s_i) L_i + s_i``."""
        return uncertainty_weighted_sum(losses, self.log_vars)

    def weights(self) -> torch.Tensor:
        """``exp(-s_i)``, the precision ``1/σ_i²`` each loss is multiplied by."""
        return torch.exp(-self.log_vars.detach())

    def extra(self) -> dict[str, torch.Tensor]:
        """The log-variances ``s_i`` (key ``s``)."""
        return {"s": self.log_vars.detach().clone()}


class GradNormWeights(LossWeighting):
    """GradNorm (Chen et al., ICML 2018): weights that balance the tasks' gradient norms.

    ``forward`` returns ``Σ_i w_i L_i`` with the current weights as constants (the run's
    optimiser never sees them, so its gradients and clipping cannot move them). In training
    (grad enabled), it also measures ``||∇_W L_i||₂`` on the shared layer ``W`` with
    ``torch.autograd.grad`` (one backward per task from ``L_i`` to ``W``; ``W`` is the network's
    last layer, so this pass is short), forms ``L_grad`` (Eq. (2),
    :func:`~pocketear.losses.weighting.gradnorm_loss`) and keeps ``∂L_grad/∂w``. ``update()``
    (after the optimiser step) applies it with the weights' own Adam (Kingma & Ba 2015,
    Algorithm 1; learning rate ``lr``, moments in buffers so a resumed run continues exactly),
    then renormalises the weights to sum to ``T`` (Chen et al. §3.2). The first training step's
    losses are ``L_i(0)``.

    ``W``: the first tensor of ``shared`` (passed last layer first) that every task's loss
    reaches, found once at the first training step (an encoder whose read-out skips its final
    projection falls back to the layer before it).

    ``extra()``: ``G`` (``G_i = w_i ||∇_W L_i||``) and ``G_target`` (``Ḡ r_i^α``) of the last
    training step.
    """

    def __init__(self, n_tasks: int, weights: Sequence[float] | None = None,
                 alpha: float = 1.5, lr: float = 0.025,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(n_tasks)
        w = _initial(weights, n_tasks)
        if not bool((w > 0).all()) or alpha < 0 or lr <= 0:
            raise InvalidValue(f"GradNorm needs initial weights > 0, alpha >= 0 and lr > 0; got "
                               f"{w.tolist()}, {alpha}, {lr}")
        self.alpha, self.lr, self.betas, self.eps = float(alpha), float(lr), betas, eps
        self.register_buffer("w", renormalise(w, n_tasks))
        self.register_buffer("initial", torch.zeros(n_tasks))
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))
        self.register_buffer("exp_avg", torch.zeros(n_tasks))
        self.register_buffer("exp_avg_sq", torch.zeros(n_tasks))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self._layer: int | None = None  # index into ``shared``, found at the first step
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None
        self._extra: dict[str, torch.Tensor] = {}

    def _norms(self, losses: torch.Tensor, shared: Sequence[torch.Tensor]) -> torch.Tensor:
        """``(T,)`` ``||∇_W L_i||₂`` on the chosen shared tensor ``W``."""
        order = range(len(shared)) if self._layer is None else [self._layer]
        for j in order:
            grads = [torch.autograd.grad(loss, shared[j], retain_graph=True,
                                         allow_unused=True)[0] for loss in losses]
            if all(g is not None for g in grads):
                self._layer = j
                return torch.stack([g.detach().float().norm() for g in grads])  # type: ignore[union-attr]
        raise InvalidValue("gradnorm: no shared layer is reached by every task's loss; use "
                           "task.weighting=fixed or uncertainty")

    def forward(self, losses: torch.Tensor,
                shared: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        """``Σ_i w_i L_i`` (weights constant); in training, ``∂L_grad/∂w`` for :meth:`update`."""
        total = weighted_sum(losses, self.w)
        self._pending = None
        if self.training and torch.is_grad_enabled() and losses.requires_grad and len(shared):
            norms = self._norms(losses, shared)
            current = losses.detach().float()
            initial = self.initial if bool(self.started) else current
            w = self.w.clone().requires_grad_(True)
            l_grad, target = gradnorm_loss(w, norms, current, initial, self.alpha)
            (grad,) = torch.autograd.grad(l_grad, w)
            self._pending = (grad.detach(), current)
            self._extra = {"G": (self.w * norms).detach(), "G_target": target}
        return total

    def weights(self) -> torch.Tensor:
        """The weights ``w_i`` of the last ``forward`` (they change only in :meth:`update`)."""
        return self.w.detach().clone()

    def extra(self) -> dict[str, torch.Tensor]:
        """``G`` and ``G_target`` of the last training step (empty before one)."""
        return dict(self._extra)

    @torch.no_grad()
    def update(self) -> None:
        """One Adam step of the weights on the last ``∂L_grad/∂w``, then renormalise to ``T``."""
        if self._pending is None:
            return
        grad, losses = self._pending
        self._pending = None
        if not bool(self.started):
            self.initial.copy_(losses)
            self.started.fill_(True)
        b1, b2 = self.betas
        self.steps += 1
        t = int(self.steps)
        self.exp_avg.mul_(b1).add_(grad, alpha=1 - b1)
        self.exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        step = self.lr / (1 - b1**t) * self.exp_avg / (
            (self.exp_avg_sq / (1 - b2**t)).sqrt() + self.eps)
        self.w.copy_(renormalise(self.w - step, self.n_tasks))


def build_weighting(scheme: str, n_tasks: int, weights: Sequence[float] | None = None,
                    alpha: float = 1.5, lr: float = 0.025) -> LossWeighting:
    """The :class:`LossWeighting` named ``scheme`` (``fixed``, ``uncertainty`` or ``gradnorm``).

    ``weights``: the fixed weights, or the initial ones of the learnt schemes (default 1 each).

    Raises:
        InvalidValue: an unknown scheme or unusable weights.
    """
    if scheme == "fixed":
        return FixedWeights(n_tasks, weights)
    if scheme == "uncertainty":
        return UncertaintyWeights(n_tasks, weights)
    if scheme == "gradnorm":
        return GradNormWeights(n_tasks, weights, alpha, lr)
    raise InvalidValue(f"task.weighting must be one of {', '.join(SCHEMES)}, got {scheme!r}")

