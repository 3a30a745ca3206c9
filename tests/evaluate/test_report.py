"""Tests of the HTML evaluation report."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pocketear.evaluate.report import write_report

PRETRAINED = ["cola", "byol-a"]
BASELINES = ["logmel-stats", "random-init", "supervised"]
TASKS = {"word": [f"w{i}" for i in range(10)], "speaker": ["ann", "bob", "cy"],
         "pitch": ["lo", "hi"]}
SETTINGS = [("linear", None), ("mlp", None), ("linear", 5)]


def make_run(run_dir: Path, steps: int = 300) -> Path:
    """A fake training run folder with metrics.jsonl and summary.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for s in range(steps):
        rec = {"step": s * 10, "loss": 3.0 * np.exp(-s / 80) + 0.05 * np.sin(s), "lr": 1e-3}
        if s % 10 == 0:
            rec |= {"emb_std": 0.2 + 0.5 * s / steps, "eff_rank": 5 + 40 * s / steps}
        lines.append(json.dumps(rec))
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (run_dir / "summary.json").write_text(json.dumps({"steps": steps * 10, "final_loss": 0.1}))
    return run_dir


def make_eval(
    eval_dir: Path, suite: str = "synthetic", run_dirs: dict[str, str | None] | None = None,
    seed: int = 0, baseline_shift: float = 0.0,
) -> Path:
    """A fake evaluation folder with results.json (2 methods + 3 baselines, 3 tasks, 3 seeds)."""
    rng = np.random.default_rng(seed)
    eval_dir.mkdir(parents=True, exist_ok=True)
    run_dirs = run_dirs or {}
    methods: dict = {}
    for m in PRETRAINED:
        methods[m] = {"kind": "pretrained", "checkpoint": f"runs/{m}/last.ckpt",
                      "run_dir": run_dirs.get(m), "encoder": "cnn6", "params": 1_234_567}
    for b in BASELINES:
        methods[b] = {"kind": "baseline", "checkpoint": None, "run_dir": None,
                      "encoder": None if b == "logmel-stats" else "cnn6", "params": None}
    results, confusion, emb = [], {}, {}
    for m in methods:
        for t, classes in TASKS.items():
            for probe, shots in SETTINGS:
                base = {"cola": 0.8, "supervised": 0.85}.get(m, 0.6) + rng.normal(0, 0.05)
                base += baseline_shift if m in BASELINES else 0
                vals = [float(np.clip(base + rng.normal(0, 0.03), 0, 1)) for _ in range(3)]
                results.append({"method": m, "task": t, "probe": probe, "shots": shots,
                                "metric": "accuracy", "mean": float(np.mean(vals)),
                                "std": float(np.std(vals)), "values": vals})
            n = len(classes)
            mat = rng.integers(0, 3, (n, n)) + np.eye(n, dtype=int) * 12
            confusion[f"{m}/{t}/linear"] = {"labels": classes, "matrix": mat.tolist()}
            confusion[f"{m}/{t}/mlp"] = {"labels": classes, "matrix": mat.tolist()}
            lab = rng.integers(0, n, 120)
            xy = rng.normal(0, 1, (120, 2)) + 3 * np.stack([np.cos(lab), np.sin(lab)], 1)
            emb[f"{m}/{t}"] = {"x": xy[:, 0].tolist(), "y": xy[:, 1].tolist(),
                               "labels": [classes[i] for i in lab]}
    data = {
        "suite": suite, "created": "2025-01-02T03:04:05",
        "config": {"probes": ["linear", "mlp"], "shots": [None, 5], "seeds": 3,
                   "baselines": True, "checkpoints": [f"runs/{m}/last.ckpt" for m in PRETRAINED]},
        "methods": methods,
        "tasks": {t: {"n_train": 100, "n_valid": 20, "n_test": 30, "classes": c,
                      "chance": 1 / len(c)} for t, c in TASKS.items()},
        "results": results, "confusion": confusion, "embeddings_2d": emb,
    }
    (eval_dir / "results.json").write_text(json.dumps(data))
    return eval_dir


def _imgs(text: str) -> list[str]:
    return re.findall(r"<img[^>]*>", text)


