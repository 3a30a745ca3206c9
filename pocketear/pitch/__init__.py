"""Pitch tracking with a SPICE model: calibration, streaming tracker, ONNX export.

Train with ``pocketear pretrain --task spice`` (:mod:`pocketear.tasks.spice`), then ``pocketear
calibrate RUN`` (:mod:`~pocketear.pitch.calibrate`), ``pocketear pitch RUN FILES --out CSV``
(:mod:`~pocketear.pitch.track`) and ``pocketear export RUN --task-head pitch``
(:mod:`~pocketear.pitch.export`).
"""

from pocketear.pitch.calibrate import calibrate, fit_calibration
from pocketear.pitch.model import Calibration, NotAPitchModel, PitchModel, load_pitch_model
from pocketear.pitch.track import Tracker, Uncalibrated, load_tracker, track_files

__all__ = ["Calibration", "NotAPitchModel", "PitchModel", "Tracker", "Uncalibrated",
           "calibrate", "fit_calibration", "load_pitch_model", "load_tracker", "track_files"]
