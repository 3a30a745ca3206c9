"""The training loop fits the run's augmentations once and stores their state in the run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pocketear.augment.mixing import KMix
from pocketear.train.augment_state import STATE_FILE
from pocketear.train.config import load_config
from pocketear.train.loop import pretrain


def _cfg(data: Path, augment: str, steps: int = 3) -> dict:
    return load_config(None, [
        "task.name=temporal_gap", "encoder.name=mobile_tiny", f"data.source={data}",
        f"train.steps={steps}", "optim.batch_size=4", "optim.warmup_steps=1",
        "train.log_every=1", "train.monitor_every=3", "train.ckpt_every=2", "data.workers=1",
        "train.threads=1", f"augment={augment}"])


def test_kmix_run_stores_its_centroids_and_resume_reuses_them(
        tone_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    augment = "[{name: kmix, params: {k: 3, bank_size: 16}}, {name: post_norm}]"
    pretrain(_cfg(tone_folder, augment), run, progress=False)
    with np.load(run / STATE_FILE, allow_pickle=False) as f:
        saved = {k: f[k] for k in f.files}
    assert set(saved) == {"0.KMix.centroids", "1.PostNorm.mean", "1.PostNorm.std"}
    assert saved["0.KMix.centroids"].shape == (3, 64)
    assert np.isfinite(saved["1.PostNorm.std"]) and saved["1.PostNorm.std"] > 0

    loaded = {}
    original = KMix.load_state

    def spy(self, state):
        loaded.update(state)
        original(self, state)

    def no_refit(self, *args, **kwargs):
        raise AssertionError("a resumed run must not refit k-mix")

    monkeypatch.setattr(KMix, "load_state", spy)
    monkeypatch.setattr(KMix, "fit", no_refit)
    summary = pretrain({"train": {"steps": 5}}, run, resume=True, progress=False)
    assert summary["resumed_from"] == 3 and summary["steps"] == 5
    np.testing.assert_array_equal(loaded["centroids"], saved["0.KMix.centroids"])


def test_fit_is_seeded_and_stateless_augments_write_nothing(tone_folder: Path,
                                                            tmp_path: Path) -> None:
    pretrain(_cfg(tone_folder, "[{name: kmix, params: {k: 3}}]", steps=1), tmp_path / "a",
             progress=False)
    pretrain(_cfg(tone_folder, "[{name: kmix, params: {k: 3}}]", steps=1), tmp_path / "b",
             progress=False)
    with np.load(tmp_path / "a" / STATE_FILE) as a, np.load(tmp_path / "b" / STATE_FILE) as b:
        np.testing.assert_array_equal(a["0.KMix.centroids"], b["0.KMix.centroids"])
    pretrain(_cfg(tone_folder, "[{name: gaussian_noise}]", steps=1), tmp_path / "c",
             progress=False)
    assert (tmp_path / "c" / "checkpoints" / "last.pt").is_file()
    assert not (tmp_path / "c" / STATE_FILE).exists()
