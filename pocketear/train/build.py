"""Build the modules a resolved config describes (shared by training and loading)."""

from __future__ import annotations

from typing import Any

from pocketear.encoders.base import Encoder
from pocketear.frontends.logmel import LogMel, LogMelConfig
from pocketear.registry import create, get
from pocketear.tasks.base import Task


def build_frontend(cfg: dict[str, Any]) -> LogMel:
    return LogMel(LogMelConfig.from_dict(cfg["frontend"]))


def build_encoder(cfg: dict[str, Any]) -> Encoder:
    enc = dict(cfg["encoder"])
    name = enc.pop("name")
    n_mels = cfg["frontend"].get("n_mels")
    if n_mels is not None and "n_mels" not in enc:
        enc["n_mels"] = n_mels
    return create("encoder", name, **enc)


def build_task(cfg: dict[str, Any], encoder: Encoder) -> Task:
    from pocketear.augment import build_augment

    params = dict(cfg["task"])
    task_cls = get("task", params.pop("name"))
    task = task_cls(encoder, task_cls.Config(**params))
    task.augment = build_augment(cfg.get("augment"), LogMelConfig.from_dict(cfg["frontend"]))
    return task
