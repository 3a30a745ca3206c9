"""``pocketear.pretrain(...)``: the Python call that mirrors ``pocketear pretrain``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pocketear.train.config import load_config
from pocketear.train.loop import pretrain as run_pretrain
from pocketear.train.loop import resume_run


def pretrain(
    task: str,
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    encoder: str | None = None,
    config: str | os.PathLike[str] | None = None,
    steps: int | None = None,
    epochs: float | None = None,
    overrides: list[str] | None = None,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Same as ``pocketear pretrain``; returns the run summary.

    With ``resume=True`` the run in ``out`` continues from its checkpoint with its own config
    (``steps`` may raise its total), as ``pocketear pretrain --resume`` does.
    """
    if resume:
        return resume_run(out, steps=steps, progress=progress)
    sets = [f"task.name={task}", f"data.source={Path(data)}"]
    if encoder is not None:  # None: the task's default (mobile_100; spice for spice)
        sets.append(f"encoder.name={encoder}")
    if steps is not None:
        sets.append(f"train.steps={steps}")
    if epochs is not None:
        sets.append(f"train.epochs={epochs}")
    cfg = load_config(config, [*sets, *(overrides or [])])
    return run_pretrain(cfg, out, progress=progress)
