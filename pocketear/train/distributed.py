"""Several processes (``torchrun``) and the device: what the training loop needs to know.

``torchrun --nproc_per_node N -m pocketear pretrain ...`` starts N copies of the same command
with ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` set; :func:`process_group` joins them (gloo on
CPU, NCCL on GPUs) and the loop wraps the task in PyTorch's ``DistributedDataParallel``. Each
rank draws its own contiguous share of the global batch (``optim.batch_size``), so the examples
of step ``s`` are the same at any world size and a run resumes under another one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from pocketear.errors import InvalidValue

DEVICES = ("auto", "cpu", "cuda", "cuda:N")


@dataclass(frozen=True)
class Place:
    """Where this process runs: its rank among ``world`` processes and its device."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes checkpoints, metrics and the progress bar."""
        return self.rank == 0

    def share(self, batch_size: int) -> range:
        """This rank's positions ``0 … batch_size − 1`` in the global batch (contiguous).

        Raises:
            InvalidValue: ``batch_size`` is not a multiple of the world size.
        """
        if batch_size % self.world:
            raise InvalidValue(
                f"optim.batch_size={batch_size} is the global batch and must be a multiple of the "
                f"{self.world} processes; e.g. --set optim.batch_size="
                f"{max(self.world, batch_size // self.world * self.world)}")
        per = batch_size // self.world
        return range(self.rank * per, (self.rank + 1) * per)


def resolve_device(setting: str, local_rank: int = 0) -> torch.device:
    """The device of ``train.device``: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.

    ``cuda`` is this process's GPU (``LOCAL_RANK`` under torchrun); ``auto`` is the GPU when
    PyTorch sees one, else the CPU.

    Raises:
        InvalidValue: an unknown setting, or a GPU asked for where none is available.
    """
    name = str(setting or "auto").lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InvalidValue(f"train.device={setting}: PyTorch sees no GPU here; use "
                               "--set train.device=cpu (or auto)")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    raise InvalidValue(f"train.device={setting!r}: use one of {', '.join(DEVICES)}")


def _launched() -> int:
    """The world size torchrun announced (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


@contextmanager
def process_group(device_setting: str = "auto", timeout_s: float = 1800.0) -> Iterator[Place]:
    """This process's :class:`Place`, joining torchrun's process group for the run's duration.

    Without torchrun (or with a group the caller already initialised) nothing is created or
    destroyed. The backend is NCCL when the device is a GPU, gloo otherwise.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    device = resolve_device(device_setting, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    created = False
    if _launched() > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=timedelta(seconds=timeout_s))
        created = True
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    try:
        yield Place(rank, world, device)
    finally:
        if created:
            dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (a no-op in one process)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def all_finite(loss: torch.Tensor) -> bool:
    """Whether the loss is finite on every rank, so all ranks stop together when one diverges."""
    ok = torch.isfinite(loss.detach()).all().float().reshape(1)
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item() > 0)


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Each value averaged over the ranks (for the logs: every rank saw a share of the batch)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1) or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return {k: float(v) for k, v in zip(keys, t.tolist(), strict=True)}
