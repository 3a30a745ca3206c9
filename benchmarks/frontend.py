"""Frontend benchmark: our log-mel and CQT vs librosa, plus decode + resample throughput.

Results and targets: ``docs/benchmarks.md`` §1.

Usage::

    .venv/bin/python benchmarks/frontend.py --json out/frontend.json [--repeats 7]

Speeds are medians over ``--repeats`` runs, in seconds of audio processed per second. Ours and
librosa alternate inside every repeat, so ``ratio`` (ours / librosa) is measured side by side
and stays meaningful on a noisy shared machine where absolute numbers move 30-40 %.

Before every timed call the benchmark sleeps ``PAUSE_S``: after a call, the other library's
worker threads (OpenBLAS in numpy, OpenMP in torch) spin-wait for up to ~0.2 s and, on a
2-core machine, steal a core from the next call (measured: ours 138 ms vs 30 ms, librosa 596 ms
vs 329 ms for the same work with and without the pause). The pause is not timed.

Both compute identical features: librosa gets each clip padded by ``(n_fft - win_length) / 2``
zeros per side, which is exactly our ``center=False`` framing (see ``LogMel``), so
``max_abs_diff`` compares like with like. Ours runs the whole batch in one call (default torch
threads); librosa runs per clip, as it is typically used (``ratio``). For reference (printed,
not in the JSON): ours on 1 thread, which degrades far less than 2 threads when other
processes load a 2-core machine, and one batched librosa call on all clips.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pocketear.frontends import CQT, LogMel, LogMelConfig

PAUSE_S = 0.3  # let idle worker threads of the previous call stop spinning (see module doc)
DECODE_FILES, DECODE_SECONDS = 20, 10.0  # 44.1 kHz WAVs for the decode + resample row
CQT_CLIPS, CQT_SECONDS = 10, 10.0  # the pitch tracker's use: longer recordings


def make_clips(n_clips: int, seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """Seeded noise-plus-tones clips ``(n_clips, samples)`` float32, so every run is comparable."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    clips = np.empty((n_clips, n), dtype=np.float32)
    for i in range(n_clips):
        y = rng.uniform(0.001, 0.1) * rng.standard_normal(n)
        for _ in range(rng.integers(1, 4)):
            freq = rng.uniform(80.0, 7000.0)
            y += rng.uniform(0.05, 0.4) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
        clips[i] = np.clip(y, -1.0, 1.0)
    return clips


def _time(fn: Callable[[], Any], pause: float = 0.0) -> tuple[float, Any]:
    time.sleep(pause)
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def on_one_thread(fn: Callable[[], np.ndarray]) -> np.ndarray:
    """``fn()`` with torch on one thread (the reference row of each benchmark)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


def interleaved(fns: dict[str, Callable[[], np.ndarray]], repeats: int,
                audio_s: float) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Warm each ``fn`` up, then time them in turn ``repeats`` times (a pause before each).

    Returns the median speed (``NAME_audio_s_per_s``) and time (``NAME_ms``) per name, and each
    function's last output.
    """
    for fn in fns.values():
        fn()  # warm-up: allocator, thread pools, librosa's lazy imports
    times: dict[str, list[float]] = {name: [] for name in fns}
    outs: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            dt, outs[name] = _time(fn, PAUSE_S)
            times[name].append(dt)
    res = {f"{k}_audio_s_per_s": audio_s / statistics.median(v) for k, v in times.items()}
    res |= {f"{k}_ms": 1e3 * statistics.median(v) for k, v in times.items()}
    return res, outs


