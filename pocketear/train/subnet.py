"""Pick a subnet of a once-for-all distillation run under a budget and write it standalone.

LightHuBERT (Wang et al. 2022, arXiv 2203.15610) searches its supernet for the subnet
that suits a budget; here the search is exhaustive over the (small) space of ``kwt_super``,
each subnet under the multiply-add and parameter budgets scored by a label-free proxy: its
distillation loss against the run's teacher on held-out audio (unaugmented slices, the same
seeded slices for every subnet). The winner is extracted as a plain ``kwt1``-family KWT into a
run folder of its own, which ``evaluate``, ``export`` and ``report`` take like any other.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from pocketear import __version__
from pocketear.data.cache import build_cache
from pocketear.data.corpus import Corpus
from pocketear.encoders.supernet import Subnet, SuperKWT
from pocketear.errors import InvalidValue
from pocketear.tasks.base import Batch
from pocketear.tasks.distill import Distill
from pocketear.train.build import build_encoder, build_frontend, build_task, load_modules
from pocketear.train.checkpoint import load_checkpoint, save_checkpoint
from pocketear.train.config import resolve, save_config


def load_supernet_run(run: str | os.PathLike[str]) -> tuple[Distill, Any, dict[str, Any]]:
    """The distillation task (teacher attached, heads loaded), frontend and stored config.

    Raises:
        InvalidValue: the run is not ``distill`` with a ``kwt_super`` student.
    """
    state = load_checkpoint(run)
    cfg = state["config"]
    rc = resolve(cfg)
    encoder = build_encoder(cfg)
    if rc.task_name != "distill" or not isinstance(encoder, SuperKWT):
        raise InvalidValue(f"{run}: `pocketear subnet` needs a run of --task distill with "
                           f"--encoder kwt_super, this one is {rc.task_name} with "
                           f"{rc.encoder.name}")
    frontend = build_frontend(cfg)
    frontend.load_state_dict(state["frontend"])
    task = build_task(cfg, encoder)
    assert isinstance(task, Distill)
    task.load_state_dict(state["task"])
    return task.eval(), frontend.eval(), cfg


def proxy_batches(task: Distill, frontend: Any, source: str, cache_dir: Path, cfg: Any,
                  clips: int, batch: int, seed: int, progress: bool) -> list[Batch]:
    """Seeded unaugmented slices of up to ``clips`` clips of ``source``, in batches."""
    cache = build_cache(Corpus.open(source), cache_dir, resolve(cfg).frontend, workers=0,
                        progress=progress)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(cache))
    augment, task.augment = task.augment, None
    examples = []
    try:
        for i in order:
            ex = task.sample(frontend.normalise(cache[int(i)]), rng, lambda: cache[0])
            if ex is not None:
                examples.append(ex)
            if len(examples) == clips:
                break
    finally:
        task.augment = augment
    if not examples:
        raise InvalidValue(f"{source}: no clip long enough for a {task.cfg.slice_frames}-frame "
                           "slice to score subnets on")
    return [task.collate(examples[i : i + batch]) for i in range(0, len(examples), batch)]


def search(run: str | os.PathLike[str], macs_budget: float, params_budget: float | None = None,
           data: str | None = None, clips: int = 256, batch: int = 64, seed: int = 0,
           progress: bool = True) -> dict[str, Any]:
    """Every subnet within the budgets with its MACs/s, parameters and proxy loss, best first.

    Args:
        run: the supernet distillation run (folder or checkpoint).
        macs_budget: multiply-adds per second of audio (``Encoder.macs_per_second``).
        params_budget: parameters (None: no limit).
        data: audio to score on (better: audio the run did not train on); default the run's.
        clips: clips to score on (one seeded slice each).
        batch: slices per forward.
        seed: seed of the clips and slice positions.
        progress: progress bars.

    Raises:
        InvalidValue: no subnet fits the budgets (the message names the smallest's cost).
    """
    task, frontend, cfg = load_supernet_run(run)
    sup = task.encoder
    assert isinstance(sup, SuperKWT)
    costs = {}
    for s in sup.subnets:
        kwt = sup.extract(s)
        costs[s] = (kwt.macs_per_second(), kwt.params)
    fits = [s for s, (m, p) in costs.items()
            if m <= macs_budget and (params_budget is None or p <= params_budget)]
    if not fits:
        small = costs[sup.smallest]
        raise InvalidValue(f"no subnet of {run} fits --macs-budget {macs_budget:,.0f}"
                           f"{f' --params-budget {params_budget:,.0f}' if params_budget else ''}"
                           f"; the smallest ({sup.smallest}) needs {small[0]:,} MACs/s and "
                           f"{small[1]:,} parameters")
    rc = resolve(cfg)
    source = data or rc.data.source
    cache_dir = Path(rc.data.cache_dir) if rc.data.cache_dir else Path(run).parent / ".cache"
    batches = proxy_batches(task, frontend, source, cache_dir, cfg, clips, batch, seed, progress)
    rows = []
    for s in tqdm(fits, desc="subnets", unit="subnet", disable=not progress):
        loss = float(np.mean([task.proxy_loss(b, s) for b in batches]))
        rows.append({"subnet": str(s), "macs_per_second": costs[s][0], "params": costs[s][1],
                     "proxy_loss": loss})
    rows.sort(key=lambda r: r["proxy_loss"])
    return {"run": str(run), "data": source, "clips": sum(len(b["x"]) for b in batches),
            "macs_budget": macs_budget, "params_budget": params_budget,
            "searched": len(rows), "space": len(costs), "ranking": rows}


def write_subnet(run: str | os.PathLike[str], subnet: Subnet, out: str | os.PathLike[str],
                 record: dict[str, Any] | None = None) -> Path:
    """Extract ``subnet`` of ``run`` into run folder ``out`` (config.yaml, checkpoints/last.pt).

    The checkpoint holds the KWT's weights and the run's frontend and normalisation, so it
    evaluates and exports like a pretrained run; ``record`` (the search) goes into
    ``subnet.json``.
    """
    frontend, sup, cfg, _ = load_modules(run)
    if not isinstance(sup, SuperKWT):
        raise InvalidValue(f"{run}: its encoder is {cfg['encoder']['name']}, not kwt_super")
    kwt = sup.extract(subnet)
    cfg = copy.deepcopy(cfg)
    cfg["encoder"] = {"name": "kwt1", **sup.subnet_options(subnet),
                      **{k: v for k, v in cfg["encoder"].items() if k == "readout"}}
    resolve(cfg)  # the stored config must build this KWT
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    info = {"from": str(run), "subnet": str(subnet), "params": kwt.params,
            "macs_per_second": kwt.macs_per_second(), **(record or {})}
    save_checkpoint({
        "version": __version__, "config": cfg, "sample_rate": frontend.cfg.sample_rate,
        "frontend": frontend.state_dict(),
        "task": {f"encoder.{k}": v for k, v in kwt.state_dict().items()}, "subnet": info,
    }, out / "checkpoints" / "last.pt")
    _, written, _, _ = load_modules(out)  # what evaluate/export will load
    sup.set_active(subnet)
    with torch.no_grad():
        x = torch.randn(2, 1, kwt.input_frames, kwt.n_mels)
        gap = float((sup.eval()(x) - written.eval()(x)).abs().max())
    if gap > 1e-5:
        raise RuntimeError(f"{out}: the written subnet differs from the supernet by {gap:.2e}")
    (out / "subnet.json").write_text(json.dumps({**info, "max_abs_diff": gap}, indent=2))
    return out
