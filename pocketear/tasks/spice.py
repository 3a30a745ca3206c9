"""SPICE: self-supervised pitch from two pitch-shifted slices of one CQT frame.

Gfeller, Frank, Roblek, Sharifi, Tagliasacchi & Velimirović, "SPICE: Self-supervised Pitch
Estimation", IEEE/ACM TASLP 28 (2020), arXiv:1910.11664, §II (Fig. 1): on a CQT a pitch shift is
a translation along frequency, so two slices of one frame cut ``k1`` and ``k2`` bins up are the
same sound shifted by ``k2 - k1`` bins; one encoder with a scalar head must output values whose
difference is ``σ (k2 - k1)`` (Huber loss, :mod:`pocketear.losses.pitch`). A decoder may
rebuild each slice from its scalar (the paper's reconstruction loss; off by default here, as it
hurt), and a confidence head on the stopped-gradient features learns to predict the pitch
error, so unvoiced frames read low. Our two additions, each view its own noise floor and frames
from the louder half of each clip, are documented on :class:`Spice.Config`. The scalar becomes
semitones with an affine map fitted on a few labelled notes (``pocketear calibrate``,
:mod:`pocketear.pitch`).

Needs the ``cqt`` frontend and a per-frame encoder (``spice``); ``pocketear pretrain --task
spice`` sets both when the config names neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pocketear.encoders.base import Encoder
from pocketear.errors import InvalidValue
from pocketear.heads.mlp import MLP
from pocketear.losses.pitch import confidence_loss, pitch_loss, relative_pitch_error
from pocketear.losses.regression import mse
from pocketear.registry import register
from pocketear.tasks.base import Batch, Example, Task, TaskConfig


@register("task", "spice")
class Spice(Task):
    """SPICE: relative pitch from pitch-shifted CQT slices, with a confidence head.

    Gfeller et al. 2020 (arXiv:1910.11664), §II-B, eq. (3)–(7). Sampler: ``frames_per_clip``
    random frames of one clip's normalised CQT ``(T, F)`` (of its loudest ``loud_fraction``);
    for each, two offsets ``k1, k2``
    uniform in ``0 … max_shift - 1`` and the ``S``-bin slices starting there (``S`` = the
    encoder's ``slice_bins``). The encoder sees each slice as a one-frame input.

    Loss: ``pitch_weight · Huber(e)`` + ``recon_weight · ‖decoder(ŷ) - slice‖²`` +
    ``confidence_weight · (1 - c - |e| / σ)²``, with ``e = (ŷ1 - ŷ2) - σ (k2 - k1)`` and ``σ`` the
    output units per bin (default ``1 / F``: the sigmoid's range spans the CQT's bins, the
    paper's ``1 / (Q log2(fmax / fmin))``). The pitch weight 10⁴ follows the re-implementation
    in ``docs/PAPERS.md`` §6 (the paper's weights are NOT FOUND); the decoder is off by default
    (``recon_weight`` 0): at its weight of 1 it cut raw pitch accuracy on held-out synthesised
    notes from 28 % to 3 % after 1,500 steps (``docs/benchmarks.md`` §12).

    Example keys: ``first``, ``second`` ``(N, S)`` slices; ``shift`` ``(N,)`` = ``k2 - k1``
    (float32). Logs ``loss``, ``pitch_loss``, ``error_bins`` (mean ``|e| / σ``), ``recon``,
    ``confidence`` (mean) and ``confidence_loss``.
    """

    default_augment: list = []
    default_encoder = "spice"
    default_frontend = "cqt"

    @dataclass
    class Config(TaskConfig):
        """SPICE hyper-parameters.

        Attributes:
            slice_frames: unused by the sampler (one frame per example), kept at 1.
            frames_per_clip: frames drawn from each clip per example.
            loud_fraction: frames are drawn from the clip's loudest ``loud_fraction`` of frames
                (by their loudest bin); 1.0 = all frames, as the paper. Silence and quiet
                noise carry no pitch to agree on (0.5 raised dev RPA from 38 % to 49 %).
            max_shift: offsets are drawn from ``0 … max_shift - 1`` bins (8 in the docs'
                re-implementation; at most ``F - S + 1``).
            sigma: output units per bin; ``None`` = ``1 / F``.
            noise_floor: probability that a view gets its own raised noise floor (a random
                level from the frame's median up to 60 % of the way to its peak; 0: off, as
                the paper). The relative loss allows any output offset that depends on the
                sound rather than its pitch; two views of one frame that differ in noise make
                such an offset cost. Raised dev RPA from 49 % to 99.8 % (``docs/benchmarks.md``
                §12).
            pitch_weight, recon_weight, confidence_weight: loss weights (``recon_weight`` > 0
                turns the decoder on).
            decoder_hidden: hidden sizes of the decoder from the scalar to the slice.
        """

        slice_frames: int = 1
        frames_per_clip: int = 8
        loud_fraction: float = 0.5
        max_shift: int = 8
        sigma: float | None = None
        noise_floor: float = 0.5
        pitch_weight: float = 1e4
        recon_weight: float = 0.0
        confidence_weight: float = 1.0
        decoder_hidden: tuple[int, ...] = (64, 128)

    cfg: Config

    def __init__(self, encoder: Encoder, cfg: Config | None = None) -> None:
        super().__init__(encoder, cfg)
        c = self.cfg
        width = getattr(encoder, "slice_bins", None)
        if width is None:
            raise InvalidValue("task spice needs a per-frame pitch encoder with slice_bins "
                               "(--set encoder.name=spice)")
        self.slice_bins, self.n_bins = int(width), int(encoder.n_mels)
        if not 1 <= c.max_shift <= self.n_bins - self.slice_bins + 1:
            raise InvalidValue(f"task.max_shift must be in 1 … {self.n_bins - self.slice_bins + 1}"
                               f" ({self.n_bins} bins, {self.slice_bins}-bin slices); got "
                               f"{c.max_shift}")
        if not 0 <= c.noise_floor <= 1:
            raise InvalidValue(f"task.noise_floor must be in [0, 1], got {c.noise_floor}")
        if not 0 < c.loud_fraction <= 1:
            raise InvalidValue(f"task.loud_fraction must be in (0, 1], got {c.loud_fraction}")
        if c.frames_per_clip < 1 or min(c.pitch_weight, c.recon_weight,
                                        c.confidence_weight) < 0:
            raise InvalidValue("task.frames_per_clip must be >= 1 and the weights >= 0")
        self.sigma = float(c.sigma) if c.sigma is not None else 1.0 / self.n_bins
        if self.sigma <= 0:
            raise InvalidValue(f"task.sigma must be > 0, got {self.sigma}")
        self.pitch_head = nn.Linear(encoder.embed_dim, 1)
        self.confidence_head = nn.Linear(encoder.embed_dim, 1)
        self.decoder = MLP(1, c.decoder_hidden, self.slice_bins)

    def sample(self, clip: np.ndarray, rng: np.random.Generator,
               other: Callable[[], np.ndarray]) -> Example | None:
        """``frames_per_clip`` frames of ``clip``, each cut at two random offsets."""
        if clip.ndim != 2 or clip.shape[1] != self.n_bins:
            raise ValueError(f"expected a (T, {self.n_bins}) CQT, got shape {clip.shape}")
        n, s = self.cfg.frames_per_clip, self.slice_bins
        pool = len(clip)
        if self.cfg.loud_fraction < 1:
            pool = max(1, int(np.ceil(self.cfg.loud_fraction * len(clip))))
            clip = clip[np.argsort(-clip.max(axis=1), kind="stable")[:pool]]
        frames = clip[rng.integers(0, pool, size=n)]
        k1, k2 = rng.integers(0, self.cfg.max_shift, size=(2, n))
        cols = np.arange(s)
        first = frames[np.arange(n)[:, None], k1[:, None] + cols].astype(np.float32)
        second = frames[np.arange(n)[:, None], k2[:, None] + cols].astype(np.float32)
        return {"first": self._noise(first, rng), "second": self._noise(second, rng),
                "shift": (k2 - k1).astype(np.float32)}

    def _noise(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``x`` ``(N, S)`` with a raised noise floor on a random ``noise_floor`` of its rows.

        ``log(e^x + e^n)`` with ``n`` a level per row plus jitter per bin: noise added in
        magnitude, written in the log domain the slices are in.
        """
        p = self.cfg.noise_floor
        if p > 0:
            lo, hi = np.median(x, axis=1, keepdims=True), x.max(axis=1, keepdims=True)
            level = lo + rng.uniform(0, 0.6, (len(x), 1)) * (hi - lo)
            noisy = np.logaddexp(x, level + 0.3 * rng.standard_normal(x.shape))
            x = np.where(rng.random((len(x), 1)) < p, noisy, x)
        return np.ascontiguousarray(x, dtype=np.float32)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pitch ``ŷ`` and confidence ``c`` in [0, 1] and the features, of CQT ``(B, 1, T, F)``.

        Each ``(B, T)``; the confidence reads the features with the gradient stopped.
        """
        h = self.encoder(x)
        pitch = torch.sigmoid(self.pitch_head(h)).squeeze(-1)
        confidence = torch.sigmoid(self.confidence_head(h.detach())).squeeze(-1)
        return pitch, confidence, h

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Relative-pitch Huber loss, reconstruction and confidence losses of both views."""
        c = self.cfg
        slices = torch.cat([batch["first"], batch["second"]])  # (2B, N, S)
        pitch, confidence, _ = self.heads(slices.unsqueeze(1))  # (2B, N)
        y1, y2 = pitch.chunk(2)
        error = relative_pitch_error(y1, y2, batch["shift"], self.sigma)
        l_pitch = pitch_loss(error, self.sigma)
        l_conf = confidence_loss(confidence, torch.cat([error, error]), self.sigma)
        loss = c.pitch_weight * l_pitch + c.confidence_weight * l_conf
        logs: dict[str, float] = {}
        if c.recon_weight > 0:
            recon = mse(self.decoder(pitch.unsqueeze(-1)), slices)
            loss = loss + c.recon_weight * recon
            logs["recon"] = float(recon.detach())
        logs.update(loss=float(loss.detach()), pitch_loss=float(l_pitch.detach()),
                    error_bins=float(error.detach().abs().mean() / self.sigma),
                    confidence=float(confidence.detach().mean()),
                    confidence_loss=float(l_conf.detach()))
        return loss, logs
