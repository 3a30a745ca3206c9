"""`pocketear subnet`: search a once-for-all distillation run under a budget, write a KWT run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pocketear.cli import main
from pocketear.encoders.supernet import Subnet
from pocketear.export import export_onnx
from pocketear.model import load
from pocketear.train.build import load_modules
from pocketear.train.config import load_config
from pocketear.train.loop import pretrain
from pocketear.train.subnet import load_supernet_run, search
from tests.conftest import write_tone_manifest

COMMON = ["optim.batch_size=4", "optim.warmup_steps=1", "train.threads=1", "task.slice_frames=48"]
SPACE = ["encoder.name=kwt_super", "encoder.dims=16,32", "encoder.depths=1,2",
         "encoder.heads=1,2", "encoder.mlp_ratios=2,4", "encoder.head_dim=8",
         "encoder.input_frames=48"]


@pytest.fixture(scope="module")
def supernet_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("subnet")
    write_tone_manifest(root, 8, seconds=1.0)
    audio = root / "audio"
    pretrain(load_config(None, ["task.name=data2vec", "encoder.name=kwt1", "encoder.depth=2",
                                "encoder.input_frames=48", f"data.source={audio}",
                                "train.steps=2", *COMMON]), root / "teacher", progress=False)
    pretrain(load_config(None, ["task.name=distill", f"task.teacher={root / 'teacher'}",
                                "task.mask_ratio=0.5", *SPACE, f"data.source={audio}",
                                "train.steps=3", *COMMON]), root / "super", progress=False)
    return root / "super"


def test_search_ranks_the_subnets_within_the_budget(supernet_run: Path) -> None:
    everything = search(supernet_run, 1e12, progress=False)
    assert everything["searched"] == everything["space"] == 16
    losses = [r["proxy_loss"] for r in everything["ranking"]]
    assert losses == sorted(losses)
    cheap = min(r["macs_per_second"] for r in everything["ranking"])
    budget = search(supernet_run, cheap * 1.5, params_budget=30_000, progress=False)
    assert 0 < budget["searched"] < 16
    assert all(r["macs_per_second"] <= cheap * 1.5 and r["params"] <= 30_000
               for r in budget["ranking"])


def test_cli_writes_a_standalone_subnet_that_loads_evaluates_and_exports(
        supernet_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "small"
    assert main(["subnet", str(supernet_run), "--macs-budget", "2M", "--out", str(out),
                 "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().out
    info = json.loads((out / "subnet.json").read_text())
    assert info["macs_per_second"] <= 2e6 and info["max_abs_diff"] <= 1e-5
    frontend, kwt, cfg, _ = load_modules(out)
    assert cfg["encoder"]["name"] == "kwt1" and type(kwt).__name__ == "KWT"
    task, _, _ = load_supernet_run(supernet_run)
    task.encoder.set_active(Subnet.parse(info["subnet"]))  # type: ignore[operator]
    x = torch.randn(2, 1, 48, 64)
    with torch.no_grad():
        assert torch.allclose(task.encoder(x), kwt.eval()(x), atol=1e-6)
    rep = export_onnx(load(out), tmp_path / "small.onnx", verbose=False)
    assert rep["parity_fp32"]["ok"]
    assert main(["evaluate", str(out), "--suite", str(supernet_run.parent / "labels.csv"),
                 "--seeds", "1", "--workers", "1", "--out", str(tmp_path / "eval"),
                 "--no-progress"]) == 0


def test_no_subnet_under_the_budget_and_not_a_supernet_run(supernet_run: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    assert main(["subnet", str(supernet_run), "--macs-budget", "1k", "--no-progress"]) != 0
    assert "the smallest" in capsys.readouterr().err
    teacher = supernet_run.parent / "teacher"
    assert main(["subnet", str(teacher), "--macs-budget", "1M", "--no-progress"]) != 0
    assert "kwt_super" in capsys.readouterr().err
