"""The contrastive family's own logic, beyond the contract every task is tested for.

The two-view sampler, EMA targets, the key queue, COLA's two similarities and the default
augmentation chains.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pocketear.registry import get
from pocketear.tasks._twoview import KeyQueue
from pocketear.tasks.slicer import EpochCappedQueue
from pocketear.train.ema import ema_update
from tests.tasks.conftest import synthetic_clip

TWO_VIEW = ["cola", "byol_a", "slicer", "delores_s"]


def _task(name, encoder, **overrides):
    cls = get("task", name)
    return cls(encoder, cls.Config(**overrides))


@pytest.mark.parametrize("name", TWO_VIEW)
def test_two_view_sampler(name: str, make_encoder) -> None:
    rng = np.random.default_rng(0)
    clip = synthetic_clip(rng, 300)
    same = _task(name, make_encoder(), same_segment=True, slice_frames=40)
    ex = same.sample(clip, rng, lambda: clip)
    assert ex["view1"].shape == (40, clip.shape[1]) and ex["view1"].dtype == np.float32
    np.testing.assert_array_equal(ex["view1"], ex["view2"])  # no augmentation: identical
    apart = _task(name, make_encoder(), same_segment=False, slice_frames=40)
    differ = [not np.array_equal(*apart.sample(clip, rng, lambda: clip).values())
              for _ in range(20)]
    assert sum(differ) >= 18  # independent offsets: equal only by chance (1 in 261)
    # short clips: padded within max_pad_fraction, rejected beyond it; COLA's two segments
    # need S + min_separation_frames (default S / 2): 60 frames, at most 6 of them padded
    assert apart.min_frames == (54 if name == "cola" else 36)
    short = clip[:apart.min_frames]
    assert apart.sample(short, rng, lambda: clip)["view1"].shape == (40, clip.shape[1])
    assert apart.sample(short[:-1], rng, lambda: clip) is None
    assert same.sample(clip[:37], rng, lambda: clip)["view1"].shape == (40, clip.shape[1])
    assert same.sample(clip[:35], rng, lambda: clip) is None


@pytest.mark.parametrize("name", ["byol_a", "slicer"])
def test_ema_target_starts_equal_is_frozen_and_follows(name: str, make_encoder,
                                                       make_batch) -> None:
    task = _task(name, make_encoder())
    pairs = task.ema_pairs()
    assert pairs and all(d == task.cfg.tau for *_, d in pairs)
    trainable = {id(p) for g in task.param_groups() for p in g["params"]}
    for online, target, _ in pairs:
        for p_o, p_t in zip(online.parameters(), target.parameters(), strict=True):
            torch.testing.assert_close(p_o, p_t)
            assert not p_t.requires_grad and id(p_t) not in trainable
    before = [p.detach().clone() for _, t, _ in pairs for p in t.parameters()]
    opt = torch.optim.SGD(task.param_groups(), lr=0.1)
    loss, _ = task.step(make_batch(task))
    opt.zero_grad()
    loss.backward()
    opt.step()
    online_now = [p.detach().clone() for o, _, _ in pairs for p in o.parameters()]
    for online, target, decay in pairs:
        ema_update(online, target, decay)
    after = [p for _, t, _ in pairs for p in t.parameters()]
    tau = task.cfg.tau
    for b, o, a in zip(before, online_now, after, strict=True):
        torch.testing.assert_close(a, tau * b + (1 - tau) * o)


def test_key_queue_is_a_fifo_ring() -> None:
    q = KeyQueue(size=5, dim=2)
    assert len(q.keys()) == 0
    q.push(torch.arange(6.0).reshape(3, 2))  # rows 0, 1, 2
    assert q.keys().tolist() == [[0, 1], [2, 3], [4, 5]]
    q.push(torch.arange(6.0, 14.0).reshape(4, 2))  # rows 3..6: 5 and 6 overwrite 0 and 1
    assert int(q.count) == 5 and int(q.ptr) == 2
    assert sorted(r[0] for r in q.keys().tolist()) == [4, 6, 8, 10, 12]
    q.push(torch.arange(100.0, 120.0).reshape(10, 2))  # more than fits: the last 5 rows stay
    assert sorted(r[0] for r in q.keys().tolist()) == [110, 112, 114, 116, 118]
    KeyQueue(0, 2).push(torch.ones(3, 2))  # size 0: a no-op


def test_slicer_queue_fills_only_after_training_steps(make_encoder, make_batch) -> None:
    task = _task("slicer", make_encoder(), queue_size=12)
    batch = make_batch(task, size=4)
    first = task.step(batch)[0]
    torch.testing.assert_close(task.step(batch)[0], first)  # step alone changes nothing
    assert int(task.queue.count) == 0
    task.after_step(0)
    assert int(task.queue.count) == 8  # both views' keys, L2-normalised
    torch.testing.assert_close(task.queue.keys().norm(dim=1), torch.ones(8))
    assert not torch.allclose(task.step(batch)[0], first)  # the queue now adds negatives
    task.eval()
    task.step(batch)
    task.after_step(1)
    assert int(task.queue.count) == 8  # evaluation never enqueues


def test_cola_similarities(make_encoder, make_batch) -> None:
    bilinear = _task("cola", make_encoder())
    cosine = _task("cola", make_encoder(), similarity="cosine", temperature=0.5)
    assert bilinear.bilinear.shape == (512, 512) and cosine.bilinear is None
    batch = make_batch(bilinear, size=6)
    logits = cosine.logits(batch).detach()
    assert logits.shape == (6, 6) and float(logits.abs().max()) <= 1 / 0.5 + 1e-5
    with pytest.raises(ValueError, match="similarity"):
        _task("cola", make_encoder(), similarity="dot")


def test_default_augmentation_chains() -> None:
    from pocketear.train.config import load_config

    cfg = load_config(None, ["task.name=byol_a"])
    assert [a["name"] for a in cfg["augment"]] == ["pre_norm", "log_mixup_exp",
                                                  "random_resize_crop", "post_norm"]
    # SLICER's official chain: BYOL-A's mixup and RRC, then k-mix (changed from k-mix in place
    # of mixup, issue 12)
    slicer = load_config(None, ["task.name=slicer"])["augment"]
    assert [a["name"] for a in slicer] == ["pre_norm", "log_mixup_exp", "random_resize_crop",
                                           "kmix", "post_norm"]
    assert slicer[3]["params"] == {"k": 4, "partner": "farthest", "top_k": 128, "iters": 20,
                                   "alpha": 0.4}
    assert load_config(None, ["task.name=byol_a", "augment=[]"])["augment"] == []
    assert load_config(None, ["task.name=cola"])["augment"] == []


def test_slicer_official_heads_and_defaults(make_encoder) -> None:
    task = _task("slicer", make_encoder())
    d = task.encoder.embed_dim
    c = task.cfg
    assert (c.n_clusters, c.proj_dim, c.temperature, c.cluster_temperature, c.tau,
            c.queue_size, c.cluster_entropy) == (128, 128, 0.07, 1.0, 0.999, 65_536, False)
    assert isinstance(task.projector, torch.nn.Linear)  # instance projector Linear(D→128)
    assert (task.projector.in_features, task.projector.out_features) == (d, 128)
    first, relu, last = task.cluster_head  # Linear(D→D)–ReLU–Linear(D→128), softmax in step
    assert (first.in_features, first.out_features) == (d, d) and isinstance(relu, torch.nn.ReLU)
    assert (last.in_features, last.out_features) == (d, 128)
    assert task.queue.count == 0 and task.queue.limit == 65_536
    mlp = _task("slicer", make_encoder(), projector="mlp", hidden_dim=48, n_clusters=16)
    assert isinstance(mlp.projector[1], torch.nn.BatchNorm1d)
    assert mlp.cluster_head[0].out_features == 48 and mlp.cluster_head[2].out_features == 16
    with pytest.raises(ValueError, match="projector"):
        _task("slicer", make_encoder(), projector="conv")


def test_slicer_entropy_flag_adds_the_gap(make_encoder, make_batch) -> None:
    task = _task("slicer", make_encoder(), n_clusters=8).eval()
    batch = make_batch(task, size=6)
    with torch.no_grad():
        off, logs_off = task.step(batch)
        task.cfg.cluster_entropy = True
        on, logs_on = task.step(batch)
    assert logs_on["cluster_entropy"] == pytest.approx(logs_off["cluster_entropy"])
    gap = 2 * np.log(8) - logs_off["cluster_entropy"]
    assert gap > 1e-4  # a random head's marginals are not exactly uniform
    assert float(on - off) == pytest.approx(gap, rel=1e-4)


def test_epoch_capped_queue_grows_caps_and_round_trips() -> None:
    q = EpochCappedQueue(size=8, dim=2)
    q.push(torch.arange(10.0).reshape(5, 2), examples=3)  # rows 0..4: growing, no empty rows
    assert q.count == 5 and q.state_dict()["data"].shape == (5, 2)
    q.push(torch.arange(10.0, 20.0).reshape(5, 2), examples=3)  # rows 5..9: 8 and 9 wrap
    assert q.count == 8 and int(q.seen) == 6
    assert sorted(r[0] for r in q.keys().tolist()) == [4, 6, 8, 10, 12, 14, 16, 18]
    q.learn_epoch(0, 0.5)  # epoch 0: nothing known yet
    assert q.limit == 8
    q.learn_epoch(1, 0.5)  # 6 examples per epoch: cap 3, the 3 newest keys stay
    assert q.limit == 3 and sorted(r[0] for r in q.keys().tolist()) == [14, 16, 18]
    q.push(torch.tensor([[20.0, 21.0]]), examples=1)
    assert sorted(r[0] for r in q.keys().tolist()) == [16, 18, 20]
    q.learn_epoch(2, 0.5)  # learnt once
    assert q.limit == 3
    fresh = EpochCappedQueue(size=8, dim=2)
    fresh.load_state_dict(q.state_dict())  # resized to the saved rows
    torch.testing.assert_close(fresh.keys(), q.keys())
    assert fresh.limit == 3 and int(fresh.seen) == 7
    uncapped = EpochCappedQueue(size=8, dim=2)
    uncapped.push(torch.ones(4, 2), examples=2)
    uncapped.learn_epoch(1, 0.0)  # fraction 0: the official, uncapped queue
    assert uncapped.limit == 8 and uncapped.count == 4


def test_slicer_caps_its_queue_at_the_start_of_epoch_one(make_encoder, make_batch) -> None:
    task = _task("slicer", make_encoder(), queue_size=1000, queue_epoch_fraction=0.5)
    batch = make_batch(task, size=4)
    task.on_epoch_start(0)
    for step in range(5):  # an "epoch" of 20 examples, 40 keys (both views)
        task.step(batch)
        task.after_step(step)
    assert task.queue.count == 40 and task.queue.limit == 1000
    task.on_epoch_start(1)
    assert task.queue.limit == 10 and task.queue.count == 10  # 0.5 × 20 examples
