"""The trivial-task monitor: warns once when a task is solved from the start (issue 12)."""

from __future__ import annotations

import math

from pocketear.train.monitors import TrivialTaskMonitor


def feed(monitor: TrivialTaskMonitor, series: list[dict[str, float]], every: int = 10) -> list:
    """Feed logged steps ``every, 2·every, ...``; return what each update returned."""
    return [monitor.update(every * (i + 1), logs) for i, logs in enumerate(series)]


def test_fires_once_when_loss_collapses_towards_zero() -> None:
    losses = [0.05 * 0.3 ** i for i in range(12)]  # 0.05 -> 1e-8 within 120 steps
    out = feed(TrivialTaskMonitor("cola"), [{"loss": v} for v in losses])
    fired = [m for m in out if m is not None]
    assert len(fired) == 1
    msg = fired[0]
    assert msg.startswith("cola: this task is solved trivially on this data: loss ")
    assert "% of its first value 0.05" in msg and "at step" in msg
    assert "longer clips" in msg and "minimum separation" in msg  # what to try


def test_fires_on_a_loss_that_is_zero_from_the_start() -> None:
    monitor = TrivialTaskMonitor("triplet")
    out = feed(monitor, [{"loss": 0.0}] * 5)
    assert out[:2] == [None, None] and out[2] is not None  # after `recent` logged steps
    assert "since the start" in monitor.warning


def test_fires_when_the_task_reports_its_pretext_solved() -> None:
    # the loss itself looks healthy; the active-triplet fraction says otherwise
    monitor = TrivialTaskMonitor("triplet")
    feed(monitor, [{"loss": 0.002, "frac_active": 0.003}] * 4)
    assert monitor.warning is not None and "0.3 % of its triplets" in monitor.warning
    assert "task.negatives=semihard" in monitor.warning
    acc = TrivialTaskMonitor("temporal_gap")
    feed(acc, [{"loss": 1.0 - 0.01 * i, "accuracy": 1.0} for i in range(4)])
    assert acc.warning is not None and "pretext accuracy" in acc.warning


def test_quiet_on_a_normal_decreasing_loss() -> None:
    series = [{"loss": 3.0 * math.exp(-i / 15) + 0.4, "frac_active": 0.4 - 0.005 * i,
               "accuracy": 0.5 + 0.008 * i} for i in range(50)]
    monitor = TrivialTaskMonitor("triplet")
    assert feed(monitor, series) == [None] * 50 and monitor.warning is None


def test_only_the_start_of_training_is_judged() -> None:
    monitor = TrivialTaskMonitor("cola", until_step=100)
    feed(monitor, [{"loss": 2.0}] * 10 + [{"loss": 1e-5}] * 20)  # steps 10 … 300
    assert monitor.warning is None
    # non-finite values and missing keys are ignored, not crashes
    feed(TrivialTaskMonitor("cola"), [{"loss": float("nan")}, {}, {"accuracy": float("inf")}])
