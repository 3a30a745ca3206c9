"""The typed run config: what the loop reads, its stored form and early encoder checks."""

from __future__ import annotations

import pytest

from pocketear.frontends.logmel import LogMelConfig
from pocketear.registry import get
from pocketear.train.build import build_encoder, build_frontend
from pocketear.train.config import ConfigError, RunConfig, load_config, resolve


def test_resolve_types_every_section() -> None:
    cfg = resolve(load_config(None, ["task.name=triplet", "task.margin=0.3", "train.steps=7",
                                     "encoder.name=mobile_tiny", "encoder.embed_dim=32"]))
    assert isinstance(cfg, RunConfig) and cfg.task_name == "triplet"
    assert isinstance(cfg.task, get("task", "triplet").Config) and cfg.task.margin == 0.3
    assert cfg.train.steps == 7 and isinstance(cfg.frontend, LogMelConfig)
    assert cfg.encoder.name == "mobile_tiny" and cfg.encoder.options == {"embed_dim": 32}
    assert resolve(cfg) is cfg


def test_stored_form_round_trips() -> None:
    plain = load_config(None, ["task.name=byol_a", "optim.lr=0.01"])
    cfg = resolve(plain)
    assert cfg.to_dict() == plain and resolve(cfg.to_dict()) == cfg
    longer = cfg.with_train(steps=cfg.train.steps + 5)
    assert longer.train.steps == cfg.train.steps + 5 and cfg.train.steps == plain["train"]["steps"]


@pytest.mark.parametrize(("sets", "match"), [
    (["encoder.name=kwt1", "encoder.embed_dim=32"], "unknown option.*embed_dim"),
    (["encoder.name=mobile_100", "encoder.widht=2"], "unknown option.*widht"),
    (["encoder.name=mobile_100", "encoder.width=2"], "multiple values"),
    (["encoder.name=kwt1", "encoder.depth=0"], "must be >= 1"),
    (["train.stepz=3"], "stepz"),
])
def test_encoder_and_section_mistakes_fail_in_resolve(sets: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(None, ["task.name=triplet", *sets])


def test_a_model_config_needs_no_task() -> None:
    """Baselines and older callers describe only a model: encoder and frontend."""
    cfg = {"encoder": {"name": "mobile_tiny"}, "frontend": {"n_mels": 40}}
    assert build_encoder(cfg).n_mels == 40
    assert build_frontend(cfg).cfg.n_mels == 40
    with pytest.raises(ConfigError, match="task.name is missing"):
        resolve(cfg)
