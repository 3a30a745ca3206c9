"""A client's side of federated training: what it sends, FedProx, the per-task treatment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pocketear.errors import InvalidValue
from pocketear.federated.local import LocalTrainer, client_corpus, groups
from pocketear.federated.state import check_federated, get_arrays, set_arrays, shared_keys
from pocketear.train.build import build_encoder, build_frontend, build_task
from pocketear.train.config import load_config, resolve
from tests.conftest import write_tone_manifest


def _cfg(task: str = "temporal_gap", **extra: str) -> dict:
    sets = {"task.name": task, "encoder.name": "mobile_tiny", "task.slice_frames": 48,
            "optim.batch_size": 4, "train.threads": 1, **extra}
    return load_config(None, [f"{k}={v}" for k, v in sets.items()])


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tone_manifest(tmp_path_factory.mktemp("fed"), 8, seconds=2.0)


def test_groups_split_by_a_column(manifest: Path) -> None:
    assert groups(str(manifest), "label") == ["high", "low"]
    assert len(client_corpus(str(manifest), "label", "low")) == 4
    with pytest.raises(InvalidValue, match="no column 'speaker'"):
        groups(str(manifest), "speaker")


def test_queues_and_counters_stay_on_the_client() -> None:
    run = resolve(_cfg("slicer"))
    task = build_task(run, build_encoder(run))
    keys = shared_keys(task)
    assert keys and not any("queue." in k for k in keys)
    assert all(task.state_dict()[k].is_floating_point() for k in keys)
    assert any(k.startswith("teacher") or "ema" in k or "target" in k for k in keys)  # EMA


def test_arrays_round_trip_and_refuse_another_model() -> None:
    run = resolve(_cfg())
    torch.manual_seed(0)
    a, fa = build_task(run, build_encoder(run)), build_frontend(run)
    torch.manual_seed(1)
    b, fb = build_task(run, build_encoder(run)), build_frontend(run)
    fa.set_stats(np.full(64, 2.0), np.full(64, 3.0))
    keys = shared_keys(a)
    set_arrays(b, fb, keys, get_arrays(a, fa, keys))
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in keys)
    assert torch.allclose(fb.mean, torch.full((64,), 2.0))
    with pytest.raises(InvalidValue, match="arrays"):
        set_arrays(b, fb, keys, get_arrays(a, fa, keys)[:-3])


def test_a_client_sends_model_arrays_and_scalars_only(manifest: Path, tmp_path: Path) -> None:
    trainer = LocalTrainer(_cfg(), client_corpus(str(manifest), "label", "low"), tmp_path)
    sent_before = trainer.arrays()
    arrays, n, metrics = trainer.fit(sent_before, 1, 2, 1e-3)
    # exactly the shapes of the model's shared state + the two stats vectors: nothing of the
    # audio (no time axis, no per-clip rows) crosses the client boundary
    shapes = [tuple(trainer.task.state_dict()[k].shape) for k in trainer.keys] + [(64,), (64,)]
    assert [a.shape for a in arrays] == shapes
    assert n == 2 * 4 and set(metrics) == {"loss"} and np.isfinite(metrics["loss"])
    assert not all(np.array_equal(x, y) for x, y in zip(arrays, sent_before, strict=True))
    # round 1 sends this client's own statistics; later rounds use the server's
    assert np.allclose(arrays[-2], trainer.local_stats[0])


def test_fedprox_keeps_a_client_near_the_global_model(manifest: Path, tmp_path: Path) -> None:
    def drift(mu: float, folder: str) -> float:
        trainer = LocalTrainer(_cfg(**{"optim.name": "sgd"}),
                               client_corpus(str(manifest), "label", "low"), tmp_path / folder)
        start = trainer.arrays()
        arrays, _, _ = trainer.fit(start, 1, 3, 0.05, proximal_mu=mu)
        return sum(float(np.sum((a - s) ** 2)) for a, s in zip(arrays[:-2], start[:-2],
                                                                  strict=True))

    assert drift(20.0, "prox") < drift(0.0, "plain")


def test_hubert_without_fixed_targets_is_refused() -> None:
    run = resolve(_cfg("hubert"))
    with pytest.raises(InvalidValue, match="task.targets"):
        check_federated(run.task_name, run.task)
