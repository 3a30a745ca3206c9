"""The command line: every command's --help, the whole workflow, and user errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pocketear.cli import COMMANDS, main
from tests.conftest import write_tone, write_tone_manifest

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_explains_itself(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    doc = (COMMANDS[name][1].__doc__ or "").strip()
    assert doc, f"command {name} has no docstring (its --help text)"
    out = " ".join(capsys.readouterr().out.split())
    assert " ".join(doc.splitlines()[0].split()) in out


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tone clips with a labelled manifest, pretrained for 2 steps through the CLI."""
    root = tmp_path_factory.mktemp("cli")
    write_tone_manifest(root, 12, seconds=2.0)  # TemporalGap: two non-overlapping 0.96 s slices
    rc = main(["pretrain", "--task", "temporal_gap", "--encoder", "mobile_tiny", "--data",
               str(root / "audio"), "--steps", "2", "--out", str(root / "run"),
               "--set", "optim.batch_size=4", "--set", "data.workers=1", "--no-progress"])
    assert rc == 0
    return root


def test_evaluate_report_compare(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = workspace / "eval"
    rc = main(["evaluate", str(workspace / "run"), "--suite", str(workspace / "labels.csv"),
               "--probes", "linear,knn", "--shots", "1", "--seeds", "2", "--baselines",
               "--workers", "1", "--out", str(out), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "temporal_gap" in printed and "logmel-stats" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["shots"] == [1] and results["config"]["seeds"] == 2
    assert {r["probe"] for r in results["results"]} == {"linear", "knn"}
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").stat().st_size > 10_000
    assert main(["compare", str(out), str(out), "--csv", str(workspace / "cmp.csv")]) == 0
    assert "temporal_gap" in capsys.readouterr().out
    assert (workspace / "cmp.csv").read_text().startswith("suite,")


def test_export_then_embed_with_the_onnx_model(workspace: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    model = workspace / "model.onnx"
    assert main(["export", str(workspace / "run"), "--out", str(model)]) == 0
    assert "parity vs PyTorch" in capsys.readouterr().out
    out = workspace / "emb.npz"
    assert main(["embed", str(model), str(workspace / "audio"), "--out", str(out),
                 "--no-progress"]) == 0
    with np.load(out) as z:
        assert z["embeddings"].shape[0] == 12 and np.isfinite(z["embeddings"]).all()
    frames = workspace / "frames.npz"
    assert main(["embed", str(workspace / "run"), str(workspace / "audio" / "low1.wav"),
                 "--frames", "--hop-ms", "100", "--out", str(frames), "--no-progress"]) == 0
    with np.load(frames) as z:
        assert np.allclose(np.diff(z["timestamps_ms"]), 100.0)


def test_prepare_a_folder_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("dog", "cat"):
        for i in range(5):
            write_tone(tmp_path / "src" / name / f"{i}.wav", 300 + 100 * i, seconds=0.2)
    rc = main(["prepare", "folder", "--source", str(tmp_path / "src"), "--out",
               str(tmp_path / "prepared"), "--opt", "seed=1", "--no-progress"])
    assert rc == 0 and "manifest.csv" in capsys.readouterr().out
    lines = (tmp_path / "prepared" / "manifest.csv").read_text().splitlines()
    assert lines[0].startswith("path,label,split") and len(lines) == 11


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "--suite", "nope.csv", "--baselines", "--out", "{tmp}/e"], "nope.csv"),
        (["evaluate", "--suite", "no_such_suite", "--baselines", "--out", "{tmp}/e"],
         "registered suites are"),
        (["prepare", "no_such_recipe", "--source", "{tmp}", "--out", "{tmp}/p"],
         "no recipe named 'no_such_recipe'"),
        (["prepare", "folder", "--source", "{tmp}", "--out", "{tmp}/p", "--opt", "seed"],
         "expected KEY=VALUE"),
        (["export", "{tmp}/missing", "--out", "{tmp}/m.onnx"], "missing"),
        (["embed", "{tmp}/missing.onnx", "{tmp}", "--out", "{tmp}/e.npz"], "missing.onnx"),
        (["report", "{tmp}"], "no results.json"),
    ],
    ids=["missing-manifest", "unknown-suite", "unknown-recipe", "bad-option", "no-checkpoint",
         "no-model", "nothing-to-report"],
)
def test_user_errors_exit_2_with_one_line(argv: list[str], message: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    rc = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
