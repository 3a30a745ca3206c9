"""Semi-hard negative mining (FaceNet Sec. 3.2) for the Triplet loss of Jansen et al. 2018."""

from __future__ import annotations

import pytest
import torch

from pocketear.losses.metric import (
    pairwise_squared_distance,
    semihard_negatives,
    triplet_hinge,
    triplet_semihard_hinge,
)


def t(x: list) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32)


def test_pairwise_squared_distance() -> None:
    a, b = t([[0.0, 0.0], [1.0, 1.0]]), t([[3.0, 4.0], [1.0, 1.0], [1.0, 0.0]])
    torch.testing.assert_close(pairwise_squared_distance(a, b),
                               t([[25.0, 2.0, 1.0], [13.0, 0.0, 1.0]]))


def test_semihard_selection_hand_built() -> None:
    # anchor 0 (d_ap = 1): hard 0.25, invalid 1.05, semi-hard 1.2 and 1.4, easy 3 -> 1.2 (idx 2)
    # anchor 1 (d_ap = 1): every valid candidate is closer (hard) -> the farthest of them (0.9)
    # anchor 2 (d_ap = 1): an exact tie is not "farther"; only an easy one beyond -> it (idx 4)
    d_ap = t([1.0, 1.0, 1.0])
    d_an = t([[0.25, 1.05, 1.2, 1.4, 3.0],
              [0.10, 0.9, 0.5, 5.0, 0.2],
              [1.0, 0.3, 0.2, 0.1, 2.0]])
    valid = torch.tensor([[True, False, True, True, True],
                          [True, True, True, False, True],
                          [True, True, True, True, True]])
    assert semihard_negatives(d_ap, d_an, valid).tolist() == [2, 1, 4]


def test_semihard_hinge_values_and_gradient() -> None:
    # unnormalised 1-D: anchor 0, positive at 1 (d_ap = 1); candidates at 0.5, 1.1, 1.3, 4
    a = t([[0.0]])
    p = t([[1.0]])
    cands = t([[0.5], [1.1], [1.3], [4.0]]).requires_grad_()
    valid = torch.ones(1, 4, dtype=torch.bool)
    hinge, d_ap, d_an = triplet_semihard_hinge(a, p, cands, valid, margin=0.5, normalize=False)
    # chosen: 1.1 (d_an = 1.21, inside the margin): hinge = 1 - 1.21 + 0.5
    assert float(d_ap) == pytest.approx(1.0) and float(d_an.detach()) == pytest.approx(1.21)
    assert float(hinge.detach()) == pytest.approx(0.29, abs=1e-6)
    hinge.sum().backward()
    assert cands.grad[:, 0].nonzero().flatten().tolist() == [1]  # only the mined negative
    # the random negative (candidate 3, easy) gives no loss at all
    assert float(triplet_hinge(a, p, cands[3:].detach(), margin=0.5, normalize=False)) == 0.0


def test_semihard_rejects_rows_without_candidates() -> None:
    with pytest.raises(ValueError, match="at least one valid"):
        semihard_negatives(t([1.0]), t([[2.0]]), torch.zeros(1, 1, dtype=torch.bool))


def grouped_batch(groups: int = 6, per_group: int = 4, dim: int = 32,
                  seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Anchors, close positives (the same clip) and far random negatives (a clip of another group).

    Clips come in groups of near-alike recordings, as same-class clips are.
    """
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(groups, dim, generator=g).repeat_interleave(per_group, 0)
    clips = centres + 0.12 * torch.randn(centres.shape, generator=g)
    anchor = clips + 0.01 * torch.randn(clips.shape, generator=g)
    positive = clips + 0.01 * torch.randn(clips.shape, generator=g)
    b = len(clips)
    other = (torch.arange(b) + per_group * torch.randint(1, groups, (b,), generator=g)) % b
    negative = clips[other] + 0.01 * torch.randn(clips.shape, generator=g)
    return anchor, positive, negative


def test_mining_keeps_triplets_active_where_random_negatives_do_not() -> None:
    a, p, n = grouped_batch()
    b = len(a)
    random_active = (triplet_hinge(a, p, n, margin=0.1) > 0).float().mean()
    own = torch.eye(b, dtype=torch.bool)
    valid = ~torch.cat([own, own, torch.zeros_like(own)], dim=1)
    hinge, d_ap, d_an = triplet_semihard_hinge(a, p, torch.cat([a, p, n]), valid, margin=0.1)
    assert float(random_active) == 0.0
    assert float((hinge > 0).float().mean()) > 0.5
    assert bool((d_an > d_ap).all())  # semi-hard: farther than the positive, never harder
