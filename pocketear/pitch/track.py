"""Track pitch in audio of any length, in bounded memory, with a checkpoint or an ONNX model.

The audio is read ``block_seconds`` at a time with :meth:`~pocketear.frontends.cqt.CQT.
context_samples` of audio on each side (zeros beyond the file's ends, as the whole-file CQT
pads), and only the block's own frames are kept: every frame sees the samples it would see in a
whole-file run, so streamed and whole-file outputs agree to float rounding. Frame ``t`` is
centred on sample ``t · hop``; a file of ``N`` samples has ``1 + N // hop`` frames.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pocketear.audio.io import AudioError
from pocketear.errors import InvalidValue
from pocketear.export.stream import collect_inputs, num_samples, read_span
from pocketear.pitch.model import Calibration, NotAPitchModel

Run = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # (1, N) wave → (1, T) pitch, conf
# confidence at or above which a frame is called voiced when the calibration holds no threshold
# of its own: SPICE's tutorial treats frames under 0.9 as unvoiced (docs/PAPERS.md §6)
DEFAULT_THRESHOLD = 0.9


class Uncalibrated(InvalidValue):
    """A pitch model with no calibration: its output is not yet in semitones."""


class Tracker:
    """Calibrated pitch and confidence per frame, computed block by block.

    Args:
        run: the model: a ``(1, N)`` float32 wave → ``(1, T)`` pitch and confidence.
        sample_rate, hop: the model's rate and frame hop in samples.
        context: samples each frame depends on either side of its centre.
        calibration: raw pitch → MIDI semitones.
        block_seconds: audio per model call (memory is bounded by it, not by the file).
        backend: ``"torch"`` or ``"onnx"``, for reports.
    """

    def __init__(self, run: Run, sample_rate: int, hop: int, context: int,
                 calibration: Calibration, block_seconds: float = 30.0,
                 backend: str = "torch") -> None:
        self.run, self.sample_rate, self.hop = run, int(sample_rate), int(hop)
        self.context = math.ceil(context / hop) * hop  # whole hops keep every octave aligned
        self.block = max(1, round(block_seconds * sample_rate / hop)) * hop
        self.calibration, self.backend = calibration, backend

    @property
    def voicing_threshold(self) -> float:
        """The calibration's voicing threshold, else ``DEFAULT_THRESHOLD``."""
        t = self.calibration.voicing_threshold
        return DEFAULT_THRESHOLD if math.isnan(t) else t

    def frames(self, n_samples: int) -> int:
        """Frames of an ``n_samples`` input."""
        return 1 + n_samples // self.hop

    def raw_blocks(self, n_samples: int, span: Callable[[int, int], np.ndarray]
                   ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(first frame, pitch, confidence)`` per block; ``span(lo, hi)`` reads samples."""
        total, per_block = self.frames(n_samples), self.block // self.hop
        skip = self.context // self.hop
        for first in range(0, total, per_block):
            lo = first * self.hop - self.context
            wave = span(lo, lo + self.block + 2 * self.context)
            pitch, conf = self.run(np.ascontiguousarray(wave, dtype=np.float32)[None])
            keep = slice(skip, skip + min(per_block, total - first))
            yield first, pitch[0, keep], conf[0, keep]

    def track(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hz and confidence per frame of a mono wave at :attr:`sample_rate`."""
        wave = np.asarray(wave, dtype=np.float32).reshape(-1)

        def span(lo: int, hi: int) -> np.ndarray:
            return _padded(wave, 0, lo, hi)

        pitch, conf = self._join(self.raw_blocks(len(wave), span))
        return self.calibration.hz(pitch), conf

    def track_file(self, path: str | os.PathLike[str],
                   on_progress: Callable[[float], None] | None = None
                   ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(seconds, hz, confidence)`` block by block for one file (any length)."""
        path, sr = os.fspath(path), self.sample_rate
        n = num_samples(path, sr)

        def span(lo: int, hi: int) -> np.ndarray:
            audio, offset = read_span(path, sr, lo, hi, n)
            return _padded(audio, offset, lo, hi)

        for first, pitch, conf in self.raw_blocks(n, span):
            times = (first + np.arange(len(pitch))) * self.hop / sr
            if on_progress:
                on_progress(len(pitch) * self.hop / sr)
            yield times, self.calibration.hz(pitch), conf

    @staticmethod
    def _join(blocks: Iterable[tuple[int, np.ndarray, np.ndarray]]
              ) -> tuple[np.ndarray, np.ndarray]:
        parts = list(blocks)
        return (np.concatenate([p for _, p, _ in parts]),
                np.concatenate([c for _, _, c in parts]))


def _padded(audio: np.ndarray, offset: int, lo: int, hi: int) -> np.ndarray:
    """Samples ``[lo, hi)`` of a signal whose ``audio`` starts at ``offset``; zeros elsewhere."""
    out = np.zeros(hi - lo, dtype=np.float32)
    a, b = max(lo, offset), min(hi, offset + len(audio))
    if b > a:
        out[a - lo: b - lo] = audio[a - offset: b - offset]
    return out


def load_tracker(model: str | os.PathLike[str], threads: int | None = None,
                 block_seconds: float = 30.0) -> Tracker:
    """A :class:`Tracker` of a calibrated ``spice`` checkpoint or run folder, or its ``.onnx``.

    Raises:
        NotAPitchModel: not a pitch model.
        Uncalibrated: a checkpoint never calibrated (the fix: ``pocketear calibrate RUN``).
    """
    if str(model).lower().endswith(".onnx"):
        return _onnx_tracker(model, threads, block_seconds)
    import torch

    from pocketear.pitch.model import load_pitch_model

    net, cal, state = load_pitch_model(model)
    if cal is None:
        raise Uncalibrated(f"{state['path']}: not calibrated yet; run `pocketear calibrate "
                           f"{model}` (a few labelled notes fix its semitone scale)")
    if threads:
        torch.set_num_threads(threads)

    def run(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            pitch, conf = net(torch.from_numpy(wave))
        return pitch.numpy(), conf.numpy()

    return Tracker(run, net.sample_rate, net.hop_length, net.frontend.context_samples(), cal,
                   block_seconds, "torch")


def _onnx_tracker(path: str | os.PathLike[str], threads: int | None,
                  block_seconds: float) -> Tracker:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    if meta.get("kind") != "pitch":
        raise NotAPitchModel(f"{path}: not a pitch model (export one with `pocketear export "
                             "RUN --task-head pitch`)")

    def run(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pitch, conf = sess.run(None, {"wave": wave})
        return pitch, conf

    cal = Calibration.from_dict(json.loads(meta["calibration"]))
    return Tracker(run, int(meta["sample_rate"]), int(meta["hop_samples"]),
                   int(meta["context_samples"]), cal, block_seconds, "onnx")


def track_files(model: str | os.PathLike[str] | Tracker, inputs: Iterable[str | os.PathLike[str]],
                out: str | os.PathLike[str], threshold: float | None = None,
                threads: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Write ``file,time,hz,confidence,voiced`` rows for every frame of every input to ``out``.

    ``threshold`` None: :attr:`Tracker.voicing_threshold`. Files that cannot be decoded are
    skipped with a warning and counted. The CSV is written to a temporary file and renamed, so
    an interrupted run leaves no partial output.

    Returns:
        ``{"out", "files", "tracked", "skipped": [(path, reason)], "frames", "backend"}``.
    """
    from tqdm import tqdm

    from pocketear.audio.io import audio_duration

    tracker = model if isinstance(model, Tracker) else load_tracker(model, threads)
    threshold = tracker.voicing_threshold if threshold is None else threshold
    files = collect_inputs(inputs)
    seconds = 0.0
    for f in files:
        with contextlib.suppress(AudioError):
            seconds += audio_duration(f)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.part")
    skipped: list[tuple[str, str]] = []
    frames = 0
    bar = tqdm(total=round(seconds, 1), unit="s", desc="pitch", disable=not progress)
    try:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["file", "time", "hz", "confidence", "voiced"])
            for f in files:
                try:
                    for times, hz, conf in tracker.track_file(
                            f, lambda s: bar.update(round(s, 1))):
                        writer.writerows(
                            (f, f"{t:.3f}", f"{h:.2f}", f"{c:.3f}", int(c >= threshold))
                            for t, h, c in zip(times, hz, conf, strict=True))
                        frames += len(times)
                except AudioError as err:
                    warnings.warn(f"skipping audio file: {err}", stacklevel=2)
                    skipped.append((f, err.reason))
        if len(skipped) == len(files):
            raise AudioError(files[0], f"none of the {len(files)} input file(s) could be decoded")
        os.replace(tmp, out)
    finally:
        bar.close()
        tmp.unlink(missing_ok=True)
    return {"out": str(out), "files": len(files), "tracked": len(files) - len(skipped),
            "skipped": skipped, "frames": frames, "backend": tracker.backend}

