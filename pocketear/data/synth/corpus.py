"""Deterministic synthetic corpus: labelled 1 s events for evaluation, long-form for pretraining.

Why: the quick-start, the tests and the ``synthetic`` benchmark suite need labelled audio with no
download. Every clip's random generator is derived from ``(seed, kind, domain, index)`` only, so a
clip never depends on the clips generated before it: generation parallelises, the result does not
depend on ``workers``, and the events of a smaller corpus are a prefix of a larger one's.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal
from tqdm.auto import tqdm

from pocketear.data.synth.music import INSTRUMENT_NAMES, PITCHES, music_event, music_longform
from pocketear.data.synth.scenes import SCENES, colored_noise, scene_event, scene_longform
from pocketear.data.synth.speech import SPEAKER_NAMES, WORD_NAMES, speech_event, speech_longform

SR = 16000
SYNTH_VERSION = 1  # bump when the generated audio changes (invalidates reused corpora)
EVENT_SECONDS = 1.0
LONGFORM_SECONDS = (10.0, 30.0)
DOMAINS: tuple[str, ...] = ("speech", "music", "scene")
COLUMNS: tuple[str, ...] = (
    "path",
    "duration",
    "kind",
    "domain",
    "word",
    "speaker",
    "instrument",
    "pitch",
    "scene",
    "split",
)
SYNTH_TASKS: dict[str, tuple[str, str]] = {
    "word": ("speech", "word"),
    "speaker": ("speech", "speaker"),
    "instrument": ("music", "instrument"),
    "pitch": ("music", "pitch"),
    "scene": ("scene", "scene"),
}
# Per domain: (primary label column, its classes), (secondary column, its classes). The class
# counts are coprime (10 x 9, 6 x 7) so a round-robin visits every combination and both label
# columns stay balanced to within one clip for any number of clips.
_LABELS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "speech": (("word", WORD_NAMES), ("speaker", SPEAKER_NAMES)),
    "music": (("instrument", INSTRUMENT_NAMES), ("pitch", tuple(str(p) for p in PITCHES))),
    "scene": (("scene", SCENES),),
}
# Splits: each block of 5 consecutive clips of a primary class gets 3 train, 1 valid, 1 test, so
# the primary task is exactly stratified; which clip of the block gets test / valid is chosen to
# keep the secondary label (speaker, pitch) stratified too, ties broken at random (seeded).
_SPLITS = ("train", "valid", "test")
_TARGET = np.array([0.6, 0.2, 0.2])
_KIND_CODE = {"event": 0, "longform": 1}


def event_labels(domain: str, index: int) -> dict[str, str]:
    """Labels of the ``index``-th event of ``domain`` (balanced round-robin)."""
    return {col: classes[index % len(classes)] for col, classes in _LABELS[domain]}


def event_splits(domain: str, n: int, seed: int = 0) -> list[str]:
    """Splits of the first ``n`` events of ``domain`` (60/20/20, stratified).

    Depends on ``n`` only through truncation, so a smaller corpus is a prefix of a larger one.
    The first two clips of each primary class are one train and one test clip, so tiny corpora
    still have a clip to train on and one to test on for every primary class.
    """
    (_, primary), *rest = _LABELS[domain]
    n_p, n_s = len(primary), len(rest[0][1]) if rest else 1
    n_blocks = math.ceil(math.ceil(n / n_p) / 5)
    splits = [""] * (n_blocks * 5 * n_p)
    counts = np.zeros((n_s, 3))
    rng = np.random.default_rng([seed, 7, DOMAINS.index(domain)])
    for b in range(n_blocks):
        for c in range(n_p):
            ks = [c + n_p * (5 * b + r) for r in range(5)]
            sec = [k % n_s for k in ks]
            seen = counts.sum(1) + np.bincount(sec, minlength=n_s)
            free = list(range(5))
            first = b == 0  # first block: clips 0 and 1 are {train, test}
            for split, allowed in (
                (2, [0, 1] if first else free),
                (1, [2, 3, 4] if first else free),
            ):
                cand = [r for r in allowed if r in free]
                need = [_TARGET[split] * seen[sec[r]] - counts[sec[r], split] for r in cand]
                best = max(need)
                r = cand[rng.choice([i for i, v in enumerate(need) if v > best - 1e-9])]
                splits[ks[r]] = _SPLITS[split]
                counts[sec[r], split] += 1
                free.remove(r)
            for r in free:
                splits[ks[r]] = "train"
                counts[sec[r], 0] += 1
    return splits[:n]


def longform_labels(domain: str, index: int) -> dict[str, str]:
    """Labels known for a long-form recording: the speaker, instrument or scene."""
    col, classes = {
        "speech": _LABELS["speech"][1],
        "music": _LABELS["music"][0],
        "scene": _LABELS["scene"][0],
    }[domain]
    return {col: classes[index % len(classes)]}


def clip_rng(seed: int, kind: str, domain: str, index: int) -> np.random.Generator:
    """Independent generator of one clip, derived from the corpus seed and the clip identity."""
    return np.random.default_rng([seed, _KIND_CODE[kind], DOMAINS.index(domain), index])


def degrade(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Realism knobs: random room, noise and level, so clip-level statistics cannot solve tasks.

    The room is a colouring FIR plus a decaying-noise reverb, the noise is at 10–30 dB SNR and
    the level is random. Why: keeps clip-level statistics from trivially solving the tasks.
    """
    x = x.astype(np.float64)
    n = len(x)
    taps = int(rng.integers(2, 9))
    fir = np.zeros(taps)
    fir[0] = 1.0
    fir[1:] = rng.normal(0.0, 0.25, taps - 1)
    x = signal.lfilter(fir, [1.0], x)
    if rng.random() < 0.8:
        rt60 = rng.uniform(0.05, 0.6)
        m = int(min(rt60, 0.4) * SR)
        t = np.arange(m) / SR
        ir = rng.standard_normal(m) * np.exp(-6.9 * t / rt60)
        ir = signal.lfilter([1.0], [1.0, -rng.uniform(0.0, 0.7)], ir)  # darker tails
        ir *= rng.uniform(0.1, 0.6) / (np.sqrt(np.sum(ir**2)) + 1e-12)
        ir[0] += 1.0
        x = signal.fftconvolve(x, ir)[:n]
    active = np.abs(x) > 0.05 * np.max(np.abs(x)) if np.any(x) else np.ones(n, bool)
    p_sig = np.mean(x[active] ** 2) + 1e-12
    snr = rng.uniform(10.0, 30.0)
    noise = colored_noise(n, rng, rng.uniform(0.0, 2.0))
    x = x + noise * np.sqrt(p_sig / 10 ** (snr / 10.0))
    peak = 10 ** (rng.uniform(-20.0, -1.0) / 20.0)
    return (x * peak / (np.max(np.abs(x)) + 1e-12)).astype(np.float32)


