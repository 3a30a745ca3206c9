"""Frontends: waveform → features, as export-safe ``nn.Module`` s.

The log-mel matches librosa and ships inside every exported model; the CQT (for pitch: SPICE)
matches librosa's too (speed and parity measured in ``docs/benchmarks.md`` §1). Importing this
package registers them (``pocketear.create("frontend", "logmel")``, ``"cqt"``); a run picks one
with ``frontend.name`` (:func:`frontend_config`, :func:`create_frontend`).
"""

from pocketear.frontends.base import Frontend, create_frontend, frontend_config, stored_frontend
from pocketear.frontends.cqt import CQT, CQTConfig
from pocketear.frontends.logmel import LogMel, LogMelConfig, compute_stats
from pocketear.frontends.mel import hz_to_mel, mel_filterbank, mel_to_hz

FrontendConfig = LogMelConfig | CQTConfig  # what `frontend.name` picks between

__all__ = [
    "CQT",
    "CQTConfig",
    "Frontend",
    "FrontendConfig",
    "LogMel",
    "LogMelConfig",
    "compute_stats",
    "create_frontend",
    "frontend_config",
    "hz_to_mel",
    "mel_filterbank",
    "mel_to_hz",
    "stored_frontend",
]
