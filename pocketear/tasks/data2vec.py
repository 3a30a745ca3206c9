"""data2vec: regress an EMA teacher's averaged top-K layer outputs at masked frames.

Baevski, Hsu, Xu, Babu, Gu & Auli, "data2vec: A General Framework for Self-supervised Learning in
Speech, Vision and Language", ICML 2022: §3.1 (EMA teacher, τ annealed linearly 0.999 → 0.9999),
§3.2 (span masking p = 0.65, M = 10), §3.3 Eq. (1)–(2) (targets: the average of the top K = 8
blocks' outputs, each instance-normalised over time; for speech the feed-forward output before
the last residual), Eq. (3) (Smooth L1 with β; β = 0 here means L2). Applied to keyword
spotting with KWT by Bovbjerg & Tan, "Improving Label-Deficient Keyword Spotting Through
Self-Supervised Pretraining", ICASSP 2023 workshops (arXiv:2210.01703), whose settings these
defaults follow.

``mode="v2"``: the efficiency recipe of data2vec 2.0 (Baevski, Babu, Hsu & Auli, "Efficient
Self-supervised Learning with Contextualized Target Representations for Vision, Speech and
Language", ICML 2023, §3): masked tokens are not encoded — the student runs its blocks on the
visible tokens only — a small convolutional decoder fills the sequence back in (masked slots
hold a learned embedding) and predicts the targets, and ``num_masks`` masked versions of each
sample share one teacher pass (multi-mask training). Needs a ``TokenEncoder`` (``kwt*``,
``conformer_tiny``), since only such an encoder can drop tokens; every sequence in a batch keeps
the same number of tokens.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pocketear.augment.masks import expected_mask_ratio, span_mask
from pocketear.encoders.base import Encoder, TokenEncoder
from pocketear.errors import InvalidValue
from pocketear.losses.masked import masked_regression, top_k_average
from pocketear.registry import register
from pocketear.tasks._masked import MaskedTask
from pocketear.tasks.base import Batch, TaskConfig, ema_decay


def _instance_norm_real(h: torch.Tensor, valid: torch.Tensor, eps: float = 1e-5
                        ) -> torch.Tensor:
    """``instance_norm_time`` with mean and variance over the real frames only.

    The real frames are those where ``valid`` (``(B, T)``) is True; padded frames are normalised
    with the same statistics (they are never targets).
    """
    h = h.float()
    w = valid.to(h.dtype)[..., None]  # (B, T, 1)
    n = w.sum(dim=1, keepdim=True).clamp(min=1.0)
    mean = (h * w).sum(dim=1, keepdim=True) / n
    var = ((h - mean).pow(2) * w).sum(dim=1, keepdim=True) / n
    return (h - mean) / torch.sqrt(var + eps)


class ConvDecoder(nn.Module):
    """data2vec 2.0's light decoder: 1-D conv → LayerNorm → GELU layers, then a linear projection.

    Every layer after the first is residual; the projection maps to the target dimension.
    """

    def __init__(self, dim: int, hidden: int, layers: int, kernel: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(dim if i == 0 else hidden, hidden, kernel, padding=kernel // 2)
            for i in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
        self.proj = nn.Linear(hidden, dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Token features ``(B, N, D)`` (masked slots filled in) → predictions ``(B, N, D)``."""
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            y = nn.functional.gelu(norm(conv(h.transpose(1, 2)).transpose(1, 2)))
            h = y if i == 0 else h + y
        return self.proj(h)


