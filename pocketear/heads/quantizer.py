"""wav2vec 2.0's product quantiser: G codebooks of V entries, chosen by Gumbel-softmax.

Baevski, Zhou, Mohamed & Auli, "wav2vec 2.0", NeurIPS 2020, §2 ("Quantization module"): a
linear layer maps a feature vector ``z`` to logits ``l ∈ R^{G×V}``; group ``g`` picks entry
``i = argmax_v (l_gv + n_v) / τ`` (Gumbel noise ``n = −log(−log u)``, ``u ~ U(0, 1)``); the
forward pass uses that hard one-hot choice, the backward pass the gradient of the Gumbel
softmax ``exp((l_gv + n_v)/τ) / Σ_k exp((l_gk + n_k)/τ)`` (straight-through); the chosen
entries (``d/G`` values each) are concatenated and linearly projected. τ is annealed from 2 to
0.5 by a factor 0.999995 per update (§4.2). The paper's G = 2, V = 320 and ``d/G`` = 128
(BASE) are the defaults.

At evaluation (``eval()``) there is no noise: each group takes the argmax of its logits, so a
frame's code is a deterministic function of its features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pocketear.errors import InvalidValue

LOGIT_STD = 5.0  # initial spread of the logits for unit-variance features (see GumbelQuantizer)


def gumbel_temperature(step: int, start: float, end: float, decay: float) -> float:
    """τ after ``step`` updates: ``max(end, start · decay^step)`` (wav2vec 2.0, §4.2)."""
    return max(end, start * decay ** step)


@dataclass
class Quantized:
    """What the quantiser returns for features ``(..., in_dim)``.

    Attributes:
        q: projected quantised vectors ``(..., out_dim)`` (the contrastive targets).
        codes: the entry each group chose ``(..., G)`` (long).
        probs: the softmax of the logits ``(..., G, V)``, without noise or temperature (the
            distribution the diversity loss and the codebook perplexity read).
    """

    q: torch.Tensor
    codes: torch.Tensor
    probs: torch.Tensor


class GumbelQuantizer(nn.Module):
    """Features ``(..., in_dim)`` → quantised vectors ``(..., out_dim)`` (product quantisation).

    The logits layer starts with weights ``N(0, (LOGIT_STD)² / in_dim)`` (ours; the paper does
    not say): unit-variance features then give logits of std ``LOGIT_STD`` = 5 whatever
    ``in_dim`` is, large enough that the input rather than the Gumbel noise (std ≈ 1.3) decides
    most codes from the first step — targets that change at random every step cannot be
    learned — yet not so large that the softmax saturates and its gradients vanish. The
    temperature
    schedule counts the updates in a buffer (``anneal()`` after each optimiser step), so it
    resumes with a checkpoint.

    Args:
        in_dim: size of the features that are quantised.
        groups: G, codebooks.
        entries: V, entries per codebook.
        code_dim: d, size of the concatenated entries (each entry ``d / G``).
        out_dim: size of the projection of the concatenated entries.
        temperature: τ's ``(start, end, decay per update)`` (2, 0.5, 0.999995).
    """

    def __init__(self, in_dim: int, groups: int = 2, entries: int = 320, code_dim: int = 256,
                 out_dim: int = 256,
                 temperature: tuple[float, float, float] = (2.0, 0.5, 0.999995)) -> None:
        super().__init__()
        start, end, decay = (float(t) for t in temperature)
        if groups < 1 or entries < 2 or code_dim < groups or code_dim % groups:
            raise InvalidValue(f"need groups >= 1, entries >= 2 and code_dim a multiple of "
                               f"groups; got {groups}, {entries}, {code_dim}")
        if not 0 < end <= start or not 0 < decay <= 1:
            raise InvalidValue(f"need 0 < gumbel end <= start and 0 < decay <= 1; got {start}, "
                               f"{end}, {decay}")
        self.groups, self.entries = groups, entries
        self.schedule = (start, end, decay)
        self.logits = nn.Linear(in_dim, groups * entries)
        nn.init.normal_(self.logits.weight, std=LOGIT_STD / in_dim**0.5)
        nn.init.zeros_(self.logits.bias)
        self.codebook = nn.Parameter(torch.randn(groups, entries, code_dim // groups))
        self.proj = nn.Linear(code_dim, out_dim)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @property
    def temperature(self) -> float:
        """τ after the updates made so far."""
        return gumbel_temperature(int(self.updates), *self.schedule)

    def anneal(self) -> None:
        """Count one update (call after each optimiser step): τ moves on by ``decay``."""
        self.updates += 1

    def forward(self, z: torch.Tensor) -> Quantized:
        """Quantise ``(..., in_dim)`` features: hard Gumbel codes in training, argmax in eval."""
        logits = self.logits(z).float().unflatten(-1, (self.groups, self.entries))
        if self.training:
            onehot = F.gumbel_softmax(logits, tau=self.temperature, hard=True, dim=-1)
        else:
            onehot = F.one_hot(logits.argmax(dim=-1), self.entries).to(logits.dtype)
        codes = onehot.detach().argmax(dim=-1)
        chosen = torch.einsum("...gv,gvd->...gd", onehot, self.codebook.to(onehot.dtype))
        return Quantized(self.proj(chosen.flatten(-2)), codes, logits.softmax(dim=-1))
