"""Flower glue: the client, the server's strategy and round log, simulation and gRPC modes.

Flower runs everything federated (its simulation engine on Ray, its gRPC server and clients);
pocketear supplies the local training (``federated/local.py``) and the run folder. The run's
config travels to the clients in each round's fit config (a JSON string), so a client needs only
its own audio and the server's address.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import flwr
import numpy as np
from flwr.client import NumPyClient
from flwr.common import Context, NDArrays, Scalar, ndarrays_to_parameters
from flwr.server import ServerConfig
from flwr.server.strategy import FedAvg, FedProx

from pocketear import __version__
from pocketear.errors import InvalidValue, UserError
from pocketear.federated.local import LocalTrainer, client_corpus, groups
from pocketear.federated.state import check_federated, get_arrays, set_arrays, shared_keys
from pocketear.train.build import build_encoder, build_frontend, build_task
from pocketear.train.checkpoint import save_checkpoint
from pocketear.train.config import RunConfig, save_config
from pocketear.train.loop import warmup_cosine
from pocketear.train.metrics import MetricsWriter

STRATEGIES = ("fedavg", "fedprox")


class FederatedFailed(UserError):
    """Every round ended without a client's result (their errors were printed above)."""


@dataclass(frozen=True)
class FedSettings:
    """How the federation trains: rounds, clients sampled per round, local steps, strategy."""

    rounds: int = 10
    clients_per_round: int = 2
    local_steps: int = 10
    strategy: str = "fedavg"
    proximal_mu: float = 0.01  # fedprox only
    min_clients: int = 2  # real mode: clients to wait for before a round

    def check(self) -> None:
        """Raises InvalidValue on a setting that cannot run."""
        if self.strategy not in STRATEGIES:
            raise InvalidValue(f"--strategy {self.strategy!r}: use one of {', '.join(STRATEGIES)}")
        if min(self.rounds, self.clients_per_round, self.local_steps, self.min_clients) < 1:
            raise InvalidValue("--rounds, --clients-per-round, --local-steps and --min-clients "
                               "must be >= 1")


class PocketearClient(NumPyClient):
    """A Flower client around one :class:`LocalTrainer`, built on the first round's config."""

    def __init__(self, source: str, work_dir: Path, column: str = "", value: str = "",
                 client: int = 0, where: dict[str, Any] | None = None) -> None:
        self.source, self.work_dir = source, Path(work_dir)
        self.column, self.value, self.client, self.where = column, value, client, where
        self.trainer: LocalTrainer | None = None

    def _trainer(self, config: dict[str, Scalar]) -> LocalTrainer:
        if self.trainer is None:
            cfg = json.loads(str(config["run_config"]))
            corpus = client_corpus(self.source, self.column, self.value, self.where)
            self.trainer = LocalTrainer(cfg, corpus, self.work_dir, self.client)
        return self.trainer

    def get_parameters(self, config: dict[str, Scalar]) -> NDArrays:
        """The client's current shared arrays (the server sends its own first)."""
        return self._trainer(config).arrays()

    def fit(self, parameters: NDArrays, config: dict[str, Scalar]
            ) -> tuple[NDArrays, int, dict[str, Scalar]]:
        """Local steps from the server's arrays; only arrays and scalars go back."""
        arrays, n, metrics = self._trainer(config).fit(
            parameters, int(config["server_round"]), int(config["local_steps"]),
            float(config["lr"]), float(config.get("proximal_mu", 0.0)))
        np.savez(self.work_dir / "last_sent.npz", *arrays)  # the client's own copy
        return arrays, n, {**metrics, "client": self.client}


@dataclass(frozen=True)
class SimulatedClients:
    """Flower's ``client_fn``: simulated client ``i`` holds the rows of group ``values[i]``."""

    source: str
    column: str
    values: tuple[str, ...]
    run_dir: str
    where: tuple[tuple[str, Any], ...] = ()

    def __call__(self, context: Context) -> flwr.client.Client:
        """The client of ``context``'s partition (one trainer per Ray worker, kept)."""
        part = int(context.node_config["partition-id"])
        key = (self.run_dir, part)
        if key not in _CLIENTS:
            _CLIENTS[key] = PocketearClient(
                self.source, Path(self.run_dir) / "clients" / f"{part:03d}", self.column,
                self.values[part], part, dict(self.where))
        return _CLIENTS[key].to_client()


