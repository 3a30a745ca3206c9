"""Audio file I/O: decode anything to float32 mono at one sample rate, or say clearly why not.

Every model in pocketear sees the same audio contract (README, "Data"): float32, mono, in
[-1, 1], at the model's sample rate. This module is the only place that touches decoders, so the
rest of the code never has to care whether a file was a 44.1 kHz stereo FLAC or an AAC phone
recording misleadingly named ``.mp3``.

Decoding is chosen by content, never by extension: libsndfile (via ``soundfile``) is tried first
because it is fast and can seek; PyAV (FFmpeg) is the fallback for what libsndfile cannot read
(m4a/AAC, webm, ...). Containers that are recognisably FFmpeg-only from their first bytes go to
PyAV first, because libsndfile guesses MPEG audio from a ``.mp3`` name and would feed an AAC
stream to mpg123, which spews resync noise on stderr before giving up.

A file that cannot be decoded raises :class:`AudioError` (path, what is wrong, what to do);
:func:`iter_audio` turns each into one ``skipped: PATH: reason`` line on stderr
(:func:`report_skipped`) and keeps going, so a long run never dies because of one bad file.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import av
import numpy as np
import soundfile as sf
import soxr

from pocketear.errors import UserError

__all__ = [
    "AUDIO_EXTENSIONS",
    "SAMPLE_RATE",
    "AudioError",
    "AudioSkippedWarning",
    "LoadReport",
    "audio_duration",
    "iter_audio",
    "load_audio",
    "report_skipped",
    "save_wav",
]

SAMPLE_RATE = 16000
"""Default model sample rate (Hz); every frontend and encoder assumes it unless configured."""

AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {"wav", "flac", "ogg", "opus", "mp3", "m4a", "aac", "webm", "aiff", "aif", "au", "mp4"}
)
"""Lower-case extensions (no dot) treated as audio when scanning folders.

Only used to *find* files; decoding never trusts the extension.
"""

_REENCODE_HINT = "Re-encode it to WAV/FLAC or remove it from the manifest."


class AudioError(UserError):
    """A file could not be turned into usable audio (a user error: the file, not our code).

    Attributes:
        path: The offending file, as given by the caller.
        reason: What is wrong, without the path or the advice.
        hint: What the user should do about it.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str, hint: str = _REENCODE_HINT):
        self.path = os.fspath(path)
        self.reason = reason
        self.hint = hint
        super().__init__(f"{self.path}: {reason}. {hint}")

    def __reduce__(self) -> tuple[type[AudioError], tuple[str, str, str]]:
        # Keep the exception picklable (DataLoader workers, multiprocessing pools).
        return (type(self), (self.path, self.reason, self.hint))


class AudioSkippedWarning(UserWarning):
    """Formerly emitted per skipped file; kept so existing imports keep working.

    Skipped files are now reported by :func:`report_skipped` as one plain stderr line.
    """


def report_skipped(path: str | os.PathLike[str], reason: str) -> str:
    """Print ``skipped: PATH: reason`` as one line on stderr and return it.

    A plain line, not :func:`warnings.warn`: a warning prints the file, line number and source
    line that raised it — noise to a user with a bad file. Line breaks in ``reason`` (decoder
    messages) are folded, so one skipped file is always one line.
    """
    line = " ".join(f"skipped: {os.fspath(path)}: {reason}".split())
    from tqdm import tqdm  # writes above any progress bar instead of through it

    tqdm.write(line, file=sys.stderr)
    return line


@dataclass
class LoadReport:
    """Running tally of what :func:`iter_audio` loaded and skipped, for the run summary.

    Attributes:
        loaded: Number of files decoded successfully.
        skipped: Number of files skipped because they could not be decoded.
        skipped_files: ``(path, reason)`` for each skipped file, in order.
    """

    loaded: int = 0
    skipped: int = 0
    skipped_files: list[tuple[str, str]] = field(default_factory=list)

    def record_loaded(self) -> None:
        """Count one successfully decoded file."""
        self.loaded += 1

    def record_skipped(self, path: str | os.PathLike[str], reason: str) -> None:
        """Count one skipped file and remember why."""
        self.skipped += 1
        self.skipped_files.append((os.fspath(path), reason))

    def summary(self) -> str:
        """One line for the run summary, e.g. ``loaded 120 files, skipped 3 (see warnings)``."""
        text = f"loaded {self.loaded} file{'' if self.loaded == 1 else 's'}, skipped {self.skipped}"
        return text + " (see warnings)" if self.skipped else text


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


class _DecodeError(Exception):
    """Internal: one backend failed; the message is kept for the final AudioError."""


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise AudioError(path, "file does not exist", "Check the path or update the manifest.")
    if not os.path.isfile(path):
        raise AudioError(path, "is not a regular file", "Point to an audio file, not a folder.")
    if os.path.getsize(path) == 0:
        raise AudioError(path, "file is empty (0 bytes)", "Remove it from the manifest.")


