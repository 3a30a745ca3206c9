"""Several processes: torchrun + DDP on gloo equals one process with the same global batch.

Tolerances per task family (the 2-process run against the 1-process run, 3 steps, a global batch
of 8; ``movement`` is ‖w₂ − w₁‖ / ‖w₁ − w₀‖ over the encoder, w₀ the initial weights):

- exact (loss to 1e-5, movement to 1e-4): tasks whose loss is a mean over examples, with
  negatives gathered or mined across ranks and running statistics folded from the global batch:
  temporal_gap (pretext), cola (contrastive), triplet (mined negatives), features (running
  statistics), multi.
- close (loss to 1e-2, movement to 0.1): masked tasks average their loss over each rank's
  masked frames, so two ranks with different mask counts weigh frames slightly differently from
  one process (data2vec with an EMA teacher, hubert with on-the-fly k-means on the gathered
  batch, which is exact).
- BatchNorm in a head (byol_a, slicer, delores_s): BatchNorm statistics are per rank on the CPU
  (PyTorch's SyncBatchNorm needs GPUs), so only the first step's loss is compared, to 0.3.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pocketear.errors import InvalidValue
from pocketear.train.batches import BatchSampler
from pocketear.train.build import build_encoder, build_task
from pocketear.train.checkpoint import load_checkpoint
from pocketear.train.config import load_config, resolve
from pocketear.train.distributed import Place, resolve_device
from pocketear.train.loop import resume_run
from tests.train.ddp_worker import main as run_worker

WORKER = Path(__file__).with_name("ddp_worker.py")
TORCHRUN = Path(sys.executable).with_name("torchrun")
EXACT = ["temporal_gap", "cola", "triplet", "features", "multi"]
CLOSE = ["data2vec", "hubert"]
BATCHNORM = ["byol_a", "slicer", "delores_s"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def _torchrun(*args: str) -> list[str]:
    return [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", *args]


def test_share_splits_the_global_batch() -> None:
    assert Place(0, 2).share(8) == range(0, 4) and Place(1, 2).share(8) == range(4, 8)
    assert Place().share(5) == range(5)
    with pytest.raises(InvalidValue, match="multiple of the 2 processes"):
        Place(1, 2).share(7)


def test_device_setting() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(InvalidValue, match="sees no GPU"):
            resolve_device("cuda")
    with pytest.raises(InvalidValue, match="train.device='tpu'"):
        resolve_device("tpu")


def test_rank_shares_are_the_one_process_batch(tone_folder: Path) -> None:
    cfg = resolve(load_config(None, ["task.name=temporal_gap", "encoder.name=mobile_tiny",
                                     "task.slice_frames=48"]))
    task = build_task(cfg, build_encoder(cfg))
    clips = [np.random.default_rng(i).standard_normal((200, 64)).astype(np.float32)
             for i in range(6)]

    def sampler(share: range | None) -> BatchSampler:
        return BatchSampler(clips.__getitem__, 6, task, 8, seed=3, share=share)

    whole = sampler(None).batch(5)
    halves = [sampler(Place(r, 2).share(8)).batch(5) for r in (0, 1)]
    for key, value in whole.items():
        assert torch.equal(value, torch.cat([h[key] for h in halves]))


def _movement(one: Path, two: Path) -> tuple[float, float, float]:
    """(first-step loss rel. diff, max loss rel. diff, weight difference / weight movement)."""
    losses = [[json.loads(x)["loss"] for x in (run / "metrics.jsonl").read_text().splitlines()]
              for run in (one, two)]
    rel = [abs(a - b) / max(abs(a), 1e-8) for a, b in zip(*losses, strict=True)]
    state = load_checkpoint(one)
    s1, s2 = state["task"], load_checkpoint(two)["task"]
    cfg = resolve(state["config"])
    torch.manual_seed(cfg.train.seed)  # the loop's initial weights
    s0 = build_task(cfg, build_encoder(cfg)).state_dict()
    diff = move = 0.0
    for key, w in s1.items():
        if key.startswith("encoder.") and w.is_floating_point() and "running" not in key:
            diff += float((w - s2[key]).norm() ** 2)
            move += float((w - s0[key]).norm() ** 2)
    return rel[0], max(rel), (diff / move) ** 0.5


def test_two_processes_equal_one_per_family(tone_folder: Path, tmp_path: Path) -> None:
    tasks = EXACT + CLOSE + BATCHNORM
    proc = subprocess.run(_torchrun(str(WORKER), "--exact", str(tone_folder),
                                    str(tmp_path / "two"), "3", *tasks),
                          capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_worker(["--exact", str(tone_folder), str(tmp_path / "one"), "3", *tasks])
    for task in tasks:
        first, worst, movement = _movement(tmp_path / "one" / task, tmp_path / "two" / task)
        summary = json.loads((tmp_path / "two" / task / "summary.json").read_text())
        assert summary["world_size"] == 2, task
        if task in EXACT:
            assert worst < 1e-5 and movement < 1e-4, (task, worst, movement)
        elif task in CLOSE:
            assert worst < 1e-2 and movement < 0.1, (task, worst, movement)
        else:
            assert first < 0.3, (task, first)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_kill_one_rank_then_resume_in_one_process(tone_folder: Path, tmp_path: Path) -> None:
    """Kill -9 of rank 1 ends the run with a loadable checkpoint; one process finishes it."""
    out = tmp_path / "run"
    cmd = _torchrun("-m", "pocketear", "pretrain", "--task", "cola", "--encoder", "mobile_tiny",
                    "--data", str(tone_folder), "--steps", "100", "--out", str(out),
                    "--set", "optim.batch_size=8", "--set", "train.ckpt_every=2",
                    "--set", "train.threads=1", "--set", "task.slice_frames=48",
                    "--no-progress")
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoints" / "last.pt").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint written"
            time.sleep(0.05)
        ranks = [c for agent in _children(proc.pid) for c in [agent, *_children(agent)]]
        workers = [p for p in ranks if b"pretrain" in Path(f"/proc/{p}/cmdline").read_bytes()]
        os.kill(workers[-1], signal.SIGKILL)
        assert proc.wait(timeout=120) != 0  # torchrun stops the other rank and fails
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stopped = int(load_checkpoint(out)["step"])
    assert 2 <= stopped < 100
    summary = resume_run(out, progress=False)
    assert summary["resumed_from"] == stopped and summary["world_size"] == 1
    assert summary["steps"] == 100 and np.isfinite(summary["final"]["loss"])


def test_resume_of_a_two_process_run_matches_one_process(tone_folder: Path,
                                                         tmp_path: Path) -> None:
    """2 processes for 3 steps, then 1 process to 6: the same as 1 process then 1 process."""
    proc = subprocess.run(_torchrun(str(WORKER), "--exact", str(tone_folder),
                                    str(tmp_path / "two"), "3", "cola"),
                          capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = resume_run(tmp_path / "two" / "cola", steps=6, progress=False)
    assert resumed["resumed_from"] == 3
    run_worker(["--exact", str(tone_folder), str(tmp_path / "one"), "3", "cola"])
    resume_run(tmp_path / "one" / "cola", steps=6, progress=False)
    _, worst, movement = _movement(tmp_path / "one" / "cola", tmp_path / "two" / "cola")
    assert worst < 1e-5 and movement < 1e-4


def test_pretrain_refuses_a_batch_the_ranks_cannot_share(tone_folder: Path,
                                                         tmp_path: Path) -> None:
    proc = subprocess.run(
        _torchrun("-m", "pocketear", "pretrain", "--task", "temporal_gap", "--encoder",
                  "mobile_tiny", "--data", str(tone_folder), "--steps", "2", "--out",
                  str(tmp_path / "run"), "--set", "optim.batch_size=7", "--no-progress"),
        capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode != 0 and "multiple of the 2 processes" in proc.stderr


def test_two_processes_stream_shards(tone_folder: Path, tmp_path: Path) -> None:
    from pocketear.data.shards import write_shards

    write_shards(tone_folder, tmp_path / "shards", max_bytes=150_000, progress=False)
    out = tmp_path / "run"
    proc = subprocess.run(
        _torchrun("-m", "pocketear", "pretrain", "--task", "temporal_gap", "--encoder",
                  "mobile_tiny", "--data", str(tmp_path / "shards"), "--steps", "4", "--out",
                  str(out), "--set", "optim.batch_size=4", "--set", "data.workers=0",
                  "--set", "data.shuffle=4", "--set", "task.slice_frames=48", "--no-progress"),
        capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["streamed_from"] == "shards"
    assert load_checkpoint(out)["stream"]["start_shard"] % 2 == 0  # a boundary of both ranks
