"""Self-contained HTML report of an evaluation (and of the training runs behind it).

Figures are drawn with matplotlib (Agg, no pyplot state) and inlined as base64 PNG, so the
report is a single file that opens offline.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from pocketear.errors import MissingPath
from pocketear.evaluate.compare import find_eval_dir, load_results
from pocketear.evaluate.table import Table, build_tables, column_cell, fmt_cell, setting_label

CURVE_KEYS = {"loss": "training loss", "lr": "learning rate",
              "emb_std": "emb_std (falls to 0 on collapse)",
              "eff_rank": "eff_rank (falls to 1 on collapse)",
              "codebook_perplexity": "codebook perplexity (wav2vec 2.0 / Wav2vec-C)",
              "code_utilisation": "codebook entries in use (share)",
              "clients": "clients that answered (federated, per round)",
              "bytes_round": "bytes sent per round (federated)",
              "bytes_total": "bytes sent in total (federated)"}
# every logged key starting with this is one line of a single "task weights" panel (``multi``)
WEIGHT_PREFIX = "w."
HOW_TO_READ = """Each cell is the test accuracy of a probe trained on frozen embeddings, mean ±
std over seeds, in %; the best value per column is in bold, baseline rows are grey. A pretext task
only <b>works</b> when it beats <i>both</i> <code>logmel-stats</code> (log-mel bin statistics) and
<code>random-init</code> (the same encoder, untrained) on the suite average (docs/benchmarks.md);
<code>supervised</code> is the ceiling. In the training curves, <code>emb_std</code> or
<code>eff_rank</code> dropping towards 0 / 1 signals representation collapse."""
VERDICT = {True: '<span class="yes">yes</span>', False: '<span class="no">no</span>', None: ""}
CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#222;margin:0;
background:#fafafa}main{max-width:1180px;margin:0 auto;padding:24px 32px;background:#fff}
h1{font-size:26px;margin:0 0 4px}h3{font-size:16px;margin:22px 0 8px}dt{color:#666}dd{margin:0}
h2{font-size:20px;border-bottom:2px solid #e5e5e5;padding-bottom:4px;margin-top:36px}
.meta{color:#666;font-size:13px}.yes{color:#1b7f3a;font-weight:600}.no{color:#b3261e}
.note{color:#8a6d00;background:#fff8e1;padding:6px 10px;border-left:3px solid #f0c000;margin:8px 0}
.how{background:#f3f7fc;padding:10px 14px;border-left:3px solid #4a7fc1;line-height:1.5}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th{background:#f2f2f2}
th,td{padding:4px 10px;border-bottom:1px solid #e5e5e5;text-align:right;white-space:nowrap}
td:first-child,th:first-child{text-align:left}tr.baseline td{color:#666;font-style:italic}
tr.chance td{color:#999;border-top:2px solid #ccc}img{max-width:100%;display:block;margin:8px 0}
.tag{font-size:10px;font-style:normal;background:#e8e8e8;border-radius:3px;padding:1px 4px;
margin-left:6px;color:#555}code{background:#f2f2f2;padding:0 3px;border-radius:3px}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px;font-size:13px}
.note,.how{font-size:13.5px}table.plain td,table.plain th{text-align:left}
.warn{color:#7a1a12;background:#fdecea;padding:8px 12px;border-left:4px solid #d93025;
margin:10px 0;font-size:13.5px}.warn ul{margin:4px 0 0;padding-left:20px}
"""


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _note(text: str) -> str:
    return f'<p class="note">{_esc(text)}</p>'


def _dl(items: dict[str, Any]) -> str:
    return "<dl>" + "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in items.items()) \
        + "</dl>"


