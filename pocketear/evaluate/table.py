"""Terminal tables and CSV of evaluation results (accuracy %, mean ± std over seeds)."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np

BASELINE_MARK = " (b)"


def _settings(rows: list[dict[str, Any]]) -> list[tuple[str, int | None]]:
    out: list[tuple[str, int | None]] = []
    for r in rows:
        s = (r["probe"], r["shots"])
        if s not in out:
            out.append(s)
    return out


def _cell(values: list[float]) -> str:
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}"


def format_table(results: dict[str, Any] | list[dict[str, Any]]) -> str:
    """One aligned table per (probe, shots): methods × tasks plus the task average.

    Baselines are marked ``(b)`` and listed after the pretrained methods. The average's ± is
    the std over seeds of the per-seed task averages.

    Args:
        results: a results dict (as written to results.json) or just its ``results`` list.
    """
    if isinstance(results, dict):
        rows, methods = results["results"], results.get("methods", {})
        tasks = list(results.get("tasks", {})) or list(dict.fromkeys(r["task"] for r in rows))
        chance = {t: v.get("chance") for t, v in results.get("tasks", {}).items()}
    else:
        rows, methods, chance = results, {}, {}
        tasks = list(dict.fromkeys(r["task"] for r in rows))
    names = list(dict.fromkeys([*methods, *(r["method"] for r in rows)]))
    is_base = {n: methods.get(n, {}).get("kind") == "baseline" for n in names}
    names.sort(key=lambda n: is_base[n])
    out: list[str] = []
    for probe, shots in _settings(rows):
        cells = {(r["method"], r["task"]): r["values"] for r in rows
                 if (r["probe"], r["shots"]) == (probe, shots)}
        head = ["method", *tasks, "average"]
        lines = []
        for n in names:
            if not any((n, t) in cells for t in tasks):
                continue
            line = [n + (BASELINE_MARK if is_base[n] else "")]
            line += [_cell(cells[n, t]) if (n, t) in cells else "—" for t in tasks]
            per_task = [cells.get((n, t)) for t in tasks]
            if all(v is not None for v in per_task) and len({len(v) for v in per_task}) == 1:
                line.append(_cell(list(np.mean(np.asarray(per_task, dtype=float), axis=0))))
            else:
                line.append("—")
            lines.append(line)
        if chance and all(chance.get(t) is not None for t in tasks):
            ch = [float(chance[t]) for t in tasks]
            lines.append(["chance", *(f"{100 * c:.1f}" for c in ch),
                          f"{100 * float(np.mean(ch)):.1f}"])
        widths = [max(len(x[i]) for x in [head, *lines]) for i in range(len(head))]

        def fmt(line: list[str], widths: list[int] = widths) -> str:
            return "  ".join(x.ljust(w) if i == 0 else x.rjust(w)
                             for i, (x, w) in enumerate(zip(line, widths, strict=True)))

        label = "all labels" if shots is None else f"{shots}-shot"
        out += [f"{probe} probe, {label} (accuracy %, mean ± std over seeds)" if probe !=
                "fine-tune" else f"fine-tuned end to end, {label} (accuracy %)",
                fmt(head), "  ".join("-" * w for w in widths), *(fmt(x) for x in lines), ""]
    if any(is_base.values()):
        out.append("(b) = baseline measured in the same run on the same splits")
    return "\n".join(out).rstrip()


def write_csv(results: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """One line per result: method, task, probe, shots, mean, std, values (``;``-joined)."""
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["method", "task", "probe", "shots", "mean", "std", "values"])
        for r in results["results"]:
            w.writerow([r["method"], r["task"], r["probe"],
                        "" if r["shots"] is None else r["shots"], f"{r['mean']:.6g}",
                        f"{r['std']:.6g}", ";".join(f"{v:.6g}" for v in r["values"])])
    return path
