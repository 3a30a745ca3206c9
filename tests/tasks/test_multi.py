"""The ``multi`` task: sub-tasks on one encoder, namespaced batches, hooks, weights, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pocketear.augment.base import Compose, NamedChains
from pocketear.errors import InvalidValue, UserError
from pocketear.registry import get
from pocketear.tasks.multi import Multi
from pocketear.tasks.slicer import SLICER_AUGMENT
from pocketear.train.build import build_optimiser
from pocketear.train.config import OptimConfig, load_config
from pocketear.train.loop import train_step
from tests.tasks.conftest import synthetic_clip

SMALL_SLICER = {"n_clusters": 8, "queue_size": 64, "slice_frames": 48}


def _multi(encoder, **cfg) -> Multi:
    return Multi(encoder, Multi.Config(**cfg))


@pytest.mark.parametrize("weighting", ["fixed", "uncertainty", "gradnorm"])
@pytest.mark.parametrize("name", ["temporal_gap", "audio2vec_skipgram"])
def test_one_task_equals_the_task_alone(name: str, weighting: str, make_encoder,
                                        make_batch) -> None:
    """Same seed: the same example, loss and encoder gradients as the task on its own."""
    torch.manual_seed(1)
    alone = get("task", name)(make_encoder(seed=0))
    torch.manual_seed(1)
    multi = _multi(make_encoder(seed=0), tasks=[name], weighting=weighting)
    batch, mbatch = make_batch(alone, seed=3), make_batch(multi, seed=3)
    assert set(mbatch) == {f"{name}.{k}" for k in batch}
    for k, v in batch.items():
        assert torch.equal(mbatch[f"{name}.{k}"], v)
    loss, _ = alone.step(batch)
    mloss, logs = multi.step(mbatch)
    torch.testing.assert_close(mloss, loss)
    assert logs[f"loss.{name}"] == pytest.approx(float(loss.detach()))
    assert logs[f"w.{name}"] == pytest.approx(1.0)
    loss.backward()
    mloss.backward()
    for (n, p), q in zip(alone.encoder.named_parameters(), multi.encoder.parameters(),
                         strict=True):
        torch.testing.assert_close(q.grad, p.grad, msg=n)


def test_batch_is_namespaced_and_clip_need_is_the_strictest(make_encoder, make_batch) -> None:
    multi = _multi(make_encoder(), tasks=["temporal_gap", "features"],
                   params={"temporal_gap": {"slice_frames": 40}, "features": {"slice_frames": 32}})
    batch = make_batch(multi, size=3)
    assert {"temporal_gap.first", "temporal_gap.second", "temporal_gap.target",
            "features.x", "features.targets"} <= set(batch)
    assert batch["features.x"].shape == (3, 32, 16)
    need = multi.clip_need()
    gap_need = multi.subtasks["temporal_gap"].clip_need()
    assert need.min_frames == gap_need.min_frames == max(
        t.clip_need().min_frames for t in multi.subtasks.values())
    assert "task.params.temporal_gap.slice_frames" in need.settings
    rng = np.random.default_rng(0)
    clip = synthetic_clip(rng, frames=need.min_frames - 1)
    assert multi.sample(clip, rng, lambda: clip) is None  # one sub-task rejects: no example


def test_logs_every_sub_loss_and_weight(make_encoder, make_batch) -> None:
    for weighting, extra in (("fixed", set()), ("uncertainty", {"s"}),
                             ("gradnorm", {"G", "G_target"})):
        multi = _multi(make_encoder(), tasks=["temporal_gap", "features"], weighting=weighting)
        loss, logs = multi.step(make_batch(multi, size=4))
        for name in ("temporal_gap", "features"):
            assert {f"loss.{name}", f"w.{name}", *(f"{k}.{name}" for k in extra)} <= set(logs)
        assert "temporal_gap.gap_mae" in logs and "features.r2" in logs
        assert logs["loss"] == pytest.approx(float(loss.detach()))


def test_fixed_weights_combine_the_sub_losses(make_encoder, make_batch) -> None:
    multi = _multi(make_encoder(), tasks=["temporal_gap", "features"], weights=[2.0, 0.5])
    loss, logs = multi.step(make_batch(multi, size=4))
    expected = 2.0 * logs["loss.temporal_gap"] + 0.5 * logs["loss.features"]
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(("cfg", "match"), [
    ({"tasks": ["temporal_gap", "nope"]}, r"unknown task 'nope'; available: .*temporal_gap"),
    ({"tasks": ["multi"]}, "multi cannot contain multi"),
    ({"tasks": ["features", "features"]}, "twice"),
    ({"tasks": []}, "empty"),
    ({"tasks": ["features"], "params": {"slicer": {"tau": 0.9}}}, "does not list"),
    ({"tasks": ["features"], "params": {"features": {"tau": 0.9}}}, "unknown key.*tau"),
    ({"tasks": ["features"], "augment": {"features": [{"name": "nope"}]}}, "unknown augment"),
    ({"tasks": ["features"], "weighting": "equal"}, "fixed, uncertainty, gradnorm"),
    ({"tasks": ["features", "temporal_gap"], "weights": [1.0]}, "need 2 weights"),
])
def test_bad_configs_are_user_errors(cfg: dict, match: str) -> None:
    with pytest.raises(InvalidValue, match=match):
        Multi.Config(**cfg)


def test_config_from_the_command_line(make_encoder) -> None:
    """``--set`` lists and per-task overrides, in both spellings; unknown names fail early."""
    cfg = load_config(None, ["task.name=multi",
                             "task.tasks=[temporal_gap, audio2vec_skipgram, slicer]",
                             "task.params={slicer: {tau: 0.99}}",
                             "task.params.temporal_gap.slice_frames=24",
                             "task.weighting=uncertainty", "task.weights=[1, 2, 0.5]"])
    task = cfg["task"]
    assert task["tasks"] == ["temporal_gap", "audio2vec_skipgram", "slicer"]
    assert task["params"]["slicer"]["tau"] == 0.99
    assert task["params"]["slicer"]["n_clusters"] == 128  # resolved: every default filled
    assert task["params"]["temporal_gap"]["slice_frames"] == 24
    assert task["weights"] == [1.0, 2.0, 0.5]
    assert load_config(None, ["task.name=multi"])["task"]["tasks"] == ["temporal_gap", "features"]
    with pytest.raises(UserError, match="unknown task 'temporl_gap'"):
        load_config(None, ["task.name=multi", "task.tasks=[temporl_gap]"])


def test_param_groups_hold_every_parameter_once(make_encoder) -> None:
    multi = _multi(make_encoder(), tasks=["temporal_gap", "features"], weighting="uncertainty")
    groups = multi.param_groups()
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in multi.parameters() if p.requires_grad}
    (s_group,) = [g for g in groups if any(p is multi.weighting.log_vars for p in g["params"])]
    assert s_group["weight_decay"] == 0.0
    gradnorm = _multi(make_encoder(), tasks=["temporal_gap", "features"], weighting="gradnorm")
    assert not list(gradnorm.weighting.parameters())  # weights are buffers, not optimised


def test_hooks_reach_the_sub_tasks(make_encoder) -> None:
    multi = _multi(make_encoder(), tasks=["temporal_gap", "slicer"],
                   params={"slicer": SMALL_SLICER})
    slicer = multi.subtasks["slicer"]
    assert multi.ema_pairs() == slicer.ema_pairs()
    assert multi.ema_pairs()[0][0] is multi.encoder  # the teacher follows the shared encoder
    calls = []
    for name, sub in multi.subtasks.items():
        sub.on_epoch_start = lambda epoch, n=name: calls.append((n, "epoch", epoch))
        sub.after_step = lambda step, n=name: calls.append((n, "step", step))
    multi.on_epoch_start(2)
    multi.after_step(7)
    assert calls == [("temporal_gap", "epoch", 2), ("slicer", "epoch", 2),
                     ("temporal_gap", "step", 7), ("slicer", "step", 7)]


def test_augmentation_chains_per_sub_task(make_encoder) -> None:
    multi = _multi(make_encoder(n_mels=64), tasks=["temporal_gap", "slicer", "features"],
                   augment={"features": [{"name": "gaussian_noise"}]})
    multi.set_augment([], None)
    gap, slicer, feats = (multi.subtasks[n] for n in ("temporal_gap", "slicer", "features"))
    assert gap.augment is None  # no default chain
    assert isinstance(slicer.augment, Compose)  # SLICER's own chain
    assert len(slicer.augment.augmentations) == len(SLICER_AUGMENT)
    assert len(feats.augment.augmentations) == 1  # task.augment.features
    assert isinstance(multi.augment, NamedChains)
    # a non-empty run-level list is the chain of every sub-task not named in task.augment
    multi.set_augment([{"name": "mel_warp"}], None)
    assert len(gap.augment.augmentations) == len(slicer.augment.augmentations) == 1
    assert type(feats.augment.augmentations[0]).__name__ == "GaussianNoise"


def test_fitted_augmentation_state_round_trips(make_encoder) -> None:
    """SLICER's chain inside multi is fitted on the corpus (pre/post-norm, k-mix centroids)."""
    rng = np.random.default_rng(0)
    clips = [synthetic_clip(rng, frames=300, n_mels=64) for _ in range(8)]
    cfg = {"tasks": ["temporal_gap", "slicer"], "params": {"slicer": SMALL_SLICER}}
    multi = _multi(make_encoder(n_mels=64), **cfg)
    multi.set_augment([], None)
    multi.augment.fit(clips, np.random.default_rng(1))
    state = multi.augment.state()
    assert state and all(k.startswith("slicer:") for k in state)
    assert any(k.endswith("centroids") for k in state)
    clone = _multi(make_encoder(n_mels=64), **cfg)
    clone.set_augment([], None)
    clone.augment.load_state(state)
    assert all(np.array_equal(clone.augment.state()[k], v) for k, v in state.items())
    with pytest.raises(InvalidValue, match="names none of the chains"):
        clone.augment.load_state({"temporal_gap:0.PreNorm.mean": np.zeros(3)})
    with pytest.raises(TypeError):
        multi.view(clips[0][:48], rng)


