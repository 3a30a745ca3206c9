"""Build the modules a resolved config describes (shared by training and loading)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from pocketear.encoders.base import DEFAULT_READOUT, Encoder, Readout
from pocketear.frontends.logmel import LogMel, LogMelConfig
from pocketear.registry import create, get
from pocketear.tasks.base import Task


def build_frontend(cfg: dict[str, Any]) -> LogMel:
    return LogMel(LogMelConfig.from_dict(cfg["frontend"]))


def build_encoder(cfg: dict[str, Any]) -> Encoder:
    """The config's encoder with its read-out (``encoder.readout``; the default when a config
    predates the setting)."""
    enc = dict(cfg["encoder"])
    name = enc.pop("name")
    readout = Readout.parse(enc.pop("readout", DEFAULT_READOUT))
    n_mels = cfg["frontend"].get("n_mels")
    if n_mels is not None and "n_mels" not in enc:
        enc["n_mels"] = n_mels
    encoder = create("encoder", name, **enc)
    encoder.readout = readout
    return encoder


def build_task(cfg: dict[str, Any], encoder: Encoder) -> Task:
    from pocketear.augment import build_augment

    params = dict(cfg["task"])
    task_cls = get("task", params.pop("name"))
    task = task_cls(encoder, task_cls.Config(**params))
    task.augment = build_augment(cfg.get("augment"), LogMelConfig.from_dict(cfg["frontend"]))
    return task


OPTIMISERS = ("adamw", "sgd")


def build_optimiser(optim_cfg: Mapping[str, Any], task: Task) -> torch.optim.Optimizer:
    """The run's optimiser over ``task.param_groups()``: ``optim.name`` ``adamw`` (the default)
    or ``sgd`` with ``optim.momentum`` (SLICER's official optimiser: SGD lr 0.03, momentum 0.9,
    weight decay 1e-4, PAPERS.md §2); both use ``optim.lr`` and ``optim.weight_decay``.

    Raises:
        ValueError: an unknown ``optim.name`` or a negative ``optim.momentum``.
    """
    name = str(optim_cfg.get("name", "adamw")).lower()  # configs saved before optim.name: AdamW
    lr, wd = float(optim_cfg["lr"]), float(optim_cfg["weight_decay"])
    if name == "adamw":
        return torch.optim.AdamW(task.param_groups(), lr=lr, weight_decay=wd)
    if name == "sgd":
        momentum = float(optim_cfg.get("momentum", 0.9))
        if momentum < 0:
            raise ValueError(f"optim.momentum must be >= 0, got {momentum}; e.g. "
                             "--set optim.momentum=0.9")
        return torch.optim.SGD(task.param_groups(), lr=lr, momentum=momentum, weight_decay=wd)
    raise ValueError(f"optim.name: unknown optimiser {name!r}; use one of "
                     f"{', '.join(OPTIMISERS)} (e.g. --set optim.name=sgd)")
