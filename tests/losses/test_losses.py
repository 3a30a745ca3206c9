"""Known values of the pure losses and the collapse monitors on tiny hand-checked inputs."""

from __future__ import annotations

import math

import pytest
import torch

from pocketear.losses import (
    binary_entropy,
    mse,
    r_squared,
    soft_binary_cross_entropy,
    squared_distance,
    triplet_hinge,
    triplet_margin_loss,
)
from pocketear.train.monitors import collapse_logs, effective_rank, embedding_std


def t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32)


# --- regression ------------------------------------------------------------------------------


def test_mse_known_value() -> None:
    assert float(mse(t([[1.0, 2.0], [3.0, 4.0]]), torch.zeros(2, 2))) == pytest.approx(7.5)
    assert float(mse(t([1.0, -1.0]), t([1.0, 1.0]))) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        mse(torch.zeros(2, 3), torch.zeros(3, 2))


def test_r_squared() -> None:
    y = t([1.0, 2.0, 3.0, 4.0])
    assert float(r_squared(y, y)) == pytest.approx(1.0)
    assert float(r_squared(torch.full_like(y, 2.5), y)) == pytest.approx(0.0)
    # SSE = 4 x 1 = 4, SST = 5 -> 1 - 4/5
    assert float(r_squared(y + 1, y)) == pytest.approx(0.2)
    assert float(r_squared(y, torch.ones(4))) == 0.0  # constant target


def test_soft_binary_cross_entropy_known_values() -> None:
    log2 = math.log(2.0)
    assert float(binary_entropy(t([0.5, 0.0, 1.0]))[0]) == pytest.approx(log2)
    assert torch.equal(binary_entropy(t([0.0, 1.0])), torch.zeros(2))
    # logit 0 -> p = 0.5
    assert float(soft_binary_cross_entropy(t([0.0]), t([0.5]), zero_min=False)) == pytest.approx(
        log2
    )
    assert float(soft_binary_cross_entropy(t([0.0]), t([0.5]))) == pytest.approx(0.0, abs=1e-7)
    assert float(soft_binary_cross_entropy(t([0.0]), t([1.0]))) == pytest.approx(log2)
    # sigmoid(log 3) = 0.75: the optimum for a 0.75 target, KL = 0
    assert float(soft_binary_cross_entropy(t([math.log(3.0)]), t([0.75]))) == pytest.approx(
        0.0, abs=1e-6
    )
    # p = 0.75 against target 0: -log(0.25)
    assert float(soft_binary_cross_entropy(t([math.log(3.0)]), t([0.0]))) == pytest.approx(
        math.log(4.0)
    )


def test_soft_binary_cross_entropy_same_gradient_either_way() -> None:
    target = t([0.1, 0.4, 0.9])
    grads = []
    for zero_min in (True, False):
        logits = t([0.3, -1.0, 2.0]).requires_grad_()
        soft_binary_cross_entropy(logits, target, zero_min=zero_min).backward()
        grads.append(logits.grad)
    torch.testing.assert_close(grads[0], grads[1])
    # d/dz mean BCE = (sigmoid(z) - y) / n
    expected = (torch.sigmoid(t([0.3, -1.0, 2.0])) - target) / 3
    torch.testing.assert_close(grads[0], expected)


# --- metric ----------------------------------------------------------------------------------


def test_squared_distance() -> None:
    assert squared_distance(t([[0.0, 0.0], [1.0, 1.0]]), t([[3.0, 4.0], [1.0, 1.0]])).tolist() == [
        25.0,
        0.0,
    ]


def test_triplet_known_values_unnormalised() -> None:
    a = t([[0.0, 0.0], [0.0, 0.0]])
    p = t([[1.0, 0.0], [0.0, 2.0]])  # d_ap = 1, 4
    n = t([[0.0, 2.0], [1.0, 0.0]])  # d_an = 4, 1
    hinge = triplet_hinge(a, p, n, margin=0.1, normalize=False)
    torch.testing.assert_close(hinge, t([0.0, 3.1]))  # max(0, 1-4+.1), max(0, 4-1+.1)
    assert float(triplet_margin_loss(a, p, n, margin=0.1, normalize=False)) == pytest.approx(1.55)


def test_triplet_known_values_normalised() -> None:
    a = t([[2.0, 0.0], [3.0, 0.0]])  # -> (1, 0)
    p = t([[5.0, 0.0], [0.0, 0.5]])  # -> (1, 0), (0, 1): d_ap = 0, 2
    n = t([[-1.0, 0.0], [7.0, 0.0]])  # -> (-1, 0), (1, 0): d_an = 4, 0
    torch.testing.assert_close(triplet_hinge(a, p, n, margin=0.1), t([0.0, 2.1]))


def test_triplet_zero_when_margin_satisfied() -> None:
    a = t([[1.0, 0.0]]).requires_grad_()
    p = t([[0.9, 0.1]])
    n = t([[-1.0, 0.0]])
    loss = triplet_margin_loss(a, p, n, margin=0.5)
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.equal(a.grad, torch.zeros_like(a))
    # just inside the margin it becomes active
    assert float(triplet_margin_loss(t([[0.0]]), t([[1.0]]), t([[1.2]]), 0.5, False)) > 0


# --- monitors --------------------------------------------------------------------------------


def test_embedding_std() -> None:
    assert embedding_std(torch.ones(8, 5) * 3.0) == 0.0
    assert embedding_std(torch.ones(1, 5)) == 0.0  # a batch of one: 0, not NaN
    # dim 0: {0, 2} -> std 1; dim 1: {1, 1} -> 0; mean 0.5
    assert embedding_std(t([[0.0, 1.0], [2.0, 1.0]])) == pytest.approx(0.5)
    assert embedding_std(t([[1.0, 0.0], [0.0, 1.0]]), normalize=True) == pytest.approx(0.5)


def test_effective_rank() -> None:
    d = 16
    assert effective_rank(torch.eye(d)) == pytest.approx(d)
    noisy = torch.eye(d) + 0.01 * torch.randn(d, d, generator=torch.Generator().manual_seed(0))
    assert effective_rank(noisy) == pytest.approx(d, rel=0.02)
    gen = torch.Generator().manual_seed(1)
    rank1 = torch.randn(32, 1, generator=gen) @ torch.randn(1, d, generator=gen)
    assert effective_rank(rank1) == pytest.approx(1.0, abs=1e-4)
    assert effective_rank(torch.diag(t([1.0, 1.0, 0.0, 0.0]))) == pytest.approx(2.0)
    # singular values (3, 1): p = (.75, .25), exp(H) = 4 / 3^(3/4)
    assert effective_rank(torch.diag(t([3.0, 1.0]))) == pytest.approx(4 / 3**0.75)
    assert effective_rank(torch.zeros(4, 3)) == 0.0
    # a shared offset hides collapse unless centred: constant rows are rank 1, centred 0
    assert effective_rank(torch.ones(6, 4)) == pytest.approx(1.0)
    assert effective_rank(torch.ones(6, 4), center=True) == 0.0


def test_collapse_logs_keys() -> None:
    logs = collapse_logs(torch.randn(10, 4))
    assert set(logs) == {"emb_std", "emb_eff_rank"}
    assert all(isinstance(v, float) for v in logs.values())
