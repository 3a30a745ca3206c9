"""Export a frontend on its own (waveform → log-mel) to ONNX, e.g. to run it in an app's pipeline.

It lives in the export package, not beside :class:`~pocketear.frontends.logmel.LogMel`, so the
frontends hold no exporter code (the frontends are a lower layer than export).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from pocketear.export.graph import INPUT_NAME
from pocketear.frontends.logmel import LogMel

FRONTEND_OUTPUT_NAME = "logmel"


def export_frontend_onnx(
    frontend: LogMel,
    path: str | os.PathLike[str],
    *,
    example_batch: int = 2,
    example_seconds: float = 1.0,
) -> Path:
    """Export ``frontend`` to one self-contained ONNX file with dynamic batch and length.

    Input ``wave`` ``(batch, length)`` float32, output ``logmel`` ``(batch, 1, frames, n_mels)``;
    the stats are baked in as initialisers. The example batch is 2 so the exporter does not
    specialise batch to 1.

    Args:
        frontend: the frontend to export (put in eval mode for the export, then restored).
        path: the ``.onnx`` file to write (its folder is created).
        example_batch: batch of the tracing example.
        example_seconds: length of the tracing example (at least one frontend window).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = max(frontend.cfg.win_length, int(round(example_seconds * frontend.sample_rate)))
    wave = torch.randn(example_batch, n, generator=torch.Generator().manual_seed(0)) * 0.1
    batch = torch.export.Dim("batch", min=1)
    length = torch.export.Dim("length", min=1)
    was_training = frontend.training
    frontend.eval()
    try:
        torch.onnx.export(
            frontend,
            (wave,),
            str(path),
            dynamo=True,
            dynamic_shapes=({0: batch, 1: length},),
            input_names=[INPUT_NAME],
            output_names=[FRONTEND_OUTPUT_NAME],
            external_data=False,
            verbose=False,
        )
    finally:
        frontend.train(was_training)
    return path
