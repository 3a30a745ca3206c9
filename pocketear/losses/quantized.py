"""Losses of the quantised-target family (wav2vec 2.0, Wav2vec-C) and codebook statistics.

Baevski, Zhou, Mohamed & Auli, "wav2vec 2.0: A Framework for Self-Supervised Learning of Speech
Representations", NeurIPS 2020, §3.2: the contrastive loss Eq. (3) — at a masked step ``t`` the
context vector ``c_t`` must pick its quantised target ``q_t`` out of ``q_t`` and ``K``
distractors, drawn uniformly from the other masked steps of the same utterance:

    L_m = -log exp(sim(c_t, q_t) / κ) / Σ_{q̃ ∈ Q_t} exp(sim(c_t, q̃) / κ),

``sim`` the cosine similarity, κ = 0.1, K = 100 — and the diversity loss Eq. (4), which
maximises the entropy of each codebook's softmax averaged over the batch, in its perplexity
form ``L_d = (G·V − Σ_g exp(−Σ_v p̄_gv log p̄_gv)) / (G·V)`` (0 when every entry is equally
likely on average, ``1 − 1/V`` when each group puts all its mass on one entry).

Pure functions; :func:`sample_distractors` is the one numpy function: the task's sampler
draws the distractors with its own rng, so batches stay a pure function of (seed, step).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def distractor_width(k: int, frames: int) -> int:
    """Columns of :func:`sample_distractors`' output: ``min(k, frames − 1)``, at least 0."""
    return max(min(int(k), int(frames) - 1), 0)


def sample_distractors(mask: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Distractor frames ``(T, min(k, T − 1))`` for each masked frame of one clip's ``mask``.

    Row ``t`` of a masked frame holds ``min(k, m − 1)`` distinct masked frames other than
    ``t`` (``m`` masked frames in all), a uniform random subset of them, then ``-1`` padding;
    rows of unmasked frames are all ``-1``. A clip with a single masked frame has no
    distractor for it (the loss skips such frames). Frames outside ``mask`` (unmasked, padding)
    are never drawn.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 1 or k < 0:
        raise ValueError(f"need a 1-D mask and k >= 0, got shape {mask.shape}, k={k}")
    out = np.full((len(mask), distractor_width(k, len(mask))), -1, dtype=np.int64)
    masked = np.flatnonzero(mask)
    take = min(out.shape[1], len(masked) - 1)
    if take <= 0:
        return out
    # row i: the other masked frames in a random order (the own frame's key sorts last)
    keys = rng.random((len(masked), len(masked)))
    np.fill_diagonal(keys, np.inf)
    order = np.argsort(keys, axis=1)[:, :take]
    out[masked, :take] = masked[order]
    return out


def wav2vec_contrastive(context: torch.Tensor, targets: torch.Tensor, where: torch.Tensor,
                        distractors: torch.Tensor, temperature: float = 0.1
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """wav2vec 2.0 Eq. (3) at the frames ``where``, with each clip's own distractors.

    Args:
        context: predictions ``(B, T, D)`` (the projected encoder output ``c_t``).
        targets: quantised targets ``(B, T, D)`` (``q_t``; gradients flow into them too).
        where: ``(B, T)`` bool, the frames that contribute (masked frames of real audio).
        distractors: ``(B, T, W)`` frame indices into the same clip (``-1`` = none), from
            :func:`sample_distractors`. A distractor whose target equals the positive's (same
            codes) stays in: the paper removes none, and so a collapsed codebook scores the
            highest loss, not the lowest.
        temperature: κ (0.1).

    Returns:
        ``(loss, accuracy)``: the mean over the frames that have at least one distractor (a
        frame without any has nothing to contrast and is left out; zero, still attached to the
        graph, if no frame has one), and the share of those frames whose positive scores
        above every distractor (detached).
    """
    if context.shape != targets.shape or where.shape != context.shape[:2] \
            or distractors.shape[:2] != where.shape:
        raise ValueError(f"shapes: context {tuple(context.shape)}, targets "
                         f"{tuple(targets.shape)}, where {tuple(where.shape)}, distractors "
                         f"{tuple(distractors.shape)}")
    b, t = where.nonzero(as_tuple=True)
    neg = distractors[b, t]  # (N, W)
    has = neg >= 0
    rows = has.any(dim=1)
    if not bool(rows.any()):
        zero = context.sum() * 0.0 + targets.sum() * 0.0
        return zero, zero.detach()
    b, t, neg, has = b[rows], t[rows], neg[rows], has[rows]
    c = F.normalize(context[b, t], dim=-1)  # (N, D)
    cand = torch.cat([targets[b, t][:, None], targets[b[:, None], neg.clamp(min=0)]], dim=1)
    logits = (F.normalize(cand, dim=-1) @ c[..., None]).squeeze(-1) / temperature  # (N, 1 + W)
    logits = logits.masked_fill(~torch.cat([torch.ones_like(has[:, :1]), has], 1), float("-inf"))
    zeros = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
    loss = F.cross_entropy(logits, zeros)
    with torch.no_grad():
        acc = (logits[:, 0:1] > logits[:, 1:]).all(dim=1).float().mean()
    return loss, acc


def codebook_perplexity(probs: torch.Tensor) -> torch.Tensor:
    """``Σ_g exp(H(p̄_g))`` of code distributions ``(N, G, V)`` averaged over the ``N`` rows.

    Between ``G`` (each group always puts its mass on one entry) and ``G·V`` (uniform use of
    every entry). The soft counterpart of counting the codes in use (wav2vec 2.0 Eq. (4)).
    """
    if probs.dim() != 3 or len(probs) == 0:
        raise ValueError(f"expected non-empty (N, G, V) probabilities, got {tuple(probs.shape)}")
    p = probs.float().mean(dim=0)  # (G, V)
    return torch.exp(-torch.xlogy(p, p).sum(dim=-1)).sum()


def diversity_loss(probs: torch.Tensor) -> torch.Tensor:
    """wav2vec 2.0's diversity loss ``(G·V − perplexity) / (G·V)`` of ``(N, G, V)`` softmaxes.

    The softmaxes carry no Gumbel noise and no temperature (wav2vec 2.0, §3.2): the logits'
    own distribution. The paper weights it by α = 0.1.
    """
    g, v = probs.shape[-2:]
    return (g * v - codebook_perplexity(probs)) / (g * v)


def code_utilisation(codes: torch.Tensor, entries: int) -> float:
    """Share of the ``G·V`` codebook entries chosen at least once by hard codes ``(N, G)``."""
    if codes.dim() != 2:
        raise ValueError(f"expected (N, G) codes, got {tuple(codes.shape)}")
    groups = codes.shape[1]
    flat = codes.long() + entries * torch.arange(groups, device=codes.device)
    return float(torch.unique(flat).numel()) / (groups * entries)