@register("task", "data2vec")
class Data2Vec(MaskedTask):
    """Masked frames → regress the EMA teacher's top-K instance-normalised layer average.

    The teacher sees the unmasked slice; the student sees it with masked frames replaced by the
    learned mask token (``mode="v1"``) or without the masked tokens (``mode="v2"``). Targets use
    ``encoder.layer_outputs(x, kind)`` when the encoder provides it (``kwt*``,
    ``conformer_tiny``); any other encoder falls back to its final frame features as the only
    layer (K = 1). The loss covers masked frames of real audio only. Logs ``loss``,
    ``mask_ratio``, ``ema_decay``, ``target_std`` (collapse shows as targets losing variance
    across frames) and ``pred_std``.
    """

    @dataclass
    class Config(TaskConfig):
        """data2vec hyper-parameters (paper defaults where the paper gives one).

        Attributes:
            slice_frames: input frames per example (96 = 0.96 s).
            mask_prob: span-start probability p (0.65; see ``pocketear.augment.masks``).
            mask_length: span length in encoder frames (10).
            top_k: teacher layers averaged into the target (8).
            target_layers: ``"ffn"`` (feed-forward output before the last residual, the
                paper's choice for speech) or ``"block"`` (block outputs).
            ema_start: teacher decay at step 0 (0.999).
            ema_end: teacher decay after ``anneal_steps`` (0.9999).
            anneal_steps: updates over which the decay is annealed linearly (the papers use
                tens of thousands; shorter runs here, so 1000 by default).
            loss_beta: Smooth L1 β; 0 = L2 loss.
            mode: ``"v1"`` (masked frames replaced by the mask token) or ``"v2"`` (data2vec
                2.0: masked tokens dropped, conv decoder, several masks per sample).
            num_masks: masked versions of each sample per teacher pass (v2 only).
            decoder_dim: conv decoder width (v2 only; 0 = the encoder's width).
            decoder_layers: conv decoder layers (v2 only).
            decoder_kernel: conv decoder kernel size (v2 only, odd).
        """

        mask_prob: float = 0.65
        mask_length: int = 10
        top_k: int = 8
        target_layers: str = "ffn"
        ema_start: float = 0.999
        ema_end: float = 0.9999
        anneal_steps: int = 1000
        loss_beta: float = 0.0
        mode: str = "v1"
        num_masks: int = 4
        decoder_dim: int = 0
        decoder_layers: int = 3
        decoder_kernel: int = 5

    cfg: Config

    def __init__(self, encoder: Encoder, cfg: Config | None = None) -> None:
        super().__init__(encoder, cfg)
        c = self.cfg
        if c.mode not in ("v1", "v2") or c.target_layers not in ("ffn", "block"):
            raise InvalidValue(f"mode must be v1|v2 and target_layers ffn|block; got {c.mode!r}, "
                             f"{c.target_layers!r}")
        if c.top_k < 1 or c.mask_length < 1 or not 0 < c.mask_prob <= 1 or c.num_masks < 1:
            raise InvalidValue("need top_k, mask_length, num_masks >= 1 and 0 < mask_prob <= 1")
        if not 0 <= c.ema_start <= 1 or not 0 <= c.ema_end <= 1:
            raise InvalidValue("ema_start and ema_end must be in [0, 1]")
        d = encoder.embed_dim
        self.teacher = copy.deepcopy(encoder).requires_grad_(False).eval()
        self.register_buffer("ema_step", torch.zeros((), dtype=torch.long))
        if c.mode == "v2":
            if not isinstance(encoder, TokenEncoder):
                raise InvalidValue(f"data2vec mode=v2 drops masked tokens, which needs a token "
                                 f"encoder (kwt1/2/3, conformer_tiny); "
                                 f"{type(encoder).__name__} cannot — use mode=v1")
            if c.decoder_kernel % 2 == 0 or c.decoder_layers < 1:
                raise InvalidValue("decoder_kernel must be odd and decoder_layers >= 1")
            self.dec_mask = nn.Parameter(0.02 * torch.randn(d))
            self.decoder = ConvDecoder(d, c.decoder_dim or d, c.decoder_layers, c.decoder_kernel)
        else:
            # LayerNorm first: targets are unit-variance, any encoder's output scale is not
            self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d))

    def train(self, mode: bool = True) -> Data2Vec:
        """Set the training mode, but keep the teacher in eval mode (deterministic targets)."""
        super().train(mode)
        self.teacher.eval()  # deterministic targets: no dropout, BatchNorm running stats
        return self

    # --- sampler ----------------------------------------------------------------------------
    def draw_mask(self, n: int, n_valid: int, rng: np.random.Generator) -> np.ndarray:
        """v1: the base's span mask; v2: ``num_masks`` masks ``(M, n)``, each hiding as many.

        Raises:
            InvalidValue: v2 with fewer than 2 encoder frames per slice.
        """
        c = self.cfg
        if c.mode == "v1":
            return super().draw_mask(n, n_valid, rng)
        if n < 2:
            raise InvalidValue("data2vec v2 needs at least 2 encoder frames per slice")
        exact = int(np.clip(round(expected_mask_ratio(c.mask_prob, c.mask_length) * n), 1, n - 1))
        return np.stack([span_mask(n, c.mask_prob, c.mask_length, rng, exact=exact)
                         for _ in range(c.num_masks)])

    # --- objective --------------------------------------------------------------------------
    @torch.no_grad()
    def targets(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher targets ``(B, T', D)`` for unmasked log-mels ``(B, S, F)``.

        With ``valid`` ``(B, T')``, each layer's instance normalisation over time (data2vec
        Eq. (2)) uses the real-audio frames only, so the padding of a short clip does not
        shift or scale its targets.
        """
        if self.teacher.has_layer_outputs:
            layers = self.teacher.layer_outputs(x.unsqueeze(1), kind=self.cfg.target_layers)
        else:
            layers = [self.teacher(x.unsqueeze(1))]
        if valid is None or bool(valid.all()):
            return top_k_average(layers, self.cfg.top_k)
        return torch.stack([_instance_norm_real(h, valid)
                            for h in layers[-self.cfg.top_k:]]).mean(0)

    def predict_v2(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Student predictions ``(B·M, N, D)``: visible tokens encoded, decoder fills in."""
        b, m, n = mask.shape
        tokens = self.encoder.tokenize(x.unsqueeze(1)).repeat_interleave(m, 0)
        flat = mask.reshape(b * m, n)
        n_keep = int(n - flat[0].sum())
        if not bool((flat.sum(1) == n - n_keep).all()):
            raise ValueError("data2vec v2: every mask of a batch must hide as many tokens")
        keep = torch.argsort(flat.to(torch.int8), dim=1, stable=True)[:, :n_keep]
        index = keep[..., None].expand(-1, -1, tokens.shape[-1])
        h, _ = self.encoder.encode_tokens(tokens.gather(1, index))
        full = self.dec_mask.to(h.dtype).expand(b * m, n, -1).scatter(1, index, h)
        return self.decoder(full)

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Regress the teacher's targets at the masked real frames (v1 or v2 student)."""
        c = self.cfg
        x, mask, valid = batch["x"], batch["mask"].bool(), batch["valid"].bool()
        target = self.targets(x, valid)
        if c.mode == "v1":
            pred = self.head(self.encoder(self.masked_input(x, mask).unsqueeze(1)))
            where = mask & valid
        else:
            pred = self.predict_v2(x, mask)
            target = target.repeat_interleave(mask.shape[1], 0)
            where = (mask & valid[:, None]).reshape(-1, mask.shape[-1])
        if pred.shape != target.shape:
            raise ValueError(f"student frames {tuple(pred.shape)} vs teacher {tuple(target.shape)}")
        if not bool(where.any()):  # no masked real frame in the batch: nothing to regress
            loss = pred.sum() * 0.0
        else:
            loss = masked_regression(pred.float(), target, where, beta=c.loss_beta)
        with torch.no_grad():
            logs = {
                "loss": float(loss.detach()),
                "mask_ratio": float(mask.float().mean()),
                "ema_decay": self.current_decay(),
                "target_std": float(target.std(dim=1).mean()),
                "pred_std": float(pred.float().std(dim=1).mean()),
            }
        return loss, logs

    # --- EMA --------------------------------------------------------------------------------
    def current_decay(self) -> float:
        """The teacher's EMA decay after the ``ema_step`` updates made so far."""
        c = self.cfg
        return ema_decay(int(self.ema_step), c.ema_start, c.ema_end, c.anneal_steps)

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module, float]]:
        """One (student, teacher, τ) pair; τ follows the annealing schedule.

        The schedule counts the updates made so far (``ema_step`` is a buffer, so it resumes
        with the checkpoint).
        """
        decay = self.current_decay()
        self.ema_step += 1
        return [(self.encoder, self.teacher, decay)]
