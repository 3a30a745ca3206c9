"""ONNX export: parity (fp32 tight, int8 cosine), metadata, refusal, bad files, every encoder."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

import pocketear
from pocketear.export import ExportError, ModelFileError, OnnxEmbedder, embed_files, export_onnx
from pocketear.export import onnx as onnx_export
from pocketear.frontends.logmel import LogMel
from pocketear.hear import get_scene_embeddings, get_timestamp_embeddings, load_model
from pocketear.model import Pretrained, load
from pocketear.registry import available, create

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
SR = 16000


def _tones(root: Path, n: int = 6, seconds: float = 3.0) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    for i in range(n):
        f = (200 + 40 * i) if i % 2 else (2000 + 150 * i)
        wave = 0.4 * np.sin(2 * np.pi * f * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t))
        wave += 0.05 * rng.standard_normal(t.size)
        (root / ("low" if i % 2 else "high")).mkdir(parents=True, exist_ok=True)
        sf.write(root / ("low" if i % 2 else "high") / f"c{i}.wav", wave.astype(np.float32), SR)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 3-step triplet run of mobile_tiny, its fp32 and int8 exports (shared by the module)."""
    from pocketear.train.config import load_config
    from pocketear.train.loop import pretrain

    root = tmp_path_factory.mktemp("export")
    audio = _tones(root / "audio")
    cfg = load_config(None, ["task.name=triplet", "encoder.name=mobile_tiny",
                             f"data.source={audio}", "train.steps=3", "optim.batch_size=4",
                             "data.workers=1",
                             # int8 quantises layers of >= 4096 weights: mobile_tiny's only one
                             # is its projection, which the default read-out (features) skips
                             "encoder.readout=meanmax:proj"])
    pretrain(cfg, root / "run", progress=False)
    ckpt = root / "run" / "checkpoints" / "last.pt"
    fp32 = export_onnx(ckpt, root / "out" / "model.onnx", verbose=False)
    int8 = export_onnx(ckpt, root / "out" / "model_int8.onnx", int8=True, calibration=audio,
                       verbose=False)
    return {"root": root, "audio": audio, "ckpt": ckpt, "pre": load(ckpt), "fp32": fp32,
            "int8": int8}


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_fp32_parity_is_tight_for_any_length_and_batch(trained: dict[str, Any]) -> None:
    rep = trained["fp32"]["parity_fp32"]
    assert rep["ok"] and rep["max_abs_diff"] < 1e-5  # measured ~2e-7 on embeddings of ~0.17
    pre, onnx_model = trained["pre"], OnnxEmbedder(trained["fp32"]["path"])
    rng = np.random.default_rng(3)
    for n in (1, 399, 5000, 15600, 15761, 40000, 3 * 15360 + 240):
        wave = (0.3 * rng.standard_normal(n)).astype(np.float32)
        assert np.abs(onnx_model.embed(wave) - pre.embed(wave)).max() < 1e-5, n
    batch = (0.3 * rng.standard_normal((3, 20000))).astype(np.float32)
    ref = np.stack([pre.embed(w) for w in batch])
    assert np.abs(onnx_model.embed_batch(batch) - ref).max() < 1e-5
    assert np.abs(onnx_model.embed_batch(batch[:1]) - ref[:1]).max() < 1e-5