_CLIENTS: dict[tuple[str, int], PocketearClient] = {}


class RoundLog:
    """The server's run folder: a checkpoint after every round, metrics, bytes sent."""

    def __init__(self, cfg: RunConfig, run_dir: Path, settings: FedSettings) -> None:
        check_federated(cfg.task_name, cfg.task)
        self.cfg, self.run_dir, self.settings = cfg, run_dir, settings
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
        self.frontend = build_frontend(cfg)
        self.task = build_task(cfg, build_encoder(cfg))
        self.keys = shared_keys(self.task)
        self.initial = get_arrays(self.task, self.frontend, self.keys)
        self.array_bytes = sum(a.nbytes for a in self.initial)
        self.writer = MetricsWriter(run_dir)
        self.round_metrics: dict[str, float] = {}
        self.bytes_total, self.t0 = 0, time.perf_counter()
        self.history: list[dict[str, Any]] = []
        self.warnings: list[str] = []

    def fit_config(self, server_round: int) -> dict[str, Scalar]:
        """What each sampled client gets with the arrays: round, steps, lr, the run config."""
        s, c = self.settings, self.cfg.optim
        total = s.rounds * s.local_steps
        lr = c.lr * warmup_cosine((server_round - 1) * s.local_steps, c.warmup_steps, total)
        return {"server_round": server_round, "local_steps": s.local_steps, "lr": lr,
                "run_config": json.dumps(self.cfg.to_dict())}

    def aggregate_metrics(self, results: list[tuple[int, dict[str, Scalar]]]
                          ) -> dict[str, Scalar]:
        """Example-weighted mean loss of the round's clients (and how many answered)."""
        n = sum(k for k, _ in results) or 1
        loss = sum(k * float(m["loss"]) for k, m in results) / n
        self.round_metrics = {"loss": loss, "clients": len(results)}
        return dict(self.round_metrics)

    def evaluate(self, server_round: int, arrays: NDArrays, config: dict[str, Scalar]
                 ) -> tuple[float, dict[str, Scalar]] | None:
        """After each round: the averaged model as a pocketear checkpoint, one metrics line."""
        set_arrays(self.task, self.frontend, self.keys, list(arrays), stats=server_round > 0)
        if server_round == 0:
            return None
        clients = int(self.round_metrics.get("clients", 0))
        if not clients:
            self.warnings.append(f"round {server_round}: no client answered")
        sent = 2 * clients * self.array_bytes  # the arrays down to and back from each client
        self.bytes_total += sent
        step = server_round * self.settings.local_steps
        row = {"round": server_round, "loss": self.round_metrics.get("loss", math.nan),
               "clients": clients, "bytes_round": sent, "bytes_total": self.bytes_total,
               "seconds": time.perf_counter() - self.t0}
        self.writer.log(step, row)
        self.history.append(row)
        self.round_metrics = {}
        save_checkpoint({
            "version": __version__, "config": self.cfg.to_dict(), "step": step,
            "sample_rate": self.frontend.cfg.sample_rate, "frontend": self.frontend.state_dict(),
            "task": self.task.state_dict(), "federated": {"round": server_round,
                                                          **asdict(self.settings)},
        }, self.run_dir / "checkpoints" / "last.pt")
        return None

    def strategy(self, num_clients: int) -> FedAvg:
        """FedAvg or FedProx over ``clients_per_round`` of ``num_clients`` per round."""
        s = self.settings
        per_round = min(s.clients_per_round, num_clients)
        kwargs: dict[str, Any] = dict(
            fraction_fit=per_round / num_clients, min_fit_clients=per_round,
            min_available_clients=min(s.min_clients, num_clients), fraction_evaluate=0.0,
            min_evaluate_clients=0, initial_parameters=ndarrays_to_parameters(self.initial),
            on_fit_config_fn=self.fit_config, evaluate_fn=self.evaluate,
            fit_metrics_aggregation_fn=self.aggregate_metrics, accept_failures=True)
        if s.strategy == "fedprox":
            return FedProx(proximal_mu=s.proximal_mu, **kwargs)
        return FedAvg(**kwargs)

    def close(self, mode: str, num_clients: int) -> dict[str, Any]:
        """Write ``summary.json`` and return it."""
        self.writer.close()
        last = self.history[-1] if self.history else {}
        summary = {
            "task": self.cfg.task_name, "encoder": self.cfg.encoder.name, "mode": mode,
            "federated": asdict(self.settings), "clients": num_clients,
            "rounds_done": len(self.history), "steps": last.get("round", 0)
            * self.settings.local_steps, "final": {"loss": last.get("loss", math.nan)},
            "bytes_per_client_round": 2 * self.array_bytes, "bytes_total": self.bytes_total,
            "seconds": time.perf_counter() - self.t0,
            "checkpoint": str(self.run_dir / "checkpoints" / "last.pt"),
            "warnings": self.warnings,
        }
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        if not any(row["clients"] for row in self.history):
            raise FederatedFailed(f"no client finished a round of the {len(self.history)}; "
                                  "see the client errors above (data, config) and rerun")
        return summary


