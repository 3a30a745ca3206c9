"""Pitch tracking benchmark: our SPICE tracker against CREPE and pYIN on three note sets.

Usage::

    .venv/bin/python benchmarks/pitch.py --out out/pitch/ [--model RUN_OR_ONNX ...] \
        [--methods crepe-tiny crepe-full pyin] [--datasets synth fluidsynth piano] \
        [--max-files N] [--data /work/data/pitch] [--prepare-only]

Methods. The tracker under test is SPICE (Gfeller, Frank, Roblek, Sharifi, Tagliasacchi,
Velimirović, "SPICE: Self-supervised pitch estimation", IEEE/ACM TASLP 28, 2020), loaded from
each ``--model`` with ``pocketear.pitch.load_tracker`` (imported only then); its voicing is
``confidence >= --threshold``. Anchors: CREPE (Kim, Salamon, Li, Bello, "CREPE: A convolutional
representation for pitch estimation", ICASSP 2018) through ``torchcrepe`` (``tiny`` and
``full``, weights shipped in its wheel; periodicity as confidence, voiced at
``--crepe-threshold``; decoder ``--crepe-decoder``, default CREPE's local weighted average of
the bins around the argmax, computed here without torchcrepe's dithering), and pYIN (Mauch &
Dixon, "pYIN: A fundamental frequency estimator using probabilistic threshold distributions",
ICASSP 2014) through ``librosa.pyin`` (its HMM ``voiced_flag`` as voicing).

Every method sees 16 kHz mono float32 audio and answers on the 512-sample grid: frame ``t`` is
centred on sample ``t * 512`` and a clip of ``n`` samples has ``1 + n // 512`` frames (outputs
are trimmed or zero-padded to that). Metrics, pooled over the scored frames of a condition
(in ``fluidsynth`` and ``piano``, frames between -30 dB of the clip's peak and digital silence,
i.e. onset edges and faint but pitched decay tails, are not scored; so there the false-alarm rate
is measured on silence only, and on noise only in ``synth``):

* RPA, raw pitch accuracy: voiced reference frames whose estimate (whatever the method's voicing
  decision) is within 50 cents of the truth; RCA, the same modulo octaves;
* voicing recall (voiced reference frames called voiced) and false-alarm rate (unvoiced
  reference frames called voiced);
* the median signed error in cents of the frames counted correct (a tuning bias), the model's
  parameter count and milliseconds per second of audio on one thread.

Datasets (built by ``benchmarks/pitch_data.py`` under ``--data`` when missing; see there):

* ``synth``: seeded numpy harmonic notes, MIDI 36-84, vibrato (truth follows it), clean and
  20 / 10 / 0 dB SNR of white or pink noise. Generated, no licence constraint.
* ``fluidsynth``: nine General MIDI programs (piano, electric piano, guitar, violin, cello, choir
  aahs, trumpet, clarinet, flute), MIDI 40-84, rendered by FluidSynth with FluidR3_GM (MIT;
  ``apt-get install -y --no-install-recommends fluidsynth fluid-soundfont-gm``).
* ``piano``: Salamander Grand Piano V3 by Alexander Holm (CC-BY-3.0,
  https://archive.org/details/SalamanderGrandPianoV3), velocity layers 4, 8 and 12 from the npm
  packages ``@audio-samples/piano-velocity{4,8,12}`` (fetched with ``npm pack``): 30 notes
  (A, C, D#, F#) from A0 to C8 per layer. Also scored on MIDI 21-84 and 36-84 (a CQT front end
  reaches fundamentals up to about MIDI 88; pYIN's ``fmin`` here is about MIDI 35).

The truth is the nominal note (A4 = 440 Hz). The rendered/recorded notes are not all at it:
FluidR3's choir aahs is 25-55 cents flat on many notes and the piano is stretch-tuned (-50 to
+60 cents at the extremes), so ``fluidsynth`` and ``piano`` are also scored on ``in-tune``, the
clips whose measured tuning (``tuning_cents`` in files.csv) is within 20 cents of nominal.

``results.json`` in ``--out`` is merged into and rewritten after every method x dataset x
condition; per-clip predictions are cached in ``--out/preds`` (reused unless ``--fresh``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pitch_data  # noqa: E402
from common import machine_info, write_json  # noqa: E402
from pitch_data import HOP, SR, Clip, load_set, n_frames  # noqa: E402

Method = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""16 kHz mono float32 wave -> (Hz per frame, confidence in [0, 1] per frame), 512-sample grid."""