def _img(fig: Figure, alt: str) -> str:
    """Render a figure as an inline base64 PNG ``<img>``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    return (f'<img alt="{_esc(alt)}" src="data:image/png;base64,'
            f'{base64.b64encode(buf.getvalue()).decode("ascii")}">')


def _colors(n: int) -> list[Any]:
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _table_html(table: Table) -> str:
    cols = table.tasks + ["average"]
    head = "".join(f"<th>{_esc(c)}</th>" for c in ["method", *cols, "works?"])
    body = []
    for r in table.rows:
        tag = '<span class="tag">baseline</span>' if r.kind == "baseline" else ""
        tds = [f"<td>{_esc(r.label)}{tag}</td>"]
        for c in cols:
            cell, best = column_cell(r, c), table.best(c)
            text = _esc(fmt_cell(cell))
            bold = cell is not None and best is not None and math.isclose(cell.mean, best)
            tds.append(f"<td>{'<b>' + text + '</b>' if bold else text}</td>")
        tds.append(f"<td>{VERDICT[r.works]}</td>")
        body.append(f"<tr class='{r.kind}'>{''.join(tds)}</tr>")
    cs = "".join(f"<td>{'—' if c is None else f'{100 * c:.1f}'}</td>" for c in table.chance_row())
    body.append(f'<tr class="chance"><td>chance</td>{cs}<td></td></tr>')
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _bars_fig(table: Table, colors: dict[str, Any]) -> Figure:
    groups, n = table.tasks + ["average"], max(len(table.rows), 1)
    width, x = 0.8 / n, np.arange(len(groups))
    fig = Figure(figsize=(max(11.0, 2 + 0.35 * n * len(groups)), 4.6), layout="constrained")
    ax = fig.add_subplot()
    for i, r in enumerate(table.rows):
        cells = [column_cell(r, g) for g in groups]
        means = [np.nan if c is None else 100 * c.mean for c in cells]
        errs = [0.0 if c is None else 100 * c.std for c in cells]
        ax.bar(x + (i - (n - 1) / 2) * width, means, width, yerr=errs, label=r.label,
               color=colors.get(r.label), hatch="///" if r.kind == "baseline" else None,
               edgecolor="white", linewidth=0.5, error_kw={"capsize": 2, "elinewidth": 0.8})
    for g, c in enumerate(table.chance_row()):
        if c is not None:
            ax.hlines(100 * c, g - 0.45, g + 0.45, colors="k", linestyles="--", linewidth=1,
                      label="chance" if g == 0 else None)
    ax.set_xticks(x, groups, rotation=20 if max(map(len, groups)) > 12 else 0)
    ax.set(ylabel=f"{table.metric} (%)", ylim=(0, 105), title=setting_label(table.setting))
    ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8, frameon=False)
    return fig


def _compute_fig(table: Table, macs: dict[str, float], colors: dict[str, Any]) -> Figure:
    """Average score against multiply-adds per second: the accuracy/compute Pareto view."""
    fig = Figure(figsize=(7.0, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for r in table.rows:
        if r.average is None:
            continue
        if r.method in macs:
            ax.scatter(macs[r.method] / 1e6, 100 * r.average.mean, color=colors.get(r.label),
                       s=36, zorder=3)
            ax.annotate(r.label, (macs[r.method] / 1e6, 100 * r.average.mean), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
        elif r.kind == "baseline":
            ax.axhline(100 * r.average.mean, color=colors.get(r.label), linestyle=":",
                       linewidth=1, label=r.label)
    ax.set_xscale("log")
    ax.set(xlabel="M multiply-adds per second of audio", ylabel=f"average {table.metric} (%)",
           title=f"accuracy vs compute — {setting_label(table.setting)}")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, frameon=False)
    return fig


def _read_metrics(path: Path) -> dict[str, tuple[list[float], list[float]]]:
    """Series ``key -> (steps, values)`` of the curve keys and task weights (``w.*``) logged."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    for i, line in enumerate(path.read_text(errors="replace").splitlines()):
        try:
            rec = json.loads(line)
            step = rec.get("step", i)
        except (json.JSONDecodeError, AttributeError):
            continue
        weights = [k for k in rec if isinstance(k, str) and k.startswith(WEIGHT_PREFIX)]
        for key in [*CURVE_KEYS, *weights]:
            v = rec.get(key)
            if isinstance(v, int | float) and math.isfinite(v) and isinstance(step, int | float):
                xs, ys = series.setdefault(key, ([], []))
                xs.append(float(step))
                ys.append(float(v))
    return series