def generate_event(
    domain: str,
    labels: Mapping[str, str],
    rng: np.random.Generator,
    *,
    seconds: float = EVENT_SECONDS,
    degrade_audio: bool = True,
) -> np.ndarray:
    """One labelled event, float32 in [-1, 1], ``seconds`` long.

    A word (needs ``word``, ``speaker``), a note (``instrument``, ``pitch``) or a scene excerpt
    (``scene``).
    """
    n = int(round(seconds * SR))
    if domain == "speech":
        y = speech_event(labels["word"], labels["speaker"], rng, n)
    elif domain == "music":
        y = music_event(labels["instrument"], int(labels["pitch"]), rng, n)
    elif domain == "scene":
        y = scene_event(labels["scene"], rng, n)
    else:
        raise ValueError(f"unknown domain {domain!r}; expected one of {DOMAINS}")
    return degrade(y, rng) if degrade_audio else y


def generate_longform(
    domain: str,
    labels: Mapping[str, str],
    seconds: float,
    rng: np.random.Generator,
    *,
    degrade_audio: bool = True,
) -> np.ndarray:
    """A long recording: ``speaker`` saying words, ``instrument`` playing a phrase, or ``scene``."""
    n = int(round(seconds * SR))
    if domain == "speech":
        y = speech_longform(labels["speaker"], n, rng)
    elif domain == "music":
        y = music_longform(labels["instrument"], n, rng)
    elif domain == "scene":
        y = scene_longform(labels["scene"], n, rng)
    else:
        raise ValueError(f"unknown domain {domain!r}; expected one of {DOMAINS}")
    return degrade(y, rng) if degrade_audio else y