BASELINES = ("crepe-tiny", "crepe-full", "pyin")
DATASETS = ("synth", "fluidsynth", "piano")
PYIN_FMIN = 65.40639132514966 * 0.9  # librosa.note_to_hz("C2") * 0.9
PYIN_FMAX = 2100.0
CREPE_FMIN = 32.70319566257483  # C1, CREPE's lowest bin: no extra range limit
# Pooled subsets scored besides each condition: name -> clip filter.
# "in-tune": clips whose measured tuning (files.csv) is within 20 cents of the nominal note.
SUBSETS: dict[str, dict[str, Callable[[Clip], bool]]] = {
    "synth": {},
    "fluidsynth": {"all": lambda c: True, "in-tune": lambda c: _in_tune(c)},
    "piano": {"all": lambda c: True, "midi21-84": lambda c: 21 <= c.note <= 84,
              "midi36-84": lambda c: 36 <= c.note <= 84,
              "in-tune": lambda c: _in_tune(c)},
}


def _in_tune(clip: Clip, cents: float = 20.0) -> bool:
    return abs(float(clip.meta.get("tuning_cents") or 0.0)) <= cents


@dataclass
class MethodSpec:
    """A method under test: its frame function, voicing threshold and description."""

    name: str
    fn: Method
    threshold: float
    params: int | None
    key: str
    note: str


# ----------------------------------------------------------------------------- methods

def _stub_module(name: str, why: str) -> types.ModuleType:
    """A placeholder module whose every attribute raises (for imports never really used)."""
    mod = types.ModuleType(name)

    def missing(attr: str) -> Any:
        # AttributeError, so that hasattr() probes (inspect, librosa's lazy loader) still work
        raise AttributeError(f"{name}.{attr}: {name} is a stub ({why}); feed 16 kHz arrays")

    mod.__getattr__ = missing  # type: ignore[method-assign]
    return mod


def import_torchcrepe() -> Any:
    """Import torchcrepe, stubbing torchaudio and resampy when they are absent.

    torchcrepe imports torchaudio only for ``load.audio`` (file loading) and resampy only to
    resample non-16 kHz input; the benchmark feeds 16 kHz arrays, so neither is ever called.
    """
    for name in ("torchaudio", "resampy"):
        try:
            __import__(name)
        except Exception:  # absent or broken: either way unusable
            sys.modules[name] = _stub_module(name, "not installed here")
    import torchcrepe

    return torchcrepe


CREPE_CENTS = 20.0 * torch.arange(360, dtype=torch.float64) + 1997.3794084376191


