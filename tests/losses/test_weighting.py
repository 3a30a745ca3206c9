"""Loss weighting: known values of the pure functions and toy problems with a known answer.

Fixed weights, uncertainty weighting (Kendall et al. 2018) and GradNorm (Chen et al. 2018).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pocketear.errors import InvalidValue
from pocketear.heads.weighting import (
    FixedWeights,
    GradNormWeights,
    UncertaintyWeights,
    build_weighting,
)
from pocketear.losses.weighting import (
    gradnorm_loss,
    relative_inverse_rates,
    renormalise,
    uncertainty_weighted_sum,
    weighted_sum,
)


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32)


# --- pure functions ------------------------------------------------------------------------


def test_weighted_sum_known_value() -> None:
    assert float(weighted_sum(t([2.0, 3.0]), t([0.5, 2.0]))) == pytest.approx(7.0)
    with pytest.raises(ValueError):
        weighted_sum(t([1.0, 2.0]), t([1.0]))


def test_uncertainty_sum_value_and_minimiser() -> None:
    losses = t([0.25, 4.0])
    s = torch.zeros(2, requires_grad=True)
    assert float(uncertainty_weighted_sum(losses, s).detach()) == pytest.approx(4.25)
    # minimal at s_i = log L_i: zero gradient there, exp(-s_i) = 1 / L_i
    s_opt = torch.log(losses).requires_grad_(True)
    (grad,) = torch.autograd.grad(uncertainty_weighted_sum(losses, s_opt), s_opt)
    torch.testing.assert_close(grad, torch.zeros(2), atol=1e-6, rtol=0)


def test_relative_inverse_rates() -> None:
    # loss ratios 0.5 and 1.0 -> mean 0.75 -> r = (2/3, 4/3): task 2 trains more slowly
    r = relative_inverse_rates(t([1.0, 4.0]), t([2.0, 4.0]))
    torch.testing.assert_close(r, t([2 / 3, 4 / 3]))


def test_gradnorm_loss_value_and_gradient() -> None:
    w = torch.ones(2, requires_grad=True)
    norms, losses = t([1.0, 10.0]), t([1.0, 1.0])
    l_grad, target = gradnorm_loss(w, norms, losses, losses, alpha=1.5)
    torch.testing.assert_close(target, t([5.5, 5.5]))  # mean(G), r = 1
    assert float(l_grad.detach()) == pytest.approx(4.5 + 4.5)
    (grad,) = torch.autograd.grad(l_grad, w)
    # sign(G_i - target_i) * ||grad L_i||, the target held constant
    torch.testing.assert_close(grad, t([-1.0, 10.0]))


def test_renormalise_sums_to_count_and_stays_positive() -> None:
    w = renormalise(t([3.0, -1.0, 1.0]), 3.0)
    assert float(w.sum()) == pytest.approx(3.0)
    assert bool((w > 0).all())


def test_build_weighting_checks() -> None:
    assert isinstance(build_weighting("fixed", 2), FixedWeights)
    with pytest.raises(InvalidValue, match="fixed, uncertainty, gradnorm"):
        build_weighting("equal", 2)
    with pytest.raises(InvalidValue, match="need 3 weights"):
        build_weighting("fixed", 3, [1.0, 1.0])
    with pytest.raises(InvalidValue):
        build_weighting("uncertainty", 2, [1.0, 0.0])
    fixed = build_weighting("fixed", 2, [2.0, 0.5])
    assert float(fixed(t([1.0, 2.0]))) == pytest.approx(3.0)
    assert "w" not in fixed.state_dict()  # from the config, not a checkpoint


# --- toy problems with a known answer -------------------------------------------------------


def test_uncertainty_weights_move_to_inverse_noise_variance() -> None:
    """Two regressions ``y_i = a_i x + ε_i`` with noise variances 0.25 and 4.

    The learnt weights ``exp(-s_i)`` must settle at ``1 / MSE_i`` (the stationary point) and so
    near ``1 / σ_i²`` = 4 and 0.25.

    Tolerances: at the fitted optimum ``MSE_i`` is the sample variance of 4,096 Gaussian
    residuals, within ``sqrt(2 / 4096)`` = 2.2 % (one standard deviation) of ``σ_i²``, so 7 %
    is about 3 standard deviations (measured: 1.6 % and 1.4 %); against the sample ``MSE_i``
    itself (what the optimum really is) 0.1 % (measured: 1e-6 after 500 steps).
    """
    g = torch.Generator().manual_seed(0)
    n, a, var = 4096, t([1.5, -0.7]), t([0.25, 4.0])
    x = torch.randn(n, 1, generator=g)
    y = a * x + var.sqrt() * torch.randn(n, 2, generator=g)
    b = torch.zeros(2, requires_grad=True)
    weighting = UncertaintyWeights(2)
    opt = torch.optim.SGD([b, *weighting.parameters()], lr=0.1)
    for _ in range(600):
        mse = ((b * x - y) ** 2).mean(0)
        total = weighting(mse)
        opt.zero_grad()
        total.backward()
        opt.step()
    w = weighting.weights()
    with torch.no_grad():
        mse = ((b * x - y) ** 2).mean(0)
    assert w[0] > w[1]  # ordered as 1 / σ_i²
    torch.testing.assert_close(w, 1.0 / mse, rtol=1e-3, atol=0)
    torch.testing.assert_close(w, 1.0 / var, rtol=0.07, atol=0)


def _train_gradnorm(alpha: float, steps: int, scales: tuple[float, float], *,
                    shared_heads: bool) -> GradNormWeights:
    """Two tasks on one shared linear layer, task 2's loss scaled; SGD on the network."""
    torch.manual_seed(0)
    x = torch.randn(128, 8)
    y1, y2 = torch.randn(128, 4), torch.randn(128, 4)
    shared = nn.Linear(8, 16)
    head1, head2 = nn.Linear(16, 4), nn.Linear(16, 4)
    weighting = GradNormWeights(2, alpha=alpha, lr=0.01)
    params = [*shared.parameters(), *head1.parameters(), *head2.parameters()]
    opt = torch.optim.SGD(params, lr=0.01)
    for _ in range(steps):
        h = torch.relu(shared(x))
        l1 = F.mse_loss(head1(h), y1)
        l2 = F.mse_loss(head1(h), y1) if shared_heads else F.mse_loss(head2(h), y2)
        losses = torch.stack([scales[0] * l1, scales[1] * l2])
        total = weighting(losses, [shared.weight])
        opt.zero_grad()
        total.backward()
        opt.step()
        weighting.update()
    return weighting


