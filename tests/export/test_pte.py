"""ExecuTorch export (the ``edge`` extra): parity, metadata beside the file, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pocketear.cli import main
from pocketear.export import ExportError
from pocketear.export.graph import window_samples
from pocketear.export.pte import export_pte, load_pte
from pocketear.model import load

pytest.importorskip("executorch.exir", reason="ExecuTorch (pocketear[edge]) not installed")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pocketear.train.config import load_config
    from pocketear.train.loop import pretrain
    from tests.conftest import write_tone

    root = tmp_path_factory.mktemp("pte")
    for i in range(4):
        write_tone(root / "audio" / f"t{i}.wav", 300 + 500 * i, seconds=2.0, seed=i)
    cfg = load_config(None, ["task.name=temporal_gap", "encoder.name=mobile_tiny",
                             f"data.source={root / 'audio'}", "train.steps=2",
                             "optim.batch_size=4", "data.workers=1"])
    pretrain(cfg, root / "run", progress=False)
    return root / "run"


def test_pte_matches_pytorch_on_one_window(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.pte"
    report = export_pte(run, out, verbose=False)
    assert report["parity"]["ok"] and out.stat().st_size == report["bytes"]
    meta = json.loads(Path(f"{out}.json").read_text())
    pre = load(run)
    window, _ = window_samples(pre)
    assert meta["window_samples"] == str(window) and meta["format"].startswith("executorch")
    wave = (0.2 * np.random.default_rng(0).standard_normal(window)).astype(np.float32)
    got = load_pte(out).execute([torch.from_numpy(wave[None])])[0].numpy()[0]
    np.testing.assert_allclose(got, pre.embed(wave), atol=1e-4 * max(1, np.abs(got).max()))
    assert not list(tmp_path.glob(".model.pte.*"))  # no staging file left behind


def test_bad_pte_files_and_options_fail_clearly(run: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pte"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ExportError, match="bad.pte: cannot be loaded"):
        load_pte(bad)
    with pytest.raises(ExportError, match="no such .pte file"):
        load_pte(tmp_path / "missing.pte")
    rc = main(["export", str(run), "--format", "pte", "--int8", "--out", str(tmp_path / "m.pte")])
    assert rc == 2 and "--int8 is for --format onnx" in capsys.readouterr().err
    assert main(["export", str(run), "--format", "pte", "--out", str(tmp_path / "m.pte")]) == 0
