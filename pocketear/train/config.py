"""Run configuration: typed dataclasses, YAML files and dotted ``--set`` overrides (OmegaConf).

The resolved config (with every task and frontend default filled in) is saved in the run folder
and in every checkpoint, so a checkpoint alone says how it was made.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pocketear.encoders.base import DEFAULT_READOUT, Readout
from pocketear.errors import InvalidValue, MissingPath, typed
from pocketear.frontends.base import frontend_config, stored_frontend
from pocketear.frontends.cqt import CQTConfig
from pocketear.frontends.logmel import LogMelConfig
from pocketear.registry import get
from pocketear.tasks.base import TaskConfig

T = TypeVar("T")


@dataclass
class DataConfig:
    """``data.*``: where the training audio is, where its feature cache goes, how it is read."""

    source: str = ""  # folder of audio, CSV/TSV manifest, or tar shards ('s/{000000..000009}.tar')
    cache_dir: str = ""  # default: <run>/../.cache (shared by runs side by side)
    where: dict[str, Any] = field(default_factory=dict)  # manifest filter, e.g. {kind: longform}
    workers: int = 2  # processes that decode audio (cache build; shard loader workers)
    shuffle: int = 1000  # clips in the shuffle buffer when streaming shards


@dataclass
class OptimConfig:
    """``optim.*``: optimiser, batch size and learning-rate schedule (warm-up, then cosine)."""

    name: str = "adamw"  # adamw | sgd (SLICER's official optimiser: sgd, lr 0.03)
    momentum: float = 0.9  # sgd only
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    grad_clip: float = 1.0


@dataclass
class TrainConfig:
    """``train.*``: length, seed, device, precision, threads, how often to log and checkpoint."""

    steps: int = 1000
    epochs: float = 0.0  # if > 0, overrides steps: epochs over the corpus's clips
    seed: int = 0
    bf16: bool = False  # bf16 autocast (on the run's device)
    device: str = "auto"  # cpu | cuda | cuda:N | auto (the GPU when PyTorch sees one)
    channels_last: bool = True
    threads: int = 0  # torch threads; 0 = torch's default
    log_every: int = 10
    monitor_every: int = 50
    ckpt_every: int = 200


@dataclass
class RawConfig:
    """The merge schema for YAML files and ``--set`` overrides.

    Task and encoder stay open dicts here because their keys depend on the chosen name;
    :func:`resolve` types them.
    """

    task: dict[str, Any] = field(default_factory=lambda: {"name": "audio2vec_cbow"})
    # no name: the task's own (``Task.default_encoder`` / ``default_frontend``)
    encoder: dict[str, Any] = field(default_factory=dict)
    frontend: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # augmentations of the task's views: [{name: mel_warp, params: {max_warp: 0.15}}, ...];
    # None (unset): the task's own default chain (BYOL-A's for byol_a ...), [] for none at all
    augment: list[Any] | None = None


@dataclass
class EncoderConfig:
    """The encoder: a registered name, its read-out and the factory's keyword arguments."""

    name: str = "mobile_100"
    readout: str = DEFAULT_READOUT  # POOLING:SOURCE (encoders/base.Readout)
    options: dict[str, Any] = field(default_factory=dict)  # e.g. {embed_dim: 64}


@dataclass
class RunConfig:
    """A resolved run: every default filled in, every name and key checked.

    ``task`` is the chosen task's own ``Config`` instance (``task_name`` says which task), so
    the loop reads ``cfg.train.steps`` and ``cfg.task.slice_frames``. :meth:`to_dict` is the
    stored form (``config.yaml``, checkpoints); :func:`resolve` reads it back.
    """

    task_name: str
    task: TaskConfig
    encoder: EncoderConfig
    frontend: LogMelConfig | CQTConfig
    data: DataConfig
    optim: OptimConfig
    train: TrainConfig
    augment: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """The plain, YAML-safe form saved with every run (the shape :func:`resolve` takes)."""
        enc = self.encoder
        return {
            "task": {"name": self.task_name, **dataclasses.asdict(self.task)},
            "encoder": {"name": enc.name, **copy.deepcopy(enc.options), "readout": enc.readout},
            "frontend": stored_frontend(self.frontend),
            "data": dataclasses.asdict(self.data),
            "optim": dataclasses.asdict(self.optim),
            "train": dataclasses.asdict(self.train),
            "augment": copy.deepcopy(self.augment),
        }

    def with_train(self, **changes: Any) -> RunConfig:
        """A copy with ``train`` fields changed (e.g. the step count an epoch budget gives)."""
        return dataclasses.replace(self, train=dataclasses.replace(self.train, **changes))


class ConfigError(InvalidValue):
    """A config that cannot be used; the message names the key and the fix."""


def _typed(cls: type[T], given: Mapping[str, Any], where: str) -> T:
    """Dataclass ``cls`` built from ``given`` over its defaults; unknown keys are errors."""
    return typed(cls, given, where, ConfigError)


