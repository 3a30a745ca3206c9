"""Masked-prediction family: masks, EMA schedule, data2vec targets, masked losses, 2.0 mode.

Mask statistics, the EMA schedule, data2vec targets, losses on masked positions only, and the
data2vec 2.0 mode.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pocketear.augment.masks import expected_mask_ratio, random_mask, span_mask
from pocketear.encoders.base import Encoder
from pocketear.losses.masked import (
    instance_norm_time,
    masked_cross_entropy,
    masked_regression,
    top_k_average,
)
from pocketear.registry import create, get
from pocketear.tasks.base import ema_decay


def _runs(mask: np.ndarray) -> list[int]:
    """Lengths of the runs of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return list(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))


def test_span_mask_ratio_and_spans() -> None:
    rng = np.random.default_rng(0)
    masks = np.stack([span_mask(1000, 0.65, 10, rng) for _ in range(300)])
    ratio = masks.mean()
    # starts are distinct (no replacement), so slightly above the independent-starts value
    assert abs(ratio - expected_mask_ratio(0.65, 10)) < 0.03, ratio
    assert 0.45 < ratio < 0.55  # wav2vec 2.0 §3.1: ~49 % for these settings
    runs = [r for m in masks for r in _runs(m)]
    assert min(runs) >= 10  # every run is a union of whole spans
    assert np.mean(np.array(runs) == 10) > 0.3  # isolated spans are common
    assert masks.any(axis=1).all()


@pytest.mark.parametrize("length", [1, 2, 5, 12, 48])
def test_span_mask_never_empty_and_short_sequences(length: int) -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        m = span_mask(length, 0.65, 10, rng)
        assert m.shape == (length,) and m.any()
        if length >= 2:
            assert not m.all()
            runs = _runs(m)
            assert max(runs) <= length - 1


def test_span_mask_exact_and_random_mask() -> None:
    rng = np.random.default_rng(2)
    for _ in range(100):
        assert span_mask(96, 0.65, 10, rng, exact=47).sum() == 47
        assert random_mask(96, 0.75, rng).sum() == 72
    with pytest.raises(ValueError):
        span_mask(0, 0.65, 10, rng)
    with pytest.raises(ValueError):
        span_mask(10, 0.65, 3, rng, exact=10)


def test_ema_schedule() -> None:
    assert ema_decay(0, 0.999, 0.9999, 100) == pytest.approx(0.999)
    assert ema_decay(50, 0.999, 0.9999, 100) == pytest.approx(0.99945)
    assert ema_decay(100, 0.999, 0.9999, 100) == pytest.approx(0.9999)
    assert ema_decay(10**6, 0.999, 0.9999, 100) == pytest.approx(0.9999)
    assert ema_decay(5, 0.9, 0.99, 0) == 0.99


def test_data2vec_ema_pairs_follow_schedule_and_resume(make_encoder) -> None:
    cls = get("task", "data2vec")
    task = cls(make_encoder(), cls.Config(ema_start=0.9, ema_end=0.99, anneal_steps=10))
    decays = [task.ema_pairs()[0][2] for _ in range(12)]
    np.testing.assert_allclose(decays, [0.9 + 0.009 * i for i in range(10)] + [0.99, 0.99])
    online, target, _ = task.ema_pairs()[0]
    assert online is task.encoder and target is task.teacher
    assert not any(p.requires_grad for p in target.parameters())
    clone = cls(make_encoder(seed=1), task.cfg)
    clone.load_state_dict(task.state_dict())
    assert int(clone.ema_step) == 13  # the schedule resumes where it was


