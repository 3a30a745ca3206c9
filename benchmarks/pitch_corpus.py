"""An unlabelled pitched corpus for pretraining SPICE: built-in synthesiser phrases, MIDI 28-91.

SPICE learns relative pitch only where its training audio has pitch: the built-in synthetic
corpus's music (tonics 45-60) leaves the low and high octaves of ``benchmarks/pitch.py`` unseen.
This writes phrases of the built-in instruments (``pocketear.data.synth.music.note``: flute,
clarinet, brass, strings, pluck; no bell, whose partials are inharmonic) as random walks around
tonics drawn over the whole range, some with noise (SNR 5-30 dB), and a ``manifest.csv`` with
``path`` only: no labels reach the training run. Deterministic for a seed.

    .venv/bin/python benchmarks/pitch_corpus.py --out /work/data/pitch-corpus --minutes 20
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from pocketear.data.synth.music import SR, note

INSTRUMENTS = ("flute", "clarinet", "brass", "strings", "pluck")
LOW, HIGH = 28, 91  # E1 … G6


def phrase(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """One instrument's random walk of notes (semitone steps ±7) around a random tonic."""
    inst = INSTRUMENTS[int(rng.integers(len(INSTRUMENTS)))]
    n = int(seconds * SR)
    out = np.zeros(n, np.float32)
    midi = float(rng.uniform(LOW, HIGH))
    pos = int(rng.uniform(0.0, 0.3) * SR)
    while pos < n:
        midi = float(np.clip(midi + rng.integers(-7, 8) + rng.uniform(-0.3, 0.3), LOW, HIGH))
        length = rng.uniform(0.15, 0.9)
        y = note(inst, midi, length, rng) * rng.uniform(0.3, 1.0)
        m = min(len(y), n - pos)
        out[pos:pos + m] += y[:m]
        pos += int(length * SR) + (int(rng.uniform(0.1, 0.5) * SR) if rng.random() < 0.15 else 0)
    if rng.random() < 0.5:
        snr = rng.uniform(5, 30)
        noise = rng.standard_normal(n)
        out = out + noise * np.sqrt(np.mean(out ** 2) / 10 ** (snr / 10))
    return (out / (np.abs(out).max() + 1e-9) * 0.9).astype(np.float32)


def main() -> None:
    """Write the corpus and its manifest."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for WAVs and manifest.csv")
    ap.add_argument("--minutes", type=float, default=20.0, help="total audio (default 20)")
    ap.add_argument("--seconds", type=float, default=10.0, help="per phrase (default 10)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    rows = ["path"]
    for i in tqdm(range(int(args.minutes * 60 / args.seconds)), desc="phrases"):
        name = f"phrase{i:04d}.wav"
        sf.write(args.out / name, phrase(rng, args.seconds), SR, subtype="PCM_16")
        rows.append(name)
    (args.out / "manifest.csv").write_text("\n".join(rows) + "\n")
    print(f"wrote {len(rows) - 1} phrases to {args.out}")


if __name__ == "__main__":
    main()
