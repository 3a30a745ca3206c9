"""Metrics sinks: ``metrics.jsonl`` (always) and TensorBoard events (when installed)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class MetricsWriter:
    """Appends one JSON line per logging step and mirrors scalars to TensorBoard."""

    def __init__(self, run_dir: str | os.PathLike[str], start_step: int = 0) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        if start_step and self.path.exists():
            # On resume, drop lines written after the checkpoint we resume from.
            lines = self.path.read_text().splitlines()
            kept = [ln for ln in lines
                    if ln.strip() and json.loads(ln).get("step", 0) <= start_step]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        elif self.path.exists():
            self.path.unlink()
        self._f = open(self.path, "a", buffering=1)  # noqa: SIM115 - closed in close()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=start_step or None)
        except ImportError:  # pragma: no cover - tensorboard is a dependency
            self._tb = None

    def log(self, step: int, values: dict[str, Any]) -> None:
        """Append ``{"step": step, **values}`` as one line; numeric values also to TensorBoard."""
        self._f.write(json.dumps({"step": step, **values}) + "\n")
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, int | float):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        """Close the JSON-lines file and the TensorBoard writer."""
        self._f.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The logged steps of a run folder's ``metrics.jsonl``, in order ([] when there is none)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
