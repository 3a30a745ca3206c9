"""Audio I/O: decode any audio file to the pocketear contract (float32 mono [-1, 1], 16 kHz)."""

from pocketear.audio.io import (
    AUDIO_EXTENSIONS,
    SAMPLE_RATE,
    AudioError,
    AudioSkippedWarning,
    LoadReport,
    audio_duration,
    iter_audio,
    load_audio,
    save_wav,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "SAMPLE_RATE",
    "AudioError",
    "AudioSkippedWarning",
    "LoadReport",
    "audio_duration",
    "iter_audio",
    "load_audio",
    "save_wav",
]
