"""HuBERT: predict cluster ids of masked frames.

Hsu, Bolte, Tsai, Lakhotia, Salakhutdinov & Mohamed, "HuBERT: Self-Supervised Speech
Representation Learning by Masked Prediction of Hidden Units", IEEE/ACM TASLP 2021: §II.A
(targets: k-means cluster ids of frames; iteration 1 on 39-d MFCCs with 100 clusters, later
iterations on a layer of the previous model), §II.B Eq. (1)–(3) (span masking; cross-entropy
on masked frames only, α = 1; logits are cosine similarities between a projection of the
output and one embedding per cluster, divided by τ = 0.1), §IV.C (p = 8 % of frames start a
span of l = 10, i.e. ``mask_prob = 0.8`` in the convention of :mod:`pocketear.augment.masks`).

Targets come from a file written by ``pocketear cluster`` (``task.targets=FILE`` or
``pretrain --targets FILE``): k-means on MFCC/log-mel frames of the corpus (iteration 1) or on a
run's own layer features (later iterations; the file embeds the frozen encoder, which labels
each batch on the fly under ``no_grad``, so batches stay a pure function of (seed, step)).
Without a file, iteration 1 still runs: k-means (``k`` clusters, MiniBatchKMeans) is fitted on
the frames of the **first training batch** and kept in the state dict — a small sample of the
corpus (64 × 96 frames at the default batch), stated in the logs as ``targets_fitted_on``; the
paper's protocol is ``pocketear cluster`` on the whole corpus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pocketear.data.frame_targets import FrameLabeler, load_targets
from pocketear.encoders.base import Encoder
from pocketear.errors import InvalidValue
from pocketear.losses.distributed import gather
from pocketear.losses.masked import masked_cross_entropy
from pocketear.registry import register
from pocketear.tasks._masked import MaskedTask
from pocketear.tasks.base import Batch, TaskConfig


def fit_kmeans(x: np.ndarray, k: int, seed: int = 0, batch_size: int = 1024) -> np.ndarray:
    """Centroids ``(k, D)`` of ``x`` by scikit-learn's MiniBatchKMeans.

    Raises:
        InvalidValue: fewer frames than clusters (``task.k`` too large for the first batch).
    """
    from sklearn.cluster import MiniBatchKMeans

    if len(x) < k:
        raise InvalidValue(f"k-means with k={k} needs at least {k} frames, got {len(x)}; lower "
                         "task.k or make a targets file with `pocketear cluster`")
    km = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3,
                         batch_size=min(batch_size, len(x)))
    return km.fit(x.astype(np.float32)).cluster_centers_.astype(np.float32)


class CosineClassifier(nn.Module):
    """HuBERT's Eq. (3): logits = cos(A·o_t, e_c) / τ for every code c."""

    def __init__(self, dim: int, k: int, temperature: float) -> None:
        super().__init__()
        self.codes = nn.Parameter(torch.randn(k, dim) * dim**-0.5)
        self.temperature = temperature

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Projected frames ``(..., dim)`` → logits ``(..., k)``."""
        z = nn.functional.normalize(z, dim=-1)
        return z @ nn.functional.normalize(self.codes, dim=-1).T / self.temperature


@register("task", "hubert")
class HuBERT(MaskedTask):
    """Masked frames → cross-entropy on their cluster ids (masked frames of real audio only).

    Logs ``loss``, ``acc_masked`` and ``acc_unmasked`` (HuBERT's two accuracies), ``mask_ratio``,
    ``targets_fitted_on`` (frames the on-the-fly k-means saw; 0 with a targets file) and
    ``label_perplexity`` (exp entropy of the batch's labels: how many clusters are in use).
    """

    @dataclass
    class Config(TaskConfig):
        """HuBERT hyper-parameters.

        Attributes:
            slice_frames: input frames per example.
            mask_prob: span-start probability in ``pocketear.augment.masks``' convention (0.8 =
                HuBERT's p = 8 % with l = 10).
            mask_length: span length in encoder frames (10).
            targets: target file from ``pocketear cluster``; "" = fit k-means on the first
                batch (iteration 1 without a file).
            features: frame features of the on-the-fly k-means: ``mfcc`` (39-d) or ``logmel``.
            k: clusters of the on-the-fly k-means (a targets file brings its own).
            code_dim: dimension of the projection and of the cluster embeddings.
            temperature: τ of the cosine logits (0.1).
            seed: seed of the on-the-fly k-means.
        """

        mask_prob: float = 0.8
        mask_length: int = 10
        targets: str = ""
        features: str = "mfcc"
        k: int = 100
        code_dim: int = 256
        temperature: float = 0.1
        seed: int = 0

    cfg: Config

    def __init__(self, encoder: Encoder, cfg: Config | None = None) -> None:
        super().__init__(encoder, cfg)
        c = self.cfg
        if c.mask_length < 1 or not 0 < c.mask_prob <= 1 or c.temperature <= 0 or c.k < 2:
            raise InvalidValue("need mask_length >= 1, 0 < mask_prob <= 1, temperature > 0, k >= 2")
        if c.targets:
            self.labeler = load_targets(c.targets)
            fitted = True
        else:
            if c.features not in ("mfcc", "logmel"):
                raise InvalidValue(f"features must be 'mfcc' or 'logmel', got {c.features!r}")
            dim = 39 if c.features == "mfcc" else encoder.n_mels
            self.labeler = FrameLabeler(c.features, torch.zeros(c.k, dim))
            fitted = False
        self.register_buffer("fitted_frames", torch.tensor(-1 if not fitted else 0))
        self.proj = nn.Linear(encoder.embed_dim, c.code_dim)
        self.classifier = CosineClassifier(c.code_dim, self.labeler.k, c.temperature)

    @torch.no_grad()
    def fit_on_batch(self, x: torch.Tensor, valid: torch.Tensor) -> None:
        """On-the-fly iteration 1: k-means on the input frames of real audio of ``x``.

        Under torchrun on the global batch (gathered), so every rank fits the same codebook.
        """
        x, valid = gather(x), gather(valid.to(torch.uint8)).bool()
        feats = self.labeler.features(x, x.shape[1])  # per input frame
        owner = torch.from_numpy(self.frame_spans(x.shape[1])).to(x.device)
        rows = feats[valid[:, owner]].float().cpu().numpy()  # bf16 under train.bf16=true
        self.labeler.codebook.copy_(torch.from_numpy(fit_kmeans(rows, self.labeler.k,
                                                                self.cfg.seed)).to(x.device))
        self.fitted_frames.fill_(len(rows))

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Cross-entropy on the masked real frames' cluster ids (k-means first if unfitted)."""
        x, mask, valid = batch["x"], batch["mask"].bool(), batch["valid"].bool()
        if int(self.fitted_frames) < 0:
            self.fit_on_batch(x, valid)
        labels = self.labeler(x, mask.shape[1])
        logits = self.classifier(self.proj(self.encoder(self.masked_input(x, mask)
                                                        .unsqueeze(1))))
        where = mask & valid
        loss = masked_cross_entropy(logits.float(), labels, where)
        with torch.no_grad():
            hit = logits.argmax(-1) == labels
            rest = ~mask & valid
            p = torch.bincount(labels[valid], minlength=self.labeler.k).float()
            p = p[p > 0] / p.sum()
            logs = {
                "loss": float(loss.detach()),
                "acc_masked": float(hit[where].float().mean()),
                "acc_unmasked": float(hit[rest].float().mean()) if rest.any() else 0.0,
                "mask_ratio": float(mask[valid].float().mean()),
                "targets_fitted_on": float(max(int(self.fitted_frames), 0)),
                "label_perplexity": float(torch.exp(-(p * p.log()).sum())),
            }
        return loss, logs
