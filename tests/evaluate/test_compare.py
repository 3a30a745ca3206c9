"""Tests of the cross-run comparison table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from pocketear.evaluate.compare import build_tables, compare, load_results, write_compare

TASKS = {"word": 10, "speaker": 3, "pitch": 2}
SETTINGS = [("linear", None), ("linear", 5)]
BASELINES = ["logmel-stats", "random-init", "supervised"]


def make_eval(eval_dir: Path, pretrained: list[str], suite: str = "synthetic",
              seed: int = 0, baseline_seed: int = 0) -> Path:
    """A fake results.json: the given pretrained methods + 3 baselines, 3 tasks, 3 seeds."""
    eval_dir.mkdir(parents=True, exist_ok=True)
    methods = {m: {"kind": "pretrained", "checkpoint": f"{m}.ckpt", "run_dir": None,
                   "encoder": "cnn6", "params": 1000} for m in pretrained}
    methods |= {b: {"kind": "baseline", "checkpoint": None, "run_dir": None, "encoder": None,
                    "params": None} for b in BASELINES}
    results = []
    for m in methods:
        rng = np.random.default_rng(baseline_seed if m in BASELINES else seed)
        for t in TASKS:
            for probe, shots in SETTINGS:
                vals = [float(v) for v in rng.uniform(0.5, 0.9, 3)]
                results.append({"method": m, "task": t, "probe": probe, "shots": shots,
                                "metric": "accuracy", "mean": float(np.mean(vals)),
                                "std": float(np.std(vals)), "values": vals})
    data = {"suite": suite, "created": "2025-01-01T00:00:00",
            "config": {"probes": ["linear"], "shots": [None, 5], "seeds": 3, "baselines": True,
                       "checkpoints": []},
            "methods": methods,
            "tasks": {t: {"n_train": 10, "n_valid": 5, "n_test": 5, "classes": list(range(n)),
                          "chance": 1 / n} for t, n in TASKS.items()},
            "results": results, "confusion": {}, "embeddings_2d": {}}
    (eval_dir / "results.json").write_text(json.dumps(data))
    return eval_dir


def _labels(text: str) -> list[str]:
    """Method labels of the first table in ``compare`` output."""
    lines = text.split("== ", 2)[1].splitlines()[3:]
    out = []
    for line in lines:
        if line.startswith("-"):
            break
        out.append(line.split("  ")[0].strip())
    return out


def test_compare_merges_and_suffixes(tmp_path: Path) -> None:
    a = make_eval(tmp_path / "a" / "eval", ["cola", "byol-a"], seed=1, baseline_seed=1)
    b = make_eval(tmp_path / "b" / "eval", ["cola"], seed=2, baseline_seed=2)
    text = compare([str(a), str(b)])
    labels = _labels(text)
    # same name in both evaluations → suffixed with the (distinct) eval folder name
    assert "cola [a/eval]" in labels and "cola [b/eval]" in labels and "byol-a" in labels
    # baselines differ between the runs → suffixed too
    assert "logmel-stats [a/eval]" in labels and "logmel-stats [b/eval]" in labels
    assert labels.index("byol-a") < labels.index("logmel-stats [a/eval]")  # baselines last
    for task in [*TASKS, "average", "chance"]:
        assert task in text
    assert "linear probe, all labels" in text and "linear probe, 5-shot" in text
    assert text.index("all labels") < text.index("5-shot")


def test_compare_dedups_identical_baselines(tmp_path: Path) -> None:
    a = make_eval(tmp_path / "run1", ["cola"], seed=1)
    b = make_eval(tmp_path / "run2", ["cola-v2"], seed=2)
    labels = _labels(compare([a, b]))
    assert labels.count("logmel-stats") == 1 and labels.count("supervised") == 1
    assert "cola" in labels and "cola-v2" in labels
    assert not any("[" in label for label in labels)
    # the reference baselines are shared, so both pretrained rows get a verdict
    table = build_tables([load_results(a), load_results(b)], ["run1", "run2"])[0]
    assert all(r.works is not None for r in table.rows if r.kind == "pretrained")


def test_compare_table_is_aligned(tmp_path: Path) -> None:
    a = make_eval(tmp_path / "a", ["cola"])
    block = compare([a]).split("\n\n")[1].splitlines()[1:]  # one table, without its title
    rule = block[1]
    assert set(rule) == {"-", " "}
    assert all(len(line) <= len(rule) for line in block)
    head = block[0]
    for line in block[2:]:
        if not line.startswith("-"):
            assert line.index("  ") <= head.index("kind")  # method names fit their column


def test_compare_refuses_mixed_suites(tmp_path: Path) -> None:
    a = make_eval(tmp_path / "a", ["cola"], suite="synthetic")
    b = make_eval(tmp_path / "b", ["cola"], suite="fsdd")
    with pytest.raises(ValueError, match="different suites"):
        compare([a, b])
    with pytest.raises(FileNotFoundError):
        compare([a, tmp_path / "missing"])


def test_write_compare_csv(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_eval(run / "eval_1", ["cola"], seed=1)
    b = make_eval(tmp_path / "b", ["cola"], seed=2, baseline_seed=3)
    out = tmp_path / "cmp" / "table.csv"
    text = write_compare([str(run), str(b)], out_csv=out)  # a run folder works too
    assert "cola [eval_1]" in text and "cola [b]" in text
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == len(SETTINGS) * (2 + 2 * len(BASELINES))
    assert {"word_mean", "word_std", "average_mean", "works"} <= set(rows[0])
    assert {r["shots"] for r in rows} == {"", "5"}
    assert all(0 <= float(r["average_mean"]) <= 1 for r in rows)
    assert write_compare([str(b)]) == compare([b])
