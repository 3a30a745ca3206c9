"""Flower: a two-client simulation, and a server with real clients over gRPC on localhost."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("flwr", reason="the fed extra (pip install 'pocketear[fed]')")

from pocketear.federated.flower import FedSettings, simulate  # noqa: E402
from pocketear.federated.state import shared_keys  # noqa: E402
from pocketear.train.build import build_encoder, build_task  # noqa: E402
from pocketear.train.checkpoint import load_checkpoint  # noqa: E402
from pocketear.train.config import load_config, resolve  # noqa: E402
from tests.conftest import write_tone_manifest  # noqa: E402

SETS = ["task.name=temporal_gap", "encoder.name=mobile_tiny", "task.slice_frames=48",
        "optim.batch_size=4", "train.threads=1"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def test_two_client_simulation_averages_the_clients(tmp_path: Path) -> None:
    manifest = write_tone_manifest(tmp_path / "data", 8, seconds=2.0)
    cfg = resolve(load_config(None, [*SETS, f"data.source={manifest}"]))
    run = tmp_path / "run"
    summary = simulate(cfg, run, "label", FedSettings(rounds=2, clients_per_round=2,
                                                      local_steps=2), cores=2)
    assert summary["rounds_done"] == 2 and summary["groups"] == {"label": ["high", "low"]}
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [1, 2] and all(r["clients"] == 2 for r in rows)
    assert summary["bytes_total"] == 2 * 2 * summary["bytes_per_client_round"]
    # FedAvg over equal-sized clients: the server's model is the mean of what they sent
    sent = [np.load(run / "clients" / c / "last_sent.npz") for c in ("000", "001")]
    state = load_checkpoint(run)
    task = build_task(cfg, build_encoder(cfg))
    keys = shared_keys(task)
    for i, key in enumerate(keys):
        mean = (sent[0][f"arr_{i}"] + sent[1][f"arr_{i}"]) / 2
        assert np.allclose(state["task"][key].numpy(), mean, atol=1e-6), key
    assert np.allclose(state["frontend"]["mean"].numpy(),
                       (sent[0][f"arr_{len(keys)}"] + sent[1][f"arr_{len(keys)}"]) / 2,
                       atol=1e-6)
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["federated"][
        "round"] == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DYING_CLIENT = """
import os, sys
import numpy as np
from flwr.client import NumPyClient, start_client

class Dying(NumPyClient):
    def fit(self, parameters, config):
        os._exit(1)  # dies mid-round, after the server sent it the model

start_client(server_address=sys.argv[1], client=Dying().to_client(), insecure=True)
"""


def test_server_and_clients_over_grpc_survive_a_dying_client(tone_folder: Path,
                                                             tmp_path: Path) -> None:
    """Round 1: a good client and one that dies; round 2: two good clients. The run ends."""
    address = f"127.0.0.1:{_free_port()}"
    cli = [sys.executable, "-m", "pocketear", "federated"]
    logs = tmp_path / "logs"
    logs.mkdir()

    def log(name: str):  # files, not pipes: a full pipe would block a process
        return open(logs / name, "w")  # noqa: SIM115 - closed when the test's processes end

    server = subprocess.Popen(
        [*cli, "server", *[a for s in SETS for a in ("--set", s)], "--rounds", "2",
         "--clients-per-round", "2", "--min-clients", "2", "--local-steps", "2",
         "--address", address, "--out", str(tmp_path / "run")],
        env=_env(), stdout=log("server.out"), stderr=subprocess.STDOUT)
    clients = []
    try:
        time.sleep(3)
        clients.append(subprocess.Popen(
            [sys.executable, "-c", DYING_CLIENT, address], env=_env(),
            stdout=log("dying.out"), stderr=subprocess.STDOUT))
        for i, part in enumerate(("low", "high")):
            clients.append(subprocess.Popen(
                [*cli, "client", "--data", str(tone_folder / part), "--address", address,
                 "--client-id", str(i), "--out", str(tmp_path / f"client{i}")],
                env=_env(), stdout=log(f"client{i}.out"), stderr=subprocess.STDOUT))
            if i == 0:  # the second good client joins once round 1 is over
                metrics = tmp_path / "run" / "metrics.jsonl"
                deadline = time.monotonic() + 180
                while not (metrics.is_file() and metrics.read_text().strip()):
                    assert server.poll() is None, (logs / "server.out").read_text()[-3000:]
                    assert time.monotonic() < deadline, "round 1 never finished"
                    time.sleep(0.2)
        assert server.wait(timeout=300) == 0, (logs / "server.out").read_text()[-3000:]
    finally:
        for proc in [server, *clients]:
            if proc.poll() is None:
                proc.kill()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [1, 2]
    assert rows[0]["clients"] == 1 and rows[1]["clients"] == 2  # the dead one left out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["mode"] == "grpc" and np.isfinite(summary["final"]["loss"])
    assert load_checkpoint(tmp_path / "run")["federated"]["round"] == 2
