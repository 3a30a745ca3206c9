"""Results tables: the one builder (:func:`build_tables`) and the run's own renderings.

:func:`build_tables` groups the results of one or more evaluations into one table per (probe,
shots) setting, methods × tasks with a suite average, chance and the "works" verdict; the
terminal table of a run (``table.txt``, :func:`format_table`), ``pocketear compare``
(:mod:`pocketear.evaluate.compare`) and the HTML report (:mod:`pocketear.evaluate.report`) all
render those tables. Cells are the task metric in %, mean ± std over seeds.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pocketear.evaluate.metrics import DEFAULT_METRIC
from pocketear.registry import available, get

BASELINE_MARK = " (b)"

Setting = tuple[str, int | None]


@dataclass
class Cell:
    """One (method, task) entry: mean and std of the metric over seeds."""

    mean: float
    std: float
    values: list[float] = field(default_factory=list)


@dataclass
class Row:
    """One table row: a method in one evaluation, with its per-task cells and suite average."""

    label: str
    method: str
    kind: str
    source: str
    cells: dict[str, Cell]
    average: Cell | None = None
    works: bool | None = None
    sources: list[str] = field(default_factory=list)


@dataclass
class Table:
    """Methods × tasks for one (probe, shots) setting.

    Attributes:
        setting: the (probe, shots) of every cell.
        tasks: the task columns, in order.
        rows: pretrained methods first, then baselines.
        chance: chance level per task (where known).
        metric: what the cells measure (the results' ``metric``; ``/``-joined when mixed).
    """

    setting: Setting
    tasks: list[str]
    rows: list[Row]
    chance: dict[str, float]
    metric: str = DEFAULT_METRIC

    def best(self, column: str) -> float | None:
        """Highest mean in a task column (or ``"average"``), None when the column is empty."""
        means = [c.mean for c in (column_cell(r, column) for r in self.rows) if c is not None]
        return max(means) if means else None

    def chance_row(self) -> list[float | None]:
        """Chance level per task, then its average (None where unknown)."""
        row: list[float | None] = [self.chance.get(t) for t in self.tasks]
        known = [c for c in row if c is not None]
        return row + [sum(known) / len(known) if known and len(known) == len(row) else None]


def column_cell(row: Row, column: str) -> Cell | None:
    """The cell of ``row`` in a task column, or its suite average for ``"average"``."""
    return row.average if column == "average" else row.cells.get(column)


def norm_name(name: str) -> str:
    """Canonical spelling of a method name (lower case, ``-`` for ``_``)."""
    return name.strip().lower().replace("_", "-")


def baseline_names(reference_only: bool = False) -> list[str]:
    """Registered baseline names (:mod:`pocketear.evaluate.baselines`), canonically spelled.

    With ``reference_only``, those a pretrained method must beat to "work".
    """
    return [norm_name(n) for n in available("baseline")
            if not reference_only or get("baseline", n).reference]


def method_kind(data: dict[str, Any], method: str) -> str:
    """``"baseline"`` or ``"pretrained"`` for a method of a results.json.

    By name when the file does not say.
    """
    info = data.get("methods", {}).get(method) or {}
    kind = info.get("kind")
    if kind:
        return str(kind)
    return "baseline" if norm_name(method) in baseline_names() else "pretrained"


def settings_of(data_list: list[dict[str, Any]]) -> list[Setting]:
    """All (probe, shots) settings, full-label settings first, then k-shot by increasing k."""
    probes: list[str] = []
    for data in data_list:
        for p in data.get("config", {}).get("probes", []) or []:
            if p not in probes:
                probes.append(p)
    found: list[Setting] = []
    for data in data_list:
        for r in data["results"]:
            s = (str(r.get("probe", "?")), r.get("shots"))
            if s not in found:
                found.append(s)
            if s[0] not in probes:
                probes.append(s[0])
    return sorted(found, key=lambda s: (s[1] is not None, s[1] or 0, probes.index(s[0])))


def setting_label(setting: Setting) -> str:
    """Human-readable name of a setting, e.g. ``linear probe, 5-shot``."""
    probe, shots = setting
    amount = "all labels" if shots is None else f"{shots}-shot"
    return ("fine-tuned end to end" if probe == "fine-tune" else f"{probe} probe") + f", {amount}"


def _average(cells: dict[str, Cell], tasks: list[str]) -> Cell | None:
    if not tasks or any(t not in cells for t in tasks):
        return None
    mean = sum(cells[t].mean for t in tasks) / len(tasks)
    n_seeds = {len(cells[t].values) for t in tasks}
    if len(n_seeds) == 1 and (n := n_seeds.pop()) > 0:
        per_seed = [sum(cells[t].values[i] for t in tasks) / len(tasks) for i in range(n)]
        mu = sum(per_seed) / n
        std = math.sqrt(sum((v - mu) ** 2 for v in per_seed) / n)
        return Cell(mean, std, per_seed)
    return Cell(mean, math.sqrt(sum(cells[t].std ** 2 for t in tasks)) / len(tasks))


def _same(a: Row, b: Row) -> bool:
    if a.cells.keys() != b.cells.keys():
        return False
    for t, ca in a.cells.items():
        cb = b.cells[t]
        pairs = [(ca.mean, cb.mean), (ca.std, cb.std), *zip(ca.values, cb.values, strict=False)]
        if len(ca.values) != len(cb.values) or not all(
            math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) for x, y in pairs
        ):
            return False
    return True


def _merge_names(rows: list[Row]) -> list[Row]:
    """Suffix repeated method names with their source; collapse identical baselines."""
    out: list[Row] = []
    by_name: dict[str, list[Row]] = {}
    for row in rows:
        by_name.setdefault(row.method, []).append(row)
    for name, group in by_name.items():
        if len(group) == 1:
            out.append(group[0])
        elif group[0].kind == "baseline" and all(_same(group[0], g) for g in group[1:]):
            group[0].sources = [g.source for g in group]
            group[0].source = ", ".join(group[0].sources)
            out.append(group[0])
        else:
            for g in group:
                g.label = f"{name} [{g.source}]"
                out.append(g)
    out.sort(key=lambda r: r.kind == "baseline")
    return out


def build_tables(data_list: list[dict[str, Any]], sources: list[str] | None = None,
                 settings: list[Setting] | None = None) -> list[Table]:
    """Group the results of one or more evaluations into one table per setting.

    The one table builder: ``table.txt`` (:func:`format_table`), ``pocketear compare`` and the
    HTML report all render these tables.

    Args:
        data_list: parsed results.json contents (all of the same suite).
        sources: a short name per evaluation, used to tell repeated method names apart.
        settings: the tables to build, in order (default :func:`settings_of`).
    """
    sources = sources or [str(i) for i in range(len(data_list))]
    tasks: list[str] = []
    chance: dict[str, float] = {}
    for data in data_list:
        for t, info in data["tasks"].items():
            if t not in tasks:
                tasks.append(t)
            if isinstance(info, dict) and info.get("chance") is not None:
                chance.setdefault(t, float(info["chance"]))
        for r in data["results"]:
            if r.get("task") not in tasks:
                tasks.append(r["task"])
    tables = []
    for setting in settings_of(data_list) if settings is None else settings:
        rows: list[Row] = []
        metrics: dict[str, None] = {}
        for data, source in zip(data_list, sources, strict=True):
            order = list(dict.fromkeys([*data["methods"], *(r["method"] for r in data["results"])]))
            cells: dict[str, dict[str, Cell]] = {}
            for r in data["results"]:
                if (r.get("probe", "?"), r.get("shots")) != setting:
                    continue
                vals = [float(v) for v in r.get("values") or []]
                cell = Cell(float(r["mean"]), float(r.get("std") or 0.0), vals)
                cells.setdefault(r["method"], {})[r["task"]] = cell
                metrics[str(r.get("metric") or DEFAULT_METRIC)] = None
            for m in order:
                if m in cells:
                    kind = method_kind(data, m)
                    rows.append(Row(m, m, kind, source, cells[m], _average(cells[m], tasks)))
        rows = _merge_names(rows)
        _verdicts(rows)
        tables.append(Table(setting, tasks, rows, chance, "/".join(metrics) or DEFAULT_METRIC))
    return tables


def _verdicts(rows: list[Row]) -> None:
    """Mark pretrained rows that beat every reference baseline of their own evaluation.

    The reference baselines are logmel-stats and random-init.
    """
    judged = [r for r in rows if r.kind != "baseline" and r.average is not None]
    if not judged or not any(b.kind == "baseline" for b in rows):
        return  # nothing to judge or to judge by (and no need to load the baselines)
    references = baseline_names(reference_only=True)
    for r in judged:
        assert r.average is not None
        refs: dict[str, float] = {}
        for b in rows:
            name = norm_name(b.method)
            own = r.source in (b.sources or [b.source])
            if b.kind == "baseline" and name in references and own and b.average:
                refs[name] = b.average.mean
        if references and len(refs) == len(references):
            r.works = r.average.mean > max(refs.values())


def fmt_cell(cell: Cell | None, digits: int = 1) -> str:
    """``mean ± std`` in percent, ``—`` for a missing cell."""
    if cell is None:
        return "—"
    return f"{100 * cell.mean:.{digits}f} ± {100 * cell.std:.{digits}f}"


def _cell(values: list[float]) -> str:
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}"


def _run_cell(cell: Cell | None) -> str:
    """A ``table.txt`` cell: mean ± std of the seeds' values (NumPy, as results.json)."""
    if cell is None:
        return "—"
    return _cell(cell.values) if cell.values else fmt_cell(cell)


def format_table(results: dict[str, Any] | list[dict[str, Any]]) -> str:
    """One aligned table per (probe, shots): methods × tasks plus the task average.

    Baselines are marked ``(b)`` and listed after the pretrained methods; settings come in the
    order of the results. The average's ± is the std over seeds of the per-seed task averages
    (``—`` when the tasks have different numbers of seeds).

    Args:
        results: a results dict (as written to results.json) or just its ``results`` list.
    """
    data = dict(results) if isinstance(results, dict) else {"results": results}
    data["methods"] = data.get("methods") or {}
    data["tasks"] = data.get("tasks") or {}
    settings = list(dict.fromkeys((r["probe"], r["shots"]) for r in data["results"]))
    tables = build_tables([data], settings=settings)
    out: list[str] = []
    for table in tables:
        probe, shots = table.setting
        head = ["method", *table.tasks, "average"]
        lines = []
        for r in table.rows:
            line = [r.label + (BASELINE_MARK if r.kind == "baseline" else "")]
            line += [_run_cell(r.cells.get(t)) for t in table.tasks]
            avg = r.average
            line.append(_cell(avg.values) if avg is not None and avg.values else "—")
            lines.append(line)
        if all(table.chance.get(t) is not None for t in table.tasks):
            ch = [table.chance[t] for t in table.tasks]
            lines.append(["chance", *(f"{100 * c:.1f}" for c in ch),
                          f"{100 * float(np.mean(ch)):.1f}"])
        widths = [max(len(x[i]) for x in [head, *lines]) for i in range(len(head))]

        def fmt(line: list[str], widths: list[int] = widths) -> str:
            return "  ".join(x.ljust(w) if i == 0 else x.rjust(w)
                             for i, (x, w) in enumerate(zip(line, widths, strict=True)))

        label = "all labels" if shots is None else f"{shots}-shot"
        out += [f"{probe} probe, {label} ({table.metric} %, mean ± std over seeds)" if probe !=
                "fine-tune" else f"fine-tuned end to end, {label} ({table.metric} %)",
                fmt(head), "  ".join("-" * w for w in widths), *(fmt(x) for x in lines), ""]
    names = dict.fromkeys([*data["methods"], *(r["method"] for r in data["results"])])
    if any(method_kind(data, n) == "baseline" for n in names):
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
