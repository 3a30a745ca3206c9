"""The ``features`` task: descriptors of known slices, standardisation, padding, options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pocketear.errors import InvalidValue
from pocketear.tasks.features import Features, slice_descriptors, target_sizes


def test_descriptors_of_known_slices() -> None:
    flat = np.zeros((10, 5), np.float32)
    d = slice_descriptors(flat, ["mean", "std", "centroid", "flux"])
    assert d.shape == (5 + 5 + 1 + 1,)
    np.testing.assert_allclose(d, [0] * 10 + [0.5, 0.0], atol=1e-7)  # flat: middle centroid
    top = np.full((4, 5), -30.0, np.float32)
    top[:, -1] = 0.0  # all the power in the top bin
    assert slice_descriptors(top, ["centroid"])[0] == pytest.approx(1.0, abs=1e-6)
    ramp = np.arange(6, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    np.testing.assert_allclose(slice_descriptors(ramp, ["mean", "std", "flux"]),
                               [2.5] * 3 + [np.std(np.arange(6))] * 3 + [1.0], rtol=1e-6)
    assert target_sizes(["mean", "centroid"], 64) == {"mean": 64, "centroid": 1}


def test_targets_cover_real_frames_only(make_encoder) -> None:
    task = Features(make_encoder(), Features.Config(slice_frames=20, max_pad_fraction=0.5))
    clip = np.random.default_rng(0).standard_normal((14, 16)).astype(np.float32)
    ex = task.sample(clip, np.random.default_rng(0), lambda: clip)
    assert ex["x"].shape == (20, 16)  # padded for the encoder
    np.testing.assert_allclose(ex["targets"], slice_descriptors(clip, task.cfg.targets),
                               rtol=1e-5)
    assert task.sample(clip[:9], np.random.default_rng(0), lambda: clip) is None


def test_running_statistics_standardise_the_targets(make_encoder, make_batch) -> None:
    task = Features(make_encoder())
    batches = [make_batch(task, size=5, seed=s) for s in range(3)]
    for step, batch in enumerate(batches):
        task.step(batch)
        task.after_step(step)
    seen = torch.cat([b["targets"] for b in batches]).double()
    assert float(task.count) == 15
    torch.testing.assert_close(task.mean, seen.mean(0))
    torch.testing.assert_close(task.m2 / task.count, seen.var(0, correction=0))
    z = task.standardise(seen.float())
    torch.testing.assert_close(z.mean(0), torch.zeros(z.shape[1]), atol=1e-4, rtol=0)
    # evaluation leaves the statistics alone; a repeated step gives the same loss
    task.eval()
    with torch.no_grad():
        first, again = task.step(batches[0])[0], task.step(batches[0])[0]
    task.after_step(3)
    assert float(task.count) == 15 and torch.equal(first, again)


def test_options(make_encoder, make_batch) -> None:
    task = Features(make_encoder(), Features.Config(targets=("centroid", "flux")))
    loss, logs = task.step(make_batch(task, size=4))
    assert {"mse_centroid", "mse_flux", "r2"} <= set(logs)
    mean = (logs["mse_centroid"] + logs["mse_flux"]) / 2
    assert float(loss.detach()) == pytest.approx(mean, rel=1e-5)
    for bad in (("pitch",), (), ("mean", "mean")):
        with pytest.raises(InvalidValue):
            Features(make_encoder(), Features.Config(targets=bad))
