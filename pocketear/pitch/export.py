"""Export a calibrated pitch model to ONNX: waveform in, pitch and confidence per frame out.

The CQT frontend is traced as it runs in PyTorch (``torch.stft`` per octave, strided
convolutions between them), with dynamic batch and length; the calibration, frame hop and the
context each frame needs ride along as metadata, so :func:`pocketear.pitch.track.load_tracker`
streams any length from the file alone. Parity with PyTorch is checked before the file is kept.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pocketear.export.graph import ExportError, file_sha256
from pocketear.export.onnx import set_metadata, strip_debug_info
from pocketear.pitch.model import load_pitch_model
from pocketear.pitch.track import Uncalibrated

PITCH_TOLERANCE = 1e-4  # max abs difference of pitch (≈ 0.02 bin) and confidence vs PyTorch


def parity_waves(sample_rate: int) -> list[np.ndarray]:
    """Test inputs: a vibrato tone with harmonics, noise, a short click (one frame)."""
    rng = np.random.default_rng(7)
    t = np.arange(int(1.3 * sample_rate)) / sample_rate
    f0 = 220 * 2 ** (0.3 * np.sin(2 * np.pi * 5 * t) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.3
    return [tone.astype(np.float32), (rng.standard_normal(sample_rate) * 0.1).astype(np.float32),
            np.r_[1.0, np.zeros(300)].astype(np.float32)]


def export_pitch_onnx(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str],
                      force: bool = False) -> dict[str, Any]:
    """Write the pitch model of a calibrated ``spice`` checkpoint to ``out`` (``.onnx``).

    Raises:
        Uncalibrated: the checkpoint has no calibration (``pocketear calibrate`` first).
        ExportError: outputs differ from PyTorch beyond ``PITCH_TOLERANCE`` (unless ``force``).
    """
    import onnx
    import onnxruntime as ort

    from pocketear import __version__

    model, cal, state = load_pitch_model(checkpoint)
    if cal is None:
        raise Uncalibrated(f"{state['path']}: calibrate it before export (`pocketear calibrate "
                           f"{checkpoint}`)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    batch, length = torch.export.Dim("batch", min=1), torch.export.Dim("length", min=1)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "pitch.onnx"
        torch.onnx.export(model, (torch.randn(1, model.sample_rate) * 0.1,), str(raw),
                          dynamo=True, dynamic_shapes=({0: batch, 1: length},),
                          input_names=["wave"], output_names=["pitch", "confidence"],
                          external_data=False, verbose=False)
        proto = onnx.load(str(raw))
    strip_debug_info(proto)
    set_metadata(proto, {
        "producer": "pocketear", "pocketear_version": __version__, "kind": "pitch",
        "sample_rate": str(model.sample_rate), "hop_samples": str(model.hop_length),
        "context_samples": str(model.frontend.context_samples()),
        "calibration": json.dumps(cal.to_dict()),
        "frontend": json.dumps(model.frontend.cfg.to_dict(), sort_keys=True),
        "checkpoint_sha256": file_sha256(state["path"]),
        "input": "wave: float32 (batch, samples) mono in [-1, 1] at sample_rate",
        "output": "pitch, confidence: float32 (batch, 1 + samples // hop_samples) in [0, 1]; "
                  "midi = calibration.offset + calibration.slope * pitch",
    })
    tmp_out = out.with_name(f".{out.name}.part")
    onnx.save(proto, str(tmp_out))
    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(tmp_out), opts, providers=["CPUExecutionProvider"])
        worst = 0.0
        for wave in parity_waves(model.sample_rate):
            with torch.no_grad():
                ref = [t.numpy() for t in model(torch.from_numpy(wave)[None])]
            got = sess.run(None, {"wave": wave[None]})
            worst = max(worst, *(float(np.abs(g - r).max()) for g, r in zip(got, ref, strict=True)))
        if worst > PITCH_TOLERANCE and not force:
            raise ExportError(f"{out}: ONNX differs from PyTorch by {worst:.2e} (> "
                              f"{PITCH_TOLERANCE:.0e}); not written (--force writes it anyway)")
        os.replace(tmp_out, out)
    finally:
        tmp_out.unlink(missing_ok=True)
    return {"out": str(out), "bytes": out.stat().st_size, "max_abs_diff": worst,
            "calibration": cal.to_dict()}
