"""Several evaluations of the same suite side by side (``pocketear compare``).

Loads ``results.json`` files and renders the tables of :func:`~pocketear.evaluate.table.
build_tables` (the one table builder, shared with ``table.txt`` and the HTML report) as aligned
text or CSV.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from pocketear.errors import InvalidValue, MissingPath
from pocketear.evaluate.table import (
    Cell,
    Row,
    Setting,
    Table,
    build_tables,
    column_cell,
    fmt_cell,
    method_kind,
    norm_name,
    setting_label,
    settings_of,
)


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
        MissingPath: when no results.json is found.
    """
    eval_dir = find_eval_dir(path)
    if eval_dir is None:
        raise MissingPath(f"no results.json in {path} (nor in an eval*/ folder inside it)")
    data = json.loads((eval_dir / "results.json").read_text())
    data.setdefault("methods", {})
    data.setdefault("tasks", {})
    data.setdefault("results", [])
    return data


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
            raise MissingPath(f"no results.json in {d} (nor in an eval*/ folder inside it)")
        if found.resolve() not in [x.resolve() for x in dirs]:
            dirs.append(found)
    data_list = [load_results(d) for d in dirs]
    suites = {str(d.get("suite")) for d in data_list}
    if len(suites) > 1:
        detail = ", ".join(f"{p}: {d.get('suite')}" for p, d in zip(dirs, data_list, strict=True))
        raise InvalidValue(f"cannot compare results of different suites ({detail})")
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
        The aligned tables (the task metric in %, mean ± std over seeds; ``*`` marks the best
        per column).

    Raises:
        MissingPath: a folder without results.json.
        InvalidValue: when the evaluations are of different suites.
    """
    data_list, sources = _load_all(eval_dirs)
    suite = data_list[0].get("suite", "?")
    out = [f"suite: {suite}   evaluations: {', '.join(sources)}"]
    for table in build_tables(data_list, sources):
        out += ["", f"== {setting_label(table.setting)} ({table.metric} %, mean ± std over "
                "seeds) =="]
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


__all__ = ["Cell", "Row", "Setting", "Table", "build_tables", "column_cell", "compare",
           "compare_csv", "find_eval_dir", "fmt_cell", "load_results", "method_kind",
           "norm_name", "setting_label", "settings_of", "source_names", "write_compare"]
