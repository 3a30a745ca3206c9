"""Short pretraining runs that ``test_distributed.py`` starts under ``torchrun`` (and alone).

``python ddp_worker.py [--exact] DATA OUT STEPS TASK...``: one run per task into ``OUT/TASK``,
so a single ``torchrun`` start (a few seconds) serves every task family.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pocketear.registry import get


def settings(task: str, data: Path | str, steps: int, exact: bool = False) -> list[str]:
    """The ``--set`` overrides of one small run (a tiny encoder, a global batch of 8).

    ``exact``: a small KWT (no BatchNorm, whose statistics are per rank under DDP on the CPU)
    and plain SGD (which, unlike Adam's normalised first steps, keeps weight differences in
    proportion to gradient differences).
    """
    sets = [f"task.name={task}", f"data.source={data}", f"train.steps={steps}",
            "optim.batch_size=8", "optim.warmup_steps=1", "train.log_every=1",
            "train.threads=1", "train.ckpt_every=2", "train.device=cpu"]
    if exact:
        sets += ["encoder.name=kwt1", "encoder.depth=2",
                 "encoder.input_frames=48",
                 "task.slice_frames=48", "optim.name=sgd", "optim.lr=0.01"]
    elif get("task", task).default_encoder == "mobile_100":
        sets += ["encoder.name=mobile_tiny", "task.slice_frames=48"]
    return sets


def main(argv: list[str]) -> None:
    """Run each task of ``argv[3:]`` for ``argv[2]`` steps on ``argv[0]`` into ``argv[1]/TASK``."""
    import torch.distributed as dist

    from pocketear.train.config import load_config
    from pocketear.train.loop import pretrain

    exact = argv[0] == "--exact"
    data, out, steps, *tasks = argv[exact:]
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # one group for all runs (the loop reuses it)
        dist.init_process_group("gloo")
    for task in tasks:
        pretrain(load_config(None, settings(task, data, int(steps), exact)), Path(out) / task,
                 progress=False)
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
