"""Distillation: a small student regresses a frozen teacher's layer outputs (DistilHuBERT).

Chang, Yang & Lee, "DistilHuBERT: Speech representation learning by layer-wise distillation of
hidden-unit BERT", ICASSP 2022, Sec. 2 and eq. (1): the student's last-layer frames feed one
prediction head per chosen teacher layer, and each head minimises
``(1/D) ‖h_l − ĥ_l‖₁ − λ log σ(cos(h_l, ĥ_l))`` against the teacher's layer ``l`` (λ = 1, three
layers of a 12-layer teacher: 4, 8, 12). LightHuBERT (Wang et al. 2022, arXiv 2203.15610) uses
the same layer-wise loss for its supernet stage.

The teacher is any pocketear checkpoint (``--set task.teacher=CHECKPOINT``), loaded by the
driver (``train/build.py``: :meth:`Distill.set_teacher`) with its own frontend config, which
must equal the run's, and its normalisation statistics, which the student's inputs then use
too (:attr:`Distill.input_stats`). Token encoders (``kwt*``, ``conformer_tiny``) give per-block
outputs; any other teacher gives its output frames (layer "0" of ``task.layers``), or with
``task.teacher_frames=readout`` the frames its read-out pools (``Encoder.read_frames``). A
third-party frame-level model can be a teacher once wrapped as a registered encoder (README).

Masked distillation (``task.mask_ratio`` > 0) follows DMAE (Bai et al., "Masked Autoencoders
Enable Efficient Knowledge Distillers", CVPR 2023, arXiv 2208.12256): a random
``mask_ratio`` of the teacher's tokens is hidden, the teacher runs on the visible tokens only
(cheaper: its attention sees fewer tokens), the student's frames at the visible tokens regress the
teacher's features there, and the student also reconstructs the masked log-mel frames (the MAE
loss, weight ``task.recon_weight``). Departure: the student sees the whole slice with masked
frames set to 0 (the normalised mean) rather than dropping them, so any encoder, convolutional
ones included, can be the student; the teacher must be a token encoder.

A once-for-all student (encoder ``kwt_super``, :mod:`pocketear.encoders.supernet`) is trained
with the sandwich rule (Yu & Huang, "Universally slimmable networks", ICCV 2019; BigNAS,
ECCV 2020): each step the largest, the smallest and ``task.random_subnets`` random subnets
predict the same targets, and the step's loss is their mean. LightHuBERT's own sampling
schedule is NOT checked here (PAPERS.md §8 records its search space and two-stage distillation
only). The heads take the leading ``dim`` inputs of a narrower subnet, like every shared weight.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pocketear.encoders.base import Encoder, TokenEncoder
from pocketear.encoders.supernet import Subnet, SuperKWT
from pocketear.errors import InvalidValue
from pocketear.registry import register
from pocketear.tasks.base import Batch, ClipNeed, Example, Task, TaskConfig, valid_frames


def distill_loss(pred: torch.Tensor, target: torch.Tensor, real: torch.Tensor,
                 cos_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DistilHuBERT's eq. (1) for one layer over the real frames: (loss, L1 part, cosine).

    ``pred`` and ``target`` ``(B, T, D)``; ``real`` ``(B, T)`` bool.
    """
    p, t = pred[real].float(), target[real].float()
    l1 = (p - t).abs().mean()
    cos = F.cosine_similarity(p, t, dim=-1)
    return l1 - cos_weight * F.logsigmoid(cos).mean(), l1, cos.mean()


def sliced_linear(head: nn.Linear, h: torch.Tensor) -> torch.Tensor:
    """``head`` on frames narrower than its input: the leading columns (a subnet's width)."""
    return F.linear(h, head.weight[:, : h.shape[-1]], head.bias)


def visible_tokens(batch: int, tokens: int, mask_ratio: float,
                   device: torch.device | None = None) -> torch.Tensor:
    """``(B, N_visible)`` sorted indices of the tokens left visible.

    A random ``mask_ratio`` of each row is masked, the same count per row, so the visible
    tokens stack into one batch.
    """
    keep = max(1, tokens - round(mask_ratio * tokens))
    return torch.rand(batch, tokens, device=device).argsort(dim=1)[:, :keep].sort(dim=1).values


def align_time(target: torch.Tensor, frames: int) -> torch.Tensor:
    """Teacher frames ``(B, T_t, D)`` linearly resampled to the student's ``frames`` (time)."""
    if target.shape[1] == frames:
        return target
    return F.interpolate(target.transpose(1, 2), size=frames, mode="linear",
                         align_corners=False).transpose(1, 2)


