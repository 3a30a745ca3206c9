"""The loop's trivial-task warning: printed once, stored in summary.json, shown in the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pocketear.evaluate.report import write_report
from pocketear.train.config import load_config
from pocketear.train.loop import pretrain


@pytest.fixture(scope="module")
def pure_tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight steady 2-second sine tones: two slices of one clip are near-identical."""
    root = tmp_path_factory.mktemp("tones")
    sr, t = 16000, np.arange(2 * 16000) / 16000
    for i in range(8):
        wave = 0.3 * np.sin(2 * np.pi * 300 * 1.4**i * t)
        sf.write(root / f"tone{i}.wav", wave.astype(np.float32), sr, subtype="PCM_16")
    return root


def _run(data: Path, out: Path, *extra: str) -> dict:
    sets = ["task.name=triplet", "encoder.name=mobile_tiny", f"data.source={data}",
            "train.steps=5", "optim.batch_size=8", "optim.warmup_steps=2",
            "train.log_every=1", "train.monitor_every=5", "train.ckpt_every=10",
            "data.workers=1", "train.threads=1", *extra]
    return pretrain(load_config(None, sets), out, progress=False)


def test_trivial_triplet_warns_in_log_summary_and_report(
    pure_tones: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Random negatives and a margin of 0 on steady tones: every hinge is 0 from step 1."""
    run = tmp_path / "trivial"
    summary = _run(pure_tones, run, "task.negatives=random", "task.margin=0")
    err = capsys.readouterr().err
    assert err.count("this task is solved trivially on this data") == 1  # one line, once
    stored = json.loads((run / "summary.json").read_text())["warnings"]
    assert stored == summary["warnings"] and len(stored) == 1
    assert stored[0].startswith("triplet: this task is solved trivially on this data: loss 0")
    assert "task.negatives=semihard" in stored[0]
    text = write_report(run).read_text()
    assert '<div class="warn"><b>Training warnings</b>' in text
    assert "this task is solved trivially on this data" in text


def test_default_triplet_stays_quiet(pure_tones: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The same data with semi-hard negatives (default, margin 0.1) keeps triplets active."""
    summary = _run(pure_tones, tmp_path / "normal")
    assert summary["warnings"] == [] and summary["final"]["frac_active"] > 0
    assert "solved trivially" not in capsys.readouterr().err
    assert 'class="warn"' not in write_report(tmp_path / "normal").read_text()
