"""The contrastive family's own logic: the two-view sampler, EMA targets, the key queue,
COLA's two similarities and the default augmentation chains."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pocketear.registry import get
from pocketear.tasks._twoview import KeyQueue
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
    # short clips: padded within max_pad_fraction, rejected beyond it
    assert apart.sample(clip[:37], rng, lambda: clip)["view1"].shape == (40, clip.shape[1])
    assert apart.sample(clip[:30], rng, lambda: clip) is None


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
    assert [a["name"] for a in load_config(None, ["task.name=slicer"])["augment"]][1] == "kmix"
    assert load_config(None, ["task.name=byol_a", "augment=[]"])["augment"] == []
    assert load_config(None, ["task.name=cola"])["augment"] == []
