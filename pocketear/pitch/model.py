"""A trained SPICE model as a pitch tracker: waveform → (pitch scalar, confidence) per frame.

:class:`PitchModel` is the export-safe module (CQT frontend, per-frame encoder, the task's pitch
and confidence heads); :class:`Calibration` the affine map from its scalar to MIDI semitones
(Gfeller et al., "SPICE", IEEE/ACM TASLP 2020, §II-C: a few labelled notes fix the offset and
scale the self-supervised output cannot know), stored in the checkpoint by ``pocketear
calibrate`` and in the exported model's metadata.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pocketear.errors import InvalidValue
from pocketear.frontends.cqt import CQT


class NotAPitchModel(InvalidValue):
    """A checkpoint or model file that holds no pitch tracker (not a ``spice`` run)."""


@dataclass(frozen=True)
class Calibration:
    """``midi = offset + slope · ŷ``; MIDI semitones (A4 = 69 = 440 Hz).

    Attributes:
        offset, slope: the affine map.
        notes: labelled notes it was fitted on.
        rms_semitones: root-mean-square residual of the fit on those notes.
        voicing_threshold: confidence from which a frame is called voiced: halfway between
            the model's median confidence on the notes and on noise and silence (NaN: unset).
    """

    offset: float
    slope: float
    notes: int = 0
    rms_semitones: float = float("nan")
    voicing_threshold: float = float("nan")

    def midi(self, pitch: np.ndarray) -> np.ndarray:
        """MIDI semitones of raw pitch outputs."""
        return self.offset + self.slope * np.asarray(pitch, dtype=np.float64)

    def hz(self, pitch: np.ndarray) -> np.ndarray:
        """Frequency in Hz of raw pitch outputs."""
        return 440.0 * 2.0 ** ((self.midi(pitch) - 69.0) / 12.0)

    def to_dict(self) -> dict[str, float]:
        """Plain form for checkpoints and ONNX metadata."""
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict`."""
        return cls(float(d["offset"]), float(d["slope"]), int(d.get("notes", 0)),
                   float(d.get("rms_semitones", float("nan"))),
                   float(d.get("voicing_threshold", float("nan"))))


class PitchModel(nn.Module):
    """Waveform ``(B, N)`` → pitch ``ŷ`` ``(B, T)`` and confidence ``(B, T)``, both in [0, 1].

    Frame ``t`` is centred on sample ``t · hop_length`` (the CQT's framing).
    """

    def __init__(self, frontend: CQT, encoder: nn.Module, pitch_head: nn.Module,
                 confidence_head: nn.Module) -> None:
        super().__init__()
        self.frontend, self.encoder = frontend, encoder
        self.pitch_head, self.confidence_head = pitch_head, confidence_head

    @property
    def sample_rate(self) -> int:
        """Rate in Hz the model reads."""
        return self.frontend.sample_rate

    @property
    def hop_length(self) -> int:
        """Samples between frames."""
        return self.frontend.hop_length

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pitch and confidence per frame of ``wave`` ``(B, N)``."""
        h = self.encoder(self.frontend(wave))
        pitch = torch.sigmoid(self.pitch_head(h)).squeeze(-1)
        confidence = torch.sigmoid(self.confidence_head(h)).squeeze(-1)
        return pitch, confidence


def load_pitch_model(checkpoint: str | os.PathLike[str]
                     ) -> tuple[PitchModel, Calibration | None, dict[str, Any]]:
    """The pitch model of a ``spice`` checkpoint or run folder, its calibration and checkpoint.

    Raises:
        NotAPitchModel: the checkpoint is of another task.
    """
    from pocketear.train.build import build_encoder, build_frontend, build_task
    from pocketear.train.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)
    cfg = state["config"]
    if cfg.get("task", {}).get("name") != "spice":
        raise NotAPitchModel(f"{state['path']}: a {cfg.get('task', {}).get('name')!r} run, not "
                             "a pitch model; pretrain one with `pocketear pretrain --task spice`")
    frontend = build_frontend(cfg)
    frontend.load_state_dict(state["frontend"])
    task = build_task(cfg, build_encoder(cfg))
    task.load_state_dict(state["task"])
    model = PitchModel(frontend, task.encoder, task.pitch_head, task.confidence_head).eval()
    cal = state.get("calibration")
    return model, (Calibration.from_dict(cal) if cal else None), state
