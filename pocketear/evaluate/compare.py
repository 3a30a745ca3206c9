"""Results tables: one evaluation, or several evaluations of the same suite side by side.

The helpers here (loading ``results.json``, grouping results into per-setting tables of
methods × tasks with a suite average) are shared with :mod:`pocketear.evaluate.report`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BASELINE_NAMES = ("logmel-stats", "random-init", "supervised")
REFERENCE_BASELINES = ("logmel-stats", "random-init")

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
    """Methods × tasks for one (probe, shots) setting."""

    setting: Setting
    tasks: list[str]
    rows: list[Row]
    chance: dict[str, float]

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


def find_eval_dir(path: str | Path) -> Path | None:
    """The evaluation folder for ``path``: itself, or the newest ``eval*/`` with results.json."""
    path = Path(path)
    if (path / "results.json").is_file():
        return path
    found = [p for p in path.glob("eval*") if (p / "results.json").is_file()]
    return max(found, key=lambda p: (p / "results.json").stat().st_mtime) if found else None


def load_results(path: str | Path) -> dict[str, Any]:
    """Read ``results.json`` from an evaluation (or run) folder.

    Raises:
        FileNotFoundError: when no results.json is found.
    """
    eval_dir = find_eval_dir(path)
    if eval_dir is None:
        raise FileNotFoundError(f"no results.json in {path} (nor in an eval*/ folder inside it)")
    data = json.loads((eval_dir / "results.json").read_text())
    data.setdefault("methods", {})
    data.setdefault("tasks", {})
    data.setdefault("results", [])
    return data


def method_kind(data: dict[str, Any], method: str) -> str:
    """``"baseline"`` or ``"pretrained"`` for a method of a results.json."""
    info = data.get("methods", {}).get(method) or {}
    kind = info.get("kind")
    if kind:
        return str(kind)
    return "baseline" if norm_name(method) in BASELINE_NAMES else "pretrained"


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


def build_tables(data_list: list[dict[str, Any]], sources: list[str] | None = None) -> list[Table]:
    """Group the results of one or more evaluations into one table per setting.

    Args:
        data_list: parsed results.json contents (all of the same suite).
        sources: a short name per evaluation, used to tell repeated method names apart.
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
    for setting in settings_of(data_list):
        rows: list[Row] = []
        for data, source in zip(data_list, sources, strict=True):
            order = list(data["methods"])
            order += [r["method"] for r in data["results"] if r["method"] not in order]
            cells: dict[str, dict[str, Cell]] = {}
            for r in data["results"]:
                if (r.get("probe", "?"), r.get("shots")) != setting:
                    continue
                vals = [float(v) for v in r.get("values") or []]
                cell = Cell(float(r["mean"]), float(r.get("std") or 0.0), vals)
                cells.setdefault(r["method"], {})[r["task"]] = cell
            for m in order:
                if m in cells:
                    kind = method_kind(data, m)
                    rows.append(Row(m, m, kind, source, cells[m], _average(cells[m], tasks)))
        rows = _merge_names(rows)
        _verdicts(rows)
        tables.append(Table(setting, tasks, rows, chance))
    return tables


def _verdicts(rows: list[Row]) -> None:
    """Mark pretrained rows that beat logmel-stats and random-init (of their own evaluation)."""
    for r in rows:
        if r.kind == "baseline" or r.average is None:
            continue
        refs: dict[str, float] = {}
        for b in rows:
            name = norm_name(b.method)
            own = r.source in (b.sources or [b.source])
            if b.kind == "baseline" and name in REFERENCE_BASELINES and own and b.average:
                refs[name] = b.average.mean
        if len(refs) == len(REFERENCE_BASELINES):
            r.works = r.average.mean > max(refs.values())


def fmt_cell(cell: Cell | None, digits: int = 1) -> str:
    """``mean ± std`` in percent, ``—`` for a missing cell."""
    if cell is None:
        return "—"
    return f"{100 * cell.mean:.{digits}f} ± {100 * cell.std:.{digits}f}"