def test_int8_is_static_qdq_close_to_pytorch_and_smaller(trained: dict[str, Any]) -> None:
    import onnx

    rep = trained["int8"]
    assert rep["parity_int8"]["ok"] and rep["parity_int8"]["min_cosine"] >= 0.99
    assert rep["calibration"]["windows"] > 0 and rep["quantized"]["count"] >= 1
    ops = {n.op_type for n in onnx.load(rep["path"]).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format, not dynamic
    assert "DynamicQuantizeLinear" not in ops and "STFT" not in ops
    assert rep["bytes"] < trained["fp32"]["bytes"]
    pre, model = trained["pre"], OnnxEmbedder(rep["path"])
    for clip in sorted(trained["audio"].rglob("*.wav"))[:3]:
        assert _cos(model.embed(clip), pre.embed(clip)) >= 0.99


def test_one_file_with_metadata(trained: dict[str, Any]) -> None:
    import onnx

    path = Path(trained["fp32"]["path"])
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx", "model_int8.onnx"]
    proto = onnx.load(str(path), load_external_data=False)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["sample_rate"] == "16000" and meta["window_samples"] == "15600"
    assert meta["hop_samples"] == "15360" and meta["embedding_size"] == "128"
    assert meta["encoder"] == "mobile_tiny" and meta["pocketear_version"] == pocketear.__version__
    assert meta["checkpoint_sha256"] == hashlib.sha256(trained["ckpt"].read_bytes()).hexdigest()
    assert meta["quantization"] == "none"
    assert OnnxEmbedder(trained["int8"]["path"]).metadata["quantization"].startswith("int8")
    assert not any(n.metadata_props for n in proto.graph.node)  # exporter debug info stripped


def test_export_refuses_bad_parity_unless_forced(trained: dict[str, Any], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    fp32 = Path(trained["fp32"]["path"])

    def fake_graph(pre: Pretrained, path: Path, opset: int | None = None) -> Path:
        shutil.copy(fp32, path)  # skip the slow exporter: the parity check is what is tested
        return Path(path)

    def bad_parity(pre: Pretrained, session: Any, int8: bool) -> dict[str, Any]:
        return {"max_abs_diff": 0.5, "max_abs_ref": 1.0, "min_cosine": 0.4, "fp32_limit": 1e-4,
                "int8_min_cosine": 0.99, "ok": False}

    monkeypatch.setattr(onnx_export, "export_graph", fake_graph)
    monkeypatch.setattr(onnx_export, "check_parity", bad_parity)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match=r"max abs diff 5\.00e-01"):
        export_onnx(trained["pre"], out, verbose=False)
    assert not out.exists() and not list(tmp_path.iterdir())
    with pytest.warns(UserWarning, match="despite failed parity"):
        rep = export_onnx(trained["pre"], out, force=True, verbose=False)
    assert rep["forced"] and out.is_file()


def test_corrupt_truncated_or_foreign_files_fail_clearly(trained: dict[str, Any],
                                                         tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    data = Path(trained["fp32"]["path"]).read_bytes()
    cases = {"truncated.onnx": data[: len(data) // 2], "garbage.onnx": b"\x00not onnx" * 50,
             "empty.onnx": b"", "tail_cut.onnx": data[:-20]}
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(ModelFileError, match=name.replace(".", r"\.")):
            OnnxEmbedder(tmp_path / name)
    with pytest.raises(ModelFileError, match="no such"):
        OnnxEmbedder(tmp_path / "missing.onnx")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    foreign = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])],
                                                  "g", [x], [helper.make_tensor_value_info(
                                                      "y", TensorProto.FLOAT, [1])]),
                                ir_version=8, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(foreign, tmp_path / "foreign.onnx")
    with pytest.raises(ModelFileError, match="not a complete pocketear export"):
        OnnxEmbedder(tmp_path / "foreign.onnx")


def test_onnx_backend_matches_checkpoint_in_embed_files_and_hear(trained: dict[str, Any],
                                                                 tmp_path: Path) -> None:
    files = sorted(trained["audio"].rglob("*.wav"))[:2]
    a = embed_files(trained["fp32"]["path"], files, tmp_path / "a.npz", progress=False)
    b = embed_files(trained["ckpt"], files, tmp_path / "b.npz", progress=False)
    assert (a["backend"], b["backend"]) == ("onnx", "torch")
    ea, eb = np.load(tmp_path / "a.npz")["embeddings"], np.load(tmp_path / "b.npz")["embeddings"]
    assert ea.shape == (2, 128) and np.abs(ea - eb).max() < 1e-5
    audio = torch.rand(2, int(1.3 * SR)) * 2 - 1
    onnx_model, torch_model = load_model(trained["fp32"]["path"]), load_model(str(trained["ckpt"]))
    (e1, t1), (e2, t2) = (get_timestamp_embeddings(audio, m) for m in (onnx_model, torch_model))
    assert torch.equal(t1, t2) and (e1 - e2).abs().max() < 1e-5
    s1, s2 = get_scene_embeddings(audio, onnx_model), get_scene_embeddings(audio, torch_model)
    assert (s1 - s2).abs().max() < 1e-5


@pytest.mark.parametrize("name", available("encoder"))
def test_every_registered_encoder_exports(name: str, tmp_path: Path) -> None:
    """Random init with non-trivial stats; fp32 only (one export ~4 s each).

    Encoders over 1 M parameters are skipped unless POCKETEAR_SLOW_TESTS=1 (their export and
    parity take longer).
    """
    torch.manual_seed(0)
    encoder = create("encoder", name, n_mels=64)  # the log-mel's bins (spice defaults to 190)
    if encoder.params > 1_000_000 and not os.environ.get("POCKETEAR_SLOW_TESTS"):
        pytest.skip(f"{name} has {encoder.params:,} parameters; set POCKETEAR_SLOW_TESTS=1")
    frontend = LogMel()
    frontend.set_stats(torch.linspace(-9, -4, 64), torch.linspace(2, 3, 64))
    pre = Pretrained(frontend, encoder, {"encoder": {"name": name}})
    rep = export_onnx(pre, tmp_path / f"{name}.onnx", verbose=False)
    assert rep["parity_fp32"]["ok"] and rep["metadata"]["encoder"] == name
    assert rep["metadata"]["checkpoint_sha256"] == "unknown"
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, 15600).astype(np.float32)
    emb = OnnxEmbedder(rep["path"]).embed(wave)
    assert emb.shape == (pre.embed_dim,)
    assert np.abs(emb - pre.embed(wave)).max() <= rep["parity_fp32"]["fp32_limit"]