def _resolve_run_dir(info: dict[str, Any], eval_dir: Path) -> Path | None:
    """Find a method's run folder (one holding metrics.jsonl) from run_dir or checkpoint."""
    cands: list[Path] = []
    for key in ("run_dir", "checkpoint"):
        if info.get(key):
            p = Path(info[key])
            bases = [p] if p.is_absolute() else [Path.cwd() / p, eval_dir / p, eval_dir.parent / p]
            if key == "checkpoint":
                bases = [b for q in bases for b in (q.parent, q.parent.parent)]
            cands += bases
    return next((c for c in cands if (c / "metrics.jsonl").is_file()), None)


def _weights_panel(ax: Any, series: dict[str, tuple[list[float], list[float]]],
                   keys: list[str]) -> None:
    """One line per task weight (``w.NAME``) of a multi-task run."""
    for j, key in enumerate(keys):
        steps, vals = series[key]
        ax.plot(steps, vals, color=f"C{j}", linewidth=1.5, label=key[len(WEIGHT_PREFIX):])
    ax.set_title("task weights", fontsize=9)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, frameon=False)


def _curves_fig(name: str, series: dict[str, tuple[list[float], list[float]]]) -> Figure:
    keys = [k for k in CURVE_KEYS if k in series]
    weights = sorted(k for k in series if k.startswith(WEIGHT_PREFIX))
    panels = len(keys) + bool(weights)
    fig = Figure(figsize=(3.6 * panels + 0.6, 3.0), layout="constrained")
    if weights:
        _weights_panel(fig.add_subplot(1, panels, panels), series, weights)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(1, panels, i + 1)
        steps, vals = np.asarray(series[key][0]), np.asarray(series[key][1])
        if key == "loss" and len(vals) > 100:
            k = max(len(vals) // 50, 2)
            ax.plot(steps, vals, color="C0", alpha=0.25, linewidth=0.8)
            smooth = np.convolve(vals, np.ones(k) / k, mode="valid")
            ax.plot(steps[k - 1:], smooth, color="C0", linewidth=1.5)
        else:
            ax.plot(steps, vals, color=f"C{i}", linewidth=1.5, marker="." if len(vals) < 30 else "")
        ax.set_title(CURVE_KEYS[key], fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0 if key in ("emb_std", "eff_rank", "codebook_perplexity",
                                        "code_utilisation", "clients", "bytes_round",
                                        "bytes_total") else None)
    fig.suptitle(name, fontsize=11)
    return fig


def _read_summary(run_dir: Path) -> dict[str, Any]:
    """A run's summary.json as a dict ({} when missing or unreadable)."""
    try:
        data = json.loads((run_dir / "summary.json").read_text())
    except (ValueError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


def _run_warnings(run_dir: Path) -> list[str]:
    """The training warnings a run recorded (summary.json ``warnings``).

    E.g. the trivial-task monitor's "this task is solved trivially on this data: ...".
    """
    warnings = _read_summary(run_dir).get("warnings")
    return [str(w) for w in warnings] if isinstance(warnings, list) else []


def _warnings_box(runs: list[tuple[str, Path]]) -> str:
    """One visible box listing every run's training warnings ("" when there are none)."""
    items = [f"<li><b>{_esc(name)}</b>: {_esc(w)}</li>"
             for name, run_dir in runs for w in _run_warnings(run_dir)]
    if not items:
        return ""
    return (f'<div class="warn"><b>Training warnings</b> (from the runs\' summary.json)'
            f"<ul>{''.join(items)}</ul></div>")


def _summary_html(run_dir: Path) -> str:
    data = _read_summary(run_dir)
    items = [(k, v) for k, v in data.items() if isinstance(v, str | int | float)][:16]
    return _dl({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in items}) if items else ""


def _curves_section(runs: list[tuple[str, Path]], notes: list[str]) -> str:
    out = ["<h2>Training curves</h2>"]
    out += [_note(n) for n in notes]
    if not runs:
        out.append(_note("No training curves: no pretrained method has a run folder."))
    for name, run_dir in runs:
        series = _read_metrics(run_dir / "metrics.jsonl")
        out.append(f"<h3>{_esc(name)}</h3><p class='meta'>{_esc(run_dir)}</p>")
        out.append(_warnings_box([(name, run_dir)]))
        if not series:
            out.append(_note("metrics.jsonl holds no loss / monitor values."))
            continue
        std, rank = series.get("emb_std", ([], []))[1], series.get("eff_rank", ([], []))[1]
        if std and max(std) > 0 and std[-1] < 0.1 * max(std):
            out.append(_note(f"possible collapse: emb_std fell to {std[-1]:.3g} "
                             f"(peak {max(std):.3g})"))
        if rank and rank[-1] < 2.0:
            out.append(_note(f"possible collapse: final eff_rank is {rank[-1]:.3g}"))
        out.append(_img(_curves_fig(name, series), f"training curves {name}"))
        out.append(_summary_html(run_dir))
    return "".join(out)


def _grid_fig(entries: dict[tuple[str, str], Any], methods: list[str], tasks: list[str],
              draw: Any) -> Figure:
    """One subplot per (method, task) entry: rows are methods, columns tasks."""
    rows = [m for m in methods if any((m, t) in entries for t in tasks)]
    rows += sorted({m for m, _ in entries} - set(rows))
    cols = [t for t in tasks if any((m, t) in entries for m in rows)]
    cols += sorted({t for _, t in entries} - set(cols))
    fig = Figure(figsize=(2.9 * len(cols) + 0.4, 2.9 * len(rows) + 0.4), layout="constrained")
    for i, m in enumerate(rows):
        for j, t in enumerate(cols):
            ax = fig.add_subplot(len(rows), len(cols), i * len(cols) + j + 1)
            if entries.get((m, t)):
                draw(ax, f"{m} · {t}", entries[m, t], i == len(rows) - 1, j == 0)
            else:
                ax.axis("off")
                ax.text(0.5, 0.5, f"{m} · {t}: n/a", ha="center", va="center", color="#999")
    return fig


def _draw_confusion(ax: Any, title: str, entry: dict[str, Any], bottom: bool, left: bool) -> None:
    mat = np.atleast_2d(np.asarray(entry.get("matrix") or [[0]], dtype=float))
    labels = [str(x) for x in entry.get("labels", range(len(mat)))]
    norm = mat / np.maximum(mat.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_title(f"{title}\nacc {100 * np.trace(mat) / max(mat.sum(), 1):.1f}%", fontsize=8)
    if len(labels) <= 10:
        for (a, b), v in np.ndenumerate(mat):
            ax.text(b, a, f"{int(v)}", ha="center", va="center", fontsize=6,
                    color="white" if norm[a, b] > 0.6 else "#333")
    ticks = range(len(labels)) if len(labels) <= 16 else []
    short = [x[:8] for x in labels] if ticks else []
    ax.set_xticks(ticks, short, fontsize=6, rotation=90)
    ax.set_yticks(ticks, short, fontsize=6)
    ax.set_xlabel("predicted" if bottom else "", fontsize=7)
    ax.set_ylabel("true" if left else "", fontsize=7)


def _draw_embedding(ax: Any, title: str, entry: dict[str, Any], bottom: bool, left: bool) -> None:
    x, y = np.asarray(entry.get("x", []), float), np.asarray(entry.get("y", []), float)
    labels = [str(v) for v in entry.get("labels", [""] * len(x))][: len(x)]
    classes = list(dict.fromkeys(labels))
    colors = _colors(len(classes))
    for k, c in enumerate(classes):
        idx = np.array([lab == c for lab in labels])
        ax.scatter(x[idx], y[idx], s=6, color=colors[k], alpha=0.7, linewidths=0)
        if len(classes) <= 20:
            ax.text(np.median(x[idx]), np.median(y[idx]), c[:10], fontsize=6, ha="center",
                    va="center", bbox={"boxstyle": "round,pad=0.15", "fc": "white",
                                       "alpha": 0.7, "ec": colors[k]})
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def _split_keys(d: dict[str, Any], n: int, last: str | None = None) -> dict[tuple, Any]:
    """``{"method/task[/probe]": v}`` → ``{(method, task): v}`` (keeping only probe ``last``)."""
    parts = {tuple(k.rsplit("/", n)): v for k, v in d.items() if k.count("/") >= n}
    return {p[:2]: v for p, v in parts.items() if last is None or p[-1] == last}


def _maps_sections(data: dict[str, Any]) -> list[str]:
    methods, tasks = list(data["methods"]), list(data["tasks"])
    conf_all = data.get("confusion") or {}
    probes = [k.rsplit("/", 2)[-1] for k in conf_all if k.count("/") >= 2]
    out = ["<h2>Confusion matrices</h2>"]
    if probes:
        probe = "linear" if "linear" in probes else probes[0]
        conf = _split_keys(conf_all, 2, probe)
        out.append(f"<p class='meta'>{_esc(probe)} probe, all labels; rows are true classes, "
                   "colour is the row-normalised rate, numbers are counts.</p>")
        out.append(_img(_grid_fig(conf, methods, tasks, _draw_confusion), "confusion matrices"))
    else:
        out.append(_note("No confusion matrices in results.json."))
    emb = _split_keys(data.get("embeddings_2d") or {}, 1)
    out.append("<h2>Embedding maps (2-D)</h2>")
    if emb:
        out.append("<p class='meta'>Test embeddings projected to 2-D, coloured by label; "
                   "class names sit at each class's median.</p>")
        out.append(_img(_grid_fig(emb, methods, tasks, _draw_embedding), "embedding maps"))
    else:
        out.append(_note("No 2-D embeddings in results.json."))
    return out


def _header(data: dict[str, Any] | None, title_dir: Path) -> str:
    if data is None:
        return f"<h1>pocketear report — {_esc(title_dir.name)}</h1>"
    cfg = data.get("config", {}) or {}
    items = {"suite": data.get("suite", "?"), "created": data.get("created", "?"),
             "probes": ", ".join(map(str, cfg.get("probes") or [])) or "—",
             "shots": ", ".join("all" if s is None else str(s) for s in cfg.get("shots") or [None]),
             "seeds": cfg.get("seeds", "?"), "baselines": cfg.get("baselines", "?"),
             "checkpoints": ", ".join(map(str, cfg.get("checkpoints") or [])) or "—"}
    return (f"<h1>pocketear evaluation — {_esc(data.get('suite', '?'))}</h1>"
            f"<p class='meta'>{_esc(title_dir)}</p>{_dl(items)}")


def _details(data: dict[str, Any]) -> str:
    def table(head: list[str], rows: list[list[Any]]) -> str:
        th = "".join(f"<th>{_esc(h)}</th>" for h in head)
        trs = "".join("<tr>" + "".join(f"<td>{_esc(v)}</td>" for v in r) + "</tr>" for r in rows)
        return f'<table class="plain"><tr>{th}</tr>{trs}</table>'

    ms = [(n, m or {}) for n, m in data["methods"].items()]
    ts = [(n, t or {}) for n, t in data["tasks"].items()]
    return "<h2>Details</h2>" + table(
        ["method", "kind", "encoder", "params", "checkpoint"],
        [[n, m.get("kind", "?"), m.get("encoder") or "—",
          f"{m['params'] / 1e6:.2f} M" if isinstance(m.get("params"), int | float) else "—",
          m.get("checkpoint") or "—"] for n, m in ms],
    ) + table(
        ["task", "classes", "train", "valid", "test", "chance"],
        [[n, len(t.get("classes") or []), t.get("n_train", "—"), t.get("n_valid", "—"),
          t.get("n_test", "—"), "—" if t.get("chance") is None else f"{100 * t['chance']:.1f} %"]
         for n, t in ts],
    )


def _results_sections(data: dict[str, Any], eval_dir: Path, run_dir: Path | None) -> list[str]:
    tables = build_tables([data])
    labels = list(dict.fromkeys(r.label for t in tables for r in t.rows))
    colors = dict(zip(labels, _colors(len(labels)), strict=True))
    runs, notes = _find_runs(data, eval_dir, run_dir)
    out = [_warnings_box(runs), "<h2>Results</h2>"]
    if not tables:
        out.append(_note("results.json holds no results."))
    for table in tables:
        out.append(f"<h3>{_esc(setting_label(table.setting))}</h3>{_table_html(table)}")
        out.append(_img(_bars_fig(table, colors), f"bars {setting_label(table.setting)}"))
    macs = {n: float(i["macs_per_second"]) for n, i in data["methods"].items()
            if (i or {}).get("macs_per_second")}
    if len(macs) >= 2 and tables:  # results of models of several sizes: the Pareto view
        out.append("<h2>Accuracy vs compute</h2>")
        out.append(_img(_compute_fig(tables[0], macs, colors), "accuracy vs compute"))
    return [*out, _curves_section(runs, notes), *_maps_sections(data), _details(data)]


def _find_runs(data: dict[str, Any], eval_dir: Path,
               run_dir: Path | None) -> tuple[list[tuple[str, Path]], list[str]]:
    """Run folders (name, path) of the pretrained methods and of ``run_dir``; notes on misses."""
    runs: list[tuple[str, Path]] = []
    notes: list[str] = []
    methods = {n: i or {} for n, i in data["methods"].items()}
    pretrained = {n: i for n, i in methods.items() if i.get("kind") != "baseline"}
    for name, info in pretrained.items():
        found = _resolve_run_dir(info, eval_dir)
        if found is None and run_dir is not None and len(pretrained) == 1:
            found = run_dir  # evaluated from inside its own run folder
        if found is None:
            where = f"{info['run_dir']} not found" if info.get("run_dir") else "no run_dir"
            notes.append(f"{name}: no training curves ({where}).")
        elif found.resolve() not in [p.resolve() for _, p in runs]:
            runs.append((name, found))
    if run_dir is not None and run_dir.resolve() not in [p.resolve() for _, p in runs]:
        runs.insert(0, (run_dir.name, run_dir))
    return runs, notes


def write_report(path: str | Path) -> Path:
    """Write ``report.html`` for an evaluation folder or a run folder.

    Args:
        path: a folder with ``results.json`` (evaluation), or with ``metrics.jsonl`` (training
            run; its newest ``eval*/`` folder, if any, provides the results).

    Returns:
        The path of the written report (``path / "report.html"``).

    Raises:
        MissingPath: when ``path`` holds neither results.json nor metrics.jsonl.
    """
    path = Path(path)
    run_dir = path if (path / "metrics.jsonl").is_file() else None
    eval_dir = find_eval_dir(path)
    if eval_dir is None and run_dir is None:
        raise MissingPath(f"{path}: no results.json, eval*/results.json or metrics.jsonl")
    data = load_results(eval_dir) if eval_dir is not None else None
    parts = [_header(data, path), f'<p class="how"><b>How to read this.</b> {HOW_TO_READ}</p>']
    if data is not None and eval_dir is not None:
        parts += _results_sections(data, eval_dir, run_dir)
    else:
        parts += [_note("No evaluation found (no eval*/results.json): training curves only."),
                  _curves_section([(path.name, path)], [])]
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
    parts.append(f"<p class='meta'>generated by pocketear on {_esc(stamp)}</p>")
    title = _esc(f"pocketear report — {data.get('suite', '') if data else path.name}")
    doc = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
           f"<style>{CSS}</style></head><body><main>{''.join(parts)}</main></body></html>")
    out = path / "report.html"
    out.write_text(doc, encoding="utf-8")
    return out
