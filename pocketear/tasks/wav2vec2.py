"""wav2vec 2.0: pick the quantised target of each masked frame out of distractors.

Baevski, Zhou, Mohamed & Auli, "wav2vec 2.0: A Framework for Self-Supervised Learning of Speech
Representations", NeurIPS 2020: §2 (quantisation module: G = 2 codebooks of V = 320 entries,
Gumbel-softmax with hard codes forward and straight-through gradients; §4.2: τ annealed 2 → 0.5
by 0.999995 per update; :class:`pocketear.heads.GumbelQuantizer`), §3.1 (span masking: p = 0.065
of the steps start a span of M = 10, ~49 % masked — ``mask_prob = 0.65`` in the convention of
:mod:`pocketear.augment.masks`, whose number of starts is ``p · T / M``), §3.2 Eq. (2)
``L = L_m + α L_d`` with α = 0.1, Eq. (3) (contrastive loss: cosine similarity / κ, κ = 0.1,
K = 100 distractors drawn uniformly from the other masked steps of the same utterance) and
Eq. (4) (diversity loss; :mod:`pocketear.losses.quantized`).

What is ours, not the paper's: the paper quantises the output of its convolutional feature
encoder, which also feeds the (masked) Transformer, so the quantiser's input is learned. Our
encoders start from log-mel frames and have no separate feature encoder, so the quantiser reads
the **unmasked input log-mel frames** under each encoder output frame, stacked (``stride · F``
values per frame, as BEATs' patches; one frame for a ``kwt*`` encoder). The student sees the
slice with the frames under masked output frames replaced by the learned mask vector (the
masked family's shared masking, :class:`pocketear.tasks._masked.MaskedTask`), and a linear
projection of its output at masked frames is compared with the targets. Distractors are drawn
by the sampler (with the example's rng), at most ``min(K, m − 1)`` of a clip's ``m`` masked
frames; short slices have fewer than K = 100 masked frames, so then every other masked frame is
a distractor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pocketear.data.frame_targets import patches
from pocketear.encoders.base import Encoder
from pocketear.errors import InvalidValue
from pocketear.heads.quantizer import GumbelQuantizer, Quantized
from pocketear.losses.quantized import (
    code_utilisation,
    codebook_perplexity,
    diversity_loss,
    sample_distractors,
    wav2vec_contrastive,
)
from pocketear.registry import register
from pocketear.tasks._masked import MaskedTask
from pocketear.tasks.base import Batch, Example, TaskConfig


@register("task", "wav2vec2")
class Wav2Vec2(MaskedTask):
    """Masked frames → contrastive loss against Gumbel-quantised input frames, plus diversity.

    Logs ``loss``, its parts ``contrastive`` and ``diversity``, ``acc_masked`` (masked frames
    whose target beats all their distractors), ``codebook_perplexity`` (``Σ_g exp H(p̄_g)`` of
    the batch-averaged softmaxes, between G and G·V), ``code_utilisation`` (share of the G·V
    entries chosen as hard codes in the batch), ``temperature`` (the Gumbel τ) and
    ``mask_ratio``.
    """

    @dataclass
    class Config(TaskConfig):
        """wav2vec 2.0 hyper-parameters (the paper's BASE values where it gives one).

        Attributes:
            slice_frames: input frames per example.
            mask_prob: span-start probability in ``pocketear.augment.masks``' convention (0.65
                = wav2vec 2.0's p = 0.065 of the steps with M = 10).
            mask_length: span length M in encoder frames (10).
            num_distractors: K, distractors per masked frame (100), capped by the clip's other
                masked frames.
            temperature: κ of the cosine logits (0.1).
            groups: G, codebooks of the quantiser (2).
            entries: V, entries per codebook (320).
            code_dim: size of the concatenated entries, ``G · d/G`` (256: d/G = 128).
            final_dim: size the targets and the encoder output are projected to (256).
            gumbel_start: Gumbel-softmax τ at step 0 (2).
            gumbel_end: lowest τ (0.5).
            gumbel_decay: factor on τ per optimiser update (0.999995: a run of a few thousand
                steps stays near τ = 2; τ shapes the gradients only, the forward codes are
                the argmax of logits + noise at any τ).
            diversity_weight: α, weight of the diversity loss (0.1).
        """

        mask_prob: float = 0.65
        mask_length: int = 10
        num_distractors: int = 100
        temperature: float = 0.1
        groups: int = 2
        entries: int = 320
        code_dim: int = 256
        final_dim: int = 256
        gumbel_start: float = 2.0
        gumbel_end: float = 0.5
        gumbel_decay: float = 0.999995
        diversity_weight: float = 0.1

    cfg: Config

    def __init__(self, encoder: Encoder, cfg: Config | None = None) -> None:
        super().__init__(encoder, cfg)
        c = self.cfg
        if c.mask_length < 1 or not 0 < c.mask_prob <= 1 or c.temperature <= 0:
            raise InvalidValue("need mask_length >= 1, 0 < mask_prob <= 1 and temperature > 0")
        if c.num_distractors < 1 or c.final_dim < 1 or c.diversity_weight < 0:
            raise InvalidValue("need num_distractors >= 1, final_dim >= 1, diversity_weight >= 0")
        s = c.slice_frames
        self.stride = -(-s // self.out_frames(s))  # input frames stacked per encoder frame
        self.quantizer = GumbelQuantizer(self.stride * encoder.n_mels, c.groups, c.entries,
                                         c.code_dim, c.final_dim,
                                         (c.gumbel_start, c.gumbel_end, c.gumbel_decay))
        self.head = nn.Linear(encoder.embed_dim, c.final_dim)

    # --- sampler ----------------------------------------------------------------------------
    def sample(self, clip: np.ndarray, rng: np.random.Generator,
               other: Callable[[], np.ndarray]) -> Example | None:
        """The masked family's example plus ``distractors`` ``(T', min(K, T' − 1))``.

        Each masked frame's distractors are other masked frames of the same slice (``-1``
        pads rows with fewer; :func:`pocketear.losses.quantized.sample_distractors`).
        """
        ex = super().sample(clip, rng, other)
        if ex is not None:
            ex["distractors"] = sample_distractors(ex["mask"], self.cfg.num_distractors, rng)
        return ex

    # --- objective --------------------------------------------------------------------------
    def quantize(self, x: torch.Tensor, frames: int) -> Quantized:
        """Quantised targets of the unmasked log-mels ``(B, S, F)`` at ``frames`` encoder frames."""
        return self.quantizer(patches(x.float(), frames))

    def extra_losses(self, x: torch.Tensor, valid: torch.Tensor, quant: Quantized
                     ) -> dict[str, tuple[float, torch.Tensor]]:
        """Further loss terms ``{name: (weight, term)}`` (none here; Wav2vec-C adds one)."""
        return {}

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. (2): contrastive loss at masked real frames + α · diversity over real frames."""
        c = self.cfg
        x, mask, valid = batch["x"], batch["mask"].bool(), batch["valid"].bool()
        quant = self.quantize(x, mask.shape[1])
        context = self.head(self.encoder(self.masked_input(x, mask).unsqueeze(1)))
        if context.shape[:2] != mask.shape:
            raise ValueError(f"encoder frames {tuple(context.shape[:2])} vs mask "
                             f"{tuple(mask.shape)}")
        contrastive, acc = wav2vec_contrastive(context.float(), quant.q.float(), mask & valid,
                                               batch["distractors"].long(), c.temperature)
        probs = quant.probs[valid]
        terms = {"contrastive": (1.0, contrastive),
                 "diversity": (c.diversity_weight, diversity_loss(probs)),
                 **self.extra_losses(x, valid, quant)}
        loss = sum(w * term for w, term in terms.values())
        with torch.no_grad():
            logs = {"loss": float(loss.detach()),
                    **{k: float(term.detach()) for k, (_, term) in terms.items()},
                    "acc_masked": float(acc),
                    "codebook_perplexity": float(codebook_perplexity(probs)),
                    "code_utilisation": code_utilisation(quant.codes[valid], c.entries),
                    "temperature": self.quantizer.temperature,
                    "mask_ratio": float(mask[valid].float().mean())}
        return loss, logs

    def after_step(self, step: int) -> None:
        """Anneal the Gumbel temperature by one update."""
        self.quantizer.anneal()
