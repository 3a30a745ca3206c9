"""Frame targets of HuBERT and BEATs, and the tasks that read them from files.

MFCC features, nearest-code labels, the random-projection tokenizer's determinism, target-file
round trips, and the tasks using files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pocketear.data.frame_targets import (
    FrameLabeler,
    dct_matrix,
    load_targets,
    mfcc,
    nearest,
    pool_frames,
    random_projection_tokenizer,
    save_targets,
)
from pocketear.registry import create, get


def test_dct_is_orthonormal_and_mfcc_shape() -> None:
    c = dct_matrix(16, 16)
    torch.testing.assert_close(c.T @ c, torch.eye(16), atol=1e-5, rtol=0)
    x = torch.randn(3, 50, 16)
    f = mfcc(x)
    assert f.shape == (3, 50, 39)
    # a constant-in-time input has zero deltas
    flat = mfcc(torch.ones(1, 20, 16) * torch.arange(16.0))
    assert flat[..., 13:].abs().max() < 1e-5


def test_pool_frames_and_nearest() -> None:
    x = torch.arange(10.0).reshape(1, 10, 1)
    torch.testing.assert_close(pool_frames(x, 5)[0, :, 0], torch.tensor([0.5, 2.5, 4.5, 6.5,
                                                                         8.5]))
    torch.testing.assert_close(pool_frames(x, 4)[0, :, 0], torch.tensor([1.0, 4.0, 7.0, 9.0]))
    book = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, -3.0]])
    feats = torch.tensor([[1.0, 0.5], [9.0, 1.0], [0.2, -2.0]])
    assert nearest(feats, book[:], "euclidean").tolist() == [0, 1, 2]
    assert nearest(torch.tensor([[0.1, -5.0], [3.0, 0.1]]), book[1:], "cosine").tolist() == [1, 0]


def test_random_projection_tokenizer_is_deterministic() -> None:
    a, b = random_projection_tokenizer(32, 8, 64, seed=3), random_projection_tokenizer(32, 8, 64,
                                                                                       seed=3)
    c = random_projection_tokenizer(32, 8, 64, seed=4)
    assert torch.equal(a.projection, b.projection) and torch.equal(a.codebook, b.codebook)
    assert not torch.equal(a.codebook, c.codebook)
    x = torch.randn(4, 20, 16)
    la, lb, lc = a(x, 10), b(x, 10), c(x, 10)
    assert la.shape == (4, 10) and torch.equal(la, lb) and not torch.equal(la, lc)
    assert len(torch.unique(la)) > 3  # random patches spread over several codes


def test_beats_tokenizer_from_seed_survives_state_dict(make_encoder) -> None:
    cls = get("task", "beats")
    t1, t2 = cls(make_encoder(seed=0)), cls(make_encoder(seed=1))
    assert torch.equal(t1.labeler.codebook, t2.labeler.codebook)  # a function of cfg.seed only
    t3 = cls(make_encoder(), cls.Config(seed=5))
    t3.load_state_dict(t1.state_dict())
    assert torch.equal(t3.labeler.projection, t1.labeler.projection)


def test_targets_file_round_trip(tmp_path: Path) -> None:
    book = np.random.default_rng(0).standard_normal((7, 39)).astype(np.float32)
    path = save_targets(tmp_path / "t.npz", book, "mfcc", meta={"k": 7})
    lab = load_targets(path)
    assert lab.kind == "mfcc" and lab.metric == "euclidean" and lab.k == 7
    np.testing.assert_array_equal(lab.codebook.numpy(), book)
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        assert str(z["format"]).startswith("pocketear-targets")
    # model targets embed the encoder: labels equal those of the original encoder
    torch.manual_seed(0)
    enc = create("encoder", "kwt1", depth=2, n_mels=16)
    book = torch.randn(5, 64)
    path = save_targets(tmp_path / "m.npz", book.numpy(), "model", layer=1,
                        encoder_cfg={"name": "kwt1", "depth": 2, "n_mels": 16},
                        encoder_state=enc.state_dict())
    lab = load_targets(path)
    x = torch.randn(2, 30, 16)
    ref = FrameLabeler("model", book, encoder=enc, layer=1)
    assert torch.equal(lab(x, 30), ref(x, 30))
    assert not any(p.requires_grad for p in lab.parameters())


def test_bad_targets_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="pocketear cluster"):
        load_targets(tmp_path / "none.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a pocketear targets file"):
        load_targets(tmp_path / "other.npz")


def test_hubert_with_a_targets_file(tmp_path: Path, make_encoder, make_batch) -> None:
    book = np.random.default_rng(0).standard_normal((12, 16)).astype(np.float32)
    path = save_targets(tmp_path / "t.npz", book, "logmel")
    cls = get("task", "hubert")
    task = cls(make_encoder(), cls.Config(targets=str(path)))
    assert task.classifier.codes.shape[0] == 12
    loss, logs = task.step(make_batch(task, size=4))
    assert torch.isfinite(loss) and logs["targets_fitted_on"] == 0.0
    assert logs["label_perplexity"] > 1.5


def test_hubert_on_the_fly_kmeans_is_fitted_once(make_encoder, make_batch) -> None:
    cls = get("task", "hubert")
    task = cls(make_encoder(), cls.Config(k=10))
    batch = make_batch(task, size=4)
    _, logs = task.step(batch)
    book = task.labeler.codebook.clone()
    assert logs["targets_fitted_on"] == 4 * 96 and book.abs().sum() > 0
    task.step(make_batch(task, size=4, seed=1))
    assert torch.equal(book, task.labeler.codebook)  # not refitted
    clone = cls(make_encoder(seed=1), task.cfg)
    clone.load_state_dict(task.state_dict())
    assert torch.equal(clone.labeler.codebook, book) and int(clone.fitted_frames) == 384
