"""Span masks (data2vec, HuBERT, wav2vec 2.0) and random token masks (BEATs) for masked prediction.

They choose which input steps a student does not see.

Baevski, Zhou, Mohamed & Auli, "wav2vec 2.0", NeurIPS 2020, §3.1 (span masking: random starting
indices, the ``M`` following steps masked, spans may overlap) and Baevski et al., "data2vec",
ICML 2022, §3.2 (p = 0.65, M = 10 for speech).

Convention for ``p`` (the one data2vec's p = 0.65 is stated in): the number of span starts is
``floor(p · T / M + u)``, ``u ~ U(0, 1)``, so it equals ``p · T / M`` in expectation and, with
overlaps, a long sequence has ``1 - (1 - p / M)^M`` ≈ 49 % of its steps masked for p = 0.65,
M = 10 (wav2vec 2.0 §3.1 reports ~49 %). Never empty (at least one span) and, for T ≥ 2, never
full: short sequences clip the span to ``ceil(T / 2)`` so one span cannot cover them, and if
overlapping spans still hide everything one random step is unmasked (a student with no visible
frame has nothing to predict from).
"""

from __future__ import annotations

import numpy as np


def expected_mask_ratio(mask_prob: float, span: int) -> float:
    """Asymptotic fraction of masked steps for :func:`span_mask` (independent starts)."""
    return 1.0 - (1.0 - mask_prob / span) ** span


def span_mask(length: int, mask_prob: float, span: int, rng: np.random.Generator,
              exact: int | None = None) -> np.ndarray:
    """Boolean mask ``(length,)``: spans of ``span`` steps from ``floor(p·T/M + u)`` random starts.

    The starts are distinct, and there is at least one.

    Args:
        length: number of steps ``T``.
        mask_prob: ``p`` (share of steps that start a span, divided by the span: see module doc).
        span: span length ``M``; clipped to ``ceil(T / 2)`` for short sequences.
        rng: numpy generator (the sampler's, so masks are a pure function of (seed, step)).
        exact: if given, unmask/mask random steps afterwards so exactly this many are masked
            (data2vec 2.0 drops masked tokens, so every sequence of a batch must keep as many).
    """
    if length < 1 or span < 1 or not 0.0 < mask_prob <= 1.0:
        raise ValueError(f"need length >= 1, span >= 1 and 0 < mask_prob <= 1; got {length}, "
                         f"{span}, {mask_prob}")
    span = min(span, max(1, -(-length // 2)))
    last = length - span  # starts in 0 … last keep the span inside the sequence
    n = int(np.floor(mask_prob * length / span + rng.random()))
    n = min(max(n, 1), last + 1)
    starts = rng.choice(last + 1, size=n, replace=False)
    mask = np.zeros(length, dtype=bool)
    for s in starts:
        mask[s: s + span] = True
    if length > 1 and mask.all():
        mask[rng.integers(length)] = False
    if exact is not None:
        if not 1 <= exact < length:
            raise ValueError(f"exact must be in 1 … {length - 1}, got {exact}")
        on, off = np.flatnonzero(mask), np.flatnonzero(~mask)
        if len(on) > exact:
            mask[rng.choice(on, size=len(on) - exact, replace=False)] = False
        elif len(on) < exact:
            mask[rng.choice(off, size=exact - len(on), replace=False)] = True
    return mask


def random_mask(length: int, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask with ``round(ratio · T)`` (at least 1, at most ``T - 1``) random steps masked.

    BEATs, Chen et al. 2022, §2.3: random patch masking at 75 %.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    k = int(np.clip(round(ratio * length), 1, max(1, length - 1)))
    mask = np.zeros(length, dtype=bool)
    mask[rng.choice(length, size=k, replace=False)] = True
    return mask
