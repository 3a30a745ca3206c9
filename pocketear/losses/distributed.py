"""Gathering embeddings across processes, so in-batch negatives span the global batch.

Contrastive losses that use the other examples of a batch as negatives (COLA, SLICER's instance
loss) and Barlow Twins' batch cross-correlation must see every process's examples, or running on
N processes silently trains with N times fewer negatives. :func:`gather` is the identity in one
process and an autograd-aware ``all_gather`` (``torch.distributed.nn.functional.all_gather``, which
sends gradients back to the process that owns each row) when a process group of size > 1 is
initialised.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` ``(B, ...)`` from every process along dim 0, in rank order.

    Gradients flow back to each process's own rows. The identity without a process group.
    """
    rank, size = world()
    if size == 1:
        return x
    import warnings

    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():  # deprecated in favour of a private API; still the one
        warnings.simplefilter("ignore", FutureWarning)  # autograd-aware all_gather
        return torch.cat(all_gather(x.contiguous()), dim=0)


def local_targets(batch: int, device: torch.device | None = None) -> torch.Tensor:
    """Indices of this process's rows in the gathered batch: ``rank·B … rank·B + B − 1``."""
    rank, _ = world()
    return torch.arange(batch, device=device) + rank * batch
