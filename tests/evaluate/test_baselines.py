"""The supervised baseline: no padding artefacts, a learning-rate grid chosen on valid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pocketear.encoders.base import Encoder, frame_mask, pool
from pocketear.evaluate import baselines as bl
from pocketear.registry import create


def _clips(lengths: list[int], n_mels: int = 64, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, n_mels)).astype(np.float32) for n in lengths]


@pytest.fixture
def model() -> bl.Classifier:
    torch.manual_seed(0)
    return bl.Classifier(create("encoder", "mobile_tiny"), 3).eval()


def test_short_clip_is_predicted_at_its_own_length_whatever_the_batch(
        model: bl.Classifier) -> None:
    clips = _clips([23, 40, 130, 23, 96])
    alone = bl.predict_clips(model, clips, np.array([0]))
    mixed = bl.predict_clips(model, clips, np.array([2, 0, 1, 3, 4]))
    np.testing.assert_allclose(mixed[1], alone[0], rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # the clip itself, unpadded: what padding to 96 frames would break
        own = model(torch.from_numpy(clips[0])[None, None]).softmax(-1)[0].numpy()
    np.testing.assert_allclose(alone[0], own, rtol=1e-5, atol=1e-6)
    emb_alone = bl.embed_clips(model.encoder, clips, np.array([0]))
    emb_mixed = bl.embed_clips(model.encoder, clips, np.array([2, 0, 4]))
    np.testing.assert_allclose(emb_mixed[1], emb_alone[0], rtol=1e-5, atol=1e-6)
    assert emb_alone.shape == (1, model.encoder.readout_dim)


def test_crops_are_never_longer_than_the_clip_and_pad_with_each_bins_minimum() -> None:
    clips = _clips([30, 200, 96])
    x, lengths = bl._crops(clips, np.array([0, 1, 2]), 96, np.random.default_rng(0))
    assert x.shape == (3, 1, 96, 64) and lengths.tolist() == [30, 96, 96]
    short = torch.from_numpy(clips[0])
    torch.testing.assert_close(x[0, 0, :30], short)  # a short clip is used whole
    torch.testing.assert_close(x[0, 0, 30:], short.amin(0).expand(66, 64))
    long = torch.from_numpy(clips[1])
    starts = [s for s in range(105) if torch.equal(long[s: s + 96], x[1, 0])]
    assert len(starts) == 1  # a contiguous 96-frame window of the long clip
    only_short, n = bl._crops(clips, np.array([0, 0]), 96, np.random.default_rng(0))
    assert only_short.shape[2] == 30 and n.tolist() == [30, 30]  # no padding when not needed


def test_classifier_pools_only_the_frames_of_real_input(model: bl.Classifier) -> None:
    x = torch.randn(2, 1, 96, 64)
    lengths = torch.tensor([40, 96])
    with torch.no_grad():
        got = model(x, lengths)
        frames = model.encoder.read_frames(x)
        mask = frame_mask(lengths, frames.shape[1], model.encoder.time_stride)
        want = model.head(pool(frames, model.encoder.readout.pooling, mask))
        unmasked = model(x)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got[1], unmasked[1])  # the full-length example is unchanged
    assert not torch.allclose(got[0], unmasked[0])  # the padded frames were dropped


class _Toy(Encoder):
    """Per-frame linear map of 8 mel bins; no projection."""

    embed_dim, input_frames, n_mels = 4, 16, 8

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 4)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x[:, 0])


def test_grid_keeps_the_lr_with_the_best_validation_accuracy() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    clips = [(rng.standard_normal((16, 8)) + 1.5 * (2 * c - 1) * np.eye(8)[0]).astype(np.float32)
             for c in y]
    train, valid = np.arange(0, 80, 2), np.arange(1, 80, 2)
    budget = bl.TrainBudget(steps=40, epochs=0.0, batch_size=8, eval_every=5, patience=100)

    def make() -> Encoder:
        torch.manual_seed(1)
        return _Toy()

    # a much too small lr first: the grid must not just keep the first or the last run
    model, res = bl.train_supervised(make, clips, y, train, valid, 2, 0, budget,
                                     (1e-7, 3e-2, 1e-6))
    scores = {g["lr"]: g["best_valid"] for g in res.grid}
    assert list(scores) == [1e-7, 3e-2, 1e-6]
    assert res.lr == 3e-2 and res.best_valid == max(scores.values()) > scores[1e-7] + 0.2
    acc = (bl.predict_clips(model, clips, valid).argmax(1) == y[valid]).mean()
    assert acc == pytest.approx(res.best_valid)  # the kept weights are the chosen run's best
    # nothing to select on: budget.lr alone, no grid
    _, fixed = bl.train_supervised(make, clips, y, train, np.array([], np.int64), 2, 0, budget)
    assert fixed.lr == budget.lr and fixed.grid == [] and fixed.best_valid is None


def test_budget_schedule_warms_up_then_decays_to_zero() -> None:
    f = bl._schedule(100, 0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(100) == pytest.approx(0.0)
    assert all(f(i) >= f(i + 1) for i in range(10, 100))
    assert bl.TrainBudget().check_every(1500) == 23 and bl.TrainBudget().check_every(50) == 10