@pytest.mark.parametrize("weighting", ["uncertainty", "gradnorm"])
def test_state_of_every_sub_task_resumes(weighting: str, make_encoder, make_batch) -> None:
    """Teachers, queues, running statistics and the weights survive a state-dict round trip.

    The clone then continues training exactly as the original does.
    """
    cfg = {"tasks": ["temporal_gap", "slicer", "features"], "weighting": weighting,
           "params": {"slicer": SMALL_SLICER}}
    task = _multi(make_encoder(seed=0), **cfg)
    batches = [make_batch(task, size=4, seed=s) for s in range(4)]
    opt = build_optimiser(OptimConfig(lr=1e-3), task)
    for step, batch in enumerate(batches[:3]):
        out = train_step(task, opt, batch, step)
    assert out.logs["w.slicer"] != 1.0  # the weights have moved
    state = task.state_dict()
    assert any(k.startswith("encoder.") for k in state)
    assert not any(".encoder." in k and k.startswith("subtasks.") for k in state)  # stored once
    clone = _multi(make_encoder(seed=1), **cfg)
    clone.load_state_dict(state)
    for p, q in zip(clone.encoder.parameters(), clone.subtasks["slicer"].encoder.parameters(),
                    strict=True):
        assert p is q
    clone_opt = build_optimiser(OptimConfig(lr=1e-3), clone)
    clone_opt.load_state_dict(opt.state_dict())
    slicer, cslicer = task.subtasks["slicer"], clone.subtasks["slicer"]
    assert len(slicer.queue.keys()) == 3 * 2 * 4  # both views' keys of three steps
    assert torch.equal(cslicer.queue.keys(), slicer.queue.keys())
    for p, q in zip(slicer.teacher_encoder.parameters(), cslicer.teacher_encoder.parameters(),
                    strict=True):
        assert torch.equal(p, q)
    assert float(clone.subtasks["features"].count) == 12.0
    for k, v in task.weighting.state_dict().items():
        assert torch.equal(clone.weighting.state_dict()[k], v), k
    a = train_step(task, opt, batches[3], 3)
    b = train_step(clone, clone_opt, batches[3], 3)
    torch.testing.assert_close(b.loss, a.loss)
    assert {k: v for k, v in b.logs.items() if k.startswith("w.")} == pytest.approx(
        {k: v for k, v in a.logs.items() if k.startswith("w.")})


