"""Collapse monitors on a batch of embeddings (DESIGN §6: logged every N steps by the driver).

Pure functions returning Python floats; they never take part in the loss.
"""

from __future__ import annotations

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
