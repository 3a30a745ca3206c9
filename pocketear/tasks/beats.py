"""BEATs: masked prediction of discrete acoustic tokens from an iterated tokenizer.

Chen, Wu, Wang, Chen, Tompkins, Chen, Che, Yu & Wei, "BEATs: Audio Pre-Training with Acoustic
Tokenizers", ICML 2023 (arXiv:2212.09058): §2.1 (iterative pipeline: tokenizer → labels →
masked audio model → next tokenizer), §2.2 (iteration 1: a frozen random-projection tokenizer,
nearest neighbour of the projected patch in a random codebook under L2-normalised similarity),
§2.3 (75 % of the patches masked at random; cross-entropy on the masked patches' tokens).

What is ours, not the paper's: patches are the input frames under one encoder output frame ×
all mel bins (BEATs: 16 × 16 time-frequency patches of a ViT); the student replaces masked
frames by a learned mask token instead of dropping them; and the next-iteration tokenizer
(``pocketear tokenizer RUN_DIR``) is **not** a trained tokenizer network — BEATs distils a
Transformer tokenizer with a VQ layer from the previous model by training it to predict that
model's features. Ours uses the previous model itself as the tokenizer encoder: its frame
features at one layer, L2-normalised, quantised by a spherical k-means codebook fitted on the
corpus (cosine lookup). The iteration structure (tokenizer from the previous model) is kept;
the distilled network is left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pocketear.augment.masks import random_mask
from pocketear.data.frame_targets import load_targets, random_projection_tokenizer
from pocketear.encoders.base import Encoder
from pocketear.errors import InvalidValue
from pocketear.losses.masked import masked_cross_entropy
from pocketear.registry import register
from pocketear.tasks._masked import MaskedTask
from pocketear.tasks.base import Batch, TaskConfig


@register("task", "beats")
class BEATs(MaskedTask):
    """Masked frames → cross-entropy on their tokens (masked frames of real audio only).

    Logs ``loss``, ``acc_masked``, ``mask_ratio`` and ``token_perplexity`` (exp entropy of the
    batch's tokens: how much of the codebook the tokenizer uses).
    """

    @dataclass
    class Config(TaskConfig):
        """BEATs hyper-parameters.

        Attributes:
            slice_frames: input frames per example.
            mask_ratio: share of encoder frames masked at random (0.75).
            tokenizer: file from ``pocketear tokenizer``; "" = the random-projection tokenizer.
            codebook_size: codes of the random-projection tokenizer (1024).
            code_dim: dimension of its projection (16).
            seed: seed of the random projection and codebook (tokenizer identity).
        """

        mask_ratio: float = 0.75
        tokenizer: str = ""
        codebook_size: int = 1024
        code_dim: int = 16
        seed: int = 0

    cfg: Config

    def __init__(self, encoder: Encoder, cfg: Config | None = None) -> None:
        super().__init__(encoder, cfg)
        c = self.cfg
        if not 0 < c.mask_ratio < 1 or c.codebook_size < 2 or c.code_dim < 1:
            raise InvalidValue("need 0 < mask_ratio < 1, codebook_size >= 2, code_dim >= 1")
        if c.tokenizer:
            self.labeler = load_targets(c.tokenizer)
        else:
            s = c.slice_frames
            stride = -(-s // self.out_frames(s))
            self.labeler = random_projection_tokenizer(stride * encoder.n_mels, c.code_dim,
                                                       c.codebook_size, c.seed)
        d = encoder.embed_dim
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, self.labeler.k))

    def draw_mask(self, n: int, n_valid: int, rng: np.random.Generator) -> np.ndarray:
        """Random frames (``mask_ratio`` of the real ones, §2.3), not spans; one real: masked."""
        mask = np.zeros(n, dtype=bool)
        if n_valid == 1:
            mask[0] = True
        else:
            mask[:n_valid] = random_mask(n_valid, self.cfg.mask_ratio, rng)
        return mask

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Cross-entropy on the tokenizer's tokens of the masked real frames."""
        x, mask, valid = batch["x"], batch["mask"].bool(), batch["valid"].bool()
        tokens = self.labeler(x, mask.shape[1])
        logits = self.head(self.encoder(self.masked_input(x, mask).unsqueeze(1)))
        where = mask & valid
        loss = masked_cross_entropy(logits.float(), tokens, where)
        with torch.no_grad():
            p = torch.bincount(tokens[valid], minlength=self.labeler.k).float()
            p = p[p > 0] / p.sum()
            logs = {
                "loss": float(loss.detach()),
                "acc_masked": float((logits.argmax(-1) == tokens)[where].float().mean()),
                "mask_ratio": float(mask[valid].float().mean()),
                "token_perplexity": float(torch.exp(-(p * p.log()).sum())),
            }
        return loss, logs
