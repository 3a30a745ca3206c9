import json
from pathlib import Path

import numpy as np
import pytest
import torch

import pocketear
from pocketear.cli import main
from pocketear.registry import get
from pocketear.train.batches import BatchSampler
from pocketear.train.checkpoint import CheckpointError, load_checkpoint
from pocketear.train.config import ConfigError, load_config
from pocketear.train.loop import pretrain, warmup_cosine


def _cfg(data: Path, task: str = "temporal_gap", steps: int = 6, **extra: str) -> dict:
    sets = [f"task.name={task}", "encoder.name=mobile_tiny", f"data.source={data}",
            f"train.steps={steps}", "optim.batch_size=4", "optim.warmup_steps=2",
            "train.log_every=1", "train.monitor_every=2", "train.ckpt_every=3",
            "data.workers=1", "train.threads=1"]
    sets += [f"{k}={v}" for k, v in extra.items()]
    return load_config(None, sets)


def test_run_folder_contents(tone_folder: Path, tmp_path: Path) -> None:
    summary = pretrain(_cfg(tone_folder), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "checkpoints/last.pt"):
        assert (run / name).exists(), name
    assert list((run / "tb").glob("events.out.tfevents.*"))
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4, 5, 6]
    assert {"emb_std", "eff_rank"} <= set(lines[1])
    assert summary["steps"] == 6 and np.isfinite(summary["final"]["loss"])
    state = load_checkpoint(run)
    assert state["config"]["task"]["name"] == "temporal_gap"
    assert state["config"]["task"]["slice_frames"] == 96  # defaults resolved into the checkpoint
    assert state["sample_rate"] == 16000


def test_resume_matches_uninterrupted_run(tone_folder: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pretrain(_cfg(tone_folder), tmp_path / "full", progress=False)
    original = BatchSampler.batch

    def killed(self, step):  # the process dies during step 5 (after the step-3 checkpoint)
        if step == 4:
            raise KeyboardInterrupt
        return original(self, step)

    monkeypatch.setattr(BatchSampler, "batch", killed)
    with pytest.raises(KeyboardInterrupt):
        pretrain(_cfg(tone_folder), tmp_path / "killed", progress=False)
    assert load_checkpoint(tmp_path / "killed")["step"] == 3
    monkeypatch.setattr(BatchSampler, "batch", original)
    summary = pretrain({"train": {"steps": 0}}, tmp_path / "killed", resume=True,
                       progress=False)
    assert summary["resumed_from"] == 3
    full = load_checkpoint(tmp_path / "full")["task"]
    resumed = load_checkpoint(tmp_path / "killed")["task"]
    for key in full:
        torch.testing.assert_close(resumed[key], full[key], rtol=1e-5, atol=1e-6, msg=key)
    steps = [json.loads(x)["step"] for x in
             (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_existing_run_needs_resume(tone_folder: Path, tmp_path: Path) -> None:
    pretrain(_cfg(tone_folder, steps=1), tmp_path / "run", progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        pretrain(_cfg(tone_folder, steps=1), tmp_path / "run", progress=False)


def test_config_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(None, ["task.name=triplet", "task.nonsense=3"])
    with pytest.raises(KeyError, match="no task named 'nope'"):
        load_config(None, ["task.name=nope"])
    with pytest.raises(ConfigError):
        load_config(None, ["optim.lr=fast"])


def test_yaml_config_and_overrides(tmp_path: Path) -> None:
    yaml = tmp_path / "c.yaml"
    yaml.write_text("task: {name: triplet, margin: 0.3}\noptim: {lr: 0.01}\n")
    cfg = load_config(yaml, ["optim.lr=0.001"])
    assert cfg["task"]["margin"] == 0.3 and cfg["optim"]["lr"] == 0.001


def test_checkpoint_never_unpickles(tmp_path: Path) -> None:
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"format": "pocketear-checkpoint", "x": Evil()}))
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(bad)
    truncated = tmp_path / "t.pt"
    truncated.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match=str(truncated)):
        load_checkpoint(truncated)


def test_warmup_cosine_shape() -> None:
    values = [warmup_cosine(s, 10, 100) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[-1] < 0.01 and all(a >= b for a, b in zip(values[10:], values[11:], strict=False))


def test_cli_pretrain_and_python_load(tone_folder: Path, tmp_path: Path) -> None:
    rc = main(["pretrain", "--task", "triplet", "--encoder", "mobile_tiny", "--data",
               str(tone_folder), "--steps", "2", "--out", str(tmp_path / "run"),
               "--set", "optim.batch_size=4", "--set", "data.workers=1", "--no-progress"])
    assert rc == 0
    model = pocketear.load(tmp_path / "run")
    emb = model.embed(next(tone_folder.rglob("*.wav")))
    assert emb.shape == (model.embed_dim,) and np.isfinite(emb).all()
    # the frontend carries the corpus normalisation statistics
    assert model.frontend.normalised and float(model.frontend.std.min()) > 0


def test_cli_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["pretrain", "--task", "triplet", "--data", str(tmp_path / "missing"),
               "--out", str(tmp_path / "run"), "--no-progress"])
    assert rc == 2 and "no such folder" in capsys.readouterr().err


@pytest.mark.parametrize("task", [t for t in pocketear.available("task")
                                  if get("task", t).default_augment])
def test_tasks_with_their_own_augmentations_train_and_resume(task: str, tone_folder: Path,
                                                             tmp_path: Path) -> None:
    """The default augmentation chain fits on the corpus, trains, and resumes from its stored state.

    The paper's chain is used when the config names none; a resumed run continues from the stored
    augmentation state.
    """
    cfg = _cfg(tone_folder, task, steps=3, **{"task.slice_frames": 48})
    assert cfg["augment"] == get("task", task).default_augment
    pretrain(cfg, tmp_path / "run", progress=False)
    summary = pretrain({"train": {"steps": 4}}, tmp_path / "run", resume=True, progress=False)
    assert summary["resumed_from"] == 3 and np.isfinite(summary["final"]["loss"])