def test_pretrain_logs_weights_and_resumes(tone_folder: Path, tmp_path: Path) -> None:
    """Through the training loop, with a resume.

    SLICER's chain is fitted and stored under its name, every logged step carries the weights.
    """
    from pocketear.train.loop import pretrain, resume_run

    cfg = load_config(None, [
        "task.name=multi", "task.tasks=[temporal_gap, slicer]", "task.weighting=gradnorm",
        "task.params.temporal_gap.slice_frames=32", "task.params.temporal_gap.max_gap_frames=200",
        "task.params={slicer: {n_clusters: 8, queue_size: 64, slice_frames: 32}}",
        "encoder.name=mobile_tiny", f"data.source={tone_folder}", "data.workers=1",
        "train.steps=2", "train.log_every=1", "train.threads=1", "optim.batch_size=4",
        "optim.warmup_steps=1",
        "augment=[]"])
    run = tmp_path / "run"
    pretrain(cfg, run, progress=False)
    with np.load(run / "augment_state.npz", allow_pickle=False) as saved:
        assert saved.files and all(k.startswith("slicer:") for k in saved.files)
    summary = resume_run(run, steps=3, progress=False)
    assert summary["resumed_from"] == 2
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3]
    for x in lines:
        assert {"w.temporal_gap", "w.slicer", "loss.temporal_gap", "loss.slicer"} <= set(x)
    assert lines[-1]["w.temporal_gap"] + lines[-1]["w.slicer"] == pytest.approx(2.0)
    from pocketear.model import load

    model = load(run)  # the shared encoder, read from the checkpoint like any task's
    assert model.embed(np.zeros(16000, np.float32)).shape == (model.embed_dim,)
