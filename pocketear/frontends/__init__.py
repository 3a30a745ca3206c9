"""Frontends: waveform → features, as export-safe ``nn.Module`` s.

The log-mel matches librosa and ships inside every exported model; the CQT (for pitch: SPICE)
matches librosa's too (speed and parity measured in ``docs/benchmarks.md`` §1). Importing this
package registers them (``pocketear.create("frontend", "logmel")``, ``"cqt"``).
"""

from pocketear.frontends.cqt import CQT, CQTConfig
from pocketear.frontends.logmel import LogMel, LogMelConfig, compute_stats
from pocketear.frontends.mel import hz_to_mel, mel_filterbank, mel_to_hz

__all__ = [
    "CQT",
    "CQTConfig",
    "LogMel",
    "LogMelConfig",
    "compute_stats",
    "hz_to_mel",
    "mel_filterbank",
    "mel_to_hz",
]