def crepe_local_average(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CREPE's decoder: activation-weighted mean of the cents of the 9 bins around the argmax.

    ``probs``: (batch, 360, time) sigmoid outputs, ``-inf`` outside [fmin, fmax]. Returns
    (argmax bins, Hz), as torchcrepe decoders do. Unlike ``torchcrepe.decode.weighted_argmax``
    this neither dithers the bin centres nor applies a second sigmoid.
    """
    bins = probs.argmax(dim=1)
    idx = torch.arange(probs.shape[1])
    window = (idx[None, :, None] - bins[:, None, :]).abs() <= 4
    p = torch.where(window & torch.isfinite(probs), probs, 0.0).double()
    cents = (p * CREPE_CENTS[None, :, None]).sum(1) / p.sum(1).clamp_min(1e-12)
    return bins, (10.0 * 2.0 ** (cents / 1200.0)).float()


def crepe_method(capacity: str, decoder: str, threshold: float) -> MethodSpec:
    """CREPE (torchcrepe) ``tiny`` or ``full``, hop 512, frame t centred at ``t * 512``."""
    torchcrepe = import_torchcrepe()
    decode = {"local": crepe_local_average, "argmax": torchcrepe.decode.argmax,
              "viterbi": torchcrepe.decode.viterbi}[decoder]
    torchcrepe.load.model("cpu", capacity)
    params = sum(p.numel() for p in torchcrepe.infer.model.parameters())

    def run(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        audio = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None]
        with torch.inference_mode():
            hz, per = torchcrepe.predict(audio, SR, hop_length=HOP, fmin=CREPE_FMIN,
                                         fmax=torchcrepe.MAX_FMAX, model=capacity,
                                         decoder=decode, return_periodicity=True,
                                         batch_size=1024, device="cpu", pad=True)
        return hz[0].numpy(), per[0].numpy()

    return MethodSpec(f"crepe-{capacity}", run, threshold, params,
                      f"crepe-{capacity}/{decoder}",
                      f"torchcrepe {capacity}, decoder {decoder}, periodicity >= {threshold}")


def pyin_method() -> MethodSpec:
    """librosa.pyin, 2048-sample frames, hop 512, centred; voiced_flag as the confidence."""
    import librosa

    def run(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f0, flag, _ = librosa.pyin(wave, fmin=PYIN_FMIN, fmax=PYIN_FMAX, sr=SR,
                                   frame_length=2048, hop_length=HOP, center=True, fill_na=None)
        return f0, flag.astype(np.float32)

    return MethodSpec("pyin", run, 0.5, 0, "pyin",
                      f"librosa.pyin fmin {PYIN_FMIN:.1f} fmax {PYIN_FMAX:g}, voiced_flag")


def count_params(path: Path, tracker: Any) -> int | None:
    """Parameters of a tracker: an int attribute, its torch model's, or an ONNX file's weights.

    For ONNX this counts every initializer element, constant front-end buffers included.
    """
    for attr in ("num_parameters", "n_params"):
        val = getattr(tracker, attr, None)
        val = val() if callable(val) else val
        if isinstance(val, int):
            return val
    try:
        if path.suffix.lower() == ".onnx":
            import onnx

            model = onnx.load(str(path), load_external_data=False)
            return int(sum(np.prod(t.dims) for t in model.graph.initializer))
        from pocketear.pitch.model import load_pitch_model

        net = load_pitch_model(path)[0]
        return sum(p.numel() for p in net.parameters())
    except Exception as err:  # a count is a nicety: never fail the benchmark for it
        print(f"parameter count of {path} unavailable: {err}", file=sys.stderr)
        return None


def tracker_method(spec: str, threshold: float | None, threads: int) -> MethodSpec:
    """Our SPICE tracker from ``[NAME=]PATH`` (a run folder, checkpoint or exported .onnx).

    Audio is resampled when the tracker's rate is not 16 kHz, and its frames are read at the
    nearest frame time to ``t * 512`` when its hop is not 512 samples.
    """
    from pocketear.pitch import load_tracker

    name, _, path = spec.rpartition("=")
    p = Path(path)
    try:
        tracker = load_tracker(path, threads=threads)
    except TypeError:
        tracker = load_tracker(path)
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    newest = max((f.stat().st_mtime_ns for f in files), default=0)
    sr, hop = int(getattr(tracker, "sample_rate", SR)), int(getattr(tracker, "hop", HOP))
    if threshold is None:
        threshold = float(tracker.voicing_threshold)

    def run(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = wave
        if sr != SR:
            import soxr

            x = soxr.resample(wave, SR, sr).astype(np.float32)
        hz, conf = (np.asarray(a, dtype=np.float64).reshape(-1) for a in tracker.track(x))
        if hop != HOP or sr != SR:
            idx = np.rint(np.arange(n_frames(len(wave))) * HOP / SR * sr / hop).astype(int)
            idx = np.minimum(idx, len(hz) - 1)
            hz, conf = hz[idx], conf[idx]
        return hz, conf

    return MethodSpec(name or f"spice:{p.stem if p.is_file() else p.name}", run, threshold,
                      count_params(p, tracker), f"spice:{p.resolve()}:{newest}",
                      f"pocketear.pitch tracker {path} ({sr} Hz, hop {hop}), "
                      f"confidence >= {threshold}")


# ----------------------------------------------------------------------------- scoring

def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad a per-frame array to ``n`` frames; non-finite values become 0."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float64).reshape(-1)[:n], nan=0.0, posinf=0.0,
                      neginf=0.0)
    return np.pad(x, (0, n - len(x)))


def score(clips: Sequence[Clip], preds: dict[str, dict[str, Any]], threshold: float
          ) -> dict[str, Any]:
    """Pooled metrics over the scored frames of ``clips`` (``preds``: path -> hz, conf, ...)."""
    ref, est, conf, secs, audio = [], [], [], 0.0, 0.0
    for c in clips:
        p = preds[str(c.path)]
        keep = c.scored
        ref.append(np.where(c.voiced, pitch_data.midi_to_hz(c.midi), 0.0)[keep])
        est.append(p["hz"][keep])
        conf.append(p["conf"][keep])
        secs += p["seconds"]
        audio += p["audio_s"]
    r, e, cf = np.concatenate(ref), np.concatenate(est), np.concatenate(conf)
    voiced, called = r > 0, cf >= threshold
    with np.errstate(divide="ignore", invalid="ignore"):
        cents = np.where(e[voiced] > 0, 1200.0 * np.log2(e[voiced] / r[voiced]), np.inf)
    ok = np.abs(cents) <= 50.0
    chroma = np.abs(np.mod(cents + 600.0, 1200.0) - 600.0) <= 50.0
    octave = (~ok) & np.isfinite(cents) & (np.abs(np.abs(cents) - 1200.0) <= 50.0)
    n_v, n_u = int(voiced.sum()), int((~voiced).sum())
    return {
        "rpa": float(ok.mean()) if n_v else None,
        "rca": float(chroma.mean()) if n_v else None,
        "octave_errors": float(octave.mean()) if n_v else None,
        "voicing_recall": float(called[voiced].mean()) if n_v else None,
        "voicing_false_alarm": float(called[~voiced].mean()) if n_u else None,
        "median_cents_correct": float(np.median(cents[ok])) if ok.any() else None,
        "n_files": len(clips), "n_voiced": n_v, "n_unvoiced": n_u,
        "audio_s": round(audio, 3), "compute_s": round(secs, 3),
        "ms_per_s": round(1000.0 * secs / audio, 3) if audio else None,
    }


def _cache_file(root: Path, method: str, dataset: str, condition: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", method)
    return root / safe / dataset / f"{condition}.npz"


def load_cache(path: Path, key: str) -> dict[str, dict[str, Any]]:
    """Cached per-clip predictions of one condition, if made with the same method ``key``."""
    if not path.exists():
        return {}
    z = np.load(path, allow_pickle=False)
    if str(z["key"]) != key:
        return {}
    out = {}
    bounds = np.concatenate([[0], np.cumsum(z["lengths"])])
    for i, p in enumerate(z["paths"]):
        a, b = bounds[i], bounds[i + 1]
        out[str(p)] = {"hz": z["hz"][a:b], "conf": z["conf"][a:b],
                       "seconds": float(z["seconds"][i]), "audio_s": float(z["audio_s"][i])}
    return out


def save_cache(path: Path, key: str, preds: dict[str, dict[str, Any]]) -> None:
    """Write per-clip predictions of one condition."""
    path.parent.mkdir(parents=True, exist_ok=True)
    paths = sorted(preds)
    np.savez(path, key=key, paths=np.array(paths),
             lengths=np.array([len(preds[p]["hz"]) for p in paths]),
             hz=np.concatenate([preds[p]["hz"] for p in paths]),
             conf=np.concatenate([preds[p]["conf"] for p in paths]),
             seconds=np.array([preds[p]["seconds"] for p in paths]),
             audio_s=np.array([preds[p]["audio_s"] for p in paths]))


def pick(clips: list[Clip], max_files: int | None) -> list[Clip]:
    """A seeded random subset of one condition (the same indices in every condition)."""
    clips = sorted(clips, key=lambda c: str(c.path))
    if max_files is None or max_files >= len(clips):
        return clips
    order = np.random.default_rng(0).permutation(len(clips))[:max_files]
    return [clips[i] for i in sorted(order)]


# ----------------------------------------------------------------------------- driver

def run_method(spec: MethodSpec, dataset: str, clips: list[Clip], args: argparse.Namespace,
               results: dict[str, Any]) -> None:
    """Track every condition of one dataset, scoring and saving after each condition."""
    conditions = list(dict.fromkeys(c.condition for c in clips))
    all_preds: dict[str, dict[str, Any]] = {}
    chosen: list[Clip] = []
    warm = False
    for cond in conditions:
        limit = args.limits.get(dataset, args.limits.get(None))
        sel = pick([c for c in clips if c.condition == cond], limit)
        cache = _cache_file(args.cache, spec.name, dataset, cond)
        key = f"{spec.key}|{(args.data / dataset / 'frames.csv').stat().st_mtime_ns}"
        preds = {} if args.fresh else load_cache(cache, key)
        todo = [c for c in sel if str(c.path) not in preds]
        for c in tqdm(todo, desc=f"{spec.name} {dataset} {cond}", leave=False, mininterval=5):
            wave, sr = sf.read(c.path, dtype="float32")
            assert sr == SR, (c.path, sr)
            if not warm:
                spec.fn(wave)  # untimed warm-up: lazy loading, JIT, allocator
                warm = True
            t0 = time.perf_counter()
            hz, conf = spec.fn(wave)
            dt = time.perf_counter() - t0
            n = n_frames(len(wave))
            preds[str(c.path)] = {"hz": fit_length(hz, n), "conf": fit_length(conf, n),
                                  "seconds": dt, "audio_s": len(wave) / SR}
        if todo:
            save_cache(cache, key, preds)
        all_preds.update(preds)
        chosen += sel
        record(results, spec, dataset, cond, score(sel, preds, spec.threshold), limit,
               args.out / "results.json")
    for name, keep in SUBSETS.get(dataset, {}).items():
        sel = [c for c in chosen if keep(c)]
        if sel:
            record(results, spec, dataset, name, score(sel, all_preds, spec.threshold),
                   limit, args.out / "results.json")


def record(results: dict[str, Any], spec: MethodSpec, dataset: str, condition: str,
           metrics: dict[str, Any], max_files: int | None, path: Path) -> None:
    """Store one result and rewrite results.json."""
    results["methods"][spec.name] = {"params": spec.params, "threshold": spec.threshold,
                                     "key": spec.key, "note": spec.note}
    metrics["max_files"] = max_files
    results["results"].setdefault(spec.name, {}).setdefault(dataset, {})[condition] = metrics
    write_json(path, results)
    rpa = metrics["rpa"]
    print(f"{spec.name:>14} {dataset:>10} {condition:>10}: RPA "
          f"{'-' if rpa is None else f'{rpa:.3f}'} ({metrics['n_files']} files, "
          f"{metrics['ms_per_s']} ms/s)", flush=True)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def markdown(results: dict[str, Any]) -> str:
    """Markdown tables: RPA / voicing recall / false alarm per condition, then method costs."""
    methods = list(results["results"])
    rows: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for m in methods:
        for ds, conds in results["results"][m].items():
            for cond, met in conds.items():
                rows.setdefault((ds, cond), {})[m] = met
    order = {d: i for i, d in enumerate(DATASETS)}
    head = "| dataset | condition | " + " | ".join(methods) + " |"
    lines = ["RPA % / voicing recall % / voicing false alarm % (files per method in JSON)", "",
             head, "|" + "---|" * (2 + len(methods))]
    for (ds, cond), per in sorted(rows.items(), key=lambda kv: order.get(kv[0][0], 99)):
        cells = [f"{_pct(per[m]['rpa'])} / {_pct(per[m]['voicing_recall'])} / "
                 f"{_pct(per[m]['voicing_false_alarm'])}" if m in per else "" for m in methods]
        lines.append(f"| {ds} | {cond} | " + " | ".join(cells) + " |")
    lines += ["", "| method | params | ms per s of audio (1 thread) | files | setup |",
              "|---|---|---|---|---|"]
    for m in methods:
        conds = [met for ds, per in results["results"][m].items() for c, met in per.items()
                 if c not in SUBSETS.get(ds, {})]
        secs = sum(c["compute_s"] for c in conds)
        audio = sum(c["audio_s"] for c in conds)
        info = results["methods"][m]
        ms = f"{1000 * secs / audio:.1f}" if audio else "-"
        lines.append(f"| {m} | {info['params'] if info['params'] is not None else '?'} | {ms} | "
                     f"{sum(c['n_files'] for c in conds)} | {info['note']} |")
    return "\n".join(lines)


def build_methods(args: argparse.Namespace) -> list[MethodSpec]:
    """The baselines named in ``--methods``, then one tracker per ``--model``."""
    specs = []
    for m in args.methods:
        if m == "pyin":
            specs.append(pyin_method())
        else:
            specs.append(crepe_method(m.split("-", 1)[1], args.crepe_decoder,
                                      args.crepe_threshold))
    specs += [tracker_method(p, args.threshold, args.threads) for p in args.model or []]
    return specs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Datasets are built under --data when missing (needs "
                                        "fluidsynth + fluid-soundfont-gm, and npm for piano).")
    ap.add_argument("--out", type=Path, default=Path("out/pitch"),
                    help="folder for results.json (merged into) and cached predictions")
    ap.add_argument("--data", type=Path, default=Path("/work/data/pitch"),
                    help="dataset root: <data>/<name>/{files,frames}.csv + wav/")
    ap.add_argument("--model", nargs="*", default=[], metavar="[NAME=]PATH",
                    help="SPICE tracker(s) for pocketear.pitch.load_tracker (run folder or "
                         "exported model); method name NAME or spice:<stem>")
    ap.add_argument("--threshold", type=float, default=None,
                    help="voiced when the tracker's confidence >= this (default: the "
                         "tracker's own, as `pocketear pitch`: its calibration's, else 0.9)")
    ap.add_argument("--methods", nargs="*", default=list(BASELINES), choices=BASELINES,
                    help="baselines to run (default all; give none for --model only)")
    ap.add_argument("--crepe-decoder", default="local", choices=("local", "argmax", "viterbi"),
                    help="local: CREPE's weighted average around the argmax (default); "
                         "argmax / viterbi: torchcrepe's own (dithered by ±20 cents)")
    ap.add_argument("--crepe-threshold", type=float, default=0.5,
                    help="CREPE voiced when periodicity >= this (default 0.5)")
    ap.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--max-files", nargs="*", default=[], metavar="[DATASET=]N",
                    help="at most N clips per condition (seeded, same notes in every "
                         "condition), for all datasets or per dataset; default all")
    ap.add_argument("--cache", type=Path, default=None,
                    help="folder of cached per-clip predictions (default <out>/preds)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--fresh", action="store_true", help="ignore cached predictions")
    ap.add_argument("--prepare-only", action="store_true",
                    help="build the missing datasets and stop")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the datasets")
    ap.add_argument("--long-seconds", type=float, default=60.0,
                    help="also time each method on one clip this long (the per-clip timings "
                         "of 2 s notes include each method's edge padding); 0: skip")
    return ap.parse_args(argv)


def long_clip_speed(spec: MethodSpec, clips: Sequence[Clip], seconds: float) -> dict[str, Any]:
    """Milliseconds per second of audio on one ``seconds``-long clip (notes end to end)."""
    waves, total = [], 0
    for c in clips:
        w, _ = sf.read(c.path, dtype="float32")
        waves.append(w)
        total += len(w)
        if total >= seconds * SR:
            break
    wave = np.tile(np.concatenate(waves), 1 + int(seconds * SR) // max(1, total))
    wave = np.ascontiguousarray(wave[: int(seconds * SR)])
    spec.fn(wave[:SR])  # warm-up
    t0 = time.perf_counter()
    spec.fn(wave)
    dt = time.perf_counter() - t0
    return {"seconds": seconds, "ms_per_s": round(1000.0 * dt / seconds, 3),
            "x_real_time": round(seconds / dt, 1)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Build missing sets, run every method on every set, write results.json, print tables."""
    args = parse_args(argv)
    args.cache = args.cache or args.out / "preds"
    limits: dict[str | None, int] = {}
    for item in args.max_files:
        name, _, n = item.rpartition("=")
        limits[name or None] = int(n)
    args.limits = limits
    torch.set_num_threads(args.threads)
    roots = {d: pitch_data.ensure(d, args.data, args.rebuild) for d in args.datasets}
    if args.prepare_only:
        for d, root in roots.items():
            print(f"{d}: {len(load_set(root))} clips in {root}")
        return {}
    res_path = args.out / "results.json"
    results: dict[str, Any] = (json.loads(res_path.read_text()) if res_path.exists()
                               else {"methods": {}, "results": {}})
    results["machine"] = machine_info()
    results["machine"]["torch_threads"] = torch.get_num_threads()
    results["protocol"] = {"sr": SR, "hop": HOP, "frame_centre": "t * 512",
                           "rpa_tolerance_cents": 50, "voiced_db": pitch_data.VOICED_DB,
                           "pyin": {"fmin": PYIN_FMIN, "fmax": PYIN_FMAX},
                           "crepe": {"fmin": CREPE_FMIN, "decoder": args.crepe_decoder}}
    sets = {d: load_set(root) for d, root in roots.items()}
    for spec in build_methods(args):
        if args.long_seconds > 0:
            speed = long_clip_speed(spec, next(iter(sets.values())), args.long_seconds)
            results.setdefault("speed_long_clip", {})[spec.name] = speed
            write_json(res_path, results)
            print(f"{spec.name}: {speed['ms_per_s']} ms per s on a {args.long_seconds:g} s clip "
                  f"({speed['x_real_time']}x real time)", flush=True)
        for d, clips in sets.items():
            t0 = time.perf_counter()
            run_method(spec, d, clips, args, results)
            print(f"{spec.name} on {d}: {time.perf_counter() - t0:.0f} s wall", flush=True)
    print()
    print(markdown(results))
    return results


if __name__ == "__main__":
    main()
