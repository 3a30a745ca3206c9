"""SPICE's losses: the relative-pitch error, its Huber loss, the confidence target."""

from __future__ import annotations

import torch

from pocketear.losses.pitch import confidence_loss, pitch_loss, relative_pitch_error

SIGMA = 1 / 190


def test_error_is_zero_when_outputs_move_by_sigma_per_bin():
    y2 = torch.rand(32) * 0.5
    shift = torch.randint(-7, 8, (32,)).float()
    y1 = y2 + SIGMA * shift
    err = relative_pitch_error(y1, y2, shift, SIGMA)
    assert err.abs().max() < 1e-6
    assert pitch_loss(err, SIGMA) < 1e-12


def test_huber_is_quadratic_within_a_quarter_bin_then_linear():
    small, large = torch.tensor([0.1 * SIGMA]), torch.tensor([4 * SIGMA])
    assert torch.isclose(pitch_loss(small, SIGMA), 0.5 * small[0] ** 2)
    delta = 0.25 * SIGMA
    assert torch.isclose(pitch_loss(large, SIGMA), delta * (large[0] - 0.5 * delta))


def test_confidence_target_is_one_minus_error_in_bins_and_detached():
    err = torch.tensor([0.0, 0.5 * SIGMA], requires_grad=True)
    assert confidence_loss(torch.tensor([1.0, 0.5]), err, SIGMA) < 1e-10
    conf = torch.tensor([0.2, 0.2], requires_grad=True)
    confidence_loss(conf, err, SIGMA).backward()
    assert err.grad is None and conf.grad is not None
