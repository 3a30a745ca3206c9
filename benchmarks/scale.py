"""Scale-out benchmark: torchrun processes against threads, and the loaders against the step.

Usage::

    .venv/bin/python benchmarks/scale.py --data MANIFEST_OR_FOLDER --out out/scale \
        [--task cola] [--encoder mobile_100] [--steps 40] [--batch 64] [--device cpu]

What is measured (results in ``docs/benchmarks.md`` §13; the JSON is rewritten after every
condition):

* training throughput (examples/s over the steps after the first ``--skip``, from the run's
  ``metrics.jsonl``) of ``pocketear pretrain`` from the feature cache in three layouts:
  1 process × 1 thread, 1 process × 2 threads, and ``torchrun`` 2 processes × 1 thread (the
  same global batch). ``speedup_2proc`` = 2 processes / 1 process × 1 thread (target ≥ 1.6 on a
  compute-bound task), ``efficiency_2proc`` = that / 2, and ``vs_2threads`` = 2 processes /
  1 process × 2 threads;
* loader throughput (clips/s and audio seconds/s over every clip of the corpus once; one
  process, 1 thread unless workers): the feature cache (a
  memory-mapped read and normalisation per clip), WebDataset shards written by
  ``pocketear shard`` (FLAC decode + log-mel per clip; and with ``--mels``, the stored float16
  log-mels; 0 and 2 DataLoader workers) and decoding
  the audio files (``load_audio`` + log-mel). ``vs_demand`` = clips/s over the best training
  layout's examples/s (each example needs one clip; target ≥ 3 for the shards).

With ``--device cuda`` the training runs use the GPU (and 1 GPU process only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, table, write_json  # noqa: E402

from pocketear.audio.io import load_audio  # noqa: E402
from pocketear.data.cache import build_cache  # noqa: E402
from pocketear.data.corpus import Corpus  # noqa: E402
from pocketear.data.shard_stream import ShardStream  # noqa: E402
from pocketear.data.shards import parse_size, write_shards  # noqa: E402
from pocketear.frontends import LogMelConfig, create_frontend  # noqa: E402

BIN = Path(sys.executable).parent


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}


def throughput(run_dir: Path, batch: int, skip: int) -> float:
    """Examples/s between step ``skip`` and the last step, from the cumulative log rates."""
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    times = {r["step"]: r["step"] * batch / r["examples_per_s"] for r in rows}
    first, last = min((s for s in times if s >= skip), default=skip), max(times)
    return (last - first) * batch / (times[last] - times[first])


def train(args: argparse.Namespace, name: str, procs: int, threads: int) -> float:
    """One pretraining run in its own process(es); its examples/s after the warm-up steps."""
    out = args.out / "runs" / name
    cmd = ["-m", "pocketear", "pretrain", "--task", args.task, "--encoder", args.encoder,
           "--data", str(args.data), "--steps", str(args.steps), "--out", str(out),
           "--no-progress", "--set", f"optim.batch_size={args.batch}",
           "--set", f"train.threads={threads}", "--set", "train.log_every=1",
           "--set", f"train.ckpt_every={args.steps}", "--set", f"train.device={args.device}",
           "--set", f"data.cache_dir={args.out / 'cache'}"]
    launch = ([str(BIN / "torchrun"), "--standalone", f"--nproc_per_node={procs}"]
              if procs > 1 else [sys.executable])
    subprocess.run([*launch, *cmd], check=True, env=_env(threads), capture_output=True)
    return throughput(out, args.batch, args.skip)


def rate(frames: Any) -> dict[str, float]:
    """Clips/s and audio seconds/s of iterating ``frames`` (one frame count per clip)."""
    t0, n, total = time.perf_counter(), 0, 0
    for count in frames:
        n, total = n + 1, total + count
    seconds = time.perf_counter() - t0
    return {"clips_per_s": n / seconds, "audio_s_per_s": total / 100 / seconds, "clips": n}


def _as_is(sample: dict) -> dict:
    return sample


def loaders(args: argparse.Namespace, shards: Path, mels: Path) -> dict[str, dict[str, float]]:
    """Clips/s of the cache, the shards (0 and 2 workers) and file decoding: every clip once."""
    torch.set_num_threads(1)
    cfg = LogMelConfig()
    corpus = Corpus.open(args.data)
    cache = build_cache(corpus, args.out / "cache", cfg, progress=False)
    frontend = create_frontend(cfg).eval()
    frontend.set_stats(cache.mean, cache.std)
    order = np.random.default_rng(0).permutation(len(cache))
    out = {"cache": rate(len(frontend.normalise(cache[int(i)])) for i in order)}
    for name, folder in (("shards", shards), ("shards_mels", mels)):
        for workers in (0, 2):  # as the training loop reads them (samples passed as they are)
            stream = ShardStream(str(folder), cfg, shuffle=256)
            loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers,
                                                 collate_fn=_as_is)
            out[f"{name}_{workers}_workers"] = rate(len(s["mel"]) for s in loader)

    def decoded() -> Any:
        for item in corpus:
            wave = load_audio(item.path, cfg.sample_rate)
            with torch.no_grad():
                yield frontend(torch.from_numpy(wave)[None], normalise=False).shape[2]
    out["files"] = rate(decoded())
    return out


def main() -> None:
    """Run the benchmark and write ``OUT/results.json``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder of audio or manifest")
    p.add_argument("--out", type=Path, default=Path("out/scale"))
    p.add_argument("--task", default="cola")
    p.add_argument("--encoder", default="mobile_100")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--skip", type=int, default=5, help="warm-up steps left out of the rate")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--shard-size", default="5MB")
    p.add_argument("--device", default="cpu")
    p.add_argument("--loaders-only", action="store_true",
                   help="keep the training figures of an earlier results.json")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"machine": machine_info(), "task": args.task, "encoder": args.encoder,
                           "batch": args.batch, "steps": args.steps, "device": args.device}
    path = args.out / "results.json"
    shards, mels = args.out / "shards", args.out / "shards_mels"
    for folder, store in ((shards, False), (mels, True)):
        if not (folder / "shards.json").is_file():
            write_shards(args.data, folder, max_bytes=parse_size(args.shard_size),
                         store_mels=store, progress=False)
    res["shards"] = json.loads((shards / "shards.json").read_text())["shards"]
    if args.loaders_only and path.is_file():
        res = {**json.loads(path.read_text()), **{k: res[k] for k in ("machine", "shards")}}
    layouts = [("1proc_1thread", 1, 1), ("1proc_2threads", 1, 2)]
    if args.device == "cpu":
        layouts.append(("2proc_1thread", 2, 1))
    res.setdefault("train_examples_per_s", {})
    for name, procs, threads in layouts:
        if not args.loaders_only:
            res["train_examples_per_s"][name] = train(args, name, procs, threads)
            write_json(path, res)
    t = res["train_examples_per_s"]
    if "2proc_1thread" in t:
        res["speedup_2proc"] = t["2proc_1thread"] / t["1proc_1thread"]
        res["efficiency_2proc"] = res["speedup_2proc"] / 2
        res["vs_2threads"] = t["2proc_1thread"] / t["1proc_2threads"]
    res["loaders"] = loaders(args, shards, mels)
    demand = max(t.values())
    res["loader_vs_demand"] = {k: v["clips_per_s"] / demand for k, v in res["loaders"].items()}
    write_json(path, res)
    print(table([[k, f"{v:.1f}"] for k, v in t.items()], ["layout", "examples/s"]))
    print(table([[k, f"{v['clips_per_s']:.1f}", f"{v['audio_s_per_s']:.0f}",
                  f"{res['loader_vs_demand'][k]:.1f}×"] for k, v in res["loaders"].items()],
                ["loader", "clips/s", "audio s/s", "vs demand"]))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
