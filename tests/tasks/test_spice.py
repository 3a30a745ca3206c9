"""SPICE: the sampler's shifted slices, the loss falling on notes, the run's default parts."""

from __future__ import annotations

import numpy as np
import torch

from pocketear.frontends import CQT
from pocketear.registry import create
from pocketear.tasks.spice import Spice
from pocketear.train.config import resolve

SMALL = {"n_mels": 190, "channels": (8, 16, 16, 32, 32, 32), "embed_dim": 16}


def test_sampler_cuts_two_slices_of_one_frame_at_random_offsets():
    task = Spice(create("encoder", "spice", n_mels=24, slice_bins=16, channels=(4,)),
                 Spice.Config(frames_per_clip=5, max_shift=6, noise_floor=0.0,
                              loud_fraction=1.0))
    clip = np.tile(np.arange(24, dtype=np.float32), (30, 1)) + 100 * np.arange(30)[:, None]
    ex = task.sample(clip, np.random.default_rng(0), lambda: clip)
    assert ex["first"].shape == ex["second"].shape == (5, 16) and ex["shift"].shape == (5,)
    for a, b, shift in zip(ex["first"], ex["second"], ex["shift"], strict=True):
        frame, k1, k2 = a[0] // 100, a[0] % 100, b[0] % 100
        assert b[0] // 100 == frame  # the same frame
        assert np.array_equal(a, clip[int(frame), int(k1):int(k1) + 16])
        assert 0 <= k1 < 6 and 0 <= k2 < 6 and shift == k2 - k1


def test_noise_floor_only_adds_energy_and_loud_fraction_skips_silence():
    enc = create("encoder", "spice", n_mels=24, slice_bins=16, channels=(4,))
    clip = np.full((40, 24), -5.0, np.float32)
    clip[:10] = np.random.default_rng(1).normal(2.0, 1.0, (10, 24))  # 10 loud frames
    task = Spice(enc, Spice.Config(frames_per_clip=64, max_shift=1, noise_floor=1.0,
                                   loud_fraction=0.25))
    ex = task.sample(clip, np.random.default_rng(0), lambda: clip)
    clean = Spice(enc, Spice.Config(frames_per_clip=64, max_shift=1, noise_floor=0.0,
                                    loud_fraction=0.25)).sample(
        clip, np.random.default_rng(0), lambda: clip)
    assert (clean["first"].max(axis=1) > 0).all()  # only the loud quarter is drawn
    assert (ex["first"] >= clean["first"] - 1e-6).all()  # log(e^x + e^n) >= x
    assert not np.allclose(ex["first"], ex["second"])  # each view its own floor


def _notes() -> list[np.ndarray]:
    """Normalised CQTs of harmonic notes from C2 to C5 (a scalar offset and scale: pooled)."""
    fe, t = CQT(), np.arange(16000) / 16000
    clips = []
    for midi in range(36, 73, 3):
        f0 = 440 * 2 ** ((midi - 69) / 12)
        wave = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6) if k * f0 < 7000)
        clips.append(fe(torch.from_numpy(wave.astype(np.float32))[None])[0, 0].numpy())
    allv = np.concatenate(clips)
    return [(c - allv.mean()) / allv.std() for c in clips]


def test_relative_pitch_error_falls_on_notes():
    torch.manual_seed(0)
    clips, rng = _notes(), np.random.default_rng(0)
    task = Spice(create("encoder", "spice", **SMALL), Spice.Config(frames_per_clip=4))

    def batch(size: int = 32) -> dict:
        picks = rng.integers(len(clips), size=size)
        return task.collate([task.sample(clips[int(i)], rng, lambda: clips[0]) for i in picks])

    held = batch(64)
    task.eval()
    with torch.no_grad():
        before = task.step(held)[1]
    task.train()
    opt = torch.optim.Adam(task.parameters(), lr=3e-3)
    for _ in range(150):
        loss, _ = task.step(batch())
        opt.zero_grad()
        loss.backward()
        opt.step()
    task.eval()
    with torch.no_grad():
        after = task.step(held)[1]
    assert after["loss"] < 0.5 * before["loss"]
    assert after["error_bins"] < 0.5 * before["error_bins"] and after["error_bins"] < 1.0


def test_a_spice_run_gets_its_encoder_and_frontend_unless_named():
    run = resolve({"task": {"name": "spice"}})
    assert (run.encoder.name, run.frontend.name) == ("spice", "cqt")
    named = resolve({"task": {"name": "spice"}, "encoder": {"name": "spice", "embed_dim": 32},
                     "frontend": {"name": "cqt", "hop_length": 256}})
    assert named.encoder.options == {"embed_dim": 32} and named.frontend.hop_length == 256
    assert resolve({"task": {"name": "triplet"}}).frontend.name == "logmel"
