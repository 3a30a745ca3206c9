"""Training warnings (summary.json ``warnings``) are shown in a visible box of the report."""

from __future__ import annotations

import json
from pathlib import Path

from pocketear.evaluate.report import write_report
from tests.evaluate.test_report import make_eval, make_run

MSG = ("triplet: this task is solved trivially on this data: loss 1.2e-04 at step 50, 0.3 % of "
       "its first value 0.04; try harder negatives <b>")


def test_eval_report_lists_run_warnings_before_results(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs" / "cola", steps=20)
    summary = json.loads((run / "summary.json").read_text()) | {"warnings": [MSG]}
    (run / "summary.json").write_text(json.dumps(summary))
    text = write_report(make_eval(tmp_path / "eval", run_dirs={"cola": str(run)})).read_text()
    box = text.index('<div class="warn"><b>Training warnings</b>')
    assert box < text.index("<h2>Results</h2>")
    assert "<b>cola</b>: triplet: this task is solved trivially" in text
    assert "harder negatives &lt;b&gt;" in text and "negatives <b>" not in text  # escaped
    assert text.count("this task is solved trivially") == 2  # the top box and the run's curves


def test_no_box_without_warnings(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", steps=20)
    assert 'class="warn"' not in write_report(run).read_text()
    (run / "summary.json").write_text(json.dumps({"warnings": "not a list"}))
    assert 'class="warn"' not in write_report(run).read_text()
