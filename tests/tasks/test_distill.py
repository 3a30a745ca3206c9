"""Distillation from a frozen teacher checkpoint (DistilHuBERT's layer-wise loss)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pocketear.registry import create
from pocketear.tasks.distill import Distill, align_time, distill_loss
from pocketear.train.checkpoint import load_checkpoint
from pocketear.train.config import ConfigError, load_config
from pocketear.train.loop import pretrain

COMMON = ["optim.batch_size=4", "optim.warmup_steps=1", "train.threads=1", "task.slice_frames=48"]


def _kwt(depth: int = 3):
    torch.manual_seed(0)
    return create("encoder", "kwt1", depth=depth, input_frames=48, n_mels=64)


def test_layer_targets_are_the_teachers_blocks() -> None:
    teacher = _kwt(depth=3)
    task = Distill(create("encoder", "mobile_tiny"), Distill.Config(slice_frames=48))
    task.set_teacher(teacher, (np.zeros(64), np.ones(64)))
    assert task.layer_ids == [1, 2, 3] and len(task.heads) == 3
    x = torch.randn(2, 1, 48, 64)
    got = task._teacher_layers(teacher, x)
    want = teacher.layer_outputs(x)
    assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))
    assert not any(p.requires_grad for p in teacher.parameters())
    with pytest.raises(Exception, match="task.layers"):
        Distill(create("encoder", "mobile_tiny"),
                Distill.Config(slice_frames=48, layers="7")).set_teacher(teacher, (0, 1))


def test_loss_is_zero_for_a_perfect_prediction_only() -> None:
    t = torch.randn(2, 5, 8)
    real = torch.ones(2, 5, dtype=torch.bool)
    perfect, l1, cos = distill_loss(t, t, real)
    assert float(l1) == 0 and float(cos) == pytest.approx(1.0)
    worse, _, _ = distill_loss(t + 0.5 * torch.randn_like(t), t, real)
    assert float(worse) > float(perfect)
    assert align_time(torch.randn(2, 12, 4), 6).shape == (2, 6, 4)


def test_distill_a_pretrained_teacher_into_a_small_student(tone_folder: Path,
                                                           tmp_path: Path) -> None:
    teacher_run = tmp_path / "teacher"
    pretrain(load_config(None, ["task.name=data2vec", "encoder.name=kwt1", "encoder.depth=2",
                                "encoder.input_frames=48", f"data.source={tone_folder}",
                                "train.steps=2", *COMMON]), teacher_run, progress=False)
    before = load_checkpoint(teacher_run)["task"]
    out = tmp_path / "student"
    summary = pretrain(load_config(None, [
        "task.name=distill", f"task.teacher={teacher_run}", "encoder.name=mobile_tiny",
        f"data.source={tone_folder}", "train.steps=3", "train.log_every=1", *COMMON]),
        out, progress=False)
    assert np.isfinite(summary["final"]["loss"]) and "cos_2" in summary["final"]
    state = load_checkpoint(out)
    assert not any(k.startswith("teacher.") for k in state["task"])
    # the student reads its inputs with the teacher's normalisation
    assert torch.equal(state["frontend"]["mean"], load_checkpoint(teacher_run)["frontend"]["mean"])
    assert all(torch.equal(v, load_checkpoint(teacher_run)["task"][k]) for k, v in before.items())
    resumed = pretrain({"train": {"steps": 4}}, out, resume=True, progress=False)
    assert resumed["resumed_from"] == 3


def test_a_teacher_with_another_sample_rate_is_refused(tone_folder: Path, tmp_path: Path) -> None:
    teacher_run = tmp_path / "teacher"
    pretrain(load_config(None, ["task.name=temporal_gap", "encoder.name=mobile_tiny",
                                f"data.source={tone_folder}", "train.steps=1",
                                "frontend.sample_rate=8000", "frontend.n_fft=256",
                                "frontend.fmax=3800", *COMMON]),
             teacher_run, progress=False)
    with pytest.raises(ConfigError, match="sample_rate"):
        pretrain(load_config(None, ["task.name=distill", f"task.teacher={teacher_run}",
                                    "encoder.name=mobile_tiny", f"data.source={tone_folder}",
                                    "train.steps=1", *COMMON]), tmp_path / "s", progress=False)
    with pytest.raises(ConfigError, match="needs a teacher"):
        pretrain(load_config(None, ["task.name=distill", "encoder.name=mobile_tiny",
                                    f"data.source={tone_folder}", "train.steps=1", *COMMON]),
                 tmp_path / "s2", progress=False)


def test_a_registered_encoder_can_be_the_teacher(tone_folder: Path, tmp_path: Path) -> None:
    """``encoder:NAME``: how a wrapped third-party model (a registered factory) is used."""
    summary = pretrain(load_config(None, [
        "task.name=distill", "task.teacher=encoder:mobile_tiny", "encoder.name=mobile_tiny",
        f"data.source={tone_folder}", "train.steps=2", *COMMON]), tmp_path / "s", progress=False)
    assert np.isfinite(summary["final"]["loss"]) and "cos_0" in summary["final"]


def _batch(b: int = 3, t: int = 48) -> dict[str, torch.Tensor]:
    clean = torch.randn(b, t, 64)
    valid = torch.ones(b, t, dtype=torch.bool)
    valid[0, 40:] = False
    return {"x": clean.clone(), "clean": clean, "valid": valid}


def test_masked_distillation_runs_the_teacher_on_visible_tokens_only() -> None:
    """DMAE: the teacher sees only the visible tokens; the student also rebuilds masked frames."""
    teacher = _kwt(depth=2)
    task = Distill(create("encoder", "mobile_tiny"),
                   Distill.Config(slice_frames=48, mask_ratio=0.75))
    task.set_teacher(teacher, None)
    seen: list[int] = []
    real_encode = teacher.encode_tokens

    def spy(h: torch.Tensor, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        seen.append(h.shape[1])
        return real_encode(h, *args, **kwargs)

    teacher.encode_tokens = spy  # type: ignore[method-assign]
    student_inputs: list[torch.Tensor] = []
    task.encoder.register_forward_pre_hook(lambda _m, args: student_inputs.append(args[0]))
    loss, logs = task.step(_batch())
    assert seen == [12]  # 48 tokens, 36 masked
    assert np.isfinite(float(loss.detach())) and logs["recon"] > 0 and "l1_2" in logs
    hidden = (student_inputs[0][:, 0] == 0).all(dim=-1)  # masked frames are zeroed
    assert int(hidden.sum(dim=1)[0]) == 36
    loss.backward()
    assert task.recon is not None and task.recon.weight.grad is not None
    with pytest.raises(Exception, match="token encoder"):
        Distill(create("encoder", "mobile_tiny"), Distill.Config(
            slice_frames=48, mask_ratio=0.5)).set_teacher(create("encoder", "mobile_tiny"), None)


def test_a_supernet_student_trains_by_the_sandwich_rule() -> None:
    teacher = _kwt(depth=2)
    torch.manual_seed(1)
    student = create("encoder", "kwt_super", dims="16,32", depths="1,2", heads="1,2",
                     mlp_ratios="2,4", head_dim=8, input_frames=48)
    task = Distill(student, Distill.Config(slice_frames=48, random_subnets=1))
    task.set_teacher(teacher, None)
    assert task.heads[0].in_features == 32
    loss, logs = task.step(_batch())
    assert {"loss_largest", "loss_smallest"} <= set(logs)
    assert float(loss.detach()) == pytest.approx(logs["loss"])
    loss.backward()
    assert student.active == student.largest  # left on the largest subnet after the step
    grad = student.blocks[1].mlp[0].weight.grad  # block 2 only in the largest / random ones
    assert grad is not None and grad.abs().sum() > 0
    # the proxy score of a subnet is its loss alone; a better prediction has a lower score
    b = _batch()
    small, large = task.proxy_loss(b, student.smallest), task.proxy_loss(b, student.largest)
    assert np.isfinite([small, large]).all() and small != large


def test_layer_0_is_what_the_teachers_read_out_pools_or_its_output() -> None:
    teacher = create("encoder", "mobile_100")  # read-out meanmax:features: 512-d, output 128-d
    x = torch.randn(2, 1, 48, 64)
    for frames, width in (("readout", 512), ("output", 128)):
        task = Distill(create("encoder", "mobile_tiny"),
                       Distill.Config(slice_frames=48, teacher_frames=frames))
        task.set_teacher(teacher, None)
        assert task.layer_ids == [0] and task.heads[0].out_features == width
        assert task._teacher_layers(teacher, x)[0].shape[-1] == width
    with pytest.raises(Exception, match="teacher_frames"):
        Distill(create("encoder", "mobile_tiny"), Distill.Config(teacher_frames="mid"))
