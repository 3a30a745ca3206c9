"""wav2vec 2.0 and Wav2vec-C: Gumbel quantiser, distractors, contrastive and diversity losses.

The quantiser's straight-through gradients and deterministic eval codes, the temperature
schedule, codebook perplexity and utilisation, distractor sampling (never the positive), the
contrastive loss, the consistency network, and the two tasks' sampler and logs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pocketear.heads import FrameDecoder, GumbelQuantizer
from pocketear.heads.quantizer import gumbel_temperature
from pocketear.losses.quantized import (
    code_utilisation,
    codebook_perplexity,
    diversity_loss,
    sample_distractors,
    wav2vec_contrastive,
)
from pocketear.registry import get


def _quantizer(**kw) -> GumbelQuantizer:
    torch.manual_seed(0)
    args = {"in_dim": 8, "groups": 2, "entries": 5, "code_dim": 6, "out_dim": 4, **kw}
    return GumbelQuantizer(**args)


def _codewords(quant: GumbelQuantizer, codes: torch.Tensor) -> torch.Tensor:
    """The projection of each row's chosen entries, concatenated over the groups."""
    rows = [quant.codebook[g, codes[..., g]] for g in range(quant.groups)]
    return quant.proj(torch.cat(rows, dim=-1))


def test_gumbel_quantizer_is_hard_forward_and_straight_through_backward() -> None:
    quant = _quantizer().train()
    z = torch.randn(3, 7, 8)
    out = quant(z)
    assert out.q.shape == (3, 7, 4) and out.codes.shape == (3, 7, 2)
    assert out.probs.shape == (3, 7, 2, 5)
    # forward: exactly the chosen codewords (a hard one-hot selection, no soft mixture)
    torch.testing.assert_close(out.q, _codewords(quant, out.codes), rtol=0, atol=1e-6)
    out.q.square().sum().backward()
    # backward: the Gumbel-softmax gradient reaches the logits layer ...
    grad = quant.logits.weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0
    # ... while the codebook gets gradient only at the entries the forward pass chose
    used = torch.zeros(2, 5, dtype=torch.bool)
    for g in range(2):
        used[g, out.codes[..., g].flatten()] = True
    touched = quant.codebook.grad.abs().sum(-1) > 0
    assert torch.equal(touched, used)


def test_gumbel_quantizer_samples_in_training_and_takes_the_argmax_in_eval() -> None:
    quant = _quantizer()
    z = torch.randn(64, 8)
    with torch.no_grad():
        logits = quant.logits(z).view(64, 2, 5)
        quant.train()
        draws = torch.stack([quant(z).codes for _ in range(20)])
        quant.eval()
        first, second = quant(z), quant(z)
    assert not bool((draws == draws[0]).all()), "training codes carry Gumbel noise"
    assert torch.equal(first.codes, logits.argmax(-1))
    assert torch.equal(first.codes, second.codes) and torch.equal(first.q, second.q)
    torch.testing.assert_close(first.probs, logits.softmax(-1))


def test_gumbel_temperature_anneals_per_update_and_resumes() -> None:
    assert gumbel_temperature(0, 2.0, 0.5, 0.999995) == 2.0
    assert gumbel_temperature(1000, 2.0, 0.5, 0.999995) == pytest.approx(2.0 * 0.999995**1000)
    assert gumbel_temperature(10**7, 2.0, 0.5, 0.999995) == 0.5
    quant = _quantizer(temperature=(2.0, 0.5, 0.5))
    temps = []
    for _ in range(4):
        temps.append(quant.temperature)
        quant.anneal()
    assert temps == [2.0, 1.0, 0.5, 0.5]
    clone = _quantizer(temperature=(2.0, 0.5, 0.5))
    clone.load_state_dict(quant.state_dict())
    assert clone.temperature == 0.5 and int(clone.updates) == 4


