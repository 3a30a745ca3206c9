"""Pretraining streamed from WebDataset shards: trains, resumes at a shard boundary, splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pocketear.data.shards import write_shards
from pocketear.errors import InvalidValue
from pocketear.train.build import build_encoder, build_frontend, build_task
from pocketear.train.checkpoint import load_checkpoint
from pocketear.train.config import load_config, resolve
from pocketear.train.distributed import Place
from pocketear.train.loop import pretrain
from pocketear.train.stream import StreamSampler, shard_stats


def _sets(source: Path | str, steps: int = 4, **extra: str) -> list[str]:
    base = {"task.name": "temporal_gap", "encoder.name": "mobile_tiny", "data.source": source,
            "train.steps": steps, "optim.batch_size": 4, "optim.warmup_steps": 1,
            "train.log_every": 1, "train.ckpt_every": 2, "task.slice_frames": 48,
            "data.workers": 0, "data.shuffle": 4, **extra}
    return [f"{k}={v}" for k, v in base.items()]


@pytest.fixture
def shards(tone_folder: Path, tmp_path: Path) -> Path:
    write_shards(tone_folder, tmp_path / "shards", max_bytes=150_000, progress=False)
    return tmp_path / "shards"


def test_pretrain_from_shards_and_resume(shards: Path, tmp_path: Path) -> None:
    assert len(list(shards.glob("*.tar"))) >= 4
    out = tmp_path / "run"
    summary = pretrain(load_config(None, _sets(shards)), out, progress=False)
    assert summary["streamed_from"] == "shards" and summary["clips"] == 12
    assert np.isfinite(summary["final"]["loss"])
    state = load_checkpoint(out)
    assert set(state["stream"]) == {"epoch", "start_shard"}
    resumed = pretrain(load_config(None, _sets(shards, steps=6)), out, resume=True,
                       progress=False)
    assert resumed["resumed_from"] == 4 and resumed["steps"] == 6
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_shard_stats_come_from_the_index(shards: Path) -> None:
    cfg = resolve(load_config(None, _sets(shards)))
    index = json.loads((shards / "shards.json").read_text())
    mean, std = shard_stats(sorted(map(str, shards.glob("*.tar"))), build_frontend(cfg).cfg, 0)
    assert np.allclose(mean, index["mean"]) and np.allclose(std, index["std"])


def _sampler(shards: Path, rank: int = 0, world: int = 1) -> StreamSampler:
    cfg = resolve(load_config(None, _sets(shards)))
    frontend = build_frontend(cfg)
    frontend.set_stats(*shard_stats([str(p) for p in sorted(shards.glob("*.tar"))],
                                    frontend.cfg, 0))
    torch.manual_seed(0)
    task = build_task(cfg, build_encoder(cfg))
    return StreamSampler(str(shards), frontend, task, 4, Place(rank, world).share(4), seed=0,
                         shuffle=4)


def test_resume_point_is_a_shard_boundary_behind_the_reader(shards: Path) -> None:
    sampler = _sampler(shards)
    assert sampler.state() == {"epoch": 0, "start_shard": 0}
    sampler.batch(0)
    sampler.batch(1)  # 8 clips of 12: several shards begun
    state = sampler.state()
    assert state == {"epoch": 0, "start_shard": max(0, len(sampler._seen) - 2)}  # 1 worker
    for step in range(2, 8):  # past the end of the epoch: the next epoch, from its start
        sampler.batch(step)
    assert sampler.state()["epoch"] >= 1


def test_the_same_seed_streams_the_same_batches(shards: Path) -> None:
    one, two = _sampler(shards), _sampler(shards)
    for step in range(3):
        a, b = one.batch(step), two.batch(step)
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_shards_refuse_a_manifest_filter(shards: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidValue, match="data.where"):
        pretrain(load_config(None, [*_sets(shards), "data.where.split=train"]),
                 tmp_path / "run", progress=False)
