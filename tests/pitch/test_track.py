"""The tracker: follows a glissando, streams like a whole-file run, ONNX like PyTorch."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from pocketear.cli import main
from pocketear.pitch import Calibration, NotAPitchModel, Tracker, Uncalibrated, load_tracker
from pocketear.pitch.model import PitchModel
from pocketear.registry import create
from tests.pitch.conftest import ORACLE_OFFSET, ORACLE_SLOPE, SR, sine


def _tracker(model: PitchModel, cal: Calibration, block_seconds: float) -> Tracker:
    def run(wave):
        with torch.no_grad():
            return tuple(t.numpy() for t in model(torch.from_numpy(wave)))

    return Tracker(run, SR, model.hop_length, model.frontend.context_samples(), cal,
                   block_seconds)


def test_tracker_follows_a_glissando_within_half_a_semitone(oracle):
    seconds = 4.0
    curve = np.linspace(45, 81, int(seconds * SR))  # A2 → A5, across several 1 s blocks
    hz, conf = _tracker(oracle, Calibration(ORACLE_OFFSET, ORACLE_SLOPE), 1.0).track(
        sine(curve, seconds))
    assert len(hz) == 1 + int(seconds * SR) // 512
    truth = curve[np.minimum(np.arange(len(hz)) * 512, len(curve) - 1)]
    inner = slice(5, len(hz) - 5)  # frames whose 32 ms centre has the tone on both sides
    err = np.abs(69 + 12 * np.log2(hz[inner] / 440) - truth[inner])
    assert np.mean(err < 0.5) >= 0.98 and conf.min() > 0.99


def test_streaming_equals_whole_file(tmp_path):
    """Blocks of 0.7 s give the frames of one whole-file block, and of a plain model call.

    A plain call differs in its first and last ~0.6 s only: there the CQT's decimators see the
    file's edge as a cut (zero padding after each decimation), the tracker as silence around
    the file (padding before), which is the more faithful of the two.
    """
    torch.manual_seed(0)
    from pocketear.frontends import CQT

    model = PitchModel(CQT(), create("encoder", "spice", channels=(4, 8)),
                       torch.nn.Linear(48, 1), torch.nn.Linear(48, 1)).eval()
    rng = np.random.default_rng(0)
    wave = (sine(np.linspace(50, 70, 5 * SR), 5.0) + 0.05 * rng.standard_normal(5 * SR)
            ).astype(np.float32)
    streamed, _ = _tracker(model, Calibration(0.0, 1.0), 0.7).track(wave)  # ragged last block
    whole, _ = _tracker(model, Calibration(0.0, 1.0), 60.0).track(wave)
    assert len(streamed) == len(whole) == 1 + 5 * SR // 512
    assert np.allclose(streamed, whole, rtol=1e-6)
    with torch.no_grad():
        plain = model(torch.from_numpy(wave)[None])[0][0].numpy()
    inner = slice(20, -20)
    assert np.abs(12 * np.log2(streamed[inner] / 440) + 69 - plain[inner]).max() < 1e-4
    sf.write(tmp_path / "long.wav", wave, SR, subtype="FLOAT")
    tracker = _tracker(model, Calibration(0.0, 1.0), 0.7)
    from_file = np.concatenate([h for _, h, _ in tracker.track_file(tmp_path / "long.wav")])
    assert np.allclose(from_file, streamed, rtol=1e-6)


@pytest.mark.filterwarnings("ignore:.*LeafSpec:FutureWarning")  # torch-internal, on export
def test_cli_calibrate_pitch_export_and_onnx_parity(spice_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(spice_run, run)
    with pytest.raises(Uncalibrated, match="pocketear calibrate"):
        load_tracker(run)
    assert main(["export", str(run), "--out", str(tmp_path / "emb.onnx")]) == 2
    assert "--task-head pitch" in capsys.readouterr().err
    assert main(["calibrate", str(run)]) == 0
    notes = [tmp_path / "a.wav", tmp_path / "broken.wav"]
    sf.write(notes[0], sine(np.linspace(55, 65, 2 * SR), 2.0), SR)
    notes[1].write_bytes(b"not audio")
    with pytest.warns(UserWarning, match="skipping"):
        assert main(["pitch", str(run), *map(str, notes), "--out", str(tmp_path / "p.csv"),
                     "--no-progress"]) == 0
    with open(tmp_path / "p.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 + 2 * SR // 512 and set(rows[0]) == {"file", "time", "hz",
                                                                "confidence", "voiced"}
    assert main(["export", str(run), "--task-head", "pitch", "--out",
                 str(tmp_path / "pitch.onnx")]) == 0
    # a little noise, as any recording has: bins at the log floor of a pure sine are rounding
    noise = 0.01 * np.random.default_rng(1).standard_normal(3 * SR)
    wave = (sine(np.linspace(50, 70, 3 * SR), 3.0) + noise).astype(np.float32)
    hz_t, conf_t = load_tracker(run, block_seconds=1.0).track(wave)
    onnx = load_tracker(tmp_path / "pitch.onnx", block_seconds=1.0)
    hz_o, conf_o = onnx.track(wave)
    assert onnx.backend == "onnx" and np.allclose(hz_o, hz_t, rtol=1e-3)
    assert np.abs(conf_o - conf_t).max() < 1e-4


def test_a_model_of_another_task_is_not_a_pitch_model(tmp_path):
    from pocketear.train.checkpoint import save_checkpoint

    save_checkpoint({"config": {"task": {"name": "triplet"}}}, tmp_path / "t.pt")
    with pytest.raises(NotAPitchModel, match="task spice"):
        load_tracker(tmp_path / "t.pt")