def test_perplexity_counts_codes_in_use() -> None:
    g, v = 2, 8
    uniform = torch.full((10, g, v), 1.0 / v)
    assert float(codebook_perplexity(uniform)) == pytest.approx(g * v)
    assert float(diversity_loss(uniform)) == pytest.approx(0.0, abs=1e-6)
    # hard one-hot codes used equally often: uniform usage, perplexity G·V
    codes = torch.arange(4 * v).remainder(v)[:, None].expand(-1, g)
    onehot = torch.nn.functional.one_hot(codes, v).float()
    assert float(codebook_perplexity(onehot)) == pytest.approx(g * v)
    assert code_utilisation(codes, v) == 1.0
    # one code always: perplexity 1 per group
    one = torch.nn.functional.one_hot(torch.full((12, 1), 3), v).float()
    assert float(codebook_perplexity(one)) == pytest.approx(1.0)
    assert float(codebook_perplexity(one.expand(-1, g, -1))) == pytest.approx(g)
    assert float(diversity_loss(one.expand(-1, g, -1))) == pytest.approx((g * v - g) / (g * v))
    assert code_utilisation(torch.full((12, g), 3), v) == pytest.approx(1 / v)
    # two of eight entries per group, half each
    half = torch.nn.functional.one_hot(torch.arange(10).remainder(2)[:, None].expand(-1, g), v)
    assert float(codebook_perplexity(half.float())) == pytest.approx(2 * g)


def test_distractors_are_other_masked_frames_never_the_positive() -> None:
    rng = np.random.default_rng(0)
    n, k = 40, 6
    counts = np.zeros((n, n))
    for _ in range(2000):
        mask = rng.random(n) < 0.4
        d = sample_distractors(mask, k, rng)
        assert d.shape == (n, k)
        assert (d[~mask] == -1).all()
        m = int(mask.sum())
        for t in np.flatnonzero(mask):
            row = d[t][d[t] >= 0]
            assert len(row) == min(k, m - 1)
            assert t not in row, "the positive frame is never its own distractor"
            assert mask[row].all() and len(set(row)) == len(row)
            assert (d[t][len(row):] == -1).all()
            counts[t, row] += 1
    # uniform over the other masked frames: frame 0's distractors among 1..39 are balanced
    fixed = np.zeros(n, dtype=bool)
    fixed[:20] = True
    tally = np.zeros(n)
    for _ in range(3000):
        tally[sample_distractors(fixed, k, rng)[0]] += 1
    assert tally[0] == 0 and tally[20:].sum() == 0
    expected = 3000 * k / 19
    assert np.abs(tally[1:20] - expected).max() < 0.15 * expected


def test_distractors_with_few_masked_frames() -> None:
    rng = np.random.default_rng(1)
    one = np.zeros(12, dtype=bool)
    one[5] = True
    assert (sample_distractors(one, 100, rng) == -1).all()
    assert sample_distractors(one, 100, rng).shape == (12, 11)  # width min(K, T - 1)
    two = one.copy()
    two[9] = True
    d = sample_distractors(two, 100, rng)
    assert d[5, 0] == 9 and d[9, 0] == 5 and (d[:, 1:] == -1).all()
    assert sample_distractors(np.ones(1, dtype=bool), 100, rng).shape == (1, 0)


def test_contrastive_loss_picks_the_positive_among_the_clips_distractors() -> None:
    g = torch.Generator().manual_seed(0)
    targets = torch.randn(2, 10, 16, generator=g)
    where = torch.zeros(2, 10, dtype=torch.bool)
    where[:, 2:8] = True
    rng = np.random.default_rng(0)
    distractors = torch.from_numpy(np.stack([sample_distractors(w, 3, rng)
                                             for w in where.numpy()]))
    loss, acc = wav2vec_contrastive(10 * targets, targets, where, distractors, temperature=0.1)
    assert float(acc) == 1.0 and float(loss) < 0.05
    far, _ = wav2vec_contrastive(-targets, targets, where, distractors, temperature=0.1)
    assert float(far) > math.log(4)
    # frames outside `where` and never drawn as distractors do not count
    noise = torch.zeros_like(targets)
    noise[:, [0, 1, 8, 9]] = 100 * torch.randn(2, 4, 16, generator=g)
    ctx = torch.randn(2, 10, 16, generator=g)
    base, _ = wav2vec_contrastive(ctx, targets, where, distractors)
    torch.testing.assert_close(wav2vec_contrastive(ctx + noise, targets + noise, where,
                                                   distractors)[0], base)
    # no frame with a distractor: zero loss that still backpropagates
    ctx.requires_grad_(True)
    zero, _ = wav2vec_contrastive(ctx, targets, where, torch.full_like(distractors, -1))
    zero.backward()
    assert float(zero.detach()) == 0.0 and ctx.grad is not None


