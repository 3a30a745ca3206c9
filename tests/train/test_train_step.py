"""``train_step``: the loop's one optimisation step, shared with the benchmarks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pocketear.registry import create, get
from pocketear.train.loop import train_step


def _task_and_batch(name: str = "temporal_gap"):
    torch.manual_seed(0)
    cls = get("task", name)
    task = cls(create("encoder", "mobile_tiny"), cls.Config())
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal((400, 64)).astype(np.float32) for _ in range(4)]
    batch = task.collate([task.sample(c, rng, lambda: clips[0]) for c in clips])
    return task, batch


def test_train_step_updates_and_calls_after_step() -> None:
    task, batch = _task_and_batch()
    seen: list[int] = []
    task.after_step = seen.append  # type: ignore[method-assign]
    opt = torch.optim.AdamW(task.param_groups(), lr=1e-3)
    before = [p.detach().clone() for p in task.parameters()]
    out = train_step(task, opt, batch, step=7, grad_clip=1.0)
    assert torch.isfinite(out.loss) and float(out.grad_norm) > 0 and seen == [7]
    assert any(not torch.equal(a, b) for a, b in zip(before, task.parameters(), strict=True))


def test_non_finite_loss_raises_before_any_update() -> None:
    task, batch = _task_and_batch()
    task.step = lambda b: (torch.tensor(float("nan"), requires_grad=True), {})  # type: ignore
    opt = torch.optim.AdamW(task.param_groups(), lr=1e-3)
    before = [p.detach().clone() for p in task.parameters()]
    with pytest.raises(FloatingPointError, match="at step 3"):
        train_step(task, opt, batch, step=3)
    assert all(torch.equal(a, b) for a, b in zip(before, task.parameters(), strict=True))
