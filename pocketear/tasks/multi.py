"""Multi: several pretext tasks train one shared encoder at once, their losses weighted.

Multi-task self-supervision as in PASE (Pascual et al., "Learning Problem-agnostic Speech
Representations from Multiple Self-supervised Tasks", Interspeech 2019) and in Doersch & Zisserman,
"Multi-task Self-Supervised Visual Learning", ICCV 2017: one encoder, one head set per task, the
tasks' losses summed with weights. The weights are fixed, learnt from each task's homoscedastic
uncertainty (Kendall, Gal & Cipolla, CVPR 2018) or by GradNorm (Chen, Badrinarayanan, Lee &
Rabinovich, ICML 2018); see :mod:`pocketear.losses.weighting`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from pocketear.augment.base import NamedChains, build_augment
from pocketear.encoders.base import Encoder
from pocketear.errors import InvalidValue, typed
from pocketear.frontends.logmel import LogMelConfig
from pocketear.heads.weighting import SCHEMES, build_weighting
from pocketear.registry import available, get, register
from pocketear.tasks.base import Batch, ClipNeed, Example, Task, TaskConfig

NAME = "multi"


def _sub_config(name: str, given: Mapping[str, Any]) -> TaskConfig:
    """Sub-task ``name``'s typed ``Config`` from ``task.params.NAME``; unknown keys are errors."""
    return typed(get("task", name).Config, given, f"task.params.{name}")


def _drop_encoder_copies(module: Multi, state_dict: dict[str, Any], prefix: str,
                         local_metadata: Any) -> None:
    """State-dict post-hook: the shared encoder once, under ``encoder.``, not per sub-task."""
    for name in module.subtasks:
        copy = f"{prefix}subtasks.{name}.encoder."
        for key in [k for k in state_dict if k.startswith(copy)]:
            del state_dict[key]


def _restore_encoder_copies(module: Multi, state_dict: dict[str, Any], prefix: str,
                            *args: Any) -> None:
    """Load pre-hook: every sub-task's ``encoder.`` entries from the one stored copy."""
    shared = f"{prefix}encoder."
    for key in [k for k in state_dict if k.startswith(shared)]:
        for name in module.subtasks:
            state_dict.setdefault(f"{prefix}subtasks.{name}.encoder.{key[len(shared):]}",
                                  state_dict[key])


