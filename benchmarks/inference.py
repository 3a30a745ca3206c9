"""On-device inference benchmark: size, latency and int8 fidelity of every encoder.

Results and targets: ``docs/benchmarks.md`` §4.

Usage::

    .venv/bin/python benchmarks/inference.py --json out/inference.json \
        [--encoders mobile_050,mobile_100,mobile_200] [--steps 200] [--repeats 7]

Per encoder: a short pretraining run (``--steps`` of temporal_gap on the long-form half of a
small synthetic corpus, so the weights and normalisation statistics are trained ones, not an
initialisation), then the export of the checkpoint to ONNX fp32 and static int8 (calibrated on
the corpus's labelled events), and in the same process, interleaved repeat by repeat:

* single-clip latency of one 0.96 s window (15,600 samples, waveform in, embedding out,
  frontend included) in PyTorch eager, ONNX Runtime fp32 and ONNX Runtime int8, at 1 and 2
  threads; each repeat is the mean of ``--calls`` calls, the figure the median over repeats;
  ``int8_over_eager`` is the ratio of the two medians measured side by side;
* file size of both exports; parameters and multiply-adds per second of audio;
* with ``--readouts``, the same for other read-outs of the same weights (the default read-out
  skips ``mobile``'s projection, so its graph is smaller than ``max:proj``'s);
* with ExecuTorch installed (``pocketear[edge]``), the ``.pte`` (XNNPACK fp32): size and
  single-window latency at XNNPACK's default thread pool;
* int8 fidelity: cosine similarity of int8 ONNX embeddings to fp32 PyTorch embeddings on 256
  windows of the held-out test events (min, median, mean).

Targets for ``mobile_100``: int8 ≤ 1 ms per 0.96 s at 1 thread, file ≤ 300 KB, cosine ≥ 0.99.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_info, median, table, write_json  # noqa: E402

TARGETS = {"latency_ms": 1.0, "bytes": 300 * 1024, "cosine": 0.99}


def _pretrain(encoder: str, manifest: Path, out: Path, steps: int) -> Path:
    from pocketear.train.config import load_config
    from pocketear.train.loop import pretrain

    run = out / "runs" / encoder
    ckpt = run / "checkpoints" / "last.pt"
    if not ckpt.exists():
        cfg = load_config(None, [
            "task.name=temporal_gap", f"encoder.name={encoder}", f"data.source={manifest}",
            "data.where.kind=longform", f"data.cache_dir={out / '.cache'}",
            f"train.steps={steps}", "optim.batch_size=32", "optim.warmup_steps=20"])
        pretrain(cfg, run, progress=False)
    return ckpt


def _test_windows(events: list[Path], window: int, n: int = 256) -> np.ndarray:
    from pocketear.audio.io import load_audio

    out = []
    for path in events[:n]:
        audio = load_audio(path, 16000)
        out.append(np.pad(audio[:window], (0, max(0, window - audio.size))))
    return np.stack(out).astype(np.float32)


def _latency(fn: Any, calls: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e3


def bench_encoder(name: str, manifest: Path, out: Path, args: argparse.Namespace,
                  readout: str | None = None) -> dict:
    """Pretrain, export (fp32, int8, ``.pte`` when available) and time one encoder.

    ``readout`` exports the same weights with another read-out. Returns sizes, latencies per
    thread count and the int8 cosine to fp32 PyTorch.
    """
    from pocketear.data.corpus import Corpus
    from pocketear.encoders.base import Readout
    from pocketear.export.graph import window_samples
    from pocketear.export.onnx import export_onnx
    from pocketear.export.runtime import OnnxEmbedder, TorchEmbedder
    from pocketear.model import load

    ckpt = _pretrain(name, manifest, out, args.steps)
    pre = load(ckpt)
    if readout:  # the same weights, another read-out (what the exported graph computes)
        pre.encoder.readout = Readout.parse(readout)
    tag = f"{name}_{pre.encoder.readout}".replace(":", "-")
    window, _ = window_samples(pre)
    events = Corpus.from_manifest(manifest).filter(kind="event")
    calib = out / f"calibration_{name}.csv"
    test = [Path(it.path) for it, s in zip(events, events.column("split"), strict=True)
            if s == "test"]
    train = [it.path for it, s in zip(events, events.column("split"), strict=True)
             if s == "train"]
    calib.write_text("path\n" + "\n".join(train) + "\n")
    paths = {k: out / f"{tag}_{k}.onnx" for k in ("fp32", "int8")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep32 = export_onnx(pre, paths["fp32"], verbose=False)
        rep8 = export_onnx(pre, paths["int8"], int8=True, calibration=calib, verbose=False)

    from pocketear.export import pte

    pte_method = None
    if pte.available():
        paths["pte"] = out / f"{tag}.pte"
        pte.export_pte(pre, paths["pte"], verbose=False)
        pte_method = pte.load_pte(paths["pte"])

    clip = _test_windows(test, window, 1)[:1]
    lat: dict[str, dict[str, list[float]]] = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        backends = {"eager": TorchEmbedder(pre), "onnx_fp32": OnnxEmbedder(paths["fp32"], threads),
                    "onnx_int8": OnnxEmbedder(paths["int8"], threads)}
        times: dict[str, list[float]] = {k: [] for k in backends}
        for _ in range(args.repeats):  # interleaved: each repeat measures every backend
            for k, b in backends.items():
                times[k].append(_latency(lambda b=b: b.embed_batch(clip), args.calls))
        lat[f"threads_{threads}"] = times
    torch.set_num_threads(max(args.threads))
    if pte_method is not None:  # XNNPACK's own thread pool: timed once, at its default
        x = torch.from_numpy(clip)
        lat["pte_default_threads"] = {"executorch": [
            _latency(lambda: pte_method.execute([x]), args.calls) for _ in range(args.repeats)]}

    windows = _test_windows(test, window)
    ref = TorchEmbedder(pre).embed_windows(windows)
    q = OnnxEmbedder(paths["int8"]).embed_windows(windows)
    f32 = OnnxEmbedder(paths["fp32"]).embed_windows(windows)
    cos = (ref * q).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(q, axis=1) + 1e-12)
    res: dict[str, Any] = {
        "readout": str(pre.encoder.readout), "embedding_size": int(pre.embed_dim),
        "params": int(pre.encoder.params),
        "macs_per_second_audio": float(pre.encoder.macs_per_second()),
        "bytes_fp32": paths["fp32"].stat().st_size, "bytes_int8": paths["int8"].stat().st_size,
        "fp32_max_abs_diff": float(np.abs(f32 - ref).max()),
        "int8_cosine_min": float(cos.min()), "int8_cosine_median": float(np.median(cos)),
        "int8_cosine_mean": float(cos.mean()), "cosine_windows": len(windows),
        "export_parity": {"fp32": rep32["parity_fp32"], "int8": rep8["parity_int8"]},
        "calibration": rep8.get("calibration"), "pretrain_steps": args.steps,
    }
    if pte_method is not None:
        res["bytes_pte"] = paths["pte"].stat().st_size
        res["pte_ms"] = median(lat.pop("pte_default_threads")["executorch"])
    for key, times in lat.items():
        res[key] = {k: {"median_ms": median(v), "all_ms": v} for k, v in times.items()}
        res[key]["int8_over_eager"] = median(times["onnx_int8"]) / median(times["eager"])
        res[key]["int8_over_fp32"] = median(times["onnx_int8"]) / median(times["onnx_fp32"])
    return res


def report(res: dict[str, Any]) -> str:
    """The console summary: one table row per encoder and thread count, then the targets."""
    rows = []
    for name, r in res["encoders"].items():
        for t in res["config"]["threads"]:
            lt = r[f"threads_{t}"]
            rows.append([name, t, f"{r['params'] / 1e3:.1f} k",
                         f"{r['macs_per_second_audio'] / 1e6:.1f} M",
                         f"{r['bytes_fp32'] / 1024:.0f} KB", f"{r['bytes_int8'] / 1024:.0f} KB",
                         f"{lt['eager']['median_ms']:.2f}", f"{lt['onnx_fp32']['median_ms']:.2f}",
                         f"{lt['onnx_int8']['median_ms']:.2f}", f"{lt['int8_over_eager']:.2f}",
                         f"{r['int8_cosine_min']:.4f} / {r['int8_cosine_mean']:.4f}"])
    lines = [table(rows, ["encoder", "threads", "params", "MACs/s audio", "fp32 file",
                          "int8 file", "eager ms", "ort fp32 ms", "ort int8 ms", "int8/eager",
                          "cos min/mean"])]
    for name, r in res["encoders"].items():
        if "pte_ms" in r:
            lines.append(f"{name}: ExecuTorch XNNPACK fp32 .pte {r['bytes_pte'] / 1024:.0f} KB, "
                         f"{r['pte_ms']:.2f} ms per 0.96 s (its default threads)")
    m = res["encoders"].get("mobile_100")
    if m:
        ms = m["threads_1"]["onnx_int8"]["median_ms"] if "threads_1" in m else float("nan")
        checks = [("int8 latency at 1 thread (ms per 0.96 s)", ms, ms <= TARGETS["latency_ms"]),
                  ("int8 file (KB)", m["bytes_int8"] / 1024, m["bytes_int8"] <= TARGETS["bytes"]),
                  ("int8 cosine to fp32 (min)", m["int8_cosine_min"],
                   m["int8_cosine_min"] >= TARGETS["cosine"])]
        for what, value, ok in checks:
            lines.append(f"mobile_100 target {what}: {value:.4g} -> {'met' if ok else 'MISSED'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Benchmark every ``--encoders`` entry, print the report; returns the JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", required=True, help="write the results here")
    p.add_argument("--out", type=Path, default=Path("out/bench_inference"), help="work folder")
    p.add_argument("--encoders", default="mobile_050,mobile_100,mobile_200")
    p.add_argument("--steps", type=int, default=200, help="pretraining steps per encoder")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--calls", type=int, default=50, help="calls per timed repeat")
    p.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    p.add_argument("--readouts", default="",
                   help="extra read-outs to export from the same weights (e.g. max:proj, the "
                        "pre-issue-12 embedding); rows ENCODER@READOUT")
    args = p.parse_args(argv)

    from pocketear.data.synth.corpus import write_corpus

    t0 = time.perf_counter()
    info = machine_info()
    manifest = write_corpus(args.out / "synthetic", minutes=6.0, seed=0, progress=False)
    res: dict[str, Any] = {"machine": info, "config": {k: (str(v) if isinstance(v, Path) else v)
                                                       for k, v in vars(args).items()},
                           "targets": TARGETS, "encoders": {}}
    for name in [e for e in args.encoders.split(",") if e]:
        print(f"{name}: pretraining {args.steps} steps, exporting, timing ...", flush=True)
        res["encoders"][name] = bench_encoder(name, manifest, args.out, args)
        for readout in [r for r in args.readouts.split(",") if r]:
            res["encoders"][f"{name}@{readout}"] = bench_encoder(name, manifest, args.out, args,
                                                                 readout)
    res["seconds_total"] = time.perf_counter() - t0
    write_json(args.json, res)
    print(report(res))
    print(f"-> {args.json}")
    return res


if __name__ == "__main__":
    main()
