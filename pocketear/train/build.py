"""Build the modules a resolved config describes (shared by training and loading)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import torch

from pocketear.encoders.base import Encoder, Readout
from pocketear.frontends.base import Frontend, create_frontend, stored_frontend
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
    """The config's task around ``encoder``, with its augmentation chain (``Task.set_augment``).

    A task with a teacher checkpoint (``distill``'s ``task.teacher``) gets it loaded here.
    """
    run = resolve(cfg)
    task = get("task", run.task_name)(encoder, run.task)
    task.set_augment(run.augment, run.frontend)
    if hasattr(task, "set_teacher"):
        attach_teacher(task, run)
    return task


def attach_teacher(task: Task, run: RunConfig) -> None:
    """Load ``task.teacher`` (frozen) with its normalisation into ``task``.

    ``task.teacher``: a checkpoint or run folder (its frontend must be the run's; its
    normalisation becomes the student's), or ``encoder:NAME``, a registered encoder whose
    factory builds the teacher with its weights (a wrapped third-party model, README).

    Raises:
        ConfigError: no teacher named, or its frontend (sample rate, hop, bins ...) is not the
            run's: the student must see the features the teacher was trained on.
    """
    path = getattr(run.task, "teacher", "")
    if not path:
        raise ConfigError(f"{run.task_name} needs a teacher: --set task.teacher=CHECKPOINT (a "
                          "run folder or .pt of `pocketear pretrain`) or encoder:NAME")
    if path.startswith("encoder:"):  # a registered encoder that loads its own weights
        teacher = create("encoder", path.split(":", 1)[1], n_mels=run.frontend.n_mels)
        task.set_teacher(teacher, None)  # on the run's frontend and normalisation
        return
    frontend, teacher, _, where = load_modules(path)
    if frontend.cfg.key() != run.frontend.key():
        mine, theirs = stored_frontend(run.frontend), stored_frontend(frontend.cfg)
        diff = {k: (theirs.get(k), mine.get(k)) for k in {*mine, *theirs}
                if mine.get(k) != theirs.get(k)}
        raise ConfigError(f"teacher {where}: its frontend differs from this run's "
                          f"(teacher, run): {diff}; set the run's frontend to the teacher's, "
                          "e.g. --set frontend.sample_rate=...")
    task.set_teacher(teacher, (frontend.mean.numpy(), frontend.std.numpy()))


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
