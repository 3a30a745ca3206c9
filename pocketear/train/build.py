"""Build the modules a resolved config describes (shared by training and loading)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import torch

from pocketear.encoders.base import Encoder, Readout
from pocketear.frontends.base import Frontend, create_frontend
from pocketear.registry import create, get
from pocketear.tasks.base import Task
from pocketear.train.checkpoint import load_checkpoint
from pocketear.train.config import (
    ConfigError,
    OptimConfig,
    RunConfig,
    resolve,
    resolve_encoder,
    resolve_frontend,
)


def build_frontend(cfg: RunConfig | Mapping[str, Any]) -> Frontend:
    """The run's frontend (without statistics: the caller sets or loads them)."""
    return create_frontend(resolve_frontend(cfg))


def build_encoder(cfg: RunConfig | Mapping[str, Any]) -> Encoder:
    """The config's encoder with its read-out (``encoder.readout``).

    A config that predates the ``encoder.readout`` setting gets the default read-out.
    """
    n_mels = resolve_frontend(cfg).n_mels
    enc = resolve_encoder(cfg, n_mels)
    encoder = create("encoder", enc.name, **{"n_mels": n_mels, **enc.options})
    encoder.readout = Readout.parse(enc.readout)
    return encoder


def build_task(cfg: RunConfig | Mapping[str, Any], encoder: Encoder) -> Task:
    """The config's task around ``encoder``, with its augmentation chain (``Task.set_augment``)."""
    run = resolve(cfg)
    task = get("task", run.task_name)(encoder, run.task)
    task.set_augment(run.augment, run.frontend)
    return task


def load_modules(checkpoint: str | os.PathLike[str]
                 ) -> tuple[Frontend, Encoder, dict[str, Any], str]:
    """Frontend, encoder, stored config and path of a checkpoint file or run folder.

    The frontend comes with its normalisation statistics; the file is loaded safely
    (``weights_only=True``).
    """
    state = load_checkpoint(checkpoint)
    cfg = state["config"]
    frontend = build_frontend(cfg)
    frontend.load_state_dict(state["frontend"])
    encoder = build_encoder(cfg)
    prefix = "encoder."
    encoder.load_state_dict({k[len(prefix):]: v for k, v in state["task"].items()
                             if k.startswith(prefix)})
    return frontend, encoder, cfg, state["path"]


OPTIMISERS = ("adamw", "sgd")


def build_optimiser(optim_cfg: OptimConfig | Mapping[str, Any], task: Task
                    ) -> torch.optim.Optimizer:
    """The run's optimiser over ``task.param_groups()``, picked by ``optim.name``.

    ``adamw`` (the default) or ``sgd`` with ``optim.momentum``; both use ``optim.lr`` and
    ``optim.weight_decay``. SGD is SLICER's official optimiser (SGD lr 0.03, momentum 0.9,
    weight decay 1e-4 in the code of Seth et al., "SLICER: Learning universal audio
    representations using low-resource self-supervised pre-training", ICASSP 2023,
    github.com/Sreyan88/LAPE).

    Raises:
        ConfigError: an unknown ``optim.name`` or a negative ``optim.momentum``.
    """
    if isinstance(optim_cfg, OptimConfig):
        optim_cfg = dataclasses.asdict(optim_cfg)
    name = str(optim_cfg.get("name", "adamw")).lower()  # configs saved before optim.name: AdamW
    lr, wd = float(optim_cfg["lr"]), float(optim_cfg["weight_decay"])
    if name == "adamw":
        return torch.optim.AdamW(task.param_groups(), lr=lr, weight_decay=wd)
    if name == "sgd":
        momentum = float(optim_cfg.get("momentum", 0.9))
        if momentum < 0:
            raise ConfigError(f"optim.momentum must be >= 0, got {momentum}; e.g. "
                             "--set optim.momentum=0.9")
        return torch.optim.SGD(task.param_groups(), lr=lr, momentum=momentum, weight_decay=wd)
    raise ConfigError(f"optim.name: unknown optimiser {name!r}; use one of "
                     f"{', '.join(OPTIMISERS)} (e.g. --set optim.name=sgd)")
