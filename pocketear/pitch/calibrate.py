"""Calibration: the affine map from a SPICE model's output to MIDI semitones.

Gfeller et al., "SPICE: Self-supervised Pitch Estimation", IEEE/ACM TASLP 2020, §II-C: the
relative-pitch objective fixes the output only up to an offset and a scale, which a handful of
notes of known pitch pin down. Each note gives one point (the median output over its confident,
sounding frames); a line is fitted by least squares, and notes more than one semitone off the
line (octave errors, a wrong label) are dropped and the line refitted. With no manifest the notes
come from the built-in synthesiser (:func:`pocketear.data.synth.music.note`), so calibration
needs no data.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from pocketear.errors import InvalidValue
from pocketear.pitch.model import Calibration, PitchModel

MIN_NOTES = 3
OUTLIER_SEMITONES = 1.0
BUILTIN_INSTRUMENTS = ("flute", "clarinet", "strings")
BUILTIN_MIDI = tuple(range(40, 82, 3))  # E2 … F#5: 14 notes per instrument


def builtin_notes(seed: int = 0) -> list[tuple[np.ndarray, float]]:
    """``(wave, midi)`` of synthesised notes at 16 kHz: each instrument over ``BUILTIN_MIDI``."""
    from pocketear.data.synth.music import note

    rng = np.random.default_rng(seed)
    return [(note(name, float(m), 0.6, rng), float(m))
            for name in BUILTIN_INSTRUMENTS for m in BUILTIN_MIDI]


def manifest_notes(manifest: str | os.PathLike[str], sample_rate: int
                   ) -> list[tuple[np.ndarray, float]]:
    """``(wave, midi)`` of a CSV/TSV manifest with ``path`` and ``midi`` columns (one note each).

    Raises:
        InvalidValue: no ``midi`` column, or a value that is not a number.
    """
    from pocketear.audio.io import load_audio
    from pocketear.data.corpus import Corpus

    corpus = Corpus.open(manifest)
    if "midi" not in corpus.columns:
        raise InvalidValue(f"{manifest}: needs a 'midi' column (the note's MIDI pitch, A4 = 69) "
                           "next to 'path'")
    notes = []
    for item in corpus:
        try:
            midi = float(item.get("midi"))
        except ValueError:
            raise InvalidValue(f"{manifest}: {item.path}: midi {item.get('midi')!r} is not a "
                               "number") from None
        notes.append((load_audio(item.path, sample_rate), midi))
    return notes


def _run(model: PitchModel, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        pitch, conf = model(torch.as_tensor(np.asarray(wave, np.float32))[None])
    return pitch[0].numpy(), conf[0].numpy()


def voicing_threshold(model: PitchModel, notes: Sequence[np.ndarray], seed: int = 0) -> float:
    """Halfway between the median confidence on the notes and on unpitched input.

    Unpitched: digital silence and white and pink-ish noise at three levels (1 s each), so the
    threshold is the model's own, not a constant that suits one model and not the next.
    """
    rng = np.random.default_rng(seed)
    voiced = np.median(np.concatenate([_run(model, w)[1] for w in notes]))
    n = model.sample_rate
    white = rng.standard_normal(n)
    pink = np.cumsum(white) / np.sqrt(n)
    pink -= np.convolve(pink, np.ones(401) / 401, mode="same")  # drop the random walk's drift
    unpitched = [np.zeros(n)] + [g * x / np.abs(x).max() for g in (0.01, 0.1, 0.5)
                                 for x in (white, pink)]
    unvoiced = np.median(np.concatenate([_run(model, w)[1] for w in unpitched]))
    return float((voiced + unvoiced) / 2)


def note_output(model: PitchModel, wave: np.ndarray) -> float:
    """The model's output for one note: the median over its sounding, confident frames.

    Sounding: frame energy within 20 dB of the loudest frame; of those, the more confident
    half (at least one frame).
    """
    pitch, conf = _run(model, wave)
    hop = model.hop_length
    padded = np.pad(np.asarray(wave, np.float64), (hop // 2, hop))
    energy = np.array([np.mean(padded[i * hop: i * hop + hop] ** 2) for i in range(len(pitch))])
    sounding = energy >= energy.max() * 10 ** (-20 / 10)
    p, c = pitch[sounding], conf[sounding]
    keep = c >= np.median(c)
    return float(np.median(p[keep]))


def fit_calibration(outputs: Sequence[float], midi: Sequence[float]) -> Calibration:
    """Least-squares line ``midi ≈ offset + slope · output``, refitted without outliers.

    Raises:
        InvalidValue: fewer than ``MIN_NOTES`` notes, or all outputs equal (an untrained model).
    """
    x, y = np.asarray(outputs, np.float64), np.asarray(midi, np.float64)
    if len(x) < MIN_NOTES:
        raise InvalidValue(f"calibration needs at least {MIN_NOTES} notes, got {len(x)}")
    if np.ptp(x) <= 1e-9:
        raise InvalidValue("every note gave the same output: the model has not learnt pitch "
                           "(train longer, or check the run)")
    keep = np.ones(len(x), bool)
    for _ in range(3):
        slope, offset = np.polyfit(x[keep], y[keep], 1)
        resid = np.abs(offset + slope * x - y)
        new = resid <= OUTLIER_SEMITONES
        if new.sum() < MIN_NOTES or (new == keep).all():
            break
        keep = new
    rms = float(np.sqrt(np.mean((offset + slope * x[keep] - y[keep]) ** 2)))
    return Calibration(float(offset), float(slope), int(keep.sum()), rms)


def calibrate_model(model: PitchModel, notes: Iterable[tuple[np.ndarray, float]]) -> Calibration:
    """Fit the calibration of ``model`` on ``(wave, midi)`` notes, and its voicing threshold."""
    notes = list(notes)
    pairs = [(note_output(model, w), m) for w, m in notes]
    cal = fit_calibration([p for p, _ in pairs], [m for _, m in pairs])
    return dataclasses.replace(cal, voicing_threshold=voicing_threshold(
        model, [w for w, _ in notes]))


def calibrate(checkpoint: str | os.PathLike[str], notes: str | os.PathLike[str] | None = None,
              seed: int = 0) -> dict[str, Any]:
    """Calibrate a ``spice`` checkpoint or run folder and store the map in its checkpoint.

    ``notes``: a manifest with ``path`` and ``midi`` columns; None: the built-in notes. The
    checkpoint is rewritten atomically with a ``calibration`` entry.

    Returns:
        ``{"checkpoint", **Calibration fields, "source"}``.
    """
    from pocketear.pitch.model import load_pitch_model
    from pocketear.train.checkpoint import save_checkpoint

    model, _, state = load_pitch_model(checkpoint)
    pairs = (manifest_notes(notes, model.sample_rate) if notes is not None
             else builtin_notes(seed))
    cal = calibrate_model(model, pairs)
    path = state.pop("path")
    state.pop("format", None)
    save_checkpoint({**state, "calibration": cal.to_dict()}, path)
    return {"checkpoint": path, **cal.to_dict(),
            "source": str(notes) if notes is not None else "built-in synthesised notes"}