def bench_logmel(clips: np.ndarray, cfg: LogMelConfig, repeats: int) -> dict[str, float]:
    """Ours (batched torch) vs librosa (per clip), interleaved; returns medians and max diff."""
    import librosa

    fe = LogMel(cfg).eval()
    pad = (cfg.n_fft - cfg.win_length) // 2
    wave = torch.from_numpy(clips)

    def ours() -> np.ndarray:
        with torch.inference_mode():
            return fe(wave)[:, 0].numpy()


    def librosa_logmel(y: np.ndarray) -> np.ndarray:
        s = librosa.feature.melspectrogram(
            y=np.pad(y, [(0, 0)] * (y.ndim - 1) + [(pad, pad)]),
            sr=cfg.sample_rate,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window="hann",
            center=False,
            power=2.0,
            n_mels=cfg.n_mels,
            fmin=cfg.fmin,
            fmax=cfg.fmax,
        )
        return np.swapaxes(np.log(s + cfg.log_eps), -1, -2)

    def theirs() -> np.ndarray:
        return np.stack([librosa_logmel(y) for y in clips])

    def theirs_batched() -> np.ndarray:
        return librosa_logmel(clips)

    fns = {
        "ours": ours,
        "ours_1thread": lambda: on_one_thread(ours),
        "librosa": theirs,
        "librosa_batched": theirs_batched,
    }
    res, outs = interleaved(fns, repeats, clips.size / cfg.sample_rate)
    a, b = outs["ours"], outs["librosa"]
    assert all(o.shape == a.shape for o in outs.values()), "feature shapes differ"
    res["ratio"] = res["ours_audio_s_per_s"] / res["librosa_audio_s_per_s"]
    res["max_abs_diff"] = float(np.abs(a - b).max())
    return res


def bench_cqt(clips: np.ndarray, repeats: int) -> dict[str, float]:
    """CQT (SPICE's: 190 bins, hop 512): ours batched vs librosa per clip, interleaved.

    Also the parity figures: ``rel_diff_same_method`` against ``librosa.cqt`` with our dense
    basis and decimator (``sparsity=0, res_type="polyphase"``), ``rel_diff_defaults`` against
    its defaults; both as max ``|ours - librosa|`` over the largest librosa magnitude.
    """
    import librosa

    fe = CQT().eval()
    cfg = fe.cfg
    wave = torch.from_numpy(clips)

    def ours() -> np.ndarray:
        with torch.inference_mode():
            return fe.magnitude(wave).numpy()

    def theirs(**kw: Any) -> np.ndarray:
        return np.stack([np.abs(librosa.cqt(y, sr=cfg.sample_rate, hop_length=cfg.hop_length,
                                            fmin=cfg.fmin, n_bins=cfg.n_bins,
                                            bins_per_octave=cfg.bins_per_octave, **kw))
                         for y in clips])

    fns = {"ours": ours, "ours_1thread": lambda: on_one_thread(ours), "librosa": theirs}
    res, outs = interleaved(fns, repeats, clips.size / cfg.sample_rate)
    same = theirs(sparsity=0.0, res_type="polyphase")
    res["ratio"] = res["ours_audio_s_per_s"] / res["librosa_audio_s_per_s"]
    res["ratio_1thread"] = res["ours_1thread_audio_s_per_s"] / res["librosa_audio_s_per_s"]
    res["rel_diff_same_method"] = float(np.abs(outs["ours"] - same).max() / same.max())
    res["rel_diff_defaults"] = float(np.abs(outs["ours"] - outs["librosa"]).max()
                                     / outs["librosa"].max())
    return res


def bench_decode_resample(
    n_files: int,
    seconds: float,
    repeats: int,
    seed: int,
    src_rate: int = 44100,
    dst_rate: int = 16000,
) -> float:
    """soundfile.read + soxr.resample of 44.1 kHz WAVs to 16 kHz, seconds of audio per second."""
    import soundfile as sf
    import soxr

    with tempfile.TemporaryDirectory(prefix="pocketear-bench-") as tmp:
        rng = np.random.default_rng(seed)
        paths = []
        for i in range(n_files):
            y = np.clip(0.1 * rng.standard_normal(int(seconds * src_rate)), -1, 1).astype(
                np.float32
            )
            path = Path(tmp) / f"clip{i:03d}.wav"
            sf.write(path, y, src_rate, subtype="PCM_16")
            paths.append(path)

        def run() -> int:
            total = 0
            for path in paths:
                y, sr = sf.read(path, dtype="float32")
                total += soxr.resample(y, sr, dst_rate).shape[0]
            return total

        run()  # warm-up: page cache, soxr plan
        times = [_time(run)[0] for _ in range(repeats)]
    return n_files * seconds / statistics.median(times)