def source_names(eval_dirs: list[Path]) -> list[str]:
    """Shortest distinct trailing path of each folder (``eval`` → ``run1/eval`` on clashes)."""
    parts = [p.resolve().parts for p in eval_dirs]
    for k in range(1, max((len(p) for p in parts), default=1) + 1):
        names = ["/".join(p[-k:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in eval_dirs]


def _load_all(eval_dirs: list[str] | list[Path]) -> tuple[list[dict[str, Any]], list[str]]:
    dirs: list[Path] = []
    for d in eval_dirs:
        found = find_eval_dir(d)
        if found is None:
            raise FileNotFoundError(f"no results.json in {d} (nor in an eval*/ folder inside it)")
        if found.resolve() not in [x.resolve() for x in dirs]:
            dirs.append(found)
    data_list = [load_results(d) for d in dirs]
    suites = {str(d.get("suite")) for d in data_list}
    if len(suites) > 1:
        detail = ", ".join(f"{p}: {d.get('suite')}" for p, d in zip(dirs, data_list, strict=True))
        raise ValueError(f"cannot compare results of different suites ({detail})")
    return data_list, source_names(dirs)


def _text_table(table: Table, n_sources: int) -> str:
    head = ["method", "kind"] + (["eval"] if n_sources > 1 else []) + table.tasks + ["average"]
    head.append("works")
    lines: list[list[str]] = []
    for r in table.rows:
        line = [r.label, r.kind] + ([r.source] if n_sources > 1 else [])
        for col in table.tasks + ["average"]:
            cell = column_cell(r, col)
            best = cell is not None and math.isclose(cell.mean, table.best(col) or -1.0)
            line.append(fmt_cell(cell) + ("*" if best else " "))
        line.append({True: "yes", False: "no", None: ""}[r.works])
        lines.append(line)
    lines.append(
        ["chance", ""] + ([""] if n_sources > 1 else [])
        + [("—" if c is None else f"{100 * c:.1f}") + " " for c in table.chance_row()] + [""]
    )
    n_left = 3 if n_sources > 1 else 2
    widths = [max(len(x[i]) for x in [head] + lines) for i in range(len(head))]

    def fmt(line: list[str]) -> str:
        cells = [
            x.ljust(w) if i < n_left or i == len(head) - 1 else x.rjust(w)
            for i, (x, w) in enumerate(zip(line, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    body = [fmt(x) for x in lines]
    return "\n".join([fmt(head), rule] + body[:-1] + [rule, body[-1]])


def compare(eval_dirs: list[str] | list[Path]) -> str:
    """One plain-text table per setting comparing the methods of several evaluations.

    Args:
        eval_dirs: evaluation folders (or run folders holding an ``eval*/`` folder).

    Returns:
        The aligned tables (accuracy %, mean ± std over seeds; ``*`` marks the best per column).

    Raises:
        ValueError: when the evaluations are of different suites.
    """
    data_list, sources = _load_all(eval_dirs)
    suite = data_list[0].get("suite", "?")
    out = [f"suite: {suite}   evaluations: {', '.join(sources)}"]
    for table in build_tables(data_list, sources):
        out += ["", f"== {setting_label(table.setting)} (accuracy %, mean ± std over seeds) =="]
        out.append(_text_table(table, len(sources)))
    out += ["", "* best in column; works = beats both logmel-stats and random-init on the average"]
    return "\n".join(out)


def compare_csv(eval_dirs: list[str] | list[Path]) -> str:
    """The comparison as CSV: one line per (setting, method), mean/std fractions per task."""
    data_list, sources = _load_all(eval_dirs)
    tables = build_tables(data_list, sources)
    tasks = tables[0].tasks if tables else []
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    cols = [f"{t}_{s}" for t in tasks + ["average"] for s in ("mean", "std")]
    writer.writerow(["suite", "probe", "shots", "method", "kind", "eval", *cols, "works"])
    for table in tables:
        probe, shots = table.setting
        for r in table.rows:
            vals: list[str] = []
            for col in tasks + ["average"]:
                c = column_cell(r, col)
                vals += ["", ""] if c is None else [f"{c.mean:.6g}", f"{c.std:.6g}"]
            works = "" if r.works is None else str(r.works).lower()
            row = [data_list[0].get("suite", ""), probe, "" if shots is None else shots]
            writer.writerow(row + [r.label, r.kind, r.source, *vals, works])
    return buf.getvalue()


def write_compare(eval_dirs: list[str] | list[Path], out_csv: str | Path | None = None) -> str:
    """Print-ready comparison table; also write it as CSV when ``out_csv`` is given.

    Returns:
        The plain-text table (as :func:`compare`).
    """
    text = compare(eval_dirs)
    if out_csv is not None:
        out_csv = Path(out_csv)
        out_csv.parent.mkdir(parents=True, exist_ok=True)
        out_csv.write_text(compare_csv(eval_dirs))
    return text
