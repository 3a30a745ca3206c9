"""Wav2vec-C: wav2vec 2.0 whose quantised codes must also reconstruct the input features.

Sadhu, He, Huang, Mallidi, Wu, Rastrow, Stolcke, Droppo & Maas, "Wav2vec-C: A Self-supervised
Model for Speech Representation Learning", Interspeech 2021 (arXiv:2103.08393). Confirmed from
the paper's abstract: the model learns to reproduce quantised representations from partially
masked speech encodings with wav2vec 2.0's contrastive loss, and the quantisation is
regularised by an additional **consistency network** that reconstructs the input features of
the wav2vec 2.0 network from the quantised representations, as in a VQ-VAE; the paper reports a
higher codebook utilisation than wav2vec 2.0.

Not confirmed (the full text could not be read here), so these are our choices: the consistency
loss is the squared error between the reconstruction and the unmasked input, added as
``L = L_m + α L_d + γ L_c`` with γ = 1.0 (the paper's γ, its codebook settings and the
consistency network's architecture are unknown to us); the network is a small 1-D convolutional
decoder (:class:`pocketear.heads.FrameDecoder`) from the projected quantised vectors ``q_t`` of
every real frame back to that frame's stacked log-mel input frames; the codebook keeps
wav2vec 2.0's G = 2, V = 320. Everything else is :class:`pocketear.tasks.wav2vec2.Wav2Vec2`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pocketear.data.frame_targets import patches
from pocketear.encoders.base import Encoder
from pocketear.errors import InvalidValue
from pocketear.heads.decoder import FrameDecoder
from pocketear.heads.quantizer import Quantized
from pocketear.losses.masked import masked_regression
from pocketear.registry import register
from pocketear.tasks.wav2vec2 import Wav2Vec2


@register("task", "wav2vec_c")
class Wav2VecC(Wav2Vec2):
    """wav2vec 2.0's loss plus γ · the consistency network's reconstruction error.

    Logs what ``wav2vec2`` logs (``contrastive``, ``diversity``, ``acc_masked``,
    ``codebook_perplexity``, ``code_utilisation``, ``temperature``, ``mask_ratio``) and
    ``consistency`` (mean squared error of the reconstructed log-mel frames).
    """

    @dataclass
    class Config(Wav2Vec2.Config):
        """Wav2vec-C hyper-parameters: wav2vec 2.0's plus the consistency network's.

        Attributes:
            slice_frames: input frames per example.
            mask_prob: span-start probability in ``pocketear.augment.masks``' convention (0.65
                = wav2vec 2.0's p = 0.065 with M = 10).
            mask_length: span length M in encoder frames (10).
            num_distractors: K, distractors per masked frame (100), capped by the clip's other
                masked frames.
            temperature: κ of the cosine logits (0.1).
            groups: G, codebooks (2).
            entries: V, entries per codebook (320).
            code_dim: size of the concatenated entries (256).
            final_dim: size of the projected targets and encoder output (256).
            gumbel_start: Gumbel-softmax τ at step 0 (2).
            gumbel_end: lowest τ (0.5).
            gumbel_decay: factor on τ per optimiser update (0.999995).
            diversity_weight: α, weight of the diversity loss (0.1).
            consistency_weight: γ, weight of the reconstruction loss (1.0; the paper's value
                could not be confirmed).
            decoder_dim: channels of the consistency network's convolutions.
            decoder_layers: its convolutions.
            decoder_kernel: their width in encoder frames (odd).
        """

        consistency_weight: float = 1.0
        decoder_dim: int = 128
        decoder_layers: int = 2
        decoder_kernel: int = 3

    cfg: Config

    def __init__(self, encoder: Encoder, cfg: Config | None = None) -> None:
        super().__init__(encoder, cfg)
        c = self.cfg
        if c.consistency_weight < 0:
            raise InvalidValue(f"consistency_weight must be >= 0, got {c.consistency_weight}")
        self.decoder = FrameDecoder(c.final_dim, self.stride * encoder.n_mels, c.decoder_dim,
                                    c.decoder_layers, c.decoder_kernel)

    def reconstruct(self, quant: Quantized) -> torch.Tensor:
        """The consistency network: quantised vectors ``(B, T', f)`` → stacked frames."""
        return self.decoder(quant.q)

    def extra_losses(self, x: torch.Tensor, valid: torch.Tensor, quant: Quantized
                     ) -> dict[str, tuple[float, torch.Tensor]]:
        """``consistency``: squared error of the reconstructed input frames of real audio."""
        target = patches(x.float(), valid.shape[1])
        error = masked_regression(self.reconstruct(quant).float(), target, valid)
        return {"consistency": (self.cfg.consistency_weight, error)}