def _task(name: str, encoder, **kw):
    cls = get("task", name)
    return cls(encoder, cls.Config(**kw))


def test_sampler_distractors_stay_on_masked_real_frames(make_encoder) -> None:
    task = _task("wav2vec2", make_encoder(), num_distractors=5)
    rng = np.random.default_rng(0)
    clip = rng.standard_normal((40, 16)).astype(np.float32)  # 20 of 48 encoder frames real
    for _ in range(50):
        ex = task.sample(clip, rng, lambda: clip)
        d, mask = ex["distractors"], ex["mask"]
        assert d.shape == (48, 5) and mask[~ex["valid"]].sum() == 0
        drawn = d[d >= 0]
        assert mask[drawn].all() and ex["valid"][drawn].all()
        assert not (d == np.arange(48)[:, None]).any()


def test_consistency_network_reconstructs_a_toy_input(make_encoder) -> None:
    task = _task("wav2vec_c", make_encoder(), entries=16, code_dim=16, final_dim=16,
                 decoder_dim=32, slice_frames=24)
    # a fixed toy batch: log-mel frames drawn from four prototypes
    g = torch.Generator().manual_seed(0)
    protos = torch.randn(4, 16, generator=g)
    x = protos[torch.randint(0, 4, (4, 24), generator=g)]
    valid = torch.ones(4, 12, dtype=torch.bool)
    params = [*task.quantizer.parameters(), *task.decoder.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)
    errors = []
    for _ in range(300):
        err = task.extra_losses(x, valid, task.quantize(x, 12))["consistency"][1]
        opt.zero_grad()
        err.backward()
        opt.step()
        errors.append(float(err.detach()))
    task.eval()
    with torch.no_grad():
        final = float(task.extra_losses(x, valid, task.quantize(x, 12))["consistency"][1])
    assert final < 0.2 * errors[0], (errors[0], final)


@pytest.mark.parametrize("name", ["wav2vec2", "wav2vec_c"])
def test_task_logs_codebook_use_and_anneals(name: str, make_encoder, make_batch) -> None:
    task = _task(name, make_encoder(), gumbel_decay=0.9)
    batch = make_batch(task, size=4)
    loss, logs = task.step(batch)
    keys = {"contrastive", "diversity", "acc_masked", "codebook_perplexity", "code_utilisation",
            "temperature", "mask_ratio"} | ({"consistency"} if name == "wav2vec_c" else set())
    assert keys <= set(logs)
    c = task.cfg
    assert c.groups <= logs["codebook_perplexity"] <= c.groups * c.entries
    assert 0 < logs["code_utilisation"] <= 1 and logs["temperature"] == 2.0
    parts = logs["contrastive"] + c.diversity_weight * logs["diversity"]
    parts += c.consistency_weight * logs["consistency"] if name == "wav2vec_c" else 0.0
    assert logs["loss"] == pytest.approx(parts, rel=1e-5)
    task.after_step(0)
    assert task.step(batch)[1]["temperature"] == pytest.approx(1.8)


def test_invalid_configs_rejected(make_encoder) -> None:
    for name, kw in [("wav2vec2", {"code_dim": 255}), ("wav2vec2", {"gumbel_end": 3.0}),
                     ("wav2vec2", {"num_distractors": 0}), ("wav2vec_c", {"decoder_kernel": 2}),
                     ("wav2vec_c", {"consistency_weight": -1.0})]:
        with pytest.raises(ValueError):
            _task(name, make_encoder(), **kw)


def test_frame_decoder_shapes() -> None:
    assert FrameDecoder(8, 5, hidden=6, layers=3)(torch.randn(2, 9, 8)).shape == (2, 9, 5)