def _ffmpeg_only(path: str) -> bool:
    """True if the first bytes identify a container libsndfile cannot read (so try PyAV first).

    Why: libsndfile falls back to guessing MPEG audio from a ``.mp3`` extension (or an ID3 tag),
    and mpg123 then chews through e.g. an AAC stream printing resync noise before failing.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            if head[:3] == b"ID3" and len(head) >= 10:  # skip an ID3v2 tag to see the stream
                size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
                f.seek(10 + size + (10 if head[5] & 0x10 else 0))
                head = f.read(16)
    except OSError:
        return False
    return (
        head[4:8] in (b"ftyp", b"moov", b"mdat")  # MP4 / M4A / 3GP / MOV
        or head.startswith(b"\x1a\x45\xdf\xa3")  # EBML: webm / matroska
        or head.startswith(b"#!AMR")  # AMR voice memos
        or head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11")  # ASF / WMA
        or (len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xF6) == 0xF0)  # AAC ADTS
    )


def _window_frames(rate: int, offset_seconds: float, max_seconds: float | None) -> tuple[int, int]:
    """Native-rate ``(start, count)`` of the requested window; ``count == -1`` means to the end."""
    start = int(round(offset_seconds * rate))
    count = -1 if max_seconds is None else max(int(round(max_seconds * rate)), 0)
    return start, count


def _read_soundfile(
    path: str, offset_seconds: float, max_seconds: float | None
) -> tuple[np.ndarray, int]:
    """Decode with libsndfile, seeking to the window so long files are not read in full."""
    try:
        with sf.SoundFile(path) as f:
            rate = int(f.samplerate)
            start, count = _window_frames(rate, offset_seconds, max_seconds)
            if f.seekable():
                if start >= f.frames > 0:
                    return np.zeros((0, f.channels), dtype=np.float32), rate
                if start:
                    f.seek(start)
                data = f.read(count, dtype="float32", always_2d=True)
            else:  # e.g. a pipe: read everything and slice
                data = f.read(dtype="float32", always_2d=True)
                data = data[start:] if count < 0 else data[start : start + count]
    except Exception as exc:  # libsndfile raises assorted types (LibsndfileError, RuntimeError...)
        raise _DecodeError(f"libsndfile: {exc}") from exc
    return data, rate


def _read_pyav(
    path: str, offset_seconds: float, max_seconds: float | None
) -> tuple[np.ndarray, int]:
    """Decode the first audio stream with FFmpeg; windows are decoded from the start and sliced.

    Compressed containers rarely seek sample-accurately, so decoding from the start and stopping
    once the window is complete is the simple, exact option.
    """
    try:
        with av.open(path, mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise _DecodeError(f"ffmpeg: no audio stream in {container.format.name!r} data")
            stream = container.streams.audio[0]
            # Planar float keeps channels separate and scales any integer sample format to [-1, 1].
            resampler = av.AudioResampler(format="fltp")
            chunks: list[np.ndarray] = []
            rate = 0
            decoded = 0
            stop = math.inf
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    if not rate:
                        rate = int(out.sample_rate)
                        start, count = _window_frames(rate, offset_seconds, max_seconds)
                        stop = math.inf if count < 0 else start + count
                    chunks.append(out.to_ndarray())
                    decoded += out.samples
                if decoded >= stop:
                    break
            else:
                for out in resampler.resample(None):
                    chunks.append(out.to_ndarray())
    except _DecodeError:
        raise
    except Exception as exc:  # FFmpegError subclasses, plus odd ValueErrors from broken headers
        raise _DecodeError(f"ffmpeg: {exc}") from exc
    if not chunks:
        return np.zeros((0, 1), dtype=np.float32), rate or 1
    data = np.concatenate(chunks, axis=1).T.astype(np.float32, copy=False)
    start, count = _window_frames(rate, offset_seconds, max_seconds)
    data = data[start:] if count < 0 else data[start : start + count]
    return np.ascontiguousarray(data), rate


def _decode(path: str, offset_seconds: float, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Try each backend in content-determined order; raise AudioError listing every failure."""
    backends = (_read_soundfile, _read_pyav)
    if _ffmpeg_only(path):
        backends = backends[::-1]
    errors: list[str] = []
    for backend in backends:
        try:
            return backend(path, offset_seconds, max_seconds)
        except _DecodeError as exc:
            errors.append(str(exc))
    raise AudioError(path, "cannot be decoded as audio (" + "; ".join(errors) + ")")