def machine_info() -> dict[str, Any]:
    """Where the numbers came from: they only compare within one machine kind."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import librosa

    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "librosa": librosa.__version__,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the frontend benchmark from the command line; prints a table, returns the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, required=True, help="where to write the results")
    ap.add_argument("--repeats", type=int, default=7, help="timed repeats (median; >= 5)")
    ap.add_argument("--clips", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.repeats < 5:
        print(f"warning: --repeats {args.repeats} < 5; medians will be noisy", file=sys.stderr)

    cfg = LogMelConfig()
    clips = make_clips(args.clips, args.seconds, cfg.sample_rate, args.seed)
    lm = bench_logmel(clips, cfg, args.repeats)
    cqt = bench_cqt(make_clips(CQT_CLIPS, CQT_SECONDS, cfg.sample_rate, args.seed),
                    args.repeats)
    decode = bench_decode_resample(DECODE_FILES, DECODE_SECONDS, args.repeats, args.seed)
    result = {
        "ours_audio_s_per_s": lm["ours_audio_s_per_s"],
        "librosa_audio_s_per_s": lm["librosa_audio_s_per_s"],
        "ratio": lm["ratio"],
        "max_abs_diff": lm["max_abs_diff"],
        "cqt": cqt,
        "decode_resample_audio_s_per_s": decode,
        "torch_threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "machine": machine_info(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")

    audio = f"{args.clips} x {args.seconds:g} s"
    cqt_audio = f"{CQT_CLIPS} x {CQT_SECONDS:g} s"
    rows = [
        (f"log-mel, ours (torch, batched, {result['torch_threads']} threads)", audio,
         f"{lm['ours_ms']:.1f} ms", f"{lm['ours_audio_s_per_s']:,.0f}"),
        ("log-mel, ours (torch, batched, 1 thread, for reference)", audio,
         f"{lm['ours_1thread_ms']:.1f} ms", f"{lm['ours_1thread_audio_s_per_s']:,.0f}"),
        ("log-mel, librosa (per clip)", audio,
         f"{lm['librosa_ms']:.1f} ms", f"{lm['librosa_audio_s_per_s']:,.0f}"),
        ("log-mel, librosa (one batched call, for reference)", audio,
         f"{lm['librosa_batched_ms']:.1f} ms", f"{lm['librosa_batched_audio_s_per_s']:,.0f}"),
        (f"CQT 190 bins, ours (torch, batched, {result['torch_threads']} threads)",
         cqt_audio, f"{cqt['ours_ms']:.1f} ms", f"{cqt['ours_audio_s_per_s']:,.0f}"),
        ("CQT 190 bins, ours (1 thread)", cqt_audio, f"{cqt['ours_1thread_ms']:.1f} ms",
         f"{cqt['ours_1thread_audio_s_per_s']:,.0f}"),
        ("CQT 190 bins, librosa.cqt (per clip)", cqt_audio, f"{cqt['librosa_ms']:.1f} ms",
         f"{cqt['librosa_audio_s_per_s']:,.0f}"),
        ("decode + resample 44.1->16 kHz (soundfile + soxr)",
         f"{DECODE_FILES} x {DECODE_SECONDS:g} s WAV",
         f"{1e3 * DECODE_FILES * DECODE_SECONDS / decode:.1f} ms", f"{decode:,.0f}"),
    ]  # fmt: skip
    header = ("what", "audio", "median time", "audio s / s")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    print(
        f"ratio ours/librosa: {lm['ratio']:.2f}x   max |ours - librosa| (log-mel): "
        f"{lm['max_abs_diff']:.2e}   ratio vs batched librosa: "
        f"{lm['ours_audio_s_per_s'] / lm['librosa_batched_audio_s_per_s']:.2f}x   "
        f"repeats: {args.repeats}   -> {args.json}"
    )
    print(f"CQT ratio ours/librosa: {cqt['ratio']:.2f}x ({cqt['ratio_1thread']:.2f}x on 1 "
          f"thread)   max |ours - librosa| / peak: {cqt['rel_diff_same_method']:.1e} (same "
          f"filters and decimator), {cqt['rel_diff_defaults']:.1e} (librosa's defaults)")
    return result


if __name__ == "__main__":
    main()
