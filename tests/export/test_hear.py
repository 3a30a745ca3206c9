"""HEAR API: the checks of the public ``hear-validator`` (hearvalidator/validate.py), reproduced."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pocketear import hear
from pocketear.export.runtime import TorchEmbedder
from pocketear.model import Pretrained

ACCEPTABLE_SAMPLE_RATES = (16000, 22050, 44100, 48000)


@pytest.fixture(scope="module")
def model(pre: Pretrained) -> hear.HearModel:
    return hear.HearModel(TorchEmbedder(pre))


def _noise(n: int, seconds: float, sr: int) -> torch.Tensor:
    return torch.rand((n, int(seconds * sr))) * 2 - 1  # what the validator feeds


def _check_timestamps(model: hear.HearModel, num_audio: int, length: float) -> None:
    emb, ts = hear.get_timestamp_embeddings(_noise(num_audio, length, model.sample_rate), model)
    assert emb.dtype == torch.float32 and ts.dtype == torch.float32
    emb, ts = emb.detach().cpu().numpy(), ts.detach().cpu().numpy()
    assert emb.ndim == 3 and ts.ndim == 2 and emb.shape[0] == num_audio
    assert emb.shape[:2] == ts.shape and emb.shape[2] == model.timestamp_embedding_size
    assert np.isfinite(emb).all()
    diff = np.diff(ts)
    avg = diff.mean()
    assert diff.max() <= 50.0  # the validator warns above 50 ms
    assert np.abs(diff - avg).max() <= 1  # evenly spaced (error above 1 ms)
    assert ts.min() <= avg and ts.min() == 0  # starts at 0 (warning otherwise)
    assert ts.max() >= 1000 * length - avg and ts.max() >= 1000 * length - 50  # no warning
    assert ts.max() <= 1000 * length  # error if beyond the audio


def test_model_attributes(model: hear.HearModel) -> None:
    assert isinstance(model, torch.nn.Module)  # the validator rejects anything else
    assert model.sample_rate in ACCEPTABLE_SAMPLE_RATES
    assert isinstance(model.scene_embedding_size, int)
    assert isinstance(model.timestamp_embedding_size, int)
    model.to("cpu")  # the validator moves the model to its device


@pytest.mark.parametrize("length", [1.07, 1.98, 4.0])
def test_timestamp_embeddings_pass_validator_checks(model: hear.HearModel, length: float) -> None:
    _check_timestamps(model, 2, length)


def test_scene_embeddings_pass_validator_checks(model: hear.HearModel, pre: Pretrained) -> None:
    audio = _noise(4, 2.74, model.sample_rate)
    emb = hear.get_scene_embeddings(audio, model)
    assert emb.dtype == torch.float32 and emb.shape == (4, model.scene_embedding_size)
    ref = np.stack([pre.embed(a.numpy()) for a in audio])
    assert np.abs(emb.numpy() - ref).max() < 1e-5  # scene embedding == Pretrained.embed


def test_short_clip_and_window_centring(model: hear.HearModel, pre: Pretrained) -> None:
    audio = _noise(3, 0.2, model.sample_rate)
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    assert ts[0].tolist() == [0.0, 50.0, 100.0, 150.0, 200.0] and emb.shape == (3, 5, 128)
    assert hear.get_scene_embeddings(audio, model).shape == (3, 128)
    # The embedding at t is the clip embedding of the zero-padded window centred on t.
    wave = audio[1].numpy()
    padded = np.concatenate([np.zeros(7800, np.float32), wave, np.zeros(7800, np.float32)])
    k = 2  # 100 ms = sample 1600
    window = padded[1600 : 1600 + 15600]
    assert np.abs(emb[1, k].numpy() - pre.embed(window)).max() < 1e-5


def test_load_model_without_weights_is_a_random_mobile_100() -> None:
    with pytest.warns(UserWarning, match="randomly initialised"):
        model = hear.load_model()
    # mobile_100 read out at the default meanmax:features: the 512-d map before the projection
    assert model.scene_embedding_size == 512 and model.sample_rate == 16000
    _check_timestamps(model, 2, 1.07)