@register("task", NAME)
class Multi(Task):
    """Several pretext tasks on one shared encoder, each with its own heads and sampler.

    Construction: one instance of each task of ``tasks`` is built around the same encoder (its
    config: the task's defaults overridden by ``params[NAME]``), so every task's gradient
    reaches the one encoder, and each keeps its own heads, teachers and queues.

    Sampler: every example carries every sub-task's example, all drawn from the one clip the
    driver picks (the sub-tasks' samplers run in ``tasks`` order on one ``rng``), under keys
    prefixed with the task's name (``temporal_gap.first``, ``slicer.view1`` ...). A clip must
    satisfy the strictest sub-task (``clip_need``: the largest ``min_frames``), so the driver's
    up-front filter leaves out the clips any sub-task would reject. One batch of ``B`` examples
    is therefore ``B`` examples of every sub-task: a step costs about the sum of the sub-tasks'
    steps.

    Objective: ``step`` hands each sub-task its part of the batch (keys by prefix), stacks their
    losses ``L_i`` and combines them with ``weighting``:

    - ``fixed``: ``Σ_i w_i L_i`` with ``weights`` (default 1 each: the plain sum).
    - ``uncertainty``: ``Σ_i exp(-s_i) L_i + s_i`` with learnt log-variances ``s_i``
      (Kendall et al. 2018, Eq. (7) times 2; see :mod:`pocketear.losses.weighting`), trained by
      the run's optimiser (no weight decay); weight ``exp(-s_i)``, starting at ``weights``.
    - ``gradnorm``: ``Σ_i w_i L_i`` with GradNorm's weights (Chen et al. 2018, Eq. (1)–(2)):
      the gradient norms ``G_i = ||∇_W w_i L_i||`` on one encoder weight tensor ``W`` (its last
      registered parameter with two or more dimensions that every task's loss reaches: the
      final projection of ``mobile_*`` and ``audiontt_*``, the last block's MLP of ``kwt*``)
      are pulled towards ``mean(G) · r_i^alpha``, ``r_i`` the relative inverse training rate.
      The weights are not parameters of the run's optimiser: ``step`` computes ``∂L_grad/∂w``
      with ``torch.autograd.grad`` and ``after_step`` applies it with their own Adam (learning rate
      ``gradnorm_lr``), then renormalises them to sum to the number of tasks
      (:class:`~pocketear.heads.weighting.GradNormWeights`). The update waits for
      ``after_step`` so ``step`` stays repeatable on one batch (the Task contract). No
      ``create_graph`` pass: ``G_i = w_i ||∇_W L_i||`` is linear in ``w_i``, so
      ``∂L_grad/∂w_i`` needs only the first-order norms (the same gradient, without a
      double-backward graph through the network).

    Hooks are forwarded to every sub-task: ``ema_pairs`` (all of them), ``on_epoch_start``,
    ``after_step`` (then the weighting's update), ``param_groups`` (each parameter once; the
    shared encoder in the first task's group; the weighting's parameters without weight
    decay), ``monitor_embeddings`` (the first task's), ``set_augment``.

    Augmentations: each sub-task has its own chain: ``augment[NAME]`` if given, else the run's
    ``augment`` list when it is not empty, else the sub-task's own default chain (SLICER's,
    BYOL-A's ...; none for most). So ``--set 'task.augment={slicer: []}'`` turns SLICER's off
    inside ``multi`` (the run-level ``augment=[]`` means "each task's default" here). The chains
    are held together as one :class:`~pocketear.augment.base.NamedChains`, which the training
    loop fits on the corpus (k-mix centroids, normalisation statistics; each chain on its own
    task's slice length) and stores in ``augment_state.npz`` like any task's chain.

    State: the state dict holds the shared encoder once, under ``encoder.`` (what a
    checkpoint's users read; the copies under each sub-task's prefix, the same tensors, are
    left out and restored on loading), every sub-task's heads, teachers, queues and
    statistics, and the weighting's parameters or buffers.

    Logs, every step: ``loss`` (combined), ``loss.NAME`` (each sub-task's loss), ``w.NAME``
    (each weight), each sub-task's own logs as ``NAME.KEY``, plus ``s.NAME`` (uncertainty) or
    ``G.NAME`` and ``G_target.NAME`` (gradnorm, training steps).
    """

    @dataclass
    class Config(TaskConfig):
        """Multi hyper-parameters.

        Attributes:
            slice_frames: not used by ``multi`` itself; each sub-task has its own
                (``task.params.NAME.slice_frames``).
            tasks: registered task names trained together (not ``multi``; each at most once).
                Default: ``temporal_gap`` and ``features``, two light tasks.
            params: per-task config overrides, ``{NAME: {KEY: VALUE}}``, e.g.
                ``--set 'task.params={slicer: {tau: 0.99}}'`` or
                ``--set task.params.slicer.tau=0.99``; keys are checked against the task's
                ``Config``. Resolved, it holds every sub-task's full config.
            augment: per-task augmentation chains ``{NAME: [{name, params}, ...]}``, replacing
                that task's chain (see the class docstring for the default).
            weighting: ``fixed``, ``uncertainty`` or ``gradnorm``.
            weights: one per task: the fixed weights, or the initial weights of the learnt
                schemes (default 1 each; GradNorm rescales them to sum to the number of tasks).
            alpha: GradNorm's asymmetry ``α`` (1.5; 0 equalises the gradient norms).
            gradnorm_lr: learning rate of the GradNorm weights' own Adam (0.025).
        """

        tasks: list[str] = field(default_factory=lambda: ["temporal_gap", "features"])
        params: dict[str, dict[str, Any]] = field(default_factory=dict)
        augment: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
        weighting: str = "fixed"
        weights: list[float] | None = None
        alpha: float = 1.5
        gradnorm_lr: float = 0.025

        def __post_init__(self) -> None:
            """Check task names, overrides, chains and weights; fill every sub-task's config."""
            tasks = [self.tasks] if isinstance(self.tasks, str) else list(self.tasks)
            known = [t for t in available("task") if t != NAME]
            if not tasks:
                raise InvalidValue(f"task.tasks is empty; list tasks to combine, from "
                                   f"{', '.join(known)}")
            for t in tasks:
                if t == NAME:
                    raise InvalidValue("task.tasks: multi cannot contain multi; list its tasks "
                                       "directly")
                if t not in known:
                    raise InvalidValue(f"task.tasks: unknown task {t!r}; available: "
                                       f"{', '.join(known)}")
            if len(set(tasks)) != len(tasks):
                raise InvalidValue(f"task.tasks lists a task twice: {tasks}")
            self.tasks = [str(t) for t in tasks]
            for where, given in (("params", self.params), ("augment", self.augment)):
                stray = sorted(set(given or {}) - set(tasks))
                if stray:
                    raise InvalidValue(f"task.{where} names {', '.join(stray)}, which "
                                       f"task.tasks ({', '.join(tasks)}) does not list")
            params = dict(self.params or {})
            self.params = {t: dataclasses.asdict(_sub_config(t, dict(params.get(t) or {})))
                           for t in tasks}
            self.augment = {t: [dict(a) for a in chain] for t, chain in
                            dict(self.augment or {}).items()}
            for t, chain in self.augment.items():
                try:
                    build_augment(chain)
                except ValueError as err:
                    raise InvalidValue(f"task.augment.{t}: {err}") from None
            if self.weighting not in SCHEMES:
                raise InvalidValue(f"task.weighting must be one of {', '.join(SCHEMES)}, got "
                                   f"{self.weighting!r}")
            self.weights = [1.0] * len(tasks) if self.weights is None else \
                [float(w) for w in self.weights]
            build_weighting(self.weighting, len(tasks), self.weights, self.alpha,
                            self.gradnorm_lr)  # checks the weights now, not at the first step

    cfg: Config

    def __init__(self, encoder: Encoder, cfg: Config | None = None) -> None:
        super().__init__(encoder, cfg)
        c = self.cfg
        self.subtasks = nn.ModuleDict({
            name: get("task", name)(encoder, _sub_config(name, c.params.get(name, {})))
            for name in c.tasks})
        self.weighting = build_weighting(c.weighting, len(c.tasks), c.weights, c.alpha,
                                         c.gradnorm_lr)
        # the sub-tasks hold the shared encoder too: store it once in checkpoints
        self.register_state_dict_post_hook(_drop_encoder_copies)
        self.register_load_state_dict_pre_hook(_restore_encoder_copies)

    @property
    def names(self) -> list[str]:
        """The sub-tasks' names, in ``tasks`` order."""
        return list(self.subtasks.keys())

    @staticmethod
    def part(batch: Mapping[str, Any], name: str) -> dict[str, Any]:
        """Sub-task ``name``'s keys of a batch or example, without their ``NAME.`` prefix."""
        prefix = f"{name}."
        return {k[len(prefix):]: v for k, v in batch.items() if k.startswith(prefix)}

    # --- short-clip policy and sampler --------------------------------------------------------
    def clip_need(self) -> ClipNeed:
        """The strictest sub-task's need (largest ``min_frames``); settings named in ``params``."""
        name, need = max(((n, t.clip_need()) for n, t in self.subtasks.items()),
                         key=lambda nn_: (nn_[1].min_frames, nn_[1].frames))
        return ClipNeed(need.frames, need.max_pad,
                        re.sub(r"\btask\.", f"task.params.{name}.", need.settings))

    def sample(
        self, clip: np.ndarray, rng: np.random.Generator, other: Callable[[], np.ndarray]
    ) -> Example | None:
        """Every sub-task's example from this one clip, keys prefixed ``NAME.``.

        ``None`` when any sub-task rejects the clip.
        """
        example: Example = {}
        for name, task in self.subtasks.items():
            part = task.sample(clip, rng, other)
            if part is None:
                return None
            example.update({f"{name}.{k}": v for k, v in part.items()})
        return example

    def collate(self, examples: Sequence[Example]) -> Batch:  # type: ignore[override]
        """Each sub-task collates its own keys (so a task's own ``collate`` is kept)."""
        batch: Batch = {}
        for name, task in self.subtasks.items():
            parts = task.collate([self.part(e, name) for e in examples])
            batch.update({f"{name}.{k}": v for k, v in parts.items()})
        return batch

    # --- objective -----------------------------------------------------------------------------
    def shared_layers(self) -> list[torch.Tensor]:
        """The encoder's trainable weight tensors (two or more dims), last registered first."""
        return [p for p in self.encoder.parameters() if p.requires_grad and p.dim() >= 2][::-1]

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Each sub-task's loss on its part of the batch, combined by the weighting."""
        losses, logs = [], {}
        for name, task in self.subtasks.items():
            loss, sub_logs = task.step(self.part(batch, name))
            losses.append(loss.float())
            logs.update({f"{name}.{k}": float(v) for k, v in sub_logs.items() if k != "loss"})
            logs[f"loss.{name}"] = float(loss.detach())
        total = self.weighting(torch.stack(losses), self.shared_layers())
        for key, values in {"w": self.weighting.weights(), **self.weighting.extra()}.items():
            logs.update({f"{key}.{name}": float(v)
                         for name, v in zip(self.names, values.tolist(), strict=True)})
        logs["loss"] = float(total.detach())
        return total, logs

    def monitor_embeddings(self, batch: Batch) -> torch.Tensor:
        """The first sub-task's monitor embeddings (all share the encoder)."""
        name = self.names[0]
        return self.subtasks[name].monitor_embeddings(self.part(batch, name))

    # --- hooks ---------------------------------------------------------------------------------
    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module, float]]:
        """Every sub-task's EMA pairs (each teacher is its own task's)."""
        return [pair for task in self.subtasks.values() for pair in task.ema_pairs()]

    def on_epoch_start(self, epoch: int) -> None:
        """Forwarded to every sub-task."""
        for task in self.subtasks.values():
            task.on_epoch_start(epoch)

    def after_step(self, step: int) -> None:
        """Every sub-task's ``after_step`` (queues, running statistics), then the weights'."""
        for task in self.subtasks.values():
            task.after_step(step)
        self.weighting.update()

    def param_groups(self) -> list[dict[str, Any]]:
        """Every sub-task's groups, each parameter once; the weighting's without weight decay."""
        seen: set[int] = set()
        groups: list[dict[str, Any]] = []

        def add(group: dict[str, Any]) -> None:
            params = [p for p in group["params"] if id(p) not in seen]
            seen.update(id(p) for p in params)
            if params:
                groups.append({**group, "params": params})

        for task in self.subtasks.values():
            for group in task.param_groups():
                add(group)
        add({"params": [p for p in self.weighting.parameters() if p.requires_grad],
             "weight_decay": 0.0})
        add({"params": [p for p in self.parameters() if p.requires_grad]})
        return groups

    def set_augment(self, specs: Sequence[Mapping[str, Any]] | None,
                    frontend: LogMelConfig | None = None) -> None:
        """Each sub-task's own chain (see the class docstring), held as one ``NamedChains``."""
        for name, task in self.subtasks.items():
            chain = self.cfg.augment.get(name)
            if chain is None:
                chain = list(specs) if specs else type(task).default_augment
            task.set_augment(chain, frontend)
        chains = {name: task.augment for name, task in self.subtasks.items()}
        self.augment = NamedChains(
            chains, {n: t.cfg.slice_frames for n, t in self.subtasks.items()}) \
            if any(c is not None for c in chains.values()) else None
