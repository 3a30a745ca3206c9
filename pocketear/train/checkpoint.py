"""Checkpoints: one file with weights, resolved config, normalisation stats and training state.

Written atomically (temp file + rename) so a crash never leaves a corrupt checkpoint, and read
with ``torch.load(weights_only=True)`` so loading never unpickles arbitrary objects.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from pocketear.errors import InvalidValue

FORMAT = "pocketear-checkpoint"


class CheckpointError(InvalidValue):
    """A file that is not a usable pocketear checkpoint (a user error, still a ``ValueError``)."""


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``payload`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint safely, with an error that names the file and the fix."""
    path = Path(path)
    if path.is_dir():
        candidates = [path / "checkpoints" / "last.pt", path / "last.pt"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise CheckpointError(f"{path}: no checkpoints/last.pt in this run folder; pass a "
                                  "checkpoint file or a run folder that finished a checkpoint")
        path = found
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure means "not a usable checkpoint"
        raise CheckpointError(
            f"{path}: cannot be read as a pocketear checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}); it may be truncated or from another tool — "
            "use the run's checkpoints/last.pt or re-run training"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a pocketear checkpoint (no '{FORMAT}' marker)")
    payload["path"] = str(path)
    return payload
