"""Combining the losses of several tasks: fixed weights, homoscedastic uncertainty, GradNorm.

Pure functions on tensors; the learnt state (log-variances, GradNorm's weights) lives in
:mod:`pocketear.heads.weighting`, which calls these.

- Fixed: ``Σ_i w_i L_i``.
- Uncertainty: Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses
  for Scene Geometry and Semantics", CVPR 2018, Eq. (7): ``Σ_i 1/(2σ_i²) L_i + log σ_i`` for
  regression losses, with the network learning the log-variance ``s_i := log σ_i²`` for
  numerical stability (their Sec. 3.2). We use ``Σ_i exp(-s_i) L_i + s_i``, which is twice
  Eq. (7) written in ``s_i`` (the same minimiser, a factor 2 on every gradient, one form for
  every task instead of the paper's ``1/σ²`` for classification and ``1/(2σ²)`` for regression).
  Its minimum over ``s_i`` is at ``exp(-s_i) = 1 / L_i``: a task's weight settles at the inverse
  of its loss, the inverse noise variance when ``L_i`` is a mean squared error.
- GradNorm: Chen, Badrinarayanan, Lee & Rabinovich, "GradNorm: Gradient Normalization for
  Adaptive Loss Balancing in Deep Multitask Networks", ICML 2018, Sec. 3: with
  ``G_i = ||∇_W w_i L_i||₂`` on a shared layer ``W``, ``Ḡ`` their mean, the loss ratio
  ``L̃_i = L_i(t) / L_i(0)`` and the relative inverse training rate ``r_i = L̃_i / mean_j L̃_j``,
  the weights minimise ``L_grad = Σ_i |G_i - Ḡ · r_i^α|`` (Eq. (2)) towards the targets
  ``Ḡ · r_i^α`` (Eq. (1)), held constant, and are renormalised to sum to the number of tasks
  after every update.
"""

from __future__ import annotations

import torch


def _check(losses: torch.Tensor, other: torch.Tensor, what: str) -> None:
    if losses.dim() != 1 or other.shape != losses.shape:
        raise ValueError(f"expected (T,) losses and (T,) {what}, got {tuple(losses.shape)} and "
                         f"{tuple(other.shape)}")


def weighted_sum(losses: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``Σ_i w_i L_i`` of ``(T,)`` losses and ``(T,)`` weights."""
    _check(losses, weights, "weights")
    return (weights.to(losses.dtype) * losses).sum()


def uncertainty_weighted_sum(losses: torch.Tensor, log_vars: torch.Tensor) -> torch.Tensor:
    """``Σ_i exp(-s_i) L_i + s_i`` (Kendall et al. 2018, Eq. (7) × 2 in ``s_i = log σ_i²``).

    Differentiable in both ``losses`` and ``log_vars``; for fixed ``L_i > 0`` it is minimal at
    ``s_i = log L_i``.
    """
    _check(losses, log_vars, "log-variances")
    s = log_vars.to(losses.dtype)
    return (torch.exp(-s) * losses + s).sum()


def relative_inverse_rates(losses: torch.Tensor, initial: torch.Tensor,
                           eps: float = 1e-12) -> torch.Tensor:
    """GradNorm's ``r_i = L̃_i / mean_j L̃_j``, ``L̃_i = L_i(t) / L_i(0)`` (Chen et al. 2018, §3.2).

    ``r_i > 1``: task ``i`` has trained more slowly than the average task. Initial losses at
    or below ``eps`` are read as ``eps``.
    """
    _check(losses, initial, "initial losses")
    ratio = losses / initial.to(losses.dtype).clamp_min(eps)
    return ratio / ratio.mean().clamp_min(eps)


def gradnorm_loss(weights: torch.Tensor, grad_norms: torch.Tensor, losses: torch.Tensor,
                  initial: torch.Tensor, alpha: float = 1.5
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``L_grad = Σ_i |G_i - Ḡ r_i^α|`` and the targets ``Ḡ r_i^α`` (Chen et al. 2018, Eq. (2)).

    Args:
        weights: ``(T,)`` task weights ``w_i`` (differentiate the result with respect to these).
        grad_norms: ``(T,)`` ``||∇_W L_i||₂`` of the *unweighted* losses on the shared layer; as
            ``w_i > 0``, ``G_i = ||∇_W w_i L_i||₂ = w_i ||∇_W L_i||₂``, so the gradient of
            ``L_grad`` with respect to ``w_i`` needs no second-order pass through the network.
        losses: ``(T,)`` current losses ``L_i(t)``.
        initial: ``(T,)`` losses at the first step, ``L_i(0)``.
        alpha: the asymmetry ``α`` (1.5 in most of the paper's experiments); 0 pulls every
            ``G_i`` to their mean.

    Returns:
        ``L_grad`` (scalar, differentiable in ``weights``) and the targets ``(T,)``, detached:
        the paper treats ``Ḡ · r_i^α`` as a constant so the weights cannot collapse to zero to
        meet it.
    """
    _check(losses, grad_norms, "gradient norms")
    g = weights * grad_norms.detach().to(weights.dtype)
    rates = relative_inverse_rates(losses.detach(), initial).to(weights.dtype)
    target = (g.mean() * rates.pow(alpha)).detach()
    return (g - target).abs().sum(), target


def renormalise(weights: torch.Tensor, total: float, floor: float = 1e-4) -> torch.Tensor:
    """Weights clipped at ``floor`` and rescaled to sum to ``total`` (GradNorm: the task count).

    The floor keeps every weight positive (a zero weight would silence its task for good, and
    ``G_i = w_i ||∇_W L_i||`` needs ``w_i > 0``).
    """
    w = weights.clamp_min(floor)
    return w * (total / w.sum())
