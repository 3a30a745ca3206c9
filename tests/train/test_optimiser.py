"""``optim.name`` picks the run's optimiser: AdamW (default) or SGD with momentum (SLICER's)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pocketear.registry import get
from pocketear.train.build import build_optimiser
from pocketear.train.config import load_config
from pocketear.train.loop import pretrain
from tests.tasks.conftest import TinyEncoder


def _task():
    cls = get("task", "slicer")
    return cls(TinyEncoder(), cls.Config(queue_size=0))


def test_default_is_adamw_and_sgd_takes_momentum() -> None:
    optim = load_config(None, ["task.name=slicer"])["optim"]
    assert (optim["name"], optim["momentum"]) == ("adamw", 0.9)
    task = _task()
    adamw = build_optimiser(optim, task)
    assert type(adamw) is torch.optim.AdamW
    assert adamw.defaults["lr"] == optim["lr"] and adamw.defaults["weight_decay"] == 1e-4
    sgd = build_optimiser(dict(optim, name="sgd", lr=0.03, momentum=0.8), task)
    assert type(sgd) is torch.optim.SGD
    assert (sgd.defaults["lr"], sgd.defaults["momentum"], sgd.defaults["weight_decay"]) == (
        0.03, 0.8, 1e-4)
    n_params = sum(len(g["params"]) for g in task.param_groups())
    assert sum(len(g["params"]) for g in sgd.param_groups) == n_params
    # a config saved before optim.name existed trains with AdamW, as it did
    old = {k: v for k, v in optim.items() if k not in ("name", "momentum")}
    assert type(build_optimiser(old, task)) is torch.optim.AdamW


def test_bad_optimiser_settings_name_the_key() -> None:
    optim = load_config(None, ["task.name=slicer"])["optim"]
    with pytest.raises(ValueError, match="optim.name.*adamw, sgd"):
        build_optimiser(dict(optim, name="adam"), _task())
    with pytest.raises(ValueError, match="optim.momentum"):
        build_optimiser(dict(optim, name="sgd", momentum=-0.1), _task())


def test_a_run_trains_and_resumes_with_sgd(tone_folder: Path, tmp_path: Path) -> None:
    cfg = load_config(None, [
        "task.name=temporal_gap", "encoder.name=mobile_tiny", f"data.source={tone_folder}",
        "train.steps=2", "optim.batch_size=4", "optim.warmup_steps=1", "optim.name=sgd",
        "optim.lr=0.03", "train.log_every=1", "train.ckpt_every=1", "data.workers=1",
        "train.threads=1"])
    run = tmp_path / "run"
    pretrain(cfg, run, progress=False)
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    assert "momentum_buffer" in next(iter(state["optimizer"]["state"].values()))
    assert pretrain({"train": {"steps": 3}}, run, resume=True, progress=False)["steps"] == 3