def _check_encoder_options(name: str, options: Mapping[str, Any], n_mels: int) -> None:
    """Check encoder keyword arguments against the factory's signature, before any data is read.

    A typo would otherwise surface as a ``TypeError`` after the feature cache is built.

    A factory that forwards ``**kwargs`` is checked against the class it returns as well; the
    encoder is then built on the meta device, so values the factory rejects (or a size the
    variant fixes) fail here too.
    """
    factory = get("encoder", name)
    sig = inspect.signature(factory)
    params = sig.parameters
    known = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        built = typing.get_type_hints(factory).get("return")
        if not isinstance(built, type):
            return  # forwards to something we cannot inspect: the factory checks at build
        cls_params = inspect.signature(built).parameters
        known |= {n for n, p in cls_params.items()
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"encoder {name}: unknown option(s) {', '.join(unknown)}; it takes "
                          f"{', '.join(sorted(known)) or 'no options'}")
    try:  # on the meta device: no memory, no initialisation cost, every check of the factory
        with torch.device("meta"):
            factory(**{"n_mels": n_mels, **options})
    except (TypeError, ValueError) as err:
        raise ConfigError(f"encoder {name}: {err}") from None


def resolve_frontend(cfg: Mapping[str, Any] | RunConfig) -> LogMelConfig | CQTConfig:
    """The ``frontend`` part of a config, typed (a model's config needs no task).

    ``frontend.name`` picks the frontend (``logmel`` when absent, as in configs saved before
    there was a choice); the other keys are its config's fields.
    """
    if isinstance(cfg, RunConfig):
        return cfg.frontend
    try:
        return frontend_config(cfg.get("frontend"))
    except InvalidValue as err:
        raise ConfigError(str(err)) from None


def resolve_encoder(cfg: Mapping[str, Any] | RunConfig, n_mels: int) -> EncoderConfig:
    """The ``encoder`` part of a config, typed and its options checked for ``n_mels`` bands."""
    if isinstance(cfg, RunConfig):
        return cfg.encoder
    enc = dict(cfg.get("encoder") or {"name": "mobile_100"})
    enc_name = enc.pop("name", None)
    if not enc_name:
        raise ConfigError("encoder.name is missing; pick one of `pocketear list encoders`")
    try:
        readout = str(Readout.parse(enc.pop("readout", DEFAULT_READOUT)))
    except ValueError as err:
        raise ConfigError(f"encoder.readout: {err}") from None
    _check_encoder_options(enc_name, enc, n_mels)
    return EncoderConfig(enc_name, readout, enc)


def resolve(cfg: Mapping[str, Any] | RunConfig) -> RunConfig:
    """Type a config dict (:meth:`RunConfig.to_dict`'s shape, partial allowed).

    Fills every default of the chosen task, encoder and frontend and validates names and keys.

    Raises:
        ConfigError: a missing or unknown name, an unknown key, a value that cannot be used.
    """
    if isinstance(cfg, RunConfig):
        return cfg
    task = dict(cfg.get("task") or {})
    name = task.pop("name", None)
    if not name:
        raise ConfigError("task.name is missing; pick one of `pocketear list tasks`")
    task_cls = get("task", name)
    cfg = {**cfg,  # a task's own encoder and frontend where the config names none (spice: cqt)
           "encoder": {"name": task_cls.default_encoder, **(cfg.get("encoder") or {})},
           "frontend": {"name": task_cls.default_frontend, **(cfg.get("frontend") or {})}}
    frontend = resolve_frontend(cfg)
    encoder = resolve_encoder(cfg, frontend.n_mels)
    augment = cfg.get("augment")
    if augment is None:
        augment = getattr(task_cls, "default_augment", [])
    augment = [dict(a) for a in augment]
    from pocketear.augment import build_augment

    try:
        build_augment(augment, frontend)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return RunConfig(
        task_name=name, task=_typed(task_cls.Config, task, f"task {name}"),
        encoder=encoder, frontend=frontend,
        data=_typed(DataConfig, dict(cfg.get("data") or {}), "data"),
        optim=_typed(OptimConfig, dict(cfg.get("optim") or {}), "optim"),
        train=_typed(TrainConfig, dict(cfg.get("train") or {}), "train"),
        augment=augment)


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: list[str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Defaults ← YAML file ← keyword fields ← dotted overrides (``optim.lr=1e-3``), resolved.

    Returns the stored form (a plain dict, as in ``config.yaml``); ``resolve()`` of it is the
    typed :class:`RunConfig` the loop reads.

    Raises:
        MissingPath: ``path`` does not exist.
        ConfigError: ``path`` is not a readable YAML file, or a key or value cannot be used.
    """
    if path and not Path(path).is_file():
        if Path(path).exists():
            raise ConfigError(f"{path}: not a config file (a YAML file is expected)")
        raise MissingPath(f"{path}: no such config file")
    base = OmegaConf.structured(RawConfig)
    try:
        layers = [base]
        if path:
            layers.append(OmegaConf.load(path))
        if fields:
            layers.append(OmegaConf.create(fields))
        if overrides:
            layers.append(OmegaConf.from_dotlist(list(overrides)))
        merged = OmegaConf.merge(*layers)
    except (OmegaConfBaseException, yaml.YAMLError) as err:
        raise ConfigError(f"invalid config{f' in {path}' if path else ''}: {err}") from None
    raw = OmegaConf.to_container(merged, resolve=True)
    return resolve(raw).to_dict()  # type: ignore[arg-type]


def save_config(cfg: Mapping[str, Any] | RunConfig, path: str | os.PathLike[str]) -> None:
    """Write the stored form of ``cfg`` as YAML (a run's ``config.yaml``)."""
    plain = cfg.to_dict() if isinstance(cfg, RunConfig) else dict(cfg)
    OmegaConf.save(OmegaConf.create(plain), path)