@register("task", "distill")
class Distill(Task):
    """Layer-wise distillation of a frozen teacher checkpoint into the run's encoder."""

    @dataclass
    class Config(TaskConfig):
        """Distillation hyper-parameters.

        Attributes:
            slice_frames: frames per slice (96 = 0.96 s).
            teacher: a pocketear checkpoint or run folder, or ``encoder:NAME`` (a registered
                encoder whose factory loads its own weights) (required).
            layers: teacher layers to predict, 1-based block indices of a token encoder
                (``"4,8,12"``: DistilHuBERT's three of twelve; ``"auto"``: three evenly spaced,
                the last included); ``"0"`` is the teacher's frames of ``teacher_frames``
                (any encoder).
            teacher_frames: what layer 0 is: ``output``, the teacher's output frames (after
                its projection: ``mobile_100``'s 128-d), or ``readout``, the frames its read-out
                pools (``encoder.readout`` of its checkpoint: ``mobile_100``'s 512-d features).
                ``output`` is the default because small students distilled from it scored
                higher on FSDD and Arabic keywords (docs/benchmarks.md §15).
            cos_weight: λ of the ``−log σ(cos)`` term (DistilHuBERT: 1).
            max_pad_fraction: clips at most this fraction shorter than a slice are padded
                (padded frames never enter the loss).
            mask_ratio: DMAE's masked distillation: this fraction of the teacher's tokens is
                hidden from both (0: off; DMAE masks 0.75 of image patches); needs a token
                encoder teacher.
            recon_weight: weight of the masked log-mel reconstruction (masked mode only).
            random_subnets: subnets drawn at random per step besides the largest and the
                smallest, for a ``kwt_super`` student (the sandwich rule).
        """

        teacher: str = ""
        layers: str = "auto"
        teacher_frames: str = "output"
        cos_weight: float = 1.0
        max_pad_fraction: float = 0.1
        mask_ratio: float = 0.0
        recon_weight: float = 1.0
        random_subnets: int = 1

    cfg: Config

    def __init__(self, encoder: Encoder, cfg: Config | None = None) -> None:
        super().__init__(encoder, cfg)
        c = self.cfg
        if c.cos_weight < 0 or c.recon_weight < 0 or c.random_subnets < 0:
            raise InvalidValue("task.cos_weight, task.recon_weight and task.random_subnets must "
                               f"be >= 0, got {c.cos_weight}, {c.recon_weight}, "
                               f"{c.random_subnets}")
        if c.teacher_frames not in ("readout", "output"):
            raise InvalidValue(f"task.teacher_frames must be readout or output, got "
                               f"{c.teacher_frames!r}")
        if not 0 <= c.mask_ratio < 1:
            raise InvalidValue(f"task.mask_ratio must be in [0, 1), got {c.mask_ratio}")
        self.teacher: Encoder | None = None
        self.heads = nn.ModuleList()
        self.recon: nn.Linear | None = None
        self.layer_ids: list[int] = []
        self.input_stats: tuple[np.ndarray, np.ndarray] | None = None

    def set_teacher(self, teacher: Encoder,
                    stats: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Attach the frozen teacher and its normalisation (None: the run's); one head per layer."""
        teacher.eval().requires_grad_(False)
        if self.cfg.mask_ratio > 0 and not isinstance(teacher, TokenEncoder):
            raise InvalidValue(f"task.mask_ratio={self.cfg.mask_ratio}: masked distillation "
                               "runs the teacher on the visible tokens only, which needs a token "
                               "encoder teacher (kwt*, conformer_tiny), not "
                               f"{type(teacher).__name__}; set task.mask_ratio=0")
        depth = len(teacher.blocks) if teacher.has_layer_outputs else 0  # type: ignore[arg-type]
        self.layer_ids = self._layers(depth)
        with torch.no_grad():
            probe = torch.zeros(1, 1, self.cfg.slice_frames, teacher.n_mels)
            dims = [t.shape[-1] for t in self._teacher_layers(teacher, probe)]
            was = self.encoder.training
            width = self.encoder.eval()(  # eval: a probe must not move BatchNorm statistics
                torch.zeros(1, 1, self.cfg.slice_frames, self.encoder.n_mels)).shape[-1]
            self.encoder.train(was)
        self.heads = nn.ModuleList(nn.Linear(width, d) for d in dims)
        if self.cfg.mask_ratio > 0:
            self.recon = nn.Linear(width, self.encoder.n_mels * self.encoder.time_stride)
        self.teacher, self.input_stats = teacher, stats

    def _layers(self, depth: int) -> list[int]:
        text = self.cfg.layers.strip()
        if text == "auto":
            return [0] if depth == 0 else sorted({round(depth * k / 3) for k in (1, 2, 3)})
        try:
            ids = [int(x) for x in text.split(",")]
        except ValueError:
            ids = [-1]
        if not ids or any(not 0 <= i <= depth for i in ids) or (0 in ids and len(ids) > 1):
            raise InvalidValue(f"task.layers={text!r}: 1-based teacher blocks in 1 … {depth}, or "
                               "0 for the teacher's output frames alone (e.g. 4,8,12 or auto)")
        return ids

    def _teacher_layers(self, teacher: Encoder, x: torch.Tensor) -> list[torch.Tensor]:
        """The chosen layers' outputs on every frame of ``x``."""
        if self.layer_ids == [0]:
            return [teacher.read_frames(x) if self.cfg.teacher_frames == "readout"
                    else teacher(x)]
        outs = teacher.layer_outputs(x)
        return [outs[i - 1] for i in self.layer_ids]

    def _visible_layers(self, teacher: TokenEncoder, tokens: torch.Tensor,
                        visible: torch.Tensor) -> list[torch.Tensor]:
        """The chosen layers' outputs with the blocks run on the ``visible`` tokens only."""
        tokens = tokens.gather(1, visible[..., None].expand(-1, -1, tokens.shape[-1]))
        final, outs = teacher.encode_tokens(tokens, collect="block")
        if teacher.readout.source == "proj" or self.cfg.teacher_frames == "output":
            final = teacher.project(final)
        return [final if i == 0 else outs[i - 1] for i in self.layer_ids]

    def train(self, mode: bool = True) -> Distill:
        """The teacher stays in eval mode (BatchNorm statistics and dropout frozen)."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def clip_need(self) -> ClipNeed:
        """One slice of ``slice_frames``, short by at most ``max_pad_fraction`` of it."""
        return ClipNeed.of(self.cfg.slice_frames, self.cfg.max_pad_fraction)

    def sample(self, clip: np.ndarray, rng: np.random.Generator,
               other: Callable[[], np.ndarray]) -> Example | None:
        """One slice (augmented for the student only) and which of its frames are real."""
        cut = self.random_slice(clip, rng)
        if cut is None:
            return None
        clean, start = cut
        return {"x": self.view(clean, rng), "clean": clean,
                "valid": valid_frames(len(clip), start, len(clean))}

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """DistilHuBERT's loss summed over the chosen layers (+ DMAE's reconstruction if masked).

        A ``kwt_super`` student averages it over the sandwich of subnets.
        """
        if self.teacher is None:
            raise InvalidValue("distill: no teacher attached (build the task with "
                               "train.build.build_task, which loads task.teacher)")
        x, clean, valid = batch["x"].unsqueeze(1), batch["clean"].unsqueeze(1), batch["valid"]
        visible = hidden = None
        if self.cfg.mask_ratio > 0:
            teacher = self.teacher
            assert isinstance(teacher, TokenEncoder)
            with torch.no_grad():
                tokens = teacher.tokenize(clean)
            n_tokens = tokens.shape[1]
            visible = visible_tokens(len(x), n_tokens, self.cfg.mask_ratio, x.device)
            shown = torch.zeros(len(x), n_tokens, dtype=torch.bool, device=x.device)
            shown.scatter_(1, visible, True)
            token_of = torch.arange(x.shape[2], device=x.device) // teacher.token_stride
            hidden = ~shown[:, token_of.clamp(max=n_tokens - 1)]  # (B, T): masked input frames
            x = x.masked_fill(hidden[:, None, :, None], 0.0)
            with torch.no_grad():
                targets = self._visible_layers(teacher, tokens, visible)
        else:
            with torch.no_grad():
                targets = self._teacher_layers(self.teacher, clean)
        subnets = self._sandwich()
        total, logs = x.new_zeros(()), {}
        for i, subnet in enumerate(subnets):
            if subnet is not None:
                self.encoder.set_active(subnet)  # type: ignore[operator]
            loss, mine = self._student_loss(x, clean, valid, targets, visible, hidden)
            total = total + loss / len(subnets)
            if i == 0:
                logs |= mine
            if subnet is not None and i < 2:
                logs[("loss_largest", "loss_smallest")[i]] = mine["loss"]
        if subnets[0] is not None:
            self.encoder.set_active(subnets[0])  # type: ignore[operator]
        logs["loss"] = float(total.detach())
        return total, logs

    @torch.no_grad()
    def proxy_loss(self, batch: Batch, subnet: Subnet | None = None) -> float:
        """The distillation loss of unmasked ``batch["clean"]`` (``subnet`` active, if given).

        The label-free score ``pocketear subnet`` ranks subnets by; the supernet is left on its
        largest subnet.
        """
        assert self.teacher is not None
        clean = batch["clean"].unsqueeze(1)
        targets = self._teacher_layers(self.teacher, clean)
        enc = self.encoder
        if subnet is not None:
            enc.set_active(subnet)  # type: ignore[operator]
        try:
            return float(self._student_loss(clean, clean, batch["valid"], targets, None,
                                            None)[0])
        finally:
            if isinstance(enc, SuperKWT):
                enc.set_active(enc.largest)

    def _sandwich(self) -> list[Subnet | None]:
        """Largest, smallest and ``random_subnets`` random subnets; [None] for a plain student."""
        enc = self.encoder
        if not isinstance(enc, SuperKWT):
            return [None]
        rng = np.random.default_rng(int(torch.randint(2**31 - 1, ())))
        return [enc.largest, enc.smallest,
                *(enc.random_subnet(rng) for _ in range(self.cfg.random_subnets))]

    def _student_loss(self, x: torch.Tensor, clean: torch.Tensor, valid: torch.Tensor,
                      targets: list[torch.Tensor], visible: torch.Tensor | None,
                      hidden: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, float]]:
        """The active student's loss against the teacher's targets, and its logs."""
        h = full = self.encoder(x)
        frames = full.shape[1]
        if visible is None:
            idx = torch.linspace(0, valid.shape[1] - 1, frames, device=h.device).round().long()
        else:  # the student frame under each visible teacher token's centre
            assert isinstance(self.teacher, TokenEncoder)
            stride = self.teacher.token_stride
            idx = (visible * stride + stride // 2).clamp(max=valid.shape[1] - 1)
            under = (idx // self.encoder.time_stride).clamp(max=frames - 1)
            h = full.gather(1, under[..., None].expand(-1, -1, full.shape[-1]))
        real = valid.bool().gather(1, idx.expand(len(valid), -1))
        total, logs = h.new_zeros(()), {}
        for layer, head, target in zip(self.layer_ids, self.heads, targets, strict=True):
            loss, l1, cos = distill_loss(sliced_linear(head, h),
                                         align_time(target, h.shape[1]), real,
                                         self.cfg.cos_weight)
            total = total + loss
            logs[f"l1_{layer}"], logs[f"cos_{layer}"] = float(l1.detach()), float(cos.detach())
        if hidden is not None and self.recon is not None:
            recon = self._reconstruction(full, clean, hidden & valid.bool())
            total = total + self.cfg.recon_weight * recon
            logs["recon"] = float(recon.detach())
        logs["loss"] = float(total.detach())
        return total, logs

    def _reconstruction(self, h: torch.Tensor, clean: torch.Tensor,
                        where: torch.Tensor) -> torch.Tensor:
        """MSE of the log-mel predicted from the student's frames, on the masked real frames."""
        b, _, t, f = clean.shape
        pred = sliced_linear(self.recon, h).reshape(b, -1, f)  # type: ignore[arg-type]
        pred = align_time(pred, t)
        if not where.any():
            return pred.sum() * 0.0
        return F.mse_loss(pred[where], clean[:, 0][where])

    def monitor_embeddings(self, batch: Batch) -> torch.Tensor:
        """The student's clip embeddings of the slices."""
        return self.encoder.embed(batch["x"].unsqueeze(1))

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        """Without the teacher: it comes back from its own checkpoint (``task.teacher``)."""
        state = super().state_dict(*args, **kwargs)
        return {k: v for k, v in state.items() if not k.startswith("teacher.")}

    def load_state_dict(self, state: Any, strict: bool = True, assign: bool = False) -> Any:
        """Load the student and heads; the teacher is the checkpoint's (never in the state)."""
        result = super().load_state_dict(state, strict=False, assign=assign)
        missing = [k for k in result.missing_keys if not k.startswith("teacher.")]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(f"distill state: missing {missing}, unexpected "
                               f"{result.unexpected_keys}")
        return result
