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
outputs; any other teacher gives its output frames (layer "0" of ``task.layers``). A third-party
frame-level model can be a teacher once wrapped as a registered encoder (see README).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pocketear.encoders.base import Encoder
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
                the last included); ``"0"`` is the teacher's output frames (any encoder).
            cos_weight: λ of the ``−log σ(cos)`` term (DistilHuBERT: 1).
            max_pad_fraction: clips at most this fraction shorter than a slice are padded
                (padded frames never enter the loss).
        """

        teacher: str = ""
        layers: str = "auto"
        cos_weight: float = 1.0
        max_pad_fraction: float = 0.1

    cfg: Config

    def __init__(self, encoder: Encoder, cfg: Config | None = None) -> None:
        super().__init__(encoder, cfg)
        if self.cfg.cos_weight < 0:
            raise InvalidValue(f"task.cos_weight must be >= 0, got {self.cfg.cos_weight}")
        self.teacher: Encoder | None = None
        self.heads = nn.ModuleList()
        self.layer_ids: list[int] = []
        self.input_stats: tuple[np.ndarray, np.ndarray] | None = None

    def set_teacher(self, teacher: Encoder,
                    stats: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Attach the frozen teacher and its normalisation (None: the run's); one head per layer."""
        teacher.eval().requires_grad_(False)
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
        if self.layer_ids == [0]:
            return [teacher(x)]
        outs = teacher.layer_outputs(x)
        return [outs[i - 1] for i in self.layer_ids]

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
        """Sum over the chosen layers of DistilHuBERT's loss on the student's real frames."""
        if self.teacher is None:
            raise InvalidValue("distill: no teacher attached (build the task with "
                               "train.build.build_task, which loads task.teacher)")
        with torch.no_grad():
            targets = self._teacher_layers(self.teacher, batch["clean"].unsqueeze(1))
        h = self.encoder(batch["x"].unsqueeze(1))
        frames = h.shape[1]
        idx = torch.linspace(0, batch["valid"].shape[1] - 1, frames, device=h.device)
        real = batch["valid"].bool()[:, idx.round().long()]
        total, logs = h.new_zeros(()), {}
        for layer, head, target in zip(self.layer_ids, self.heads, targets, strict=True):
            loss, l1, cos = distill_loss(head(h), align_time(target, frames), real,
                                         self.cfg.cos_weight)
            total = total + loss
            logs[f"l1_{layer}"], logs[f"cos_{layer}"] = float(l1.detach()), float(cos.detach())
        logs["loss"] = float(total.detach())
        return total, logs

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
