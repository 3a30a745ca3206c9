"""``frontend.name``: typed configs, stored form, cache keys and pooled stats of the CQT."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pocketear.errors import InvalidValue
from pocketear.frontends import (
    CQT,
    CQTConfig,
    LogMel,
    LogMelConfig,
    create_frontend,
    frontend_config,
    stored_frontend,
)


def test_name_picks_the_config_and_defaults_to_logmel():
    assert frontend_config(None) == LogMelConfig()
    assert frontend_config({"n_mels": 40}) == LogMelConfig(n_mels=40)
    assert frontend_config({"name": "cqt", "n_bins": 120}) == CQTConfig(n_bins=120)
    assert isinstance(create_frontend(CQTConfig()), CQT)
    assert isinstance(create_frontend(LogMelConfig()), LogMel)


@pytest.mark.parametrize("given", [{"name": "mfcc"}, {"name": "cqt", "n_mels": 64},
                                   {"hop_length": 0, "name": "cqt"}])
def test_bad_frontend_config_is_a_clear_error(given):
    with pytest.raises(InvalidValue, match="frontend"):
        frontend_config(given)


@pytest.mark.parametrize("cfg", [LogMelConfig(n_mels=40), CQTConfig(hop_length=256)])
def test_stored_form_round_trips_and_keys_differ(cfg):
    stored = stored_frontend(cfg)
    assert stored["name"] == cfg.name
    assert frontend_config(stored) == cfg and frontend_config(stored).key() == cfg.key()
    assert LogMelConfig().key() != CQTConfig().key()


def test_cqt_stats_are_pooled_so_a_shift_stays_a_translation():
    fe = CQT()
    rng = np.random.default_rng(0)
    mean, std = rng.normal(-3, 1, 190), rng.uniform(0.5, 2, 190)
    fe.set_stats(mean, std)
    assert torch.allclose(fe.mean, torch.full((190,), float(np.mean(mean))))
    pooled = np.sqrt(np.mean(std ** 2 + (mean - mean.mean()) ** 2))  # all bins' frames together
    assert torch.allclose(fe.std, torch.full((190,), float(pooled)))
    x = torch.randn(3, 190)
    assert torch.allclose(fe.normalise(x.roll(4, -1)), fe.normalise(x).roll(4, -1))
    t = torch.arange(16000) / 16000
    low, high = (torch.sin(2 * torch.pi * f * t)[None] for f in (220.0, 220.0 * 2 ** (4 / 24)))
    a, b = fe(low)[0, 0, 10], fe(high)[0, 0, 10]
    assert int(b.argmax()) - int(a.argmax()) == 4
    assert abs(float(a.max() - b.max())) < 0.05  # same peak level after normalising


def test_stats_survive_a_state_dict_round_trip():
    fe = CQT()
    fe.set_stats(np.full(190, -2.0), np.full(190, 3.0))
    other = CQT()
    other.load_state_dict(fe.state_dict())
    assert other.uses_stats and float(other.mean[0]) == -2.0
