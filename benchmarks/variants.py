"""Named pretraining variants the benchmarks compare, and pooling over pretraining seeds.

A variant is a registered task plus config overrides, so ablations the papers report (COLA's
bilinear vs cosine similarity, BYOL-A's augmentation ablation) are rows of one table.
"""

from __future__ import annotations

import argparse
from typing import Any

PAPER_TASKS = ("audio2vec_cbow", "audio2vec_skipgram", "temporal_gap", "triplet")

_BYOL_A_ONLY = "augment=[{name: pre_norm}, %s, {name: post_norm}]"
VARIANTS: dict[str, tuple[str, list[str]]] = {
    **{t: (t, []) for t in PAPER_TASKS},
    "cola": ("cola", []),  # bilinear similarity (COLA Sec. 2.2)
    "cola_cosine": ("cola", ["task.similarity=cosine"]),  # COLA Table 3's ablation
    "byol_a": ("byol_a", []),  # default chain: mixup + random-resize-crop
    "byol_a_mixup": ("byol_a", [_BYOL_A_ONLY % "{name: log_mixup_exp}"]),  # BYOL-A Table 6
    "byol_a_rrc": ("byol_a", [_BYOL_A_ONLY % "{name: random_resize_crop}"]),
    "slicer": ("slicer", []),
    "delores_s": ("delores_s", []),
}
CONTRASTIVE = ("cola", "cola_cosine", "byol_a", "byol_a_mixup", "byol_a_rrc", "slicer",
               "delores_s")
SEED_MARK = "#s"


def variant(name: str) -> tuple[str, list[str]]:
    """``(task, overrides)`` of a variant; a plain registered task name is its own variant."""
    return VARIANTS.get(name, (name, []))


def run_name(name: str, seed: int, n_seeds: int) -> str:
    """Method name of one pretraining run: the variant, with ``#sN`` when seeds are pooled."""
    return name if n_seeds == 1 else f"{name}{SEED_MARK}{seed}"


def merge_pretrain_seeds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of ``NAME#sN`` runs pooled into one ``NAME`` row per setting.

    The pooled row's ``values`` are the runs' means in seed order, so the table's ± is the
    spread over *pretraining* seeds (a frozen-embedding probe is nearly deterministic; the
    pretraining run is the noise).
    """
    pooled: dict[tuple, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for r in rows:
        if SEED_MARK not in r["method"]:
            out.append(r)
            continue
        base = r["method"].split(SEED_MARK)[0]
        key = (base, r["task"], r["probe"], r["view"], r["shots"])
        if key not in pooled:
            pooled[key] = {**r, "method": base, "values": [], "seeds": []}
            out.append(pooled[key])
        pooled[key]["values"].append(r["mean"])
        pooled[key]["seeds"].append(int(r["method"].split(SEED_MARK)[1]))
    for r in pooled.values():
        order = sorted(range(len(r["seeds"])), key=r["seeds"].__getitem__)
        r["values"] = [r["values"][i] for i in order]
        r["seeds"] = [r["seeds"][i] for i in order]
        r["mean"] = sum(r["values"]) / len(r["values"])
        r["std"] = (sum((v - r["mean"]) ** 2 for v in r["values"]) / len(r["values"])) ** 0.5
    return out


def task_sets(specs: list[str], base: dict[str, list[str]] | None = None
              ) -> dict[str, list[str]]:
    """``["slicer:task.tau=0.99", ...]`` → ``{"slicer": ["task.tau=0.99"]}`` added to ``base``."""
    out = {k: list(v) for k, v in (base or {}).items()}
    for spec in specs:
        task, sep, kv = spec.partition(":")
        if not sep or "=" not in kv:
            raise SystemExit(f"--set {spec!r}: expected TASK:KEY=VALUE")
        out.setdefault(task, []).append(kv)
    return out


def add_variant_args(p: argparse.ArgumentParser) -> None:
    """``--tasks``, ``--set`` and ``--pretrain-seeds``, shared by the quality benchmarks."""
    p.add_argument("--tasks", default="paper",
                   help="variants (variants.py), or the groups 'paper', 'contrastive'")
    p.add_argument("--set", dest="task_sets", action="append", default=[],
                   metavar="TASK:KEY=VALUE", help="override for one task's runs, e.g. "
                   "slicer:task.tau=0.99 (repeatable)")
    p.add_argument("--pretrain-seeds", type=int, default=1,
                   help="pretraining runs per variant; the table's ± is then their spread")