class ToyLayers(Encoder):
    """Known layer outputs: each layer a scaled copy of the input plus an offset.

    Layer ``i`` of frame ``t``, channel ``d`` is ``(i + 1) · x[t, d]`` plus a per-layer offset
    (instance norm removes both scale and offset).
    """

    embed_dim, frame_hop_ms, n_mels, pooling = 3, 10.0, 4, "mean"

    def __init__(self, depth: int = 4) -> None:
        super().__init__()
        self.depth = depth
        self.w = nn.Parameter(torch.zeros(1))

    def layer_outputs(self, x: torch.Tensor, kind: str = "block") -> list[torch.Tensor]:
        base = x[:, 0, :, :3]
        return [(i + 1) * base + 10 * i + (i == self.depth - 1) * base.pow(2)
                for i in range(self.depth)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_outputs(x)[-1]


def test_top_k_target_construction() -> None:
    torch.manual_seed(0)
    enc = ToyLayers(depth=4)
    x = torch.randn(2, 1, 30, 4)
    layers = enc.layer_outputs(x)
    base = x[:, 0, :, :3]
    z = (base - base.mean(1, keepdim=True)) / torch.sqrt(base.var(1, unbiased=False,
                                                                  keepdim=True) + 1e-5)
    last = layers[-1]
    z_last = (last - last.mean(1, keepdim=True)) / torch.sqrt(last.var(1, unbiased=False,
                                                                       keepdim=True) + 1e-5)
    # top-2: layer 2 normalises to z, layer 3 (non-linear) to z_last
    torch.testing.assert_close(top_k_average(layers, 2), (z + z_last) / 2, atol=1e-5, rtol=1e-4)
    # layers 0..2 all normalise to z, so top-3 of the first three is z
    torch.testing.assert_close(top_k_average(layers[:3], 8), z, atol=1e-5, rtol=1e-4)
    cls = get("task", "data2vec")
    task = cls(enc, cls.Config(top_k=2, slice_frames=30))
    torch.testing.assert_close(task.targets(x[:, 0]), (z + z_last) / 2, atol=1e-5, rtol=1e-4)
    h = instance_norm_time(torch.randn(3, 50, 5) * 4 + 2)
    torch.testing.assert_close(h.mean(1), torch.zeros(3, 5), atol=1e-5, rtol=0)


def test_losses_ignore_unmasked_positions() -> None:
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(4, 20, 6, generator=g), torch.randn(4, 20, 6, generator=g)
    logits, labels = torch.randn(4, 20, 9, generator=g), torch.randint(0, 9, (4, 20), generator=g)
    mask = torch.rand(4, 20, generator=g) < 0.5
    noise = 100 * (~mask)[..., None] * torch.randn(4, 20, 1, generator=g)
    for beta in (0.0, 0.5):
        a = masked_regression(pred, target, mask, beta)
        assert torch.equal(a, masked_regression(pred + noise, target, mask, beta))
        assert not torch.equal(a, masked_regression(pred + noise, target, ~mask, beta))
    ce = masked_cross_entropy(logits, labels, mask)
    assert torch.equal(ce, masked_cross_entropy(logits + noise, labels, mask))


def _perturb(head: nn.Module, where: torch.Tensor):
    """Forward hook: add large noise to the head's outputs at the frames ``where``."""
    def hook(_m, _inp, out):
        return out + 50.0 * where[..., None].to(out.dtype) * torch.randn_like(out)
    return head.register_forward_hook(hook)


@pytest.mark.parametrize(("name", "head"), [("data2vec", "head"), ("hubert", "proj"),
                                            ("beats", "head"), ("wav2vec2", "head"),
                                            ("wav2vec_c", "head")])
def test_task_loss_uses_masked_frames_only(name: str, head: str, make_encoder,
                                           make_batch) -> None:
    cls = get("task", name)
    task = cls(make_encoder()).eval()
    batch = make_batch(task, size=4)
    mask = batch["mask"].bool()
    with torch.no_grad():
        before = task.step(batch)[0]
        hook = _perturb(getattr(task, head), ~mask)
        after = task.step(batch)[0]
        hook.remove()
        _perturb(getattr(task, head), mask & batch["valid"].bool())
        control = task.step(batch)[0]
    torch.testing.assert_close(after, before)
    assert not torch.isclose(control, before)  # the same noise on masked frames does count


def test_hubert_first_step_fits_its_clusters_under_bf16(make_encoder, make_batch) -> None:
    task = get("task", "hubert")(make_encoder())
    batch = make_batch(task, size=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as the loop runs with train.bf16
        loss, _ = task.step(batch)
    assert torch.isfinite(loss) and int(task.fitted_frames) > 0


def test_masked_input_replaces_frames_under_masked_outputs(make_encoder, make_batch) -> None:
    task = get("task", "data2vec")(make_encoder())  # TinyEncoder: stride 2
    batch = make_batch(task, size=3)
    x, mask = batch["x"], batch["mask"]
    assert mask.shape == (3, task.out_frames(96)) == (3, 48)
    out = task.masked_input(x, mask)
    frames = mask.repeat_interleave(2, dim=1)
    assert torch.equal(out[~frames], x[~frames])
    assert torch.equal(out[frames], task.mask_token.detach().expand(int(frames.sum()), -1))


def test_short_clip_padding_is_never_a_target(make_encoder) -> None:
    task = get("task", "data2vec")(make_encoder())
    rng = np.random.default_rng(0)
    clip = rng.standard_normal((40, 16)).astype(np.float32)
    for _ in range(50):
        ex = task.sample(clip, rng, lambda: clip)
        assert ex["valid"].sum() == 20 and not ex["mask"][~ex["valid"]].any()
        assert ex["mask"].any()
    assert task.sample(clip[:20], rng, lambda: clip) is None  # < 25 % of the slice


def _tiny_kwt() -> Encoder:
    torch.manual_seed(0)
    return create("encoder", "kwt1", depth=3, n_mels=16)


def test_data2vec_v2_mode_steps_and_learns() -> None:
    cls = get("task", "data2vec")
    task = cls(_tiny_kwt(), cls.Config(mode="v2", num_masks=3, top_k=2, slice_frames=40))
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal((60, 16)).astype(np.float32) for _ in range(6)]
    batch = task.collate([task.sample(c, rng, lambda: clips[0]) for c in clips])
    assert batch["mask"].shape == (6, 3, 40)
    counts = batch["mask"].sum(-1)
    assert (counts == counts[0, 0]).all()
    opt = torch.optim.Adam(task.param_groups(), lr=1e-3)
    losses = []
    for _ in range(15):
        loss, logs = task.step(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.9 * losses[0] and 0.3 < logs["mask_ratio"] < 0.7
    # masked tokens are not encoded: the student's blocks see only the kept tokens
    seen = []
    hook = task.encoder.blocks[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    task.step(batch)
    hook.remove()
    assert seen[0] == (18, 40 - int(counts[0, 0]), 64)


def test_data2vec_v2_needs_a_token_encoder(make_encoder) -> None:
    cls = get("task", "data2vec")
    with pytest.raises(ValueError, match="token"):
        cls(make_encoder(), cls.Config(mode="v2"))
    with pytest.raises(ValueError):
        cls(make_encoder(), cls.Config(mode="v3"))