def plan_corpus(minutes: float, seed: int = 0) -> list[dict[str, str | float | int]]:
    """List every clip (identity, labels, split, duration) without generating audio.

    Half of ``minutes`` goes to 1 s events (domains and labels round-robin), the other half to
    10–30 s long-form recordings (domains round-robin).
    """
    total = float(minutes) * 60.0
    n_events = int(round(total / 2.0 / EVENT_SECONDS))
    jobs: list[dict[str, str | float | int]] = []
    for d, domain in enumerate(DOMAINS):
        n_domain = n_events // len(DOMAINS) + (d < n_events % len(DOMAINS))
        for i, split in enumerate(event_splits(domain, n_domain, seed)):
            jobs.append(
                {
                    "kind": "event",
                    "domain": domain,
                    "index": i,
                    "seconds": EVENT_SECONDS,
                    "split": split,
                    **event_labels(domain, i),
                }
            )
    budget = total - n_events * EVENT_SECONDS
    rng = np.random.default_rng([seed, 99])
    counts = dict.fromkeys(DOMAINS, 0)
    m = 0
    while budget >= 5.0:
        domain = DOMAINS[m % len(DOMAINS)]
        sec = round(max(LONGFORM_SECONDS[0], min(rng.uniform(*LONGFORM_SECONDS), budget)), 2)
        i = counts[domain]
        jobs.append(
            {
                "kind": "longform",
                "domain": domain,
                "index": i,
                "seconds": sec,
                "split": "pretrain",
                **longform_labels(domain, i),
            }
        )
        counts[domain] += 1
        budget -= sec
        m += 1
    for job in jobs:
        folder = "events" if job["kind"] == "event" else "longform"
        job["path"] = f"{folder}/{job['domain']}_{int(job['index']):05d}.wav"
    return jobs


def _make_clip(args: tuple[str, int, dict]) -> int:
    """Worker: generate one clip and write it atomically; returns its number of samples."""
    root, seed, job = args
    rng = clip_rng(seed, str(job["kind"]), str(job["domain"]), int(job["index"]))
    labels = {k: str(job[k]) for k in COLUMNS[4:9] if k in job}
    if job["kind"] == "event":
        y = generate_event(str(job["domain"]), labels, rng, seconds=float(job["seconds"]))
    else:
        y = generate_longform(str(job["domain"]), labels, float(job["seconds"]), rng)
    path = Path(root) / str(job["path"])
    tmp = path.with_name(f".{path.name}.tmp")
    sf.write(tmp, np.clip(y, -1.0, 1.0), SR, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)
    return len(y)


def write_corpus(
    out_dir: str | os.PathLike[str],
    minutes: float = 6.0,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Generate the corpus into ``out_dir`` and return the path of its ``manifest.csv``.

    An existing complete corpus generated with the same ``minutes``, ``seed`` and generator
    version is reused. The manifest is removed first and written last (atomically), so an
    interrupted run never leaves a manifest that points to missing or stale files.

    Args:
        out_dir: destination folder (``events/``, ``longform/``, ``manifest.csv``).
        minutes: total audio, about half events and half long-form.
        seed: corpus seed; same seed -> byte-identical corpus, whatever ``workers``.
        workers: generator processes (1 = in-process).
        progress: show a tqdm progress bar.
    """
    root = Path(out_dir)
    manifest, config_path = root / "manifest.csv", root / "synth_config.json"
    config = {"version": SYNTH_VERSION, "minutes": float(minutes), "seed": int(seed), "sr": SR}
    if manifest.exists() and config_path.exists():
        try:
            if json.loads(config_path.read_text()) == config:
                with open(manifest, newline="") as f:
                    if all((root / r["path"]).is_file() for r in csv.DictReader(f)):
                        return manifest
        except (OSError, ValueError, KeyError):
            pass
    for stale in (manifest, config_path):
        stale.unlink(missing_ok=True)
    (root / "events").mkdir(parents=True, exist_ok=True)
    (root / "longform").mkdir(parents=True, exist_ok=True)

    jobs = plan_corpus(minutes, seed)
    # Long clips first so the pool's tail is made of short ones.
    order = sorted(range(len(jobs)), key=lambda i: -float(jobs[i]["seconds"]))
    args = [(str(root), int(seed), jobs[i]) for i in order]
    n_samples: dict[int, int] = {}
    bar = tqdm(total=len(jobs), desc="synthetic corpus", unit="clip", disable=not progress)
    try:
        if workers <= 1:
            results = map(_make_clip, args)
            for i, n in zip(order, results, strict=True):
                n_samples[i] = n
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for i, n in zip(order, pool.map(_make_clip, args, chunksize=2), strict=True):
                    n_samples[i] = n
                    bar.update()
    finally:
        bar.close()

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for i, job in enumerate(jobs):
        row = {**job, "duration": f"{n_samples[i] / SR:.3f}"}
        writer.writerow([row.get(c, "") for c in COLUMNS])
    tmp_cfg = config_path.with_name(".synth_config.json.tmp")
    tmp_cfg.write_text(json.dumps(config, sort_keys=True))
    os.replace(tmp_cfg, config_path)
    tmp = manifest.with_name(".manifest.csv.tmp")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, manifest)
    return manifest
