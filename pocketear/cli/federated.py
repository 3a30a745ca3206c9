"""Federated command: ``federated`` (simulation), ``federated server``, ``federated client``."""

from __future__ import annotations

import argparse
from pathlib import Path

from pocketear.cli.core import command
from pocketear.errors import InvalidValue


def _federated_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("mode", nargs="?", choices=("server", "client"),
                   help="omit for a simulation on this machine; `server` / `client` for real "
                        "processes talking over Flower's gRPC")
    p.add_argument("--task", help="pretext task (`pocketear list tasks`)")
    p.add_argument("--data", help="simulation: manifest with a column to split clients by; "
                   "client: this client's folder of audio or manifest")
    p.add_argument("--encoder", help="encoder (default: the task's own)")
    p.add_argument("--config", type=Path, help="YAML config file (as a run's config.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, e.g. --set optim.lr=1e-3 (repeatable)")
    p.add_argument("--clients-by", metavar="COLUMN", help="simulation: one client per value of "
                   "this manifest column (speaker, device, session): non-IID by construction")
    p.add_argument("--rounds", type=int, default=10, help="federated rounds (default 10)")
    p.add_argument("--clients-per-round", type=int, default=2,
                   help="clients sampled each round (default 2)")
    p.add_argument("--local-steps", type=int, default=10,
                   help="optimiser steps each client takes per round (default 10)")
    p.add_argument("--strategy", default="fedavg", choices=("fedavg", "fedprox"))
    p.add_argument("--proximal-mu", type=float, default=0.01, help="FedProx's μ (default 0.01)")
    p.add_argument("--min-clients", type=int, default=2,
                   help="server: clients to wait for before each round (default 2)")
    p.add_argument("--address", default="127.0.0.1:8080",
                   help="server: where to listen; client: the server (default 127.0.0.1:8080)")
    p.add_argument("--client-id", type=int, default=0, help="client: a number for its logs")
    p.add_argument("--out", type=Path, required=True,
                   help="run folder (simulation, server) or the client's own folder (client)")


@command("federated", _federated_args)
def _federated(args: argparse.Namespace) -> int:
    """Federated pretraining with Flower: clients train on their own audio, never sending it.

    Simulation (one machine, Flower's simulation engine):
      pocketear federated --task slicer --data manifest.csv --clients-by speaker
        --rounds 20 --clients-per-round 3 --local-steps 10 --out runs/fed
    Real processes over gRPC (the server holds the config and the run folder; each client
    only its audio):
      pocketear federated server --task slicer --rounds 20 --min-clients 2 --out runs/fed
      pocketear federated client --data my_audio/ --out client_dir   (on each device)
    The run folder is a normal run (config.yaml, checkpoints/last.pt after every round,
    metrics.jsonl with loss, clients and bytes sent per round, summary.json): evaluate, report
    and export it as any other. Needs the fed extra: pip install 'pocketear[fed]'.
    """
    try:
        from pocketear.federated import flower
    except ImportError as err:
        raise InvalidValue(f"federated training needs Flower ({err}); install the extra: "
                           "pip install 'pocketear[fed]'") from None
    if args.mode == "client":
        if not args.data:
            raise InvalidValue("federated client needs --data (this client's audio)")
        flower.connect(args.address, args.data, args.out, args.client_id)
        print(f"client {args.client_id}: the server ended the run")
        return 0
    from pocketear.train.config import load_config, resolve

    sets = [f"{k}={v}" for k, v in (("task.name", args.task), ("encoder.name", args.encoder),
                                    ("data.source", args.data)) if v is not None]
    cfg = resolve(load_config(args.config, [*sets, *args.overrides]))
    settings = flower.FedSettings(args.rounds, args.clients_per_round, args.local_steps,
                                  args.strategy, args.proximal_mu, args.min_clients)
    if args.mode == "server":
        summary = flower.serve(cfg, args.out, args.address, settings)
    else:
        if not args.data or not args.clients_by:
            raise InvalidValue("a simulation needs --data MANIFEST and --clients-by COLUMN")
        summary = flower.simulate(cfg, args.out, args.clients_by, settings)
    print(f"done: {summary['rounds_done']} rounds, final loss {summary['final']['loss']:.4f}, "
          f"{summary['bytes_total'] / 1e6:.1f} MB sent, checkpoint {summary['checkpoint']}")
    return 0
