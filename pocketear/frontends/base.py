"""What every frontend shares: rate, hop and frame count, normalisation stats, and the config.

A run names its frontend in ``frontend.name`` (``logmel``, the default, or ``cqt``); the other
``frontend.*`` keys are that frontend's ``Config`` fields. :func:`frontend_config` types such a
dict and :func:`create_frontend` builds the module, so the feature cache, the train loop,
checkpoints and evaluation handle every frontend the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from pocketear.errors import InvalidValue, typed
from pocketear.registry import available, get

DEFAULT_FRONTEND = "logmel"


class Frontend(nn.Module):
    """Base of the frontends: ``cfg`` holds ``sample_rate``, ``hop_length``, ``num_frames``.

    Normalisation stats (``mean``, ``std``, one per feature bin) are persistent buffers, so they
    travel in ``state_dict()``, checkpoints and exports. Until :meth:`set_stats` is called (or a
    state dict with ``normalised=True`` is loaded) :meth:`normalise` is the identity.
    ``pooled_stats`` frontends (the CQT) keep one mean and std for all bins, so that a pitch
    shift stays a pure translation of the normalised features.
    """

    cfg: Any
    Config: ClassVar[type]
    pooled_stats: ClassVar[bool] = False
    mean: torch.Tensor
    std: torch.Tensor
    normalised: torch.Tensor

    def __init__(self, cfg: Any = None, **overrides: Any) -> None:
        """Set :attr:`cfg` (``cfg`` or the default ``Config``, with ``overrides``) and the stats."""
        super().__init__()
        cfg = cfg or self.Config()
        self.cfg = dataclasses.replace(cfg, **overrides) if overrides else cfg
        self._init_stats()

    def _init_stats(self) -> None:
        """Register the stats buffers (identity stats)."""
        self.register_buffer("mean", torch.zeros(self.cfg.n_mels))
        self.register_buffer("std", torch.ones(self.cfg.n_mels))
        self.register_buffer("normalised", torch.tensor(False))
        # Python mirror of the `normalised` buffer: export traces a branch on a Python bool,
        # whereas a branch on a buffer's value would be data-dependent and fail to export.
        self._use_stats = False
        self.register_load_state_dict_post_hook(_sync_normalised)

    @property
    def sample_rate(self) -> int:
        """Sample rate the frontend expects, in Hz."""
        return self.cfg.sample_rate

    @property
    def hop_length(self) -> int:
        """Hop between frames, in samples."""
        return self.cfg.hop_length

    @property
    def n_mels(self) -> int:
        """Feature bins per frame (F): mel bands, or CQT bins; the name encoders take."""
        return self.cfg.n_mels

    def num_frames(self, n_samples: int) -> int:
        """Frames produced for ``n_samples`` samples."""
        return self.cfg.num_frames(n_samples)

    def set_stats(self, mean: np.ndarray | torch.Tensor, std: np.ndarray | torch.Tensor) -> None:
        """Store per-bin normalisation stats (e.g. from ``compute_stats``) and enable them.

        A ``pooled_stats`` frontend replaces them by the pooled mean and std of all bins.

        Raises:
            ValueError: on a wrong shape, a non-finite value or a non-positive std.
        """
        mean_t = torch.as_tensor(mean, dtype=torch.float32).detach().cpu().reshape(-1)
        std_t = torch.as_tensor(std, dtype=torch.float32).detach().cpu().reshape(-1)
        if mean_t.numel() != self.n_mels or std_t.numel() != self.n_mels:
            raise ValueError(
                f"stats must have {self.n_mels} values; got {mean_t.numel()} and {std_t.numel()}"
            )
        if not (torch.isfinite(mean_t).all() and torch.isfinite(std_t).all()):
            raise ValueError("stats must be finite")
        if (std_t <= 0).any():
            raise ValueError("std must be positive (compute_stats floors it)")
        if self.pooled_stats:  # the moments of all bins together (equal frame counts per bin)
            pooled = mean_t.double().mean()
            var = (std_t.double() ** 2 + (mean_t.double() - pooled) ** 2).mean()
            mean_t = torch.full_like(mean_t, float(pooled))
            std_t = torch.full_like(std_t, float(var.sqrt()))
        with torch.no_grad():
            self.mean.copy_(mean_t)
            self.std.copy_(std_t)
            self.normalised.fill_(True)
        self._use_stats = True

    @property
    def uses_stats(self) -> bool:
        """Whether :meth:`forward` and :meth:`normalise` apply the stored stats."""
        return self._use_stats

    def normalise(self, feats: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """``(x - mean) / std`` per bin with the stored stats (unchanged when none are set).

        The one home of the normalisation rule: training, targets, evaluation and export all
        call it on raw features ``(..., F)``; a NumPy array stays a float32 NumPy array.
        """
        if isinstance(feats, np.ndarray):
            x = feats.astype(np.float32, copy=False)
            if not self._use_stats:
                return x
            return (x - self.mean.detach().cpu().numpy()) / self.std.detach().cpu().numpy()
        if not self._use_stats:
            return feats
        return (feats - self.mean) / self.std

    def clear_stats(self) -> None:
        """Back to raw features (mean 0, std 1, not normalised)."""
        with torch.no_grad():
            self.mean.zero_()
            self.std.fill_(1.0)
            self.normalised.fill_(False)
        self._use_stats = False

    def extra_repr(self) -> str:
        """The config fields and whether stats are applied, for ``print(module)``."""
        fields = ", ".join(f"{k}={v}" for k, v in self.cfg.to_dict().items())
        return f"{fields}, normalised={self._use_stats}"


def _sync_normalised(module: nn.Module, incompatible_keys: Any) -> None:
    """Keep the Python mirror in step with the ``normalised`` buffer after a state-dict load."""
    if isinstance(module, Frontend):
        module._use_stats = bool(module.normalised)


def frontend_config(given: Mapping[str, Any] | None, where: str = "frontend") -> Any:
    """The typed config of ``given`` (``{name: cqt, hop_length: 256}``; no name: log-mel).

    Raises:
        InvalidValue: an unknown frontend name or key, or a value the config rejects.
    """
    fields = dict(given or {})
    name = str(fields.pop("name", DEFAULT_FRONTEND) or DEFAULT_FRONTEND)
    if name not in available("frontend"):
        raise InvalidValue(f"{where}.name: unknown frontend {name!r}; use one of "
                           f"{', '.join(available('frontend'))}")
    return typed(get("frontend", name).Config, fields, f"{where} {name}")


def stored_frontend(cfg: Any) -> dict[str, Any]:
    """The stored form of a frontend config: its name and fields (:func:`frontend_config`)."""
    return {"name": cfg.name, **cfg.to_dict()}


def create_frontend(cfg: Any) -> Frontend:
    """The frontend module of a typed config (without stats: the caller sets or loads them)."""
    return get("frontend", cfg.name)(cfg)


def config_key(cfg: Any) -> str:
    """Short stable hex hash of a frontend config (its name and fields), keying feature caches.

    Values are normalised to their field type first, so ``fmin=60`` and ``fmin=60.0`` give the
    same key; any change of value gives a different one.
    """
    canon = {
        f.name: (float if f.type in ("float", float) else int)(getattr(cfg, f.name))
        for f in dataclasses.fields(cfg)
    }
    blob = json.dumps({"frontend": cfg.name, **canon}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
