"""The dev check used to choose SPICE's settings: RPA on held-out built-in synthesiser notes.

Calibrates each run (``pocketear calibrate``: built-in notes, seed 0), then tracks 75 other
notes of the built-in synthesiser (seed 99; flute, clarinet, brass, strings, pluck; MIDI 40-82
in steps of 3, detuned by up to ±0.3 semitone, padded with 0.25 s of silence) and scores the
15 frames inside each held note: raw pitch accuracy (within 0.5 semitone of the detuned pitch)
and the mean confidence there and in the leading silence. Then prints each instrument's median
error per note (MIDI 36-84), which shows a timbre-dependent offset or a bent pitch map.
Not the benchmark (``benchmarks/pitch.py``): same synthesiser as the calibration notes.

    .venv/bin/python benchmarks/pitch_dev.py RUN [RUN ...]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from pocketear.data.synth.music import note
from pocketear.pitch import calibrate, load_pitch_model, load_tracker
from pocketear.pitch.calibrate import note_output

INSTRUMENTS = ("flute", "clarinet", "brass", "strings", "pluck")


def dev_rpa(run: str) -> dict[str, float]:
    """RPA and confidences on the held-out notes (the run is calibrated first)."""
    cal = calibrate(run)
    tracker = load_tracker(run, threads=1)
    rng = np.random.default_rng(99)
    ok, voiced, silent = [], [], []
    pad = np.zeros(4000, np.float32)
    for inst in INSTRUMENTS:
        for midi in range(40, 84, 3):
            true = midi + rng.uniform(-0.3, 0.3)
            hz, conf = tracker.track(np.r_[pad, note(inst, true, 0.6, rng), pad])
            est = 69 + 12 * np.log2(hz / 440)
            ok.append(np.mean(np.abs(est[10:25] - true) < 0.5))
            voiced.append(conf[10:25].mean())
            silent.append(conf[:5].mean())
    return {"rpa": float(np.mean(ok)), "conf_voiced": float(np.mean(voiced)),
            "conf_silence": float(np.mean(silent)), "slope": cal["slope"],
            "calibration_notes": cal["notes"], "calibration_rms": cal["rms_semitones"]}


def error_grid(run: str) -> str:
    """Median calibrated error (semitones) per instrument (rows) and note (MIDI 36-84, by 4)."""
    model, cal, _ = load_pitch_model(run)
    rng = np.random.default_rng(3)
    rows = []
    for inst in (*INSTRUMENTS, "bell"):
        errs = [float(cal.midi(note_output(model, note(inst, float(m), 0.6, rng))) - m)
                for m in range(36, 85, 4)]
        rows.append(f"{inst:9s}" + " ".join(f"{e:+5.1f}" for e in errs))
    return "\n".join(rows)


def main() -> None:
    """Print the dev check of every run."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="spice run folders (calibrated in place)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for run in args.runs:
        res = dev_rpa(run)
        print(f"{run}: RPA {100 * res['rpa']:.1f} %, confidence voiced "
              f"{res['conf_voiced']:.2f} / silence {res['conf_silence']:.2f}, calibration "
              f"slope {res['slope']:.1f} on {int(res['calibration_notes'])} notes, rms "
              f"{res['calibration_rms']:.2f}")
        print(error_grid(run))


if __name__ == "__main__":
    main()
