"""Calibration: the affine fit, its outlier rule, notes from a manifest, the stored map."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from pocketear.errors import InvalidValue
from pocketear.pitch import calibrate, load_pitch_model, load_tracker
from pocketear.pitch.calibrate import (
    builtin_notes,
    calibrate_model,
    fit_calibration,
    manifest_notes,
)
from tests.pitch.conftest import ORACLE_OFFSET, ORACLE_SLOPE, SR, sine


def test_fit_recovers_a_known_map_despite_an_octave_error():
    rng = np.random.default_rng(0)
    out = rng.uniform(0.1, 0.6, 12)
    midi = 30.0 + 80.0 * out + rng.normal(0, 0.05, 12)
    midi[3] += 12  # one note read an octave off
    cal = fit_calibration(out, midi)
    assert cal.offset == pytest.approx(30.0, abs=0.2) and cal.slope == pytest.approx(80.0, abs=0.5)
    assert cal.notes == 11 and cal.rms_semitones < 0.1
    assert cal.hz(np.array([(69 - 30.0) / 80.0]))[0] == pytest.approx(440.0, rel=0.01)


@pytest.mark.parametrize("out", [[0.2, 0.3], [0.4, 0.4, 0.4, 0.4]])
def test_too_few_notes_or_an_untrained_model_is_a_clear_error(out):
    with pytest.raises(InvalidValue):
        fit_calibration(out, range(60, 60 + len(out)))


def test_notes_from_a_manifest_calibrate_the_oracle(tmp_path, oracle):
    lines = ["path,midi"]
    for midi in range(43, 80, 4):
        sf.write(tmp_path / f"{midi}.wav", sine(midi, 0.5), SR)
        lines.append(f"{midi}.wav,{midi}")
    (tmp_path / "notes.csv").write_text("\n".join(lines) + "\n")
    cal = calibrate_model(oracle, manifest_notes(tmp_path / "notes.csv", SR))
    assert cal.offset == pytest.approx(ORACLE_OFFSET, abs=0.5)
    assert cal.slope == pytest.approx(ORACLE_SLOPE, rel=0.01)
    assert cal.notes == 10 and cal.rms_semitones < 0.3


def test_manifest_without_midi_is_a_clear_error(tmp_path):
    sf.write(tmp_path / "a.wav", sine(60, 0.2), SR)
    (tmp_path / "notes.csv").write_text("path,label\na.wav,x\n")
    with pytest.raises(InvalidValue, match="'midi' column"):
        manifest_notes(tmp_path / "notes.csv", SR)


def test_builtin_notes_span_the_range():
    notes = builtin_notes()
    assert len(notes) >= 30 and min(m for _, m in notes) <= 41 and max(m for _, m in notes) >= 79
    assert all(w.dtype == np.float32 and len(w) > SR // 2 for w, _ in notes)


def test_calibration_is_stored_in_the_checkpoint(spice_run, tmp_path):
    info = calibrate(spice_run)
    _, cal, state = load_pitch_model(spice_run)
    assert cal is not None and cal.slope == pytest.approx(info["slope"])
    assert 0 < cal.voicing_threshold < 1 and load_tracker(spice_run).voicing_threshold == (
        pytest.approx(cal.voicing_threshold))
    assert "optimizer" in state and state["step"] == 6  # the rest of the checkpoint kept