def test_gradnorm_equalises_gradient_norms_of_scaled_losses() -> None:
    """One objective counted twice, the second copy ×10: known weights ``(20/11, 2/11)``.

    Both copies train at the same rate (``r_i = 1`` always), so GradNorm must make
    ``G_1 = G_2``: ``w_1 g = w_2 · 10 g`` with ``w_1 + w_2 = 2``.
    """
    weighting = _train_gradnorm(1.5, 400, (1.0, 10.0), shared_heads=True)
    w, g = weighting.weights(), weighting.extra()["G"]
    torch.testing.assert_close(w, t([20 / 11, 2 / 11]), atol=0.02, rtol=0)
    assert float(g[0] / g[1]) == pytest.approx(1.0, abs=0.1)
    assert float(w.sum()) == pytest.approx(2.0)


def test_gradnorm_balances_two_different_tasks() -> None:
    """Two different regressions on a shared layer, the second loss ×10.

    With ``α = 0`` the target is the mean gradient norm for both: starting 12× apart
    (measured), the norms end within 15 % (measured: 3 %).
    """
    weighting = _train_gradnorm(0.0, 400, (1.0, 10.0), shared_heads=False)
    g = weighting.extra()["G"]
    assert float(g[0] / g[1]) == pytest.approx(1.0, abs=0.15)
    assert float(weighting.weights()[0]) > 5 * float(weighting.weights()[1])


def test_gradnorm_step_is_repeatable_and_update_moves_weights() -> None:
    """``forward`` leaves the weights alone (same loss twice); ``update`` moves them."""
    lin = nn.Linear(3, 2)
    x = torch.randn(5, 3)
    weighting = GradNormWeights(2)
    out = lin(x)
    losses = torch.stack([out[:, 0].pow(2).mean(), 10 * out[:, 1].pow(2).mean()])
    first = weighting(losses, [lin.weight])
    again = weighting(losses, [lin.weight])
    torch.testing.assert_close(first, again)
    assert torch.equal(weighting.weights(), torch.ones(2))
    weighting.update()
    w = weighting.weights()
    assert w[0] > 1.0 > w[1] and math.isclose(float(w.sum()), 2.0, rel_tol=1e-6)
    assert bool(weighting.started) and int(weighting.steps) == 1
    with torch.no_grad():  # evaluation: no gradients, nothing pending
        weighting(losses.detach(), [lin.weight])
    weighting.update()
    assert int(weighting.steps) == 1