@pytest.fixture(scope="module")
def eval_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An eval folder (cola with a run folder, byol-a without) and its report."""
    root = tmp_path_factory.mktemp("report")
    run = make_run(root / "runs" / "cola")
    eval_dir = make_eval(root / "eval", run_dirs={"cola": str(run), "byol-a": None})
    return write_report(eval_dir)


def test_report_contents(eval_report: Path) -> None:
    assert eval_report.name == "report.html" and eval_report.is_file()
    text = eval_report.read_text()
    for name in PRETRAINED + BASELINES + list(TASKS):
        assert name in text
    assert "How to read this" in text and "logmel-stats" in text and "random-init" in text
    assert text.count('class="tag">baseline') == 3 * len(SETTINGS)
    assert "<b>" in text and "chance" in text
    assert "byol-a: no training curves (no run_dir)" in text
    # 3 bar charts (one per setting), 1 training-curve figure (cola), confusion grid, embedding grid
    imgs = _imgs(text)
    assert len(imgs) == len(SETTINGS) + 1 + 1 + 1
    assert all('src="data:image/png;base64,' in img for img in imgs)
    srcs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", text)
    assert srcs and not any("http" in s for s in srcs)
    assert "<script" not in text and "<link" not in text
    # full-label settings come first
    order = [text.index(h) for h in ("linear probe, all labels", "mlp probe, all labels",
                                     "linear probe, 5-shot")]
    assert order == sorted(order)


def test_report_verdict(eval_report: Path) -> None:
    """COLA beats both reference baselines: 'yes'; BYOL-A does not: 'no'."""
    text = eval_report.read_text()
    assert 'class="yes"' in text and 'class="no"' in text


def test_report_from_run_folder(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    results = make_eval(run / "eval_synthetic") / "results.json"
    data = json.loads(results.read_text())
    data["confusion"] = {k: v for k, v in data["confusion"].items() if k.startswith("cola/")}
    data["embeddings_2d"] = {k: v for k, v in data["embeddings_2d"].items() if "/pitch" in k}
    results.write_text(json.dumps(data))
    out = write_report(run)
    assert out == run / "report.html"
    text = out.read_text()
    assert "cola" in text and "speaker" in text and "byol-a: no training curves" in text
    assert len(_imgs(text)) == len(SETTINGS) + 1 + 2  # the run folder's own curves


def test_report_missing_pieces(tmp_path: Path) -> None:
    eval_dir = make_eval(tmp_path / "eval")
    data = json.loads((eval_dir / "results.json").read_text())
    del data["confusion"], data["embeddings_2d"]
    (eval_dir / "results.json").write_text(json.dumps(data))
    text = write_report(eval_dir).read_text()
    assert "No confusion matrices" in text and "No 2-D embeddings" in text
    assert len(_imgs(text)) == len(SETTINGS)
    # a run folder that was never evaluated: curves only
    text = write_report(make_run(tmp_path / "run", steps=20)).read_text()
    assert "No evaluation found" in text and len(_imgs(text)) == 1
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "nothing")


def test_report_renders_in_chromium(eval_report: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed")
    shot = tmp_path / "shot.png"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
           "--window-size=1200,2000", eval_report.resolve().as_uri()]
    try:
        subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip("chromium did not finish within 60 s")
    assert shot.is_file() and shot.stat().st_size > 0
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_codebook_use_is_a_training_curve(tmp_path: Path) -> None:
    from pocketear.evaluate.report import _read_metrics

    run = make_run(tmp_path / "w2v", steps=20)
    lines = [json.loads(x) | {"codebook_perplexity": 100.0 + x_i, "code_utilisation": 0.3}
             for x_i, x in enumerate((run / "metrics.jsonl").read_text().splitlines())]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    series = _read_metrics(run / "metrics.jsonl")
    assert series["codebook_perplexity"][1][:2] == [100.0, 101.0]
    assert len(series["code_utilisation"][0]) == 20


def test_task_weights_are_one_training_curve_panel(tmp_path: Path) -> None:
    from pocketear.evaluate.report import _curves_fig, _read_metrics

    run = make_run(tmp_path / "multi", steps=20)
    lines = [json.loads(x) | {"w.temporal_gap": 1.0 + 0.01 * i, "w.slicer": 1.0 - 0.01 * i,
                              "loss.slicer": 3.0}
             for i, x in enumerate((run / "metrics.jsonl").read_text().splitlines())]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    series = _read_metrics(run / "metrics.jsonl")
    assert series["w.slicer"][1][:2] == [1.0, 0.99] and "loss.slicer" not in series
    fig = _curves_fig("multi", series)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles.count("task weights") == 1
    (ax,) = [a for a in fig.axes if a.get_title() == "task weights"]
    assert sorted(line.get_label() for line in ax.get_lines()) == ["slicer", "temporal_gap"]


def test_models_of_several_sizes_get_an_accuracy_vs_compute_plot(tmp_path: Path) -> None:
    eval_dir = make_eval(tmp_path / "eval")
    before = write_report(eval_dir).read_text()
    assert "Accuracy vs compute" not in before  # no MACs recorded
    data = json.loads((eval_dir / "results.json").read_text())
    data["methods"]["cola"]["macs_per_second"] = 2_000_000
    data["methods"]["byol-a"]["macs_per_second"] = 20_000_000
    (eval_dir / "results.json").write_text(json.dumps(data))
    text = write_report(eval_dir).read_text()
    assert "Accuracy vs compute" in text and len(_imgs(text)) == len(_imgs(before)) + 1