@contextmanager
def _flower_home(run_dir: Path) -> Iterator[Path]:
    """Flower's and Ray's scratch folders in the run folder, for the run's duration.

    Ray's sockets live under its folder and Unix socket paths are limited to 107 bytes, so a
    run folder with a long path gets a temporary folder under /tmp instead, removed afterwards.
    """
    run_dir = run_dir.resolve()  # Ray takes absolute paths only
    os.environ.setdefault("FLWR_HOME", str(run_dir / "flwr"))
    ray_dir, scratch = run_dir / "ray", None
    if len(str(ray_dir)) > 40:  # + Ray's ~62-byte "/session_.../sockets/plasma_store"
        ray_dir = scratch = Path(tempfile.mkdtemp(prefix="pocketear-ray-"))
    ray_dir.mkdir(parents=True, exist_ok=True)
    os.environ["RAY_TMPDIR"] = str(ray_dir)
    try:
        yield ray_dir
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def simulate(cfg: RunConfig, run_dir: Path, column: str, settings: FedSettings,
             cores: int | None = None) -> dict[str, Any]:
    """Flower's simulation engine: one client per value of ``column`` of ``cfg.data.source``.

    Rows are first filtered by ``data.where`` (e.g. ``split=train``).
    """
    settings.check()
    source, where = cfg.data.source, dict(cfg.data.where)
    values = groups(source, column, where)
    log = RoundLog(cfg, run_dir, settings)
    cores = cores or os.cpu_count() or 1
    client_fn = SimulatedClients(source, column, tuple(values), str(run_dir),
                                 tuple(sorted(where.items())))
    try:
        with _flower_home(run_dir) as ray_dir:
            flwr.simulation.start_simulation(
                client_fn=client_fn, num_clients=len(values),
                config=ServerConfig(num_rounds=settings.rounds),
                strategy=log.strategy(len(values)), client_resources={"num_cpus": 1},
                ray_init_args={"num_cpus": cores, "include_dashboard": False,
                               "_temp_dir": str(ray_dir)})
    except BaseException:
        log.writer.close()
        raise
    finally:
        import ray

        if ray.is_initialized():  # Flower leaves Ray running; its helper processes go now
            ray.shutdown()
    summary = log.close("simulation", len(values))
    summary["groups"] = {column: values}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def serve(cfg: RunConfig, run_dir: Path, address: str, settings: FedSettings,
          round_timeout: float = 600.0) -> dict[str, Any]:
    """A real Flower server on ``address`` (gRPC) for clients started with :func:`connect`."""
    settings.check()
    log = RoundLog(cfg, run_dir, settings)
    try:
        with _flower_home(run_dir):
            flwr.server.start_server(
                server_address=address, strategy=log.strategy(max(settings.min_clients,
                                                                   settings.clients_per_round)),
                config=ServerConfig(num_rounds=settings.rounds, round_timeout=round_timeout))
    except BaseException:
        log.writer.close()
        raise
    return log.close("grpc", settings.min_clients)


def connect(address: str, source: str, work_dir: Path, client: int = 0) -> None:
    """A real Flower client: trains on ``source`` for the server at ``address`` until it ends."""
    from flwr.client import start_client

    work_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("FLWR_HOME", str(work_dir / "flwr"))
    start_client(server_address=address, client=PocketearClient(source, work_dir,
                                                                client=client).to_client(),
                 insecure=True)
