"""Run configuration: typed dataclasses, YAML files and dotted ``--set`` overrides (OmegaConf).

The resolved config (with every task and frontend default filled in) is saved in the run folder
and in every checkpoint, so a checkpoint alone says how it was made.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pocketear.encoders.base import DEFAULT_READOUT, Readout
from pocketear.frontends.logmel import LogMelConfig
from pocketear.registry import get


@dataclass
class DataConfig:
    source: str = ""  # folder of audio or CSV/TSV manifest
    cache_dir: str = ""  # default: <run>/../.cache (shared by runs side by side)
    where: dict[str, Any] = field(default_factory=dict)  # manifest filter, e.g. {kind: longform}
    workers: int = 2


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw | sgd (SLICER's official optimiser: sgd, lr 0.03)
    momentum: float = 0.9  # sgd only
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    grad_clip: float = 1.0


@dataclass
class TrainConfig:
    steps: int = 1000
    epochs: float = 0.0  # if > 0, overrides steps: epochs over the corpus's clips
    seed: int = 0
    bf16: bool = False  # bf16 autocast on CPU
    channels_last: bool = True
    threads: int = 0  # torch threads; 0 = torch's default
    log_every: int = 10
    monitor_every: int = 50
    ckpt_every: int = 200


@dataclass
class RunConfig:
    task: dict[str, Any] = field(default_factory=lambda: {"name": "audio2vec_cbow"})
    encoder: dict[str, Any] = field(default_factory=lambda: {"name": "mobile_100"})
    frontend: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # augmentations of the task's views: [{name: mel_warp, params: {max_warp: 0.15}}, ...];
    # None (unset): the task's own default chain (BYOL-A's for byol_a ...), [] for none at all
    augment: list[Any] | None = None


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key and the fix."""


def _merge_dataclass(cls: type, given: dict[str, Any], where: str) -> dict[str, Any]:
    """Defaults of dataclass ``cls`` overlaid with ``given``; unknown keys are errors."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(given) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: "
                          f"{', '.join(sorted(names))}")
    return dataclasses.asdict(cls(**given))


def resolve(cfg: dict[str, Any]) -> dict[str, Any]:
    """Fill every default of the chosen task and frontend and validate names and keys."""
    out = dict(cfg)
    task = dict(out["task"])
    name = task.pop("name", None)
    if not name:
        raise ConfigError("task.name is missing; pick one of `pocketear list tasks`")
    task_cls = get("task", name)
    out["task"] = {"name": name, **_merge_dataclass(task_cls.Config, task, f"task {name}")}
    enc = dict(out["encoder"])
    if not enc.get("name"):
        raise ConfigError("encoder.name is missing; pick one of `pocketear list encoders`")
    get("encoder", enc["name"])
    try:
        enc["readout"] = str(Readout.parse(enc.get("readout", DEFAULT_READOUT)))
    except ValueError as err:
        raise ConfigError(f"encoder.readout: {err}") from None
    out["encoder"] = enc
    out["frontend"] = _merge_dataclass(LogMelConfig, dict(out["frontend"]), "frontend")
    augment = out.get("augment")
    if augment is None:
        augment = getattr(task_cls, "default_augment", [])
    out["augment"] = [dict(a) for a in augment]
    from pocketear.augment import build_augment

    try:
        build_augment(out["augment"], LogMelConfig(**out["frontend"]))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return out


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: list[str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Defaults ← YAML file ← keyword fields ← dotted overrides (``optim.lr=1e-3``), resolved."""
    base = OmegaConf.structured(RunConfig)
    try:
        layers = [base]
        if path:
            layers.append(OmegaConf.load(path))
        if fields:
            layers.append(OmegaConf.create(fields))
        if overrides:
            layers.append(OmegaConf.from_dotlist(list(overrides)))
        merged = OmegaConf.merge(*layers)
    except OmegaConfBaseException as err:
        raise ConfigError(f"invalid config{f' in {path}' if path else ''}: {err}") from None
    return resolve(OmegaConf.to_container(merged, resolve=True))  # type: ignore[arg-type]


def save_config(cfg: dict[str, Any], path: str | os.PathLike[str]) -> None:
    OmegaConf.save(OmegaConf.create(cfg), path)
