"""Mixed-length corpora: clips too short for a task are left out up front and counted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pocketear.registry import get
from pocketear.tasks.base import Task
from pocketear.train.batches import BatchSampler, filter_short_clips
from pocketear.train.config import load_config
from pocketear.train.loop import pretrain
from tests.conftest import write_tone

HOP = 0.01  # seconds per frame at the default frontend


def _task(name: str, **cfg) -> Task:
    from tests.tasks.conftest import TinyEncoder

    torch.manual_seed(0)
    cls = get("task", name)
    return cls(TinyEncoder(n_mels=4), cls.Config(**cfg))


def test_filter_counts_and_says_so() -> None:
    task = _task("temporal_gap", slice_frames=48)  # disjoint slices: 96 frames, 9 may be padded
    assert task.min_frames == 87
    kept = filter_short_clips([10, 87, 86, 300, 0, 120], task, HOP, "temporal_gap")
    assert kept.usable.tolist() == [1, 3, 5] and kept.short == 3 and kept.total == 6
    assert kept.message("temporal_gap") == ("3 of 6 clips are shorter than the 0.87 s that "
                                            "temporal_gap needs; training on 3")
    big = filter_short_clips([100] * 2588 + [10] * 412, task, HOP)
    assert big.message("audio2vec_cbow") == ("412 of 3,000 clips are shorter than the 0.87 s "
                                             "that audio2vec_cbow needs; training on 2,588")


@pytest.mark.parametrize(("name", "setting"), [
    ("audio2vec_cbow", "task.n_side"), ("triplet", "task.min_separation_frames"),
    ("cola", "task.min_separation_frames"), ("data2vec", "task.slice_frames")])
def test_all_clips_too_short_is_one_clear_error(name: str, setting: str) -> None:
    task = _task(name)
    with pytest.raises(ValueError) as err:
        filter_short_clips([5, 12, 20], task, HOP, name)
    msg = str(err.value)
    assert "\n" not in msg and name in msg and setting in msg
    assert f"{task.min_frames * HOP:.2f} s" in msg and "longest: 0.20 s" in msg


@pytest.mark.parametrize("name", ["audio2vec_skipgram", "temporal_gap", "triplet", "cola",
                                  "byol_a", "hubert"])
def test_min_frames_is_the_samplers_own_rule(name: str) -> None:
    """A clip of ``min_frames`` yields an example, one frame less never does."""
    task = _task(name)
    rng = np.random.default_rng(0)
    clip = rng.standard_normal((task.min_frames, 4)).astype(np.float32)
    other = rng.standard_normal((300, 4)).astype(np.float32)
    assert task.sample(clip, rng, lambda: other) is not None
    assert task.sample(clip[:-1], rng, lambda: other) is None


def test_batch_sampler_draws_only_the_given_clips() -> None:
    task = _task("temporal_gap", slice_frames=16)
    lengths = [40, 5, 40, 5, 40]
    clips = [np.full((n, 4), i, np.float32) for i, n in enumerate(lengths)]
    kept = filter_short_clips(lengths, task, HOP)
    sampler = BatchSampler(lambda i: clips[i], len(clips), task, 8, indices=kept.usable)
    seen = {int(v) for s in range(6) for v in sampler.batch(s)["first"][:, 0, 0]}
    assert seen == {0, 2, 4} and sampler.unusable == 0


def test_pretrain_on_a_mixed_length_corpus(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "audio"
    for i in range(4):
        write_tone(root / f"long{i}.wav", 300 + 50 * i, seconds=2.5, seed=i)
    for i in range(3):  # 0.5 s: shorter than two disjoint 0.96 s slices
        write_tone(root / f"short{i}.wav", 500 + 50 * i, seconds=0.5, seed=10 + i)
    cfg = load_config(None, ["task.name=temporal_gap", "encoder.name=mobile_tiny",
                             f"data.source={root}", "train.steps=2", "optim.batch_size=4",
                             "optim.warmup_steps=1", "data.workers=1", "train.threads=1"])
    summary = pretrain(cfg, tmp_path / "run", progress=False)
    assert summary["short_clips"] == 3 and summary["training_clips"] == 4
    assert summary["unusable_draws"] == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["short_clips"] == 3
    assert ("3 of 7 clips are shorter than the 1.73 s that temporal_gap needs; training on 4"
            in capsys.readouterr().err)
    cfg["train"]["steps"] = 1
    with pytest.raises(ValueError, match="temporal_gap needs"):
        pretrain({**cfg, "data": {**cfg["data"], "where": {}}, "task": {
            **cfg["task"], "slice_frames": 200}}, tmp_path / "run2", progress=False)