def load_audio(
    path: str | os.PathLike[str],
    sample_rate: int = SAMPLE_RATE,
    *,
    max_seconds: float | None = None,
    offset_seconds: float = 0.0,
) -> np.ndarray:
    """Load a file as float32 mono in [-1, 1] at ``sample_rate`` (the pocketear audio contract).

    Channels are averaged, the rate is converted with soxr ('HQ'), and samples are clipped to
    [-1, 1] (float files and resampling can overshoot slightly).

    Args:
        path: Any audio file libsndfile or FFmpeg can decode; the extension is not trusted.
        sample_rate: Output rate in Hz.
        max_seconds: Read at most this much audio (None: to the end of the file).
        offset_seconds: Start this far into the file. With libsndfile formats the file is seeked,
            not decoded from the start, so long recordings can be streamed window by window.

    Returns:
        1-D float32 array; never empty.

    Raises:
        AudioError: Missing, empty or undecodable file, no samples in the requested window, or
            NaN/Inf samples.
        ValueError: Invalid arguments (a caller bug, not a bad file).
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if not offset_seconds >= 0:  # also rejects NaN
        raise ValueError(f"offset_seconds must be >= 0, got {offset_seconds}")
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be > 0 or None, got {max_seconds}")

    spath = os.fspath(path)
    _check_file(spath)
    data, rate = _decode(spath, offset_seconds, max_seconds)

    if data.shape[0] == 0:
        if offset_seconds > 0:
            raise AudioError(
                spath,
                f"no audio at offset {offset_seconds:g} s (the file is shorter)",
                "Use audio_duration() to keep offsets inside the file.",
            )
        raise AudioError(spath, "contains no audio samples (empty recording or corrupt data)")
    # Check before mixing/resampling: soxr would smear one NaN over its whole filter length.
    if not np.isfinite(data).all():
        raise AudioError(spath, "contains NaN or Inf samples")

    audio = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if rate != sample_rate:
        audio = soxr.resample(audio, rate, sample_rate, quality="HQ").astype(np.float32, copy=False)
        if max_seconds is not None:  # rounding at two rates can add one sample; honour the cap
            audio = audio[: max(int(round(max_seconds * sample_rate)), 1)]
    return np.clip(audio, -1.0, 1.0).astype(np.float32, copy=False)


def _duration_soundfile(path: str) -> float | None:
    try:
        info = sf.info(path)
    except Exception as exc:
        raise _DecodeError(f"libsndfile: {exc}") from exc
    return info.frames / info.samplerate if info.samplerate > 0 else None


def _duration_pyav(path: str) -> float | None:
    try:
        with av.open(path, mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise _DecodeError(f"ffmpeg: no audio stream in {container.format.name!r} data")
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / av.time_base
            return None
    except _DecodeError:
        raise
    except Exception as exc:
        raise _DecodeError(f"ffmpeg: {exc}") from exc


def audio_duration(path: str | os.PathLike[str]) -> float:
    """Duration in seconds, from headers where possible (cheap enough to scan a whole corpus).

    libsndfile headers are exact; FFmpeg container/stream durations can be estimates (e.g. from
    the bitrate of a raw AAC stream). Only if no header states a duration is the file decoded.

    Raises:
        AudioError: Missing or unreadable file.
    """
    spath = os.fspath(path)
    _check_file(spath)
    backends = (_duration_soundfile, _duration_pyav)
    if _ffmpeg_only(spath):
        backends = backends[::-1]
    errors: list[str] = []
    for backend in backends:
        try:
            seconds = backend(spath)
        except _DecodeError as exc:
            errors.append(str(exc))
            continue
        if seconds is not None:
            return seconds
        # Opened, but the headers do not say how long it is: decode (last resort, full read).
        data, rate = _decode(spath, 0.0, None)
        return data.shape[0] / rate
    raise AudioError(spath, "cannot be read as audio (" + "; ".join(errors) + ")")


def save_wav(path: str | os.PathLike[str], audio: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM WAV atomically (temp file in the same folder, then ``os.replace``).

    Atomic so an interrupted corpus generation never leaves a truncated WAV that a later run
    would trip over. Samples are clipped to [-1, 1] first: libsndfile would otherwise wrap
    out-of-range floats around instead of clipping them.

    Args:
        path: Destination; parent folders are created.
        audio: Float samples, shape ``(n,)`` or ``(n, channels)``.
        sample_rate: Rate in Hz written to the header.

    Raises:
        ValueError: Non-finite samples, wrong shape, or non-positive rate.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    data = np.asarray(audio)
    if data.ndim not in (1, 2):
        raise ValueError(f"audio must have shape (n,) or (n, channels), got {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError("audio contains NaN or Inf samples")
    if np.issubdtype(data.dtype, np.floating):
        data = np.clip(data, -1.0, 1.0)
    spath = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(spath))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".wav")
    try:
        with os.fdopen(fd, "wb") as f:
            sf.write(f, data, sample_rate, subtype="PCM_16", format="WAV")
        os.replace(tmp, spath)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def iter_audio(
    paths: Iterable[str | os.PathLike[str]],
    sample_rate: int = SAMPLE_RATE,
    report: LoadReport | None = None,
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(path, audio)`` for every decodable file; report and skip the rest.

    Each bad file produces exactly one ``skipped: PATH: reason`` line on stderr
    (:func:`report_skipped`) and is recorded in ``report`` (if given) so the run summary can
    count it.
    """
    for path in paths:
        spath = os.fspath(path)
        try:
            audio = load_audio(spath, sample_rate)
        except AudioError as exc:
            report_skipped(spath, f"{exc.reason}. {exc.hint}")
            if report is not None:
                report.record_skipped(spath, exc.reason)
            continue
        if report is not None:
            report.record_loaded()
        yield spath, audio
