"""Triplet with semi-hard in-batch negatives vs the old random negatives (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pocketear.encoders.base import Encoder
from pocketear.registry import get
from pocketear.train.monitors import TrivialTaskMonitor

F_BINS, S = 16, 8


class MeanSpectrum(Encoder):
    """Test-only encoder: the clip embedding is the slice's mean spectrum (times a learnable scale).

    So the geometry of a hand-built batch is known.
    """

    frame_hop_ms = 10.0
    pooling = "mean"

    def __init__(self) -> None:
        super().__init__()
        self.n_mels = self.embed_dim = F_BINS
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.squeeze(1) * self.scale


def triplet(**overrides) -> nn.Module:
    cls = get("task", "triplet")
    return cls(MeanSpectrum(), cls.Config(slice_frames=S, **overrides))


def grouped_batch(groups: int = 4, per_group: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    """Clips in groups of near-alike recordings (as same-class clips are).

    Anchor and positive of one clip are nearly identical; each random negative is a clip of
    another group.
    """
    rng = np.random.default_rng(seed)
    centres = np.repeat(rng.standard_normal((groups, F_BINS)), per_group, axis=0)
    clips = centres + 0.12 * rng.standard_normal(centres.shape)
    b = len(clips)
    other = (np.arange(b) + per_group * rng.integers(1, groups, b)) % b

    def slices(profiles: np.ndarray) -> torch.Tensor:
        x = profiles[:, None, :] + 0.01 * rng.standard_normal((b, S, F_BINS))
        return torch.from_numpy(x.astype(np.float32))

    return {"anchor": slices(clips), "positive": slices(clips), "negative": slices(clips[other])}


def test_default_is_semihard_and_keeps_triplets_active() -> None:
    batch = grouped_batch()
    task = triplet()
    assert task.cfg.negatives == "semihard"
    loss, logs = task.step(batch)
    _, old = triplet(negatives="random").step(batch)
    # random negatives (another group) are all beyond the margin: the old loss is exactly 0
    assert old["frac_active"] == 0.0 and old["loss"] == 0.0
    assert logs["frac_active_random"] == 0.0
    # mining finds the near-alike clips of the anchor's group inside the margin
    assert logs["frac_active"] > 0.5 and logs["loss"] > 0
    assert logs["d_ap"] < logs["d_an"] < logs["d_ap"] + task.cfg.margin
    loss.backward()
    assert task.encoder.scale.grad is not None


def test_own_clip_never_a_negative() -> None:
    mask = get("task", "triplet").candidate_mask(2)
    expected = [[False, True, False, True, True, True],
                [True, False, True, False, True, True]]
    assert mask.tolist() == expected
    # anchor 0's positive is the farthest point; every slice of the other clip is close to it.
    # The fallback (no candidate farther than the positive) takes the farthest *allowed*
    # candidate, n1: hinge 2 - 0.087 + 0.1. Were its own positive allowed, it would be taken
    # (hinge = margin). Anchor 1 finds p0 beyond its margin: hinge 0.
    def slices(*xy: tuple[float, float]) -> torch.Tensor:
        x = torch.zeros(len(xy), S, F_BINS)
        x[:, :, :2] = torch.tensor(xy)[:, None, :]
        return x

    batch = {"anchor": slices((1, 0), (1, 0.1)), "positive": slices((0, 1), (1, -0.1)),
             "negative": slices((1, 0.2), (1, 0.3))}
    _, logs = triplet(margin=0.1).step(batch)
    d_n1 = 2 - 2 / np.hypot(1, 0.3)
    assert logs["loss"] == pytest.approx((2 - d_n1 + 0.1) / 2, rel=1e-5)


def test_unknown_negatives_rejected() -> None:
    with pytest.raises(ValueError, match="task.negatives"):
        triplet(negatives="hardest")


@pytest.mark.parametrize("negatives", ["semihard", "random"])
def test_both_modes_train_on_sampled_batches(negatives: str, make_encoder, make_batch) -> None:
    cls = get("task", "triplet")
    task = cls(make_encoder(), cls.Config(negatives=negatives))
    loss, logs = task.step(make_batch(task, size=6))
    assert torch.isfinite(loss) and 0.0 <= logs["frac_active"] <= 1.0
    loss.backward()


def test_monitor_flags_triplet_made_trivial_and_not_semihard() -> None:
    """Random negatives with margin 0 on this batch: no triplet is active -> the monitor fires.

    The default (semi-hard, margin 0.1) on the same data stays quiet.
    """
    trivial, normal = TrivialTaskMonitor("triplet"), TrivialTaskMonitor("triplet")
    easy, hard = triplet(negatives="random", margin=0.0), triplet()
    for step in range(1, 8):
        batch = grouped_batch(seed=step)
        trivial.update(step, easy.step(batch)[1])
        normal.update(step, hard.step(batch)[1])
    assert trivial.warning is not None and "triplet" in trivial.warning
    assert "task.negatives=semihard" in trivial.warning
    assert normal.warning is None
